// SPDX-License-Identifier: MIT
/*
 * The supervisor (supervisor.h): the VM table kept in memory and written through to the store,
 * the API's VM resources, re-attaching to VMMs at daemon start, and the pidfd watcher thread
 * that notices a VMM's end. The actions themselves are in supervisor_actions.c.
 */
#include "supervisor_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/printbuf.h>

#include "../common/log.h"
#include "vmm.h"

const char *const supervisor_states[SUPERVISOR_NSTATES] = { "defined", "starting", "running",
							    "paused",  "stopping", "stopped",
							    "crashed", "migrating" };

static struct supervisor *default_sv;

struct supervisor *supervisor_default(void)
{
	return default_sv;
}

void sv_publish(struct supervisor *sv, const char *type, json_object *data)
{
	if (sv->cfg.publish)
		sv->cfg.publish(type, data);
	json_object_put(data);
}

static int64_t mono_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the table ------------------------------------------------------------------------------- */

struct vm *sv_find(struct supervisor *sv, const char *id)
{
	if (!id)
		return NULL;
	for (size_t i = 0; i < sv->nvms; i++)
		if (!strcmp(sv->vms[i]->id, id) || !strcmp(sv->vms[i]->def.name, id))
			return sv->vms[i];
	return NULL;
}

int sv_table_add(struct supervisor *sv, struct vm *vm)
{
	if (sv->nvms == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 64;
		struct vm **n = realloc(sv->vms, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		sv->vms = n;
		sv->cap = cap;
	}
	sv->vms[sv->nvms++] = vm;
	return 0;
}

void sv_vm_free(struct vm *vm)
{
	free(vm->text);
	vmdef_free(&vm->def);
	json_object_put(vm->def_json);
	free(vm->reason);
	free(vm);
}

void sv_vm_paths(struct supervisor *sv, struct vm *vm)
{
	snprintf(vm->dir, sizeof(vm->dir), "%s/vms/%s", sv->state_dir, vm->id);
	snprintf(vm->api_sock, sizeof(vm->api_sock), "%s/control.sock", vm->dir);
	snprintf(vm->console_sock, sizeof(vm->console_sock), "%s/console.sock", vm->dir);
}

json_object *sv_vm_json(const struct vm *vm)
{
	json_object *o = NULL;

	json_object_deep_copy(vm->def_json, &o, NULL);
	json_object_object_add(o, "id", json_object_new_string(vm->id));
	json_object_object_add(o, "state", json_object_new_string(vm->state));
	json_object_object_add(o, "state_reason", json_object_new_string(vm->reason));
	json_object_object_add(o, "state_changed_at", json_object_new_string(vm->state_changed_at));
	json_object_object_add(o, "generation", json_object_new_int64(vm->generation));
	json_object_object_add(o, "created_at", json_object_new_string(vm->created_at));
	json_object_object_add(o, "updated_at", json_object_new_string(vm->updated_at));
	json_object_object_add(o, "pid", vm->vmm_pid ? json_object_new_int(vm->vmm_pid) : NULL);
	return o;
}

void sv_vm_dirty(struct vm *vm)
{
	free(vm->text);
	vm->text = NULL;
}

/* A list item that serializes to a copy of the VM's cached text: GET /vms with 1000 VMs then
 * costs a memcpy per VM instead of building and freeing 1000 object trees. */
static int text_serializer(json_object *jso, struct printbuf *pb, int level, int flags)
{
	const char *text = json_object_get_userdata(jso);

	(void)level;
	(void)flags;
	return printbuf_memappend(pb, text, (int)strlen(text));
}

static void text_free(json_object *jso, void *userdata)
{
	(void)jso;
	free(userdata);
}

/* Lock held. */
json_object *sv_vm_list_item(struct vm *vm)
{
	json_object *o;
	char *copy;

	if (!vm->text) {
		o = sv_vm_json(vm);
		vm->text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		if (!vm->text)
			return sv_vm_json(vm);
	}
	copy = strdup(vm->text);
	if (!copy)
		return sv_vm_json(vm);
	o = json_object_new_object();
	json_object_set_serializer(o, text_serializer, copy, text_free);
	return o;
}

int sv_transition(struct supervisor *sv, struct vm *vm, const char *to, const char *reason)
{
	char at[STORE_TIME_LEN], *r = strdup(reason);
	json_object *ev;
	int ret;

	if (!r)
		return -ENOMEM;
	store_now(at);
	ret = store_vm_set_state(sv->cfg.store, vm->id, vm->state, to, reason, at);
	if (ret) {
		pr_err("vm %s: recording %s -> %s failed: %s", vm->def.name, vm->state, to,
		       strerror(-ret));
		free(r);
		return ret;
	}
	pr_info("vm %s: %s -> %s (%s)", vm->def.name, vm->state, to, reason);
	ev = json_object_new_object();
	json_object_object_add(ev, "id", json_object_new_string(vm->id));
	json_object_object_add(ev, "name", json_object_new_string(vm->def.name));
	json_object_object_add(ev, "from", json_object_new_string(vm->state));
	json_object_object_add(ev, "to", json_object_new_string(to));
	json_object_object_add(ev, "reason", json_object_new_string(reason));
	snprintf(vm->state, sizeof(vm->state), "%s", to);
	free(vm->reason);
	vm->reason = r;
	memcpy(vm->state_changed_at, at, sizeof(at));
	sv_vm_dirty(vm);
	sv_publish(sv, "vm.state", ev);
	return 0;
}

/* Builds a struct vm from a stored row. */
static int load_one(const struct store_vm *row, void *opaque)
{
	struct supervisor *sv = opaque;
	json_object *j = json_tokener_parse(row->def_json);
	struct vm *vm = calloc(1, sizeof(*vm));
	struct derror e = { 0 };
	int ret;

	if (!vm) {
		json_object_put(j);
		return -ENOMEM;
	}
	ret = vmdef_from_json(j, false, &vm->def, &e);
	json_object_put(j);
	if (ret) {
		/* Only an older vireod's rules could have let this in: keep the daemon up. */
		pr_err("vm %s (%s): stored definition refused (%s); skipped", row->name, row->id,
		       e.message);
		free(vm);
		return 0;
	}
	memcpy(vm->id, row->id, sizeof(vm->id));
	snprintf(vm->state, sizeof(vm->state), "%s", row->state);
	vm->reason = strdup(row->state_reason ? row->state_reason : "");
	memcpy(vm->state_changed_at, row->state_changed_at, sizeof(vm->state_changed_at));
	vm->generation = row->generation;
	memcpy(vm->created_at, row->created_at, sizeof(vm->created_at));
	memcpy(vm->updated_at, row->updated_at, sizeof(vm->updated_at));
	vm->def_json = vmdef_to_json(&vm->def);
	vm->pidfd = -1;
	sv_vm_paths(sv, vm);
	ret = sv_table_add(sv, vm);
	if (ret)
		sv_vm_free(vm);
	return ret;
}

int supervisor_create(const struct supervisor_config *cfg, struct supervisor **out)
{
	struct supervisor *sv = calloc(1, sizeof(*sv));
	pthread_condattr_t ca;
	char path[PATH_MAX];
	int ret;

	if (!sv)
		return -ENOMEM;
	sv->cfg = *cfg;
	sv->state_dir = strdup(cfg->state_dir);
	sv->vireo = strdup(cfg->vireo);
	sv->self = strdup(cfg->self);
	sv->epfd = sv->wakefd = -1;
	pthread_mutex_init(&sv->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sv->cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(path, sizeof(path), "%s/vms", cfg->state_dir);
	if (mkdir(path, 0700) && errno != EEXIST) {
		ret = -errno;
		pr_err("supervisor: cannot create %s: %s", path, strerror(errno));
		goto err_free;
	}
	ret = store_vm_foreach(cfg->store, load_one, sv);
	if (ret)
		goto err_free;
	sv->epfd = epoll_create1(EPOLL_CLOEXEC);
	sv->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sv->epfd < 0 || sv->wakefd < 0) {
		ret = -errno;
		goto err_free;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = sv->wakefd };
	epoll_ctl(sv->epfd, EPOLL_CTL_ADD, sv->wakefd, &ev);
	if (!default_sv)
		default_sv = sv;
	*out = sv;
	return 0;

err_free:
	supervisor_destroy(sv);
	return ret;
}

void supervisor_shutdown(struct supervisor *sv)
{
	pthread_mutex_lock(&sv->lock);
	sv->stopping = true;
	pthread_cond_broadcast(&sv->cond);
	pthread_mutex_unlock(&sv->lock);
}

void supervisor_destroy(struct supervisor *sv)
{
	uint64_t one = 1;

	if (!sv)
		return;
	pthread_mutex_lock(&sv->lock);
	sv->stopping = true;
	pthread_mutex_unlock(&sv->lock);
	if (sv->watching) {
		if (write(sv->wakefd, &one, sizeof(one)) < 0)
			pr_warn("supervisor: cannot wake the watcher");
		pthread_join(sv->watcher, NULL);
	}
	for (size_t i = 0; i < sv->nvms; i++) {
		if (sv->vms[i]->pidfd >= 0)
			close(sv->vms[i]->pidfd);
		sv_vm_free(sv->vms[i]);
	}
	if (sv->epfd >= 0)
		close(sv->epfd);
	if (sv->wakefd >= 0)
		close(sv->wakefd);
	if (default_sv == sv)
		default_sv = NULL;
	free(sv->vms);
	free(sv->state_dir);
	free(sv->vireo);
	free(sv->self);
	pthread_mutex_destroy(&sv->lock);
	pthread_cond_destroy(&sv->cond);
	free(sv);
}

/* ---- VMM processes ------------------------------------------------------------------------ */

int sv_watch(struct supervisor *sv, struct vm *vm, pid_t shim, pid_t vmm, uint64_t starttime,
	     bool store_runtime)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct store_runtime rt = { .shim_pid = shim, .vmm_pid = vmm, .vmm_starttime = starttime };
	int fd = vmm_pidfd(vmm);

	if (fd < 0)
		return fd;
	vm->shim_pid = shim;
	vm->vmm_pid = vmm;
	vm->starttime = starttime;
	vm->pidfd = fd;
	sv_vm_dirty(vm);
	vm->kill_sent = false;
	ev.data.fd = fd;
	if (epoll_ctl(sv->epfd, EPOLL_CTL_ADD, fd, &ev))
		pr_err("vm %s: cannot watch the VMM: %s", vm->def.name, strerror(errno));
	if (store_runtime) {
		store_now(rt.started_at);
		store_runtime_set(sv->cfg.store, vm->id, &rt);
	}
	/* A VMM that ended before the pidfd existed still makes it readable: the watcher sees it.
	 */
	return 0;
}

bool sv_wait_gone(struct supervisor *sv, struct vm *vm, int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (vm->vmm_pid && !sv->stopping)
		if (pthread_cond_timedwait(&sv->cond, &sv->lock, &ts) == ETIMEDOUT)
			break;
	return vm->vmm_pid == 0;
}

void sv_queue_start(struct supervisor *sv, const char *id, const char *reason)
{
	if (sv_action_submit(sv, id, "start", NULL, "vireod", reason, NULL))
		pr_warn("vm %s: could not queue a start (%s)", id, reason);
}

/* Whether the restart policy restarts a VM that reached state `to` on its own. */
static bool policy_restarts(struct vm *vm, const char *to)
{
	int64_t now = mono_now_ms();

	if (!strcmp(to, "crashed") ? vm->def.restart_policy == VM_RESTART_NO
				   : vm->def.restart_policy != VM_RESTART_ALWAYS)
		return false;
	if (now - vm->restart_window > 60000) {
		vm->restart_window = now;
		vm->restarts = 0;
	}
	/* A VMM that dies at once would otherwise be restarted forever. */
	if (++vm->restarts > 5) {
		pr_warn("vm %s: restarted 5 times within a minute; not again", vm->def.name);
		return false;
	}
	return true;
}

/* The VMM of vm ended (lock held); status from the shim's exit-status or -1 unknown. */
static void vmm_ended(struct supervisor *sv, struct vm *vm, int status, bool *restart,
		      char *restart_reason, size_t rlen)
{
	char text[96], reason[440];
	const char *to;
	bool was_starting = !strcmp(vm->state, "starting"), expected;
	bool clean = status >= 0 &&
		     ((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
		      (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && vm->kill_sent));

	if (status >= 0)
		vmm_status_text(status, text, sizeof(text));
	else
		snprintf(text, sizeof(text), "ended (its exit status is lost: the shim died too)");
	expected = vm->expect_exit && clean;
	if (expected) {
		to = "stopped";
		snprintf(reason, sizeof(reason), "%s (VMM %s)", vm->expect_reason, text);
	} else if (clean && !vm->kill_sent) {
		to = "stopped";
		snprintf(reason, sizeof(reason), "guest powered off (VMM %s)", text);
	} else {
		to = "crashed";
		snprintf(reason, sizeof(reason), "VMM %s", text);
	}
	if (vm->pidfd >= 0) {
		epoll_ctl(sv->epfd, EPOLL_CTL_DEL, vm->pidfd, NULL);
		close(vm->pidfd);
	}
	vm->pidfd = -1;
	vm->vmm_pid = vm->shim_pid = 0;
	sv_vm_dirty(vm);
	vm->expect_exit = vm->kill_sent = false;
	store_runtime_clear(sv->cfg.store, vm->id);
	if (sv->cfg.consoles)
		consolehub_detach(sv->cfg.consoles, vm->id);
	sv_transition(sv, vm, to, reason);
	pthread_cond_broadcast(&sv->cond);
	/* Exits we asked for never restart; a guest power-off restarts only under "always". */
	*restart = !was_starting && !expected && policy_restarts(vm, to);
	snprintf(restart_reason, rlen, "restarted by restart policy %s after: %s",
		 vmdef_restart_policy_name(vm->def.restart_policy), reason);
}

/* The shim writes exit-status right after the VMM ends; give it a moment. */
static int wait_exit_status(const char *dir, int *status)
{
	struct timespec ts = { 0, 5 * 1000000 };

	for (int i = 0; i < 400; i++) {
		if (vmm_read_exit_status(dir, status) == 0)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -ENOENT;
}

static void pidfd_ready(struct supervisor *sv, int fd)
{
	char dir[PATH_MAX], id[STORE_ID_LEN], why[600];
	struct vm *vm = NULL;
	bool restart = false;
	int status;

	pthread_mutex_lock(&sv->lock);
	for (size_t i = 0; i < sv->nvms && !vm; i++)
		if (sv->vms[i]->pidfd == fd)
			vm = sv->vms[i];
	if (!vm) {
		epoll_ctl(sv->epfd, EPOLL_CTL_DEL, fd, NULL);
		pthread_mutex_unlock(&sv->lock);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", vm->dir);
	pthread_mutex_unlock(&sv->lock);
	if (wait_exit_status(dir, &status))
		status = -1;
	pthread_mutex_lock(&sv->lock);
	/* Still the same VMM? (Only this thread clears pidfds, so yes; checked for safety.) */
	if (vm->pidfd == fd) {
		vmm_ended(sv, vm, status, &restart, why, sizeof(why));
		memcpy(id, vm->id, sizeof(id));
	}
	pthread_mutex_unlock(&sv->lock);
	if (restart)
		sv_queue_start(sv, id, why);
}

static void *watcher(void *arg)
{
	struct supervisor *sv = arg;
	struct epoll_event ev[32];

	for (;;) {
		int n = epoll_wait(sv->epfd, ev, 32, -1);
		if (n < 0 && errno != EINTR) {
			pr_err("supervisor: epoll_wait: %s", strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].data.fd == sv->wakefd)
				return NULL;
			pidfd_ready(sv, ev[i].data.fd);
		}
	}
}

/* ---- re-attach at daemon start ---------------------------------------------------------- */

static bool has_vmm_state(const char *state)
{
	return !strcmp(state, "starting") || !strcmp(state, "running") ||
	       !strcmp(state, "paused") || !strcmp(state, "stopping") ||
	       !strcmp(state, "migrating");
}

/* Finds the VMM of a VM whose stored state says it has one. Lock held; the status request
 * is short (a live VMM answers in well under a second). */
static void reattach_one(struct supervisor *sv, struct vm *vm)
{
	struct store_runtime rt;
	json_object *reply = NULL;
	char text[96], reason[256];
	int status;

	if (store_runtime_get(sv->cfg.store, vm->id, &rt) == 0 &&
	    vmm_alive(rt.vmm_pid, rt.vmm_starttime)) {
		const char *st = NULL;
		for (int i = 0; i < 3 && !st; i++) {
			if (vmm_command(vm->api_sock, "status", 2000, &reply) == 0 &&
			    json_object_get_boolean(json_object_object_get(reply, "ok")))
				st = json_object_get_string(json_object_object_get(reply, "state"));
			if (!st) {
				json_object_put(reply);
				reply = NULL;
			}
		}
		/* No answer because it is dying right now: then it is not re-attached. */
		if ((st || vmm_alive(rt.vmm_pid, rt.vmm_starttime)) &&
		    sv_watch(sv, vm, rt.shim_pid, rt.vmm_pid, rt.vmm_starttime, false) == 0) {
			const char *to = st && !strcmp(st, "paused") ? "paused" : "running";
			snprintf(reason, sizeof(reason), "re-attached after vireod restart%s%s%s",
				 st ? "" : " (control socket not answering)",
				 strcmp(vm->state, to) ? "; abandoned: " : "",
				 strcmp(vm->state, to) ? vm->state : "");
			if (strcmp(vm->state, to) || !st)
				sv_transition(sv, vm, to, reason);
			else
				pr_info("vm %s: re-attached (%s, pid %d)", vm->def.name, to,
					(int)rt.vmm_pid);
			if (sv->cfg.consoles &&
			    consolehub_attach(sv->cfg.consoles, vm->id, vm->console_sock, 1000))
				pr_warn("vm %s: console not attached", vm->def.name);
			json_object_put(reply);
			return;
		}
		json_object_put(reply);
	}
	/* The VMM died while vireod was down. */
	bool was_stopping = !strcmp(vm->state, "stopping") || !strcmp(vm->state, "migrating");
	if (vmm_read_exit_status(vm->dir, &status) == 0) {
		vmm_status_text(status, text, sizeof(text));
		bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		snprintf(reason, sizeof(reason), "%s while vireod was down: %s",
			 ok ? "VMM ended" : "VMM crashed", text);
		sv_transition(sv, vm, ok || was_stopping ? "stopped" : "crashed", reason);
	} else {
		sv_transition(sv, vm, "crashed",
			      "VMM gone while vireod was down (no exit status: the shim died too)");
	}
	store_runtime_clear(sv->cfg.store, vm->id);
}

int supervisor_start(struct supervisor *sv)
{
	int64_t t0 = mono_now_ms();
	int attached = 0;

	pthread_mutex_lock(&sv->lock);
	for (size_t i = 0; i < sv->nvms; i++) {
		struct vm *vm = sv->vms[i];
		if (!has_vmm_state(vm->state))
			continue;
		reattach_one(sv, vm);
		attached += vm->vmm_pid != 0;
	}
	pthread_mutex_unlock(&sv->lock);
	pr_info("supervisor: %d VMM(s) re-attached in %lld ms", attached,
		(long long)(mono_now_ms() - t0));
	if (pthread_create(&sv->watcher, NULL, watcher, sv))
		return -EAGAIN;
	sv->watching = true;
	/* Autostart and restart policies, in creation order. */
	pthread_mutex_lock(&sv->lock);
	size_t n = sv->nvms;
	char(*ids)[STORE_ID_LEN] = calloc(n ? n : 1, sizeof(*ids));
	const char **why = calloc(n ? n : 1, sizeof(*why));
	for (size_t i = 0; ids && why && i < n; i++) {
		struct vm *vm = sv->vms[i];
		bool idle = !strcmp(vm->state, "defined") || !strcmp(vm->state, "stopped") ||
			    !strcmp(vm->state, "crashed");
		memcpy(ids[i], vm->id, STORE_ID_LEN);
		if (idle && vm->def.autostart)
			why[i] = "autostart at vireod start";
		else if (!strcmp(vm->state, "crashed") && policy_restarts(vm, "crashed"))
			why[i] = "restarted by restart policy at vireod start";
	}
	pthread_mutex_unlock(&sv->lock);
	for (size_t i = 0; ids && why && i < n; i++)
		if (why[i])
			sv_queue_start(sv, ids[i], why[i]);
	free(ids);
	free(why);
	return 0;
}
