// SPDX-License-Identifier: MIT
/*
 * VM actions (the table in supervisor.h), each run as a task on the VM's FIFO. A task holds
 * sv->lock only to read or change the VM; control-socket requests, spawning and waiting happen
 * unlocked. The state a task starts from is checked again when it runs, so queued actions see
 * what their predecessors left.
 */
#include "supervisor_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "vmm.h"

#define CONTROL_TIMEOUT_MS 10000
/* A VMM's control socket must answer within this after spawn (emulated hosts are slow). */
#define START_TIMEOUT_MS 60000

struct action_rule {
	const char *name;
	const char *from[5];
};

static const struct action_rule rules[] = {
	{ "start", { "defined", "stopped", "crashed" } },
	{ "shutdown", { "running" } },
	{ "stop", { "running", "paused", "stopping", "starting" } },
	{ "reboot", { "running" } },
	{ "reset", { "running" } },
	{ "pause", { "running" } },
	{ "resume", { "paused" } },
	{ "snapshot", { "running", "paused" } },
	{ "migrate", { "running" } },
};

static const struct action_rule *rule(const char *action)
{
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (!strcmp(rules[i].name, action))
			return &rules[i];
	return NULL;
}

bool sv_action_known(const char *action)
{
	return rule(action) != NULL;
}

bool sv_action_allowed(const char *action, const char *state)
{
	const struct action_rule *r = rule(action);

	for (int i = 0; r && i < 5 && r->from[i]; i++)
		if (!strcmp(r->from[i], state))
			return true;
	return false;
}

/* ---- arguments -------------------------------------------------------------------------- */

static int arg_int(json_object *args, const char *key, int64_t min, int64_t max, int64_t *out,
		   struct derror *e)
{
	json_object *v;

	if (!args || !json_object_object_get_ex(args, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < min ||
	    json_object_get_int64(v) > max) {
		derror_set(e, "invalid_value", "'%s' must be an integer from %lld to %lld", key,
			   (long long)min, (long long)max);
		return -EINVAL;
	}
	*out = json_object_get_int64(v);
	return 0;
}

static int arg_bool(json_object *args, const char *key, bool *out, struct derror *e)
{
	json_object *v;

	if (!args || !json_object_object_get_ex(args, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		derror_set(e, "invalid_value", "'%s' must be true or false", key);
		return -EINVAL;
	}
	*out = json_object_get_boolean(v);
	return 0;
}

static const char *arg_str(json_object *args, const char *key)
{
	json_object *v;

	if (!args || !json_object_object_get_ex(args, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int sv_action_check_args(const char *action, json_object *args, struct derror *e)
{
	static const char *const allowed[][5] = {
		[0] = { "timeout_s", "force", NULL }, /* shutdown, reboot */
		[1] = { "path", NULL }, /* snapshot */
		[2] = { "uri", "max_downtime_ms", "tls", "insecure", NULL },
	};
	int set = !strcmp(action, "shutdown") || !strcmp(action, "reboot") ? 0
		  : !strcmp(action, "snapshot")				   ? 1
		  : !strcmp(action, "migrate")				   ? 2
									   : -1;
	int64_t n;
	bool b;

	if (!args)
		return strcmp(action, "migrate")
			       ? 0
			       : (derror_set(e, "invalid_value", "migrate needs \"uri\""), -EINVAL);
	if (!json_object_is_type(args, json_type_object)) {
		derror_set(e, "invalid_value", "action arguments must be a JSON object");
		return -EINVAL;
	}
	json_object_object_foreach(args, k, v)
	{
		bool ok = false;
		(void)v;
		for (int i = 0; set >= 0 && i < 5 && allowed[set][i]; i++)
			ok |= !strcmp(k, allowed[set][i]);
		if (!ok) {
			derror_set(e, "unknown_field", "%s takes no argument '%s'", action, k);
			return -EINVAL;
		}
	}
	if (arg_int(args, "timeout_s", 0, 3600, &n, e) || arg_bool(args, "force", &b, e) ||
	    arg_int(args, "max_downtime_ms", 1, 60000, &n, e))
		return -EINVAL;
	if (set == 1 && json_object_object_get_ex(args, "path", NULL)) {
		const char *p = arg_str(args, "path");
		if (!p || p[0] != '/' || strlen(p) > 1024 || strstr(p, "/../")) {
			derror_set(e, "invalid_value", "'path' must be an absolute directory path");
			return -EINVAL;
		}
	}
	if (set == 2) {
		const char *u = arg_str(args, "uri"), *tls = arg_str(args, "tls");
		if (!u || strncmp(u, "tcp:", 4) || strlen(u) > 300) {
			derror_set(e, "invalid_value", "'uri' must be tcp:HOST:PORT");
			return -EINVAL;
		}
		if (arg_bool(args, "insecure", &b, e))
			return -EINVAL;
		if (json_object_object_get_ex(args, "tls", NULL) &&
		    (!tls || (strncmp(tls, "psk=/", 5) && strncmp(tls, "x509=/", 6)) ||
		     strchr(tls, ',') || strlen(tls) > 1024)) {
			derror_set(e, "invalid_value",
				   "'tls' must be psk=/ABSOLUTE/FILE or x509=/ABSOLUTE/DIR");
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- the task ------------------------------------------------------------------------------ */

struct action_arg {
	struct supervisor *sv;
	char id[STORE_ID_LEN];
	char action[16];
	json_object *args;
	char by[160]; /* "api (uid:0)", "vireod (...)" */
	char reason[400];
};

static void action_arg_free(void *p)
{
	struct action_arg *a = p;

	json_object_put(a->args);
	free(a);
}

/* Sends {"cmd": cmd, ...extra} and checks "ok"; a failure becomes the task's error. */
static int control(struct task *t, struct vm *vm, json_object *req, int timeout_ms,
		   json_object **reply_out)
{
	json_object *reply = NULL;
	int ret = vmm_request(vm->api_sock, req, timeout_ms, &reply);
	const char *cmd = json_object_get_string(json_object_object_get(req, "cmd"));

	json_object_put(req);
	if (ret) {
		json_object_put(reply);
		return task_fail(t, "internal", "control socket %s: %s", cmd, strerror(-ret));
	}
	if (!json_object_get_boolean(json_object_object_get(reply, "ok"))) {
		task_fail(t, "unprocessable", "the VMM refused %s: %s", cmd,
			  json_object_get_string(json_object_object_get(reply, "error")));
		json_object_put(reply);
		return -EINVAL;
	}
	if (reply_out)
		*reply_out = reply;
	else
		json_object_put(reply);
	return 0;
}

static json_object *cmd(const char *name)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "cmd", json_object_new_string(name));
	return o;
}

/* Lock held on entry and exit. Refuses (task error) when the action is not allowed now. */
static int check_state(struct task *t, struct vm *vm, const char *action)
{
	if (sv_action_allowed(action, vm->state))
		return 0;
	return task_fail(t, "invalid_state", "cannot %s a VM that is %s", action, vm->state);
}

/* The last line of the VMM's log, for errors ("" when none). */
static void log_tail(const char *dir, char *out, size_t len)
{
	char path[PATH_MAX], buf[512];
	ssize_t n = 0;
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/vmm.log", dir);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fseek(f, -(long)(sizeof(buf) - 1), SEEK_END))
		rewind(f);
	n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n > 0 ? n : 0] = '\0';
	const char *nl = strrchr(buf, '\n'), *line = nl ? nl + 1 : buf;
	size_t l = strlen(line) < len - 1 ? strlen(line) : len - 1;
	memcpy(out, line, l);
	out[l] = '\0';
}

/* Spawns the VMM and waits for its control socket. Lock held on entry and exit. */
static int do_start(struct task *t, struct supervisor *sv, struct vm *vm, const char *reason)
{
	struct derror e = { 0 };
	struct vmm_proc p;
	char **argv = NULL, why[400];
	int ret;

	if (check_state(t, vm, "start"))
		return -EINVAL;
	if (vmdef_check_files(&vm->def, &e))
		return task_fail_derror(t, &e);
	if (vmdef_argv(&vm->def, sv->vireo, vm->api_sock, vm->console_sock, &argv))
		return task_fail(t, "internal", "out of memory");
	snprintf(why, sizeof(why), "start requested by %s", reason);
	ret = sv_transition(sv, vm, "starting", why);
	if (ret) {
		vmdef_argv_free(argv);
		return ret;
	}
	pthread_mutex_unlock(&sv->lock);
	if (mkdir(vm->dir, 0700) && errno != EEXIST)
		pr_warn("vm %s: mkdir %s: %s", vm->def.name, vm->dir, strerror(errno));
	task_log(t, "spawning the VMM (log: %s/vmm.log)", vm->dir);
	ret = vmm_spawn(sv->self, vm->dir, argv, &p);
	vmdef_argv_free(argv);
	pthread_mutex_lock(&sv->lock);
	if (!ret)
		ret = sv_watch(sv, vm, p.shim_pid, p.vmm_pid, p.starttime, true);
	if (ret) {
		snprintf(why, sizeof(why), "start failed: %s", strerror(-ret));
		sv_transition(sv, vm, "crashed", why);
		return task_fail(t, "internal", "%s (see %s/vmm.log)", why, vm->dir);
	}
	task_log(t, "VMM pid %d (shim %d); waiting for its control socket", (int)p.vmm_pid,
		 (int)p.shim_pid);
	task_progress(t, 30);
	for (int waited = 0; vm->vmm_pid == p.vmm_pid; waited += 20) {
		json_object *reply = NULL;
		pthread_mutex_unlock(&sv->lock);
		bool up = vmm_command(vm->api_sock, "status", 2000, &reply) == 0 &&
			  json_object_get_boolean(json_object_object_get(reply, "ok"));
		json_object_put(reply);
		if (!up)
			usleep(20000);
		pthread_mutex_lock(&sv->lock);
		if (up)
			break;
		if (sv->stopping)
			return task_fail(t, "shutting_down",
					 "vireod is stopping; the next one re-attaches to this VM");
		if (waited > START_TIMEOUT_MS || task_cancelled(t)) {
			vm->expect_exit = true;
			vm->kill_sent = true;
			snprintf(vm->expect_reason, sizeof(vm->expect_reason),
				 "start abandoned: %s",
				 task_cancelled(t) ? "cancelled" : "control socket never answered");
			syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
			sv_wait_gone(sv, vm, 10000);
			return task_cancelled(t) ? -ECANCELED
						 : task_fail(t, "internal",
							     "the VMM's control socket did not "
							     "answer within %d s",
							     START_TIMEOUT_MS / 1000);
		}
	}
	if (vm->vmm_pid != p.vmm_pid) {
		char tail[256];
		log_tail(vm->dir, tail, sizeof(tail));
		return task_fail(t, "unprocessable",
				 "the VMM ended during start: %s; %s/vmm.log: %s", vm->reason,
				 vm->dir, tail);
	}
	if (sv->cfg.consoles) {
		pthread_mutex_unlock(&sv->lock);
		if (consolehub_attach(sv->cfg.consoles, vm->id, vm->console_sock, 5000))
			task_log(t, "console not attached");
		pthread_mutex_lock(&sv->lock);
	}
	if (strcmp(vm->state, "starting") || vm->vmm_pid != p.vmm_pid)
		return task_fail(t, "unprocessable", "the VMM ended during start: %s", vm->reason);
	snprintf(why, sizeof(why), "started by %s", reason);
	return sv_transition(sv, vm, "running", why);
}

/* Asks the VMM to go (stop request), waits, SIGKILLs after grace_ms. Lock held. */
static int stop_vmm(struct task *t, struct supervisor *sv, struct vm *vm, json_object *req,
		    int grace_ms, const char *expect_reason)
{
	vm->expect_exit = true;
	snprintf(vm->expect_reason, sizeof(vm->expect_reason), "%s", expect_reason);
	pthread_mutex_unlock(&sv->lock);
	json_object *reply = NULL;
	if (vmm_request(vm->api_sock, req, CONTROL_TIMEOUT_MS, &reply))
		task_log(t, "the control socket did not take the stop request");
	json_object_put(reply);
	json_object_put(req);
	pthread_mutex_lock(&sv->lock);
	if (sv_wait_gone(sv, vm, grace_ms))
		return 0;
	if (sv->stopping) /* never kill a VMM on the daemon's way out */
		return task_fail(t, "shutting_down", "vireod is stopping before the VMM ended");
	task_log(t, "the VMM is still there after %d s: SIGKILL", grace_ms / 1000);
	vm->kill_sent = true;
	if (vm->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
	if (sv_wait_gone(sv, vm, 10000))
		return 0;
	return task_fail(t, "internal", "the VMM (pid %d) does not go away", (int)vm->vmm_pid);
}

static int do_stop(struct task *t, struct supervisor *sv, struct vm *vm, const char *by)
{
	json_object *req = cmd("stop");
	char why[300];

	if (check_state(t, vm, "stop")) {
		json_object_put(req);
		return -EINVAL;
	}
	json_object_object_add(req, "force", json_object_new_boolean(true));
	snprintf(why, sizeof(why), "stop requested by %s", by);
	if (strcmp(vm->state, "stopping"))
		sv_transition(sv, vm, "stopping", why);
	snprintf(why, sizeof(why), "stopped by %s", by);
	return stop_vmm(t, sv, vm, req, 5000, why);
}

/* shutdown, and the first half of reboot. */
static int do_shutdown(struct task *t, struct supervisor *sv, struct vm *vm, struct action_arg *a,
		       bool reboot)
{
	int64_t timeout = 60;
	bool force = true;
	char why[300];

	if (check_state(t, vm, a->action))
		return -EINVAL;
	arg_int(a->args, "timeout_s", 0, 3600, &timeout, NULL);
	arg_bool(a->args, "force", &force, NULL);
	snprintf(why, sizeof(why), "%s requested by %s", a->action, a->by);
	sv_transition(sv, vm, "stopping", why);
	snprintf(why, sizeof(why), "%s by %s", reboot ? "stopped for a reboot" : "shut down",
		 a->by);
	if (force) {
		/* The VMM presses the power button and stops hard after timeout_s itself. */
		json_object *req = cmd("stop");
		json_object_object_add(req, "timeout_s", json_object_new_int64(timeout));
		return stop_vmm(t, sv, vm, req, (int)timeout * 1000 + 5000, why);
	}
	pthread_mutex_unlock(&sv->lock);
	int ret = control(t, vm, cmd("power-button"), CONTROL_TIMEOUT_MS, NULL);
	pthread_mutex_lock(&sv->lock);
	vm->expect_exit = true;
	snprintf(vm->expect_reason, sizeof(vm->expect_reason), "%s", why);
	if (!ret && sv_wait_gone(sv, vm, (int)timeout * 1000))
		return 0;
	if (sv->stopping)
		return task_fail(t, "shutting_down",
				 "vireod is stopping before the guest powered off");
	vm->expect_exit = false;
	if (vm->vmm_pid) {
		snprintf(why, sizeof(why), "the guest did not power off within %lld s",
			 (long long)timeout);
		sv_transition(sv, vm, "running", why);
		return ret ? ret : task_fail(t, "unprocessable", "%s", why);
	}
	return ret;
}

static int do_simple(struct task *t, struct supervisor *sv, struct vm *vm, struct action_arg *a)
{
	const char *to = !strcmp(a->action, "pause") ? "paused" : "running";
	char why[300];
	int ret;

	if (check_state(t, vm, a->action))
		return -EINVAL;
	pthread_mutex_unlock(&sv->lock);
	ret = control(t, vm, cmd(a->action), CONTROL_TIMEOUT_MS, NULL);
	pthread_mutex_lock(&sv->lock);
	if (ret)
		return ret;
	snprintf(why, sizeof(why), "%s by %s",
		 !strcmp(a->action, "pause")	? "paused"
		 : !strcmp(a->action, "resume") ? "resumed"
						: "reset",
		 a->by);
	if (vm->vmm_pid)
		sv_transition(sv, vm, to, why);
	return 0;
}

static int do_snapshot(struct task *t, struct supervisor *sv, struct vm *vm, struct action_arg *a)
{
	const char *path = arg_str(a->args, "path");
	char def[PATH_MAX], at[STORE_TIME_LEN];
	json_object *req = cmd("snapshot"), *reply = NULL;
	int ret;

	if (check_state(t, vm, "snapshot")) {
		json_object_put(req);
		return -EINVAL;
	}
	if (!path) {
		store_now(at);
		snprintf(def, sizeof(def), "%s/snapshots", vm->dir);
		mkdir(def, 0700);
		snprintf(def, sizeof(def), "%s/snapshots/%s", vm->dir, at);
		path = def;
	}
	json_object_object_add(req, "path", json_object_new_string(path));
	task_log(t, "writing the snapshot to %s", path);
	pthread_mutex_unlock(&sv->lock);
	ret = control(t, vm, req, 30 * 60 * 1000, &reply);
	pthread_mutex_lock(&sv->lock);
	if (ret)
		return ret;
	json_object_object_del(reply, "ok");
	task_set_result(t, reply);
	return 0;
}

/* Polls migrate-status until the migration ends. Lock not held. */
static int migrate_poll(struct task *t, struct supervisor *sv, struct vm *vm, json_object **last)
{
	for (bool cancel_sent = false;;) {
		json_object *st = NULL;
		/* The daemon stopping is no reason to abandon a migration: leave it to the VMM. */
		pthread_mutex_lock(&sv->lock);
		bool stopping = sv->stopping;
		pthread_mutex_unlock(&sv->lock);
		if (stopping)
			return task_fail(t, "shutting_down",
					 "vireod stopped watching the migration");
		if (!cancel_sent && task_cancelled(t)) {
			control(t, vm, cmd("migrate-cancel"), CONTROL_TIMEOUT_MS, NULL);
			cancel_sent = true;
		}
		if (vmm_command(vm->api_sock, "migrate-status", CONTROL_TIMEOUT_MS, &st)) {
			/* The socket goes with the VMM when the migration completes. */
			json_object_put(st);
			return 1;
		}
		const char *phase = json_object_get_string(json_object_object_get(st, "phase"));
		int64_t done =
			json_object_get_int64(json_object_object_get(st, "transferred_bytes"));
		int64_t left = json_object_get_int64(json_object_object_get(st, "remaining_bytes"));
		if (done + left > 0)
			task_progress(t, (int)(done * 99 / (done + left)));
		json_object_put(*last);
		*last = st;
		if (phase && (!strcmp(phase, "completed") || !strcmp(phase, "failed") ||
			      !strcmp(phase, "cancelled")))
			return !strcmp(phase, "completed");
		usleep(250000);
	}
}

static int do_migrate(struct task *t, struct supervisor *sv, struct vm *vm, struct action_arg *a)
{
	const char *uri = arg_str(a->args, "uri");
	json_object *req = cmd("migrate"), *last = NULL;
	int64_t downtime = 0;
	char why[400];
	int ret;

	if (check_state(t, vm, "migrate")) {
		json_object_put(req);
		return -EINVAL;
	}
	json_object_object_add(req, "uri", json_object_new_string(uri));
	if (!arg_int(a->args, "max_downtime_ms", 1, 60000, &downtime, NULL) && downtime)
		json_object_object_add(req, "max_downtime_ms", json_object_new_int64(downtime));
	/* The VMM's migration credentials (TLS 1.3 with a PSK or certificates), or plain TCP. */
	if (arg_str(a->args, "tls"))
		json_object_object_add(req, "tls", json_object_new_string(arg_str(a->args, "tls")));
	if (json_object_object_get_ex(a->args, "insecure", NULL))
		json_object_object_add(
			req, "insecure",
			json_object_get(json_object_object_get(a->args, "insecure")));
	snprintf(why, sizeof(why), "migration to %s requested by %s", uri, a->by);
	sv_transition(sv, vm, "migrating", why);
	vm->expect_exit = true;
	snprintf(vm->expect_reason, sizeof(vm->expect_reason), "migrated to %s", uri);
	pthread_mutex_unlock(&sv->lock);
	ret = control(t, vm, req, CONTROL_TIMEOUT_MS, NULL);
	int polled = ret ? 0 : migrate_poll(t, sv, vm, &last);
	if (polled < 0)
		ret = polled;
	if (polled == 1) {
		/* Completed, or the socket went with the VMM: its exit status tells which. */
		pthread_mutex_lock(&sv->lock);
		if (!sv_wait_gone(sv, vm, 30000))
			ret = task_fail(t, "internal", "migrated, but the source VMM did not end");
		else if (strcmp(vm->state, "stopped"))
			ret = task_fail(t, "internal",
					"the source VMM ended during the migration: %s",
					vm->reason);
		if (!last)
			last = json_object_new_object();
		json_object_object_del(last, "ok");
		json_object_object_add(last, "phase", json_object_new_string("completed"));
		if (!ret)
			task_set_result(t, last);
		else
			json_object_put(last);
		return ret;
	}
	pthread_mutex_lock(&sv->lock);
	if (sv->stopping) {
		json_object_put(last);
		return ret; /* the next vireod finds the VMM migrated or still running */
	}
	vm->expect_exit = false;
	const char *err =
		last ? json_object_get_string(json_object_object_get(last, "error")) : NULL;
	if (!ret)
		ret = task_cancelled(t) ? -ECANCELED
					: task_fail(t, "unprocessable", "migration failed: %s",
						    err ? err : "see the VMM log");
	if (vm->vmm_pid) {
		snprintf(why, sizeof(why), "migration to %s %s", uri,
			 task_cancelled(t) ? "cancelled" : "failed");
		sv_transition(sv, vm, "running", why);
	}
	json_object_put(last);
	return ret;
}

static int run_action(struct task *t, void *arg)
{
	struct action_arg *a = arg;
	struct supervisor *sv = a->sv;
	struct vm *vm;
	int ret;

	pthread_mutex_lock(&sv->lock);
	vm = sv_find(sv, a->id);
	if (!vm) {
		pthread_mutex_unlock(&sv->lock);
		return task_fail(t, "not_found", "the VM is gone");
	}
	if (!strcmp(a->action, "start")) {
		ret = do_start(t, sv, vm, a->reason[0] ? a->reason : a->by);
	} else if (!strcmp(a->action, "stop")) {
		ret = do_stop(t, sv, vm, a->by);
	} else if (!strcmp(a->action, "shutdown")) {
		ret = do_shutdown(t, sv, vm, a, false);
	} else if (!strcmp(a->action, "reboot")) {
		ret = do_shutdown(t, sv, vm, a, true);
		if (!ret) {
			task_progress(t, 50);
			ret = do_start(t, sv, vm, a->by);
		}
	} else if (!strcmp(a->action, "snapshot")) {
		ret = do_snapshot(t, sv, vm, a);
	} else if (!strcmp(a->action, "migrate")) {
		ret = do_migrate(t, sv, vm, a);
	} else {
		ret = do_simple(t, sv, vm, a);
	}
	/* Snapshot and migrate report what the VMM said; the others the VM as it is now. */
	if (!ret && strcmp(a->action, "snapshot") && strcmp(a->action, "migrate"))
		task_set_result(t, sv_vm_json(vm));
	pthread_mutex_unlock(&sv->lock);
	return ret;
}

int sv_action_submit(struct supervisor *sv, const char *id, const char *action, json_object *args,
		     const char *principal, const char *reason_by, json_object **task_out)
{
	struct action_arg *a = calloc(1, sizeof(*a));
	char kind[32];

	if (!a)
		return -ENOMEM;
	a->sv = sv;
	snprintf(a->id, sizeof(a->id), "%s", id);
	snprintf(a->action, sizeof(a->action), "%s", action);
	a->args = args ? json_object_get(args) : NULL;
	if (!strcmp(principal, "vireod") && strcmp(reason_by, "api")) {
		snprintf(a->by, sizeof(a->by), "vireod");
		snprintf(a->reason, sizeof(a->reason), "%s", reason_by);
	} else {
		snprintf(a->by, sizeof(a->by), "%s", reason_by);
	}
	snprintf(kind, sizeof(kind), "vm.%s", action);
	return task_submit(sv->cfg.tasks, kind, id, principal, run_action, a, action_arg_free,
			   task_out);
}

/* ---- stats ------------------------------------------------------------------------------- */

json_object *sv_stats(const char *api_sock, pid_t vmm_pid, bool balloon, int nnics)
{
	json_object *o = json_object_new_object(), *r = NULL;
	double cpu = 0;
	uint64_t rss = 0;

	if (vmm_pid)
		vmm_proc_stats(vmm_pid, &cpu, &rss);
	json_object_object_add(o, "cpu_seconds", json_object_new_double(cpu));
	json_object_object_add(o, "rss_bytes", json_object_new_int64((int64_t)rss));
	json_object_object_add(o, "balloon", NULL);
	json_object_object_add(o, "block", NULL); /* the VMM reports no block counters yet */
	json_object_object_add(o, "net", NULL);
	if (vmm_pid && balloon && vmm_command(api_sock, "balloon-stats", 1000, &r) == 0 &&
	    json_object_get_boolean(json_object_object_get(r, "ok"))) {
		json_object_object_del(r, "ok");
		json_object_object_add(o, "balloon", json_object_get(r));
	}
	json_object_put(r);
	r = NULL;
	if (vmm_pid && nnics && vmm_command(api_sock, "net-info", 1000, &r) == 0 &&
	    json_object_get_boolean(json_object_object_get(r, "ok"))) {
		json_object *nics = json_object_object_get(r, "nics");
		json_object_object_add(o, "net", json_object_get(nics));
	}
	json_object_put(r);
	return o;
}
