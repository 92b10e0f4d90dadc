// SPDX-License-Identifier: MIT
/* libFuzzer target for the request handling of every virtio device (blk, net, console, rng,
 * balloon, vsock), driven as a guest driver would: through the virtio-pci BAR and real split
 * virtqueues in fake guest RAM (fuzz_virtio_dev.h). The input is a program:
 *
 *   u8 device, u64 driver features, then operations until the input ends (at most MAX_OPS):
 *   CHAIN  u8 queue, u8 n (1..4), n x { u8 flags, u16 len, u16 offset }, then the readable
 *          buffers' bytes: a descriptor chain made available, then the queue is notified
 *   KICK   u8 queue
 *   CONFIG u8 offset, u8 len, u8 write, u64 value: device configuration space access
 *   POLL   the main loop runs the callbacks of readable fds (blk completions, sockets)
 *   HOST   u8 what, u16 len, bytes: an event from the host side (a frame for the guest, console
 *          input, a balloon target, a vsock client, pausing and resuming the device)
 *   POKE   u32 gpa, u8 len, bytes: the guest writes RAM directly (rings included)
 *   RESET  the driver resets the device and starts it again
 *   STATUS u8 status: written to device_status as is
 *
 * At the end the device is paused (requests in flight complete), saved, and reset. Buffers lie
 * in the first 512 KiB of RAM (their offset is steered by the input) or, with flag bit 1, at an
 * address anywhere. The device must never touch host memory outside RAM, crash or hang. */
#include <stdint.h>

#include "common/tlv.h"
#include "fuzz_common.h"
#include "fuzz_virtio_dev.h"

#define MAX_OPS 48
#define BUF_AREA (512 * KIB)

enum {
	OP_CHAIN,
	OP_KICK,
	OP_CONFIG,
	OP_POLL,
	OP_HOST,
	OP_POKE,
	OP_RESET,
	OP_STATUS,
	OP_COUNT
};

static int vsock_clients[4] = { -1, -1, -1, -1 };
static int console_client = -1;

static void op_chain(struct fz *f, struct drv *d, unsigned int nq)
{
	unsigned int q = fz_u8(f) % nq, n = 1 + fz_u8(f) % 4;
	struct drv_buf b[4];

	for (unsigned int i = 0; i < n; i++) {
		uint8_t flags = fz_u8(f);
		uint32_t len = fz_u16(f) % 8192, off = fz_u16(f);

		b[i].write = flags & 1;
		b[i].len = len;
		b[i].gpa = (flags & 2) ? (uint64_t)off << (flags >> 4)
				       : DRV_BUF_GPA + ((uint64_t)off * 8) % (BUF_AREA - 8192);
	}
	for (unsigned int i = 0; i < n; i++) {
		uint64_t k = MIN((uint64_t)b[i].len, fz_left(f));

		if (!b[i].write && b[i].gpa + k <= DRV_RAM_SIZE)
			fz_bytes(f, d->ram + b[i].gpa, k);
	}
	drv_add(d, q, b, n);
	drv_kick(d, q);
}

static void vsock_host(struct fz *f, uint8_t what, const uint8_t *p, size_t len)
{
	int *c = &vsock_clients[what % 4];
	int fd;

	(void)f;
	if (what & 4) {
		/* A host program connecting to a guest port, or a guest connection arriving. */
		if (*c < 0)
			*c = fz_connect("vsock");
		fd = accept4(fz_vsock_listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			if (vsock_clients[3] >= 0)
				close(vsock_clients[3]);
			vsock_clients[3] = fd;
		}
	}
	if (*c >= 0 && len && send(*c, p, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
	    errno != EAGAIN) {
		close(*c);
		*c = -1;
	}
	if (what & 8) {
		if (*c >= 0)
			close(*c);
		*c = -1;
	}
	virtio_vsock_poll(fz_devs[DEV_VSOCK]->vp);
}

static void op_host(struct fz *f, unsigned int kind, struct drv *d)
{
	uint8_t what = fz_u8(f), buf[2048];
	size_t len = fz_u16(f) % sizeof(buf);

	len = MIN(len, fz_left(f));
	fz_bytes(f, buf, len);
	if (what & 0x80) {
		/* Pause and resume (snapshot, migration). */
		virtio_pci_quiesce(d->vp);
		virtio_pci_resume(d->vp);
		return;
	}
	switch (kind) {
	case DEV_NET:
		if (what & 1)
			virtio_net_set_link(d->vp, what & 2);
		else
			fz_net_inject(buf, len);
		break;
	case DEV_CONSOLE:
		if (console_client < 0)
			console_client = fz_connect("console.sock");
		fz_poll(); /* accepts the client */
		if (console_client >= 0 && len)
			(void)!send(console_client, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (what & 1) {
			close(console_client);
			console_client = -1;
		}
		break;
	case DEV_BALLOON:
		if (what & 1)
			virtio_balloon_request_stats(d->vp);
		else
			virtio_balloon_set_target(d->vp, (uint64_t)get_le32(buf) * 4096);
		break;
	case DEV_VSOCK:
		vsock_host(f, what, buf, len);
		break;
	default:
		break;
	}
	fz_poll();
}

static void op_config(struct fz *f, struct drv *d)
{
	static const uint32_t lens[4] = { 1, 2, 4, 8 };
	uint32_t off = fz_u8(f), len = lens[fz_u8(f) % 4];
	bool write = fz_u8(f) & 1;
	uint64_t v = fz_u64(f);

	/* Past the end of the device's configuration reads zeros and ignores writes. */
	if (off + len > 0x100)
		return;
	if (write)
		drv_cfg_write(d, off, v, len);
	else
		drv_cfg_read(d, off, len);
}

static void run(struct fz *f, unsigned int kind, struct drv *d)
{
	unsigned int nq = dev_nqueues[kind];
	uint64_t features = fz_u64(f);
	uint8_t poke[256];

	fz_start(d, features, nq);
	for (unsigned int i = 0; i < MAX_OPS && fz_left(f); i++) {
		switch (fz_u8(f) % OP_COUNT) {
		case OP_CHAIN:
			op_chain(f, d, nq);
			break;
		case OP_KICK:
			drv_kick(d, fz_u8(f) % (nq + 1));
			break;
		case OP_CONFIG:
			op_config(f, d);
			break;
		case OP_POLL:
			fz_poll();
			break;
		case OP_HOST:
			op_host(f, kind, d);
			break;
		case OP_POKE: {
			uint64_t gpa = fz_u32(f) % DRV_RAM_SIZE;
			size_t len = fz_u8(f); /* MIN evaluates its arguments twice */

			len = MIN(len, DRV_RAM_SIZE - gpa);

			fz_bytes(f, poke, len);
			memcpy(d->ram + gpa, poke, len);
			break;
		}
		case OP_RESET:
			drv_reset(d);
			fz_start(d, fz_u64(f), nq);
			break;
		default:
			drv_bar_write(d, 0x14, fz_u8(f), 1);
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct fz f = fz_init(data, size);
	struct tlv_writer w;
	unsigned int kind;
	struct drv *d;

	if (!init) {
		fz_machine_init();
		init = true;
	}
	if (size < 1)
		return 0;
	kind = fz_u8(&f) % DEV_COUNT;
	d = fz_devs[kind];
	memset(d->ram + DRV_BUF_GPA, 0, BUF_AREA);
	run(&f, kind, d);
	/* Whatever is in flight completes, and the state can be saved. */
	virtio_pci_quiesce(d->vp);
	tlv_writer_init(&w);
	virtio_pci_save(d->vp, &w);
	tlv_writer_free(&w);
	virtio_pci_resume(d->vp);
	fz_poll();
	drv_reset(d);
	for (unsigned int i = 0; i < 4; i++) {
		if (vsock_clients[i] >= 0)
			close(vsock_clients[i]);
		vsock_clients[i] = -1;
	}
	if (console_client >= 0)
		close(console_client);
	console_client = -1;
	fz_poll();
	return 0;
}
