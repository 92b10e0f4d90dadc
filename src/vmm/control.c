// SPDX-License-Identifier: MIT
#include "control.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../virtio/devices.h"
#include "vm.h"
#include "vcpu.h"
#include "vmstate.h"

int control_open(struct control *c, const char *path)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		c->clients[i].fd = -1;
		c->clients[i].owner = c;
	}
	c->listen_fd = -1;
	c->listen_fd = unix_listen(path, CONTROL_MAX_CLIENTS);
	if (c->listen_fd < 0) {
		int err = c->listen_fd;
		pr_err("--api-sock %s: %s", path, unix_listen_strerror(err));
		c->listen_fd = -1;
		return err;
	}
	c->path = path;
	return 0;
}

void control_close(struct control *c)
{
	/* Never opened (no --api-sock): the client slots of a static struct hold 0, which is
	 * stdin, not a client. Closing them took the console's input away from a VM restarted
	 * after a guest reboot. */
	if (c->listen_fd < 0 && !c->path)
		return;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (c->clients[i].fd >= 0) {
			if (c->vm)
				vm_unwatch_fd(c->vm, c->clients[i].fd);
			close(c->clients[i].fd);
		}
	if (c->listen_fd >= 0) {
		if (c->vm)
			vm_unwatch_fd(c->vm, c->listen_fd);
		close(c->listen_fd);
		unlink(c->path);
	}
	c->listen_fd = -1;
}

/* The socket file is 0600, but its directory or a later chmod may let others reach it: the
 * kernel's word on who connected decides. Only this process's user and root may control the VM.
 * Returns true when fd was refused (and closed). */
static bool control_refuse_stranger(struct control *c, int fd)
{
	static const char denied[] =
		"{\"ok\":false,\"error\":\"permission denied: only the VM's user may use its "
		"control socket\"}\n";
	uid_t uid = (uid_t)-1;
	pid_t pid = 0;
	int ret = unix_peer_check(fd, &uid, &pid);

	if (!ret)
		return false;
	/* A stranger who can connect could fill the log: the first few refusals are logged. */
	if (c->refused++ < CONTROL_REFUSALS_LOGGED)
		pr_warn("control: refused a client (uid %d, pid %d): %s", (int)uid, (int)pid,
			ret == -EACCES ? "not this VM's user or root" : strerror(-ret));
	if (send(fd, denied, sizeof(denied) - 1, MSG_NOSIGNAL) < 0)
		pr_debug("control: could not tell a refused client why");
	close(fd);
	return true;
}

int control_accept(struct control *c)
{
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return -1;
	if (control_refuse_stranger(c, fd))
		return -1;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		if (c->clients[i].fd < 0) {
			c->clients[i].fd = fd;
			c->clients[i].len = 0;
			return i;
		}
	}
	static const char busy[] = "{\"ok\":false,\"error\":\"too many control clients\"}\n";
	if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL) < 0)
		pr_debug("control: could not refuse a client politely");
	close(fd);
	return -1;
}

static void reply_error(char *out, size_t outlen, const char *msg)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "error", json_object_new_string(msg));
	snprintf(out, outlen, "%s", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	json_object_put(r);
}

static const char *const state_names[] = { "running", "paused", "stopping" };

static void add_status(struct vm *vm, json_object *r)
{
	struct vm_status st;

	vm_get_status(vm, &st);
	json_object_object_add(r, "state", json_object_new_string(state_names[st.state]));
	json_object_object_add(r, "vcpus", json_object_new_int((int)st.vcpus));
	json_object_object_add(r, "memory_mib", json_object_new_int64((int64_t)st.memory_mib));
	json_object_object_add(r, "uptime_ms", json_object_new_int64((int64_t)st.uptime_ms));
	json_object_object_add(r, "exits", json_object_new_int64((int64_t)st.exits));
	json_object_object_add(r, "pvm_profile", json_object_new_boolean(st.pvm_profile));
}

static void reply_ok(struct vm *vm, json_object *r, char *out, size_t outlen)
{
	const char *s;
	size_t len;

	json_object_object_add(r, "ok", json_object_new_boolean(1));
	add_status(vm, r);
	s = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN);
	len = strlen(s);
	if (len < outlen) {
		memcpy(out, s, len + 1);
	} else {
		/* A snapshot of many disks with long paths: cut, the reply would not be JSON. */
		char msg[160];

		snprintf(
			msg, sizeof(msg),
			"the command was carried out, but its reply (%zu bytes) is longer than the "
			"control socket allows (%zu)",
			len, outlen - 1);
		reply_error(out, outlen, msg);
	}
	json_object_put(r);
}

static void handle_migrate_status(struct vm *vm, char *out, size_t outlen)
{
	struct mig_status st;
	json_object *r = json_object_new_object();

	migration_get_status(vm, &st);
	json_object_object_add(r, "phase", json_object_new_string(mig_phase_name(st.phase)));
	json_object_object_add(r, "rounds", json_object_new_int((int)st.rounds));
	json_object_object_add(r, "ram_bytes", json_object_new_int64((int64_t)st.ram_bytes));
	json_object_object_add(r, "transferred_bytes",
			       json_object_new_int64((int64_t)st.transferred_bytes));
	json_object_object_add(r, "remaining_bytes",
			       json_object_new_int64((int64_t)st.remaining_bytes));
	json_object_object_add(r, "dirty_pages_per_s",
			       json_object_new_int64((int64_t)st.dirty_pages_per_s));
	json_object_object_add(r, "bandwidth_mib_s", json_object_new_double(st.bandwidth_mib_s));
	json_object_object_add(r, "expected_downtime_ms",
			       json_object_new_double(st.expected_downtime_ms));
	json_object_object_add(r, "downtime_ms", json_object_new_double(st.downtime_ms));
	json_object_object_add(r, "total_ms", json_object_new_double(st.total_ms));
	if (st.error[0])
		json_object_object_add(r, "error", json_object_new_string(st.error));
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	snprintf(out, outlen, "%s", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	json_object_put(r);
}

/* {"cmd":"snapshot","path":DIR[,"paused":true]}: the VM is paused while DIR is written, then
 * resumes unless it was paused before or "paused" asks to leave it so. */
static void handle_snapshot(struct vm *vm, json_object *req, char *out, size_t outlen)
{
	/* Static: two 4 KiB paths per disk. Only the main loop's thread handles requests. */
	static struct snapshot_result res;
	json_object *arg, *r;
	bool leave_paused = false;
	char err[512];

	if (!json_object_object_get_ex(req, "path", &arg) ||
	    !json_object_is_type(arg, json_type_string) || !*json_object_get_string(arg)) {
		reply_error(out, outlen, "snapshot needs \"path\": the directory to write");
		return;
	}
	if (json_object_object_get_ex(req, "paused", &arg)) {
		if (!json_object_is_type(arg, json_type_boolean)) {
			reply_error(out, outlen, "\"paused\" must be true or false");
			return;
		}
		leave_paused = json_object_get_boolean(arg);
	}
	json_object_object_get_ex(req, "path", &arg);
	if (vm_snapshot(vm, json_object_get_string(arg), leave_paused, &res, err, sizeof(err))) {
		reply_error(out, outlen, err);
		return;
	}
	pr_info("snapshot %s: %" PRIu64 " KiB state, %" PRIu64 " of %" PRIu64
		" MiB RAM written, guest paused %.1f ms",
		json_object_get_string(arg), res.state_bytes >> 10, res.memory_bytes >> 20,
		res.ram_bytes >> 20, res.pause_ms);
	r = json_object_new_object();
	json_object_object_add(r, "path", json_object_new_string(json_object_get_string(arg)));
	json_object_object_add(r, "state_bytes", json_object_new_int64((int64_t)res.state_bytes));
	json_object_object_add(r, "memory_bytes", json_object_new_int64((int64_t)res.memory_bytes));
	json_object_object_add(r, "pause_ms", json_object_new_double(res.pause_ms));
	if (res.ndisks) {
		json_object *disks = json_object_new_array();

		for (unsigned int i = 0; i < res.ndisks; i++) {
			json_object *d = json_object_new_object();

			json_object_object_add(d, "frozen",
					       json_object_new_string(res.disks[i].frozen));
			json_object_object_add(d, "active",
					       json_object_new_string(res.disks[i].active));
			json_object_array_add(disks, d);
		}
		json_object_object_add(r, "disks", disks);
	}
	reply_ok(vm, r, out, outlen);
}

/* {"cmd":"migrate","uri":"tcp:HOST:PORT"[,"max_downtime_ms":N][,"tls":"psk=FILE"|"x509=DIR"]
 * [,"insecure":true]}: starts and returns. */
static void handle_migrate(struct vm *vm, json_object *req, char *out, size_t outlen)
{
	json_object *arg;
	int64_t downtime = MIG_DEFAULT_MAX_DOWNTIME_MS;
	const char *tls = NULL;
	bool insecure = false;
	char err[600];

	if (!json_object_object_get_ex(req, "uri", &arg) ||
	    !json_object_is_type(arg, json_type_string)) {
		reply_error(out, outlen, "migrate needs \"uri\": \"tcp:HOST:PORT\"");
		return;
	}
	if (json_object_object_get_ex(req, "max_downtime_ms", &arg)) {
		if (!json_object_is_type(arg, json_type_int) ||
		    (downtime = json_object_get_int64(arg)) < 1 || downtime > 60000) {
			reply_error(out, outlen, "\"max_downtime_ms\" must be an integer 1..60000");
			return;
		}
	}
	if (json_object_object_get_ex(req, "tls", &arg)) {
		if (!json_object_is_type(arg, json_type_string)) {
			reply_error(out, outlen, "\"tls\" must be \"psk=FILE\" or \"x509=DIR\"");
			return;
		}
		tls = json_object_get_string(arg);
	}
	if (json_object_object_get_ex(req, "insecure", &arg)) {
		if (!json_object_is_type(arg, json_type_boolean)) {
			reply_error(out, outlen, "\"insecure\" must be true or false");
			return;
		}
		insecure = json_object_get_boolean(arg);
	}
	json_object_object_get_ex(req, "uri", &arg);
	if (migration_start(vm, json_object_get_string(arg), (unsigned int)downtime, tls, insecure,
			    err, sizeof(err))) {
		reply_error(out, outlen, err);
		return;
	}
	handle_migrate_status(vm, out, outlen);
}

/* {"cmd":"net-info"}: the NICs. {"cmd":"net-link","nic":N,"up":BOOL}: sets a NIC's link
 * status (the guest sees carrier go and come back). */
static void handle_net(struct vm *vm, json_object *req, bool set, char *out, size_t outlen)
{
	json_object *arg, *r, *nics;
	int64_t nic = -1;

	if (set) {
		if (!json_object_object_get_ex(req, "nic", &arg) ||
		    !json_object_is_type(arg, json_type_int) ||
		    (nic = json_object_get_int64(arg)) < 0 || nic >= (int64_t)vm->nnet) {
			reply_error(out, outlen, "net-link needs \"nic\": the number of a NIC");
			return;
		}
		if (!json_object_object_get_ex(req, "up", &arg) ||
		    !json_object_is_type(arg, json_type_boolean)) {
			reply_error(out, outlen, "net-link needs \"up\": true or false");
			return;
		}
		virtio_net_set_link(vm->virtio_net[nic], json_object_get_boolean(arg));
	}
	r = json_object_new_object();
	nics = json_object_new_array();
	for (unsigned int i = 0; i < vm->nnet; i++) {
		struct virtio_net_info info;
		json_object *o = json_object_new_object();
		char mac[18];

		virtio_net_get_info(vm->virtio_net[i], &info);
		net_format_mac(info.mac, mac);
		json_object_object_add(o, "nic", json_object_new_int((int)i));
		json_object_object_add(o, "backend", json_object_new_string(info.backend));
		json_object_object_add(o, "mac", json_object_new_string(mac));
		json_object_object_add(o, "link_up", json_object_new_boolean(info.link_up));
		json_object_object_add(o, "rx_frames",
				       json_object_new_int64((int64_t)info.rx_frames));
		json_object_object_add(o, "tx_frames",
				       json_object_new_int64((int64_t)info.tx_frames));
		json_object_object_add(o, "rx_dropped",
				       json_object_new_int64((int64_t)info.rx_dropped));
		json_object_object_add(o, "tx_dropped",
				       json_object_new_int64((int64_t)info.tx_dropped));
		json_object_array_add(nics, o);
	}
	json_object_object_add(r, "nics", nics);
	reply_ok(vm, r, out, outlen);
}

void control_handle(struct vm *vm, const char *request, char *out, size_t outlen)
{
	json_tokener *tok = json_tokener_new();
	json_object *req, *cmdv, *arg;
	const char *cmd;
	char msg[256];
	int ret = 0;

	req = json_tokener_parse_ex(tok, request, (int)strlen(request));
	if (!req || json_tokener_get_error(tok) != json_tokener_success) {
		snprintf(msg, sizeof(msg), "invalid JSON: %s",
			 json_tokener_error_desc(json_tokener_get_error(tok)));
		reply_error(out, outlen, msg);
		goto out_tok;
	}
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmdv) ||
	    !json_object_is_type(cmdv, json_type_string)) {
		reply_error(out, outlen, "a request is an object with a string member \"cmd\"");
		goto out_req;
	}
	cmd = json_object_get_string(cmdv);
	if (!strcmp(cmd, "status")) {
		ret = 0;
	} else if ((!strcmp(cmd, "pause") || !strcmp(cmd, "resume") || !strcmp(cmd, "reset") ||
		    (!strcmp(cmd, "stop") && !json_object_object_get_ex(req, "force", NULL))) &&
		   migration_busy(vm)) {
		/* These would resume or restart the guest under the migration's feet: the
		 * destination could end up running it too. A forced stop is allowed. */
		reply_error(out, outlen, "busy: a migration is running (migrate-cancel first)");
		goto out_req;
	} else if (!strcmp(cmd, "pause")) {
		ret = vm_pause(vm);
	} else if (!strcmp(cmd, "resume")) {
		ret = vm_resume(vm);
	} else if (!strcmp(cmd, "power-button")) {
		platform_power_button(&vm->platform);
	} else if (!strcmp(cmd, "reset")) {
		vm_request_stop(vm, STOP_REBOOT, EXIT_GUEST_OFF);
	} else if (!strcmp(cmd, "stop")) {
		int64_t timeout_s = 30;
		bool force = false;

		if (json_object_object_get_ex(req, "force", &arg)) {
			if (!json_object_is_type(arg, json_type_boolean)) {
				reply_error(out, outlen, "\"force\" must be true or false");
				goto out_req;
			}
			force = json_object_get_boolean(arg);
		}
		if (json_object_object_get_ex(req, "timeout_s", &arg)) {
			if (!json_object_is_type(arg, json_type_int) ||
			    (timeout_s = json_object_get_int64(arg)) < 0 || timeout_s > 3600) {
				reply_error(out, outlen,
					    "\"timeout_s\" must be an integer 0..3600");
				goto out_req;
			}
		}
		ret = vm_stop(vm, force ? 0 : (unsigned int)timeout_s);
	} else if (!strcmp(cmd, "snapshot")) {
		if (migration_busy(vm)) {
			reply_error(out, outlen, "busy: a migration is running");
			goto out_req;
		}
		handle_snapshot(vm, req, out, outlen);
		goto out_req;
	} else if (!strcmp(cmd, "migrate")) {
		handle_migrate(vm, req, out, outlen);
		goto out_req;
	} else if (!strcmp(cmd, "net-info") || !strcmp(cmd, "net-link")) {
		handle_net(vm, req, !strcmp(cmd, "net-link"), out, outlen);
		goto out_req;
	} else if (!strcmp(cmd, "migrate-status")) {
		handle_migrate_status(vm, out, outlen);
		goto out_req;
	} else if (!strcmp(cmd, "migrate-cancel")) {
		ret = migration_cancel(vm);
		if (ret == -ENOENT) {
			reply_error(out, outlen, "no migration is running");
			goto out_req;
		}
	} else if (control_virtio_handle(vm, cmd, req, out, outlen)) {
		goto out_req;
	} else if (sandbox_test_control(cmd,
					json_object_object_get_ex(req, "thread", &arg)
						? json_object_get_string(arg)
						: NULL,
					out, outlen)) {
		goto out_req;
	} else {
		snprintf(
			msg, sizeof(msg),
			"unknown command '%.60s' (status, pause, resume, stop, reset, "
			"power-button, snapshot, migrate, migrate-status, migrate-cancel, balloon, "
			"balloon-stats, net-info, net-link)",
			cmd);
		reply_error(out, outlen, msg);
		goto out_req;
	}
	if (ret) {
		snprintf(msg, sizeof(msg), "%s failed: %s", cmd, strerror(-ret));
		reply_error(out, outlen, msg);
		goto out_req;
	}
	reply_ok(vm, json_object_new_object(), out, outlen);
out_req:
	json_object_put(req);
out_tok:
	json_tokener_free(tok);
}

static void drop(struct control_client *cl)
{
	/* Unwatched before the close: the fd number may be reused at once by another thread. */
	if (cl->owner && cl->owner->vm)
		vm_unwatch_fd(cl->owner->vm, cl->fd);
	close(cl->fd);
	cl->fd = -1;
	cl->len = 0;
}

int control_serve(struct control *c, int i, struct vm *vm)
{
	struct control_client *cl = &c->clients[i];
	/* Room for a snapshot reply listing every disk's images. */
	static char reply[16384];
	ssize_t n;
	char *nl;

	n = read(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		drop(cl);
		return -1;
	}
	cl->len += (size_t)n;
	cl->buf[cl->len] = '\0';
	while ((nl = memchr(cl->buf, '\n', cl->len))) {
		size_t line = (size_t)(nl - cl->buf);

		*nl = '\0';
		control_handle(vm, cl->buf, reply, sizeof(reply) - 1);
		strcat(reply, "\n");
		if (send(cl->fd, reply, strlen(reply), MSG_NOSIGNAL) < 0) {
			drop(cl);
			return -1;
		}
		memmove(cl->buf, nl + 1, cl->len - line - 1);
		cl->len -= line + 1;
		cl->buf[cl->len] = '\0';
	}
	if (cl->len >= sizeof(cl->buf) - 1) {
		reply_error(reply, sizeof(reply), "request longer than 4096 bytes");
		strcat(reply, "\n");
		if (send(cl->fd, reply, strlen(reply), MSG_NOSIGNAL) < 0)
			pr_debug("control: could not report an over-long request");
		drop(cl);
		return -1;
	}
	return 0;
}

/* A client sent something. A late call for a client dropped meanwhile finds no fd, or a new
 * client in the slot with nothing to read yet (non-blocking). */
static void client_readable(void *arg)
{
	struct control_client *cl = arg;
	struct control *c = cl->owner;

	if (cl->fd >= 0)
		control_serve(c, (int)(cl - c->clients), c->vm);
}

static void listen_readable(void *arg)
{
	struct control *c = arg;
	int slot = control_accept(c);
	int ret;

	if (slot < 0)
		return;
	ret = vm_watch_fd(c->vm, c->clients[slot].fd, client_readable, &c->clients[slot]);
	if (ret) {
		pr_warn("control: cannot watch a new client: %s", strerror(-ret));
		c->clients[slot].owner = NULL; /* not watched: nothing to unwatch */
		drop(&c->clients[slot]);
		c->clients[slot].owner = c;
	}
}

int control_watch(struct control *c, struct vm *vm)
{
	int ret;

	if (c->listen_fd < 0)
		return 0;
	c->vm = vm;
	ret = vm_watch_fd(vm, c->listen_fd, listen_readable, c);
	if (ret) {
		pr_err("control: cannot watch --api-sock: %s", strerror(-ret));
		c->vm = NULL;
	}
	return ret;
}
