// SPDX-License-Identifier: MIT
/* libFuzzer target for the control socket (src/vmm/control.c, control_virtio.c): request lines
 * arrive on a real socket in pieces and go through control_serve (line assembly, the 4 KiB
 * limit) and control_handle (JSON parsing, every command's arguments, the replies), against a
 * minimal VM: the platform device, the balloon and a NIC are real (fuzz_virtio_dev.h), the VM's
 * life cycle, snapshots and migration are stand-ins defined here that record what was asked and
 * answer from the input's flags. The input is:
 *
 *   u8 flags: bit 0 a migration is running, bit 1 the VM's operations fail, bit 2 the snapshot
 *             fails, bits 3..7 how many bytes the socket delivers at a time (x128; 0: 7;
 *             at least 1/64 of the input)
 *   then the bytes a client sends (newline-separated JSON requests).
 *
 * Replies are read back and must each be one line of JSON that json-c can parse. */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>

#include "fuzz_common.h"
#include "fuzz_virtio_dev.h"
#include "vmm/control.h"
#include "vmm/migrate.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

static struct vm vm;
static uint8_t flags;

/* ---- the VM's side, as the control code sees it ---- */

static int op_result(void)
{
	return (flags & 2) ? -EIO : 0;
}

int vm_pause(struct vm *v)
{
	(void)v;
	return op_result();
}

int vm_resume(struct vm *v)
{
	(void)v;
	return op_result();
}

int vm_stop(struct vm *v, unsigned int timeout_s)
{
	(void)v;
	FZ_CHECK(timeout_s <= 3600);
	return op_result();
}

void vm_request_stop(struct vm *v, enum stop_reason reason, int status)
{
	(void)v;
	(void)reason;
	(void)status;
}

/* control.c watches its fds through these when control_watch was called; the fuzzer calls
 * control_serve directly and never does. */
int vm_watch_fd(struct vm *v, int fd, void (*cb)(void *arg), void *arg)
{
	(void)v;
	(void)fd;
	(void)cb;
	(void)arg;
	return -ENOSPC;
}

int vm_unwatch_fd(struct vm *v, int fd)
{
	(void)v;
	(void)fd;
	return -ENOENT;
}

void vm_get_status(struct vm *v, struct vm_status *st)
{
	(void)v;
	*st = (struct vm_status){ .state = (enum vm_state)(flags % 3),
				  .vcpus = 2,
				  .memory_mib = 4 };
}

/* A snapshot of 0..16 disks whose image names grow with the path asked for, so replies near and
 * over the reply buffer's size happen. */
int vm_snapshot(struct vm *v, const char *dir, bool leave_paused, struct snapshot_result *res,
		char *err, size_t errlen)
{
	(void)v;
	(void)leave_paused;
	FZ_CHECK(dir && *dir);
	if (flags & 4) {
		snprintf(err, errlen, "%s: cannot write the snapshot here", dir);
		return -EEXIST;
	}
	memset(res, 0, sizeof(*res));
	res->ndisks = (unsigned int)(strlen(dir) % (SNAPSHOT_MAX_DISKS + 1));
	for (unsigned int i = 0; i < res->ndisks; i++) {
		snprintf(res->disks[i].frozen, sizeof(res->disks[i].frozen), "%s/%u/%s", dir, i,
			 dir);
		snprintf(res->disks[i].active, sizeof(res->disks[i].active), "%s/overlay-%u", dir,
			 i);
	}
	return 0;
}

const char *mig_phase_name(enum mig_phase p)
{
	return p == MIG_NONE ? "none" : "precopy";
}

int migration_start(struct vm *v, const char *uri, unsigned int max_downtime_ms, const char *tls,
		    bool insecure, char *err, size_t errlen)
{
	(void)v;
	(void)max_downtime_ms;
	(void)tls;
	(void)insecure;
	FZ_CHECK(uri);
	if (flags & 1) {
		snprintf(err, errlen, "a migration is already running");
		return -EBUSY;
	}
	return 0;
}

int migration_cancel(struct vm *v)
{
	(void)v;
	return (flags & 1) ? 0 : -ENOENT;
}

void migration_get_status(struct vm *v, struct mig_status *st)
{
	(void)v;
	memset(st, 0, sizeof(*st));
	st->phase = (flags & 1) ? MIG_PRECOPY : MIG_NONE;
	if (flags & 2)
		snprintf(st->error, sizeof(st->error), "\"quoted\"\n\\error");
}

bool migration_busy(struct vm *v)
{
	(void)v;
	return flags & 1;
}

/* ---- the harness ---- */

static void nop_event(void *o, enum platform_event ev)
{
	(void)o;
	(void)ev;
}

static void nop_sci(void *o, int level)
{
	(void)o;
	(void)level;
}

static const struct platform_ops plat_ops = { .event = nop_event, .set_sci = nop_sci };

/* Every reply line is complete JSON. */
static void check_replies(int fd, bool last)
{
	static char buf[65536];
	static size_t len;
	ssize_t n;
	char *nl;

	while ((n = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT)) > 0) {
		len += (size_t)n;
		buf[len] = 0;
		while ((nl = memchr(buf, '\n', len))) {
			json_object *o;

			*nl = 0;
			o = json_tokener_parse(buf);
			FZ_CHECK(o && json_object_is_type(o, json_type_object));
			json_object_put(o);
			memmove(buf, nl + 1, len - (size_t)(nl + 1 - buf));
			len -= (size_t)(nl + 1 - buf);
		}
		FZ_CHECK(len < sizeof(buf) - 1);
	}
	if (last)
		len = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct control c;
	static bool init;
	size_t off = 1, chunk;
	int sv[2];

	if (!init) {
		fz_machine_init();
		platform_init(&vm.platform, &plat_ops, NULL);
		vm.virtio_balloon = fz_devs[DEV_BALLOON]->vp;
		vm.virtio_net[0] = fz_devs[DEV_NET]->vp;
		vm.nnet = 1;
		init = true;
	}
	if (size < 1)
		return 0;
	flags = data[0];
	chunk = (flags >> 3) ? (size_t)(flags >> 3) * 128 : 7;
	/* At most 64 pieces: each costs three system calls, and a long input in 7-byte pieces
	 * ran at 65 inputs a second. */
	chunk = MAX(chunk, size / 64);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	/* The VMM's side is non-blocking, as control_accept makes it: a client that does not
	 * read its replies is dropped rather than blocking the main loop (and this target). */
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK)) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	memset(&c, 0, sizeof(c));
	for (unsigned int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		c.clients[i].fd = -1;
	c.clients[0].fd = sv[0];
	while (off < size) {
		size_t n = MIN(chunk, size - off);

		if (send(sv[1], data + off, n, MSG_NOSIGNAL) != (ssize_t)n)
			break;
		off += n;
		if (control_serve(&c, 0, &vm) < 0)
			break;
		check_replies(sv[1], false);
	}
	if (c.clients[0].fd >= 0)
		close(c.clients[0].fd);
	check_replies(sv[1], true);
	close(sv[1]);
	fz_power_on(fz_devs[DEV_BALLOON]);
	fz_power_on(fz_devs[DEV_NET]);
	return 0;
}
