/* SPDX-License-Identifier: MIT */
/* The machine the virtio fuzzers drive their devices in: the unit tests' fake driver
 * (tests/unit/virtio_driver.h, over fake guest RAM without KVM) with its cmocka assertions
 * turned into aborts, a table of the fds devices ask the main loop to watch, and one instance of
 * each virtio device (blk on a raw image in /dev/shm, net on a loopback backend defined here,
 * console and vsock on unix sockets in /dev/shm). Devices are created once and reset between
 * inputs (they are never freed by a machine either). */
#ifndef VIREO_TESTS_FUZZ_VIRTIO_DEV_H
#define VIREO_TESTS_FUZZ_VIRTIO_DEV_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/tlv.h"
#include "common/util.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "net/net.h"
#include "virtio/devices.h"
#include "virtio/pci.h"
#include "mem/memory.h"

#define FZ_CHECK(c)              \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)
#define assert_true(c) FZ_CHECK(c)
#define assert_non_null(p) FZ_CHECK((p) != NULL)
#define assert_int_equal(a, b) FZ_CHECK((a) == (b))
#include "../unit/virtio_driver.h"

enum {
	DEV_BLK,
	DEV_NET,
	DEV_CONSOLE,
	DEV_RNG,
	DEV_BALLOON,
	DEV_VSOCK,
	DEV_COUNT
};

static const unsigned int dev_nqueues[DEV_COUNT] = { 1, 2, 2, 1, 4, 3 };

struct fz_watch {
	int fd;
	void (*cb)(void *arg);
	void *arg;
};

#define FZ_MAX_WATCHES 32
static struct fz_watch fz_watches[FZ_MAX_WATCHES];
static char fz_dir[64];
static struct drv *fz_devs[DEV_COUNT];
static struct net_backend fz_net_be;
static int fz_vsock_listen = -1;

static int fz_watch_fd(void *opaque, int fd, void (*cb)(void *arg), void *arg)
{
	(void)opaque;
	for (unsigned int i = 0; i < FZ_MAX_WATCHES; i++)
		if (!fz_watches[i].cb) {
			fz_watches[i] = (struct fz_watch){ fd, cb, arg };
			return 0;
		}
	return -ENOSPC;
}

static int fz_unwatch_fd(void *opaque, int fd)
{
	(void)opaque;
	for (unsigned int i = 0; i < FZ_MAX_WATCHES; i++)
		if (fz_watches[i].cb && fz_watches[i].fd == fd)
			fz_watches[i].cb = NULL;
	return 0;
}

/* One round of the main loop: the callbacks of watched fds that are readable now. */
static inline void fz_poll(void)
{
	for (unsigned int i = 0; i < FZ_MAX_WATCHES; i++) {
		struct pollfd p = { .fd = fz_watches[i].fd, .events = POLLIN };

		if (fz_watches[i].cb && poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
			fz_watches[i].cb(fz_watches[i].arg);
	}
}

/* The network backend (instead of slirp or tap, which would reach real networks): frames the
 * guest sends with an odd first byte come straight back to it, so both paths run. */
static int loop_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
	if (len && (frame[0] & 1) && be->peer.can_receive(be->peer.opaque))
		be->peer.receive(be->peer.opaque, frame, len);
	return 0;
}

static const struct net_backend_ops loop_ops = { .kind = "fuzz", .send = loop_send };

static int loop_open(struct net_backend **out, const struct net_peer *peer,
		     const struct net_loop *loop)
{
	fz_net_be = (struct net_backend){ .ops = &loop_ops, .peer = *peer, .loop = *loop };
	*out = &fz_net_be;
	return 0;
}

int net_slirp_open(struct net_backend **out, const struct net_spec *spec,
		   const struct net_peer *peer, const struct net_loop *loop, char *err,
		   size_t errlen)
{
	(void)spec;
	(void)err;
	(void)errlen;
	return loop_open(out, peer, loop);
}

int net_tap_open(struct net_backend **out, const struct net_spec *spec, const struct net_peer *peer,
		 const struct net_loop *loop, char *err, size_t errlen)
{
	return net_slirp_open(out, spec, peer, loop, err, errlen);
}

/* A frame from the host side to the guest, as the backend would deliver it. */
static inline void fz_net_inject(const uint8_t *frame, size_t len)
{
	struct net_peer *p = &fz_net_be.peer;

	p->lock(p->opaque);
	if (p->can_receive(p->opaque))
		p->receive(p->opaque, frame, len);
	p->unlock(p->opaque);
}

static inline void fz_cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fz_dir);
	if (fz_dir[0] && system(cmd))
		fprintf(stderr, "could not remove %s\n", fz_dir);
}

/* MSI-X as KVM would do it: a GSI per vector, routes and irqfds accepted. */
static int fz_msi_alloc(void *opaque, uint32_t *gsi)
{
	static uint32_t next = 24;

	(void)opaque;
	*gsi = next++;
	return 0;
}

static int fz_msi_route(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data)
{
	(void)opaque;
	(void)gsi;
	(void)addr;
	(void)data;
	return 0;
}

static int fz_irqfd(void *opaque, uint32_t gsi, int fd)
{
	(void)opaque;
	(void)gsi;
	(void)fd;
	return 0;
}

static struct drv *fz_new_drv(void)
{
	struct drv *d = drv_new();

	d->host.watch_fd = fz_watch_fd;
	d->host.unwatch_fd = fz_unwatch_fd;
	d->host.msi_alloc = fz_msi_alloc;
	d->host.msi_route = fz_msi_route;
	d->host.irqfd = fz_irqfd;
	return d;
}

static int fz_create(unsigned int kind, struct drv *d)
{
	char path[128], spec[160];
	struct virtio_blk_opts bo = { .path = path, .format = BLK_FORMAT_RAW, .serial = "fuzz" };
	int fd;

	switch (kind) {
	case DEV_BLK:
		snprintf(path, sizeof(path), "%s/disk.raw", fz_dir);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		FZ_CHECK(fd >= 0 && ftruncate(fd, 1 * MIB) == 0);
		close(fd);
		return virtio_blk_create(&d->vp, &d->host, &d->pci, &d->mmio, 10, &bo);
	case DEV_NET:
		return virtio_net_create(&d->vp, &d->host, &d->pci, &d->mmio, 10, 0, "user");
	case DEV_CONSOLE:
		snprintf(spec, sizeof(spec), "socket:%s/console.sock", fz_dir);
		return virtio_console_create(&d->vp, &d->host, &d->pci, &d->mmio, 10, spec);
	case DEV_RNG:
		return virtio_rng_create(&d->vp, &d->host, &d->pci, &d->mmio, 10);
	case DEV_BALLOON:
		return virtio_balloon_create(&d->vp, &d->host, &d->mem, &d->pci, &d->mmio, 10,
					     BALLOON_DEFLATE_ON_OOM);
	default:
		snprintf(path, sizeof(path), "%s/vsock", fz_dir);
		return virtio_vsock_create(&d->vp, &d->host, &d->pci, &d->mmio, 10, 3, path);
	}
}

static inline unsigned int fz_dev_kind(const struct drv *d)
{
	unsigned int k = 0;

	while (k < DEV_COUNT - 1 && fz_devs[k] != d)
		k++;
	return k;
}

/* Guest connections to host port 1234 reach this listener. */
static inline void fz_vsock_listener(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vsock_1234", fz_dir);
	fz_vsock_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FZ_CHECK(fz_vsock_listen >= 0);
	FZ_CHECK(bind(fz_vsock_listen, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FZ_CHECK(listen(fz_vsock_listen, 64) == 0);
}

/* Connects a client to the unix socket at fz_dir/name (nonblocking), or returns -1. */
static inline int fz_connect(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", fz_dir, name);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* drv_start without its assertions: the features come from the input, and a device may
 * refuse them (FEATURES_OK does not stick) or fail to start. Bit 63 set: the driver takes what
 * the device offers except the other bits set. */
static inline void fz_start(struct drv *d, uint64_t features, unsigned int nq)
{
	uint64_t offered;

	drv_bar_write(d, 0x14, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	drv_bar_write(d, 0x00, 0, 4);
	offered = drv_bar_read(d, 0x04, 4);
	drv_bar_write(d, 0x00, 1, 4);
	offered |= drv_bar_read(d, 0x04, 4) << 32;
	if (features >> 63)
		features = offered & ~features;
	features |= 1ULL << VIRTIO_F_VERSION_1;
	drv_set_features(d, features);
	drv_enable_queues(d, nq);
}

/* Back to power-on between inputs: requests in flight finish, the BAR is where it was with
 * memory decoding on, MSI-X is off and the device is reset. */
static inline void fz_power_on(struct drv *d)
{
	virtio_pci_quiesce(d->vp);
	virtio_pci_resume(d->vp);
	fz_poll();
	drv_pci_write(d, 0x10 + 4 * VIRTIO_PCI_BAR, (uint32_t)d->vp->bar_addr, 4);
	drv_pci_write(d, 0x14 + 4 * VIRTIO_PCI_BAR, (uint32_t)(d->vp->bar_addr >> 32), 4);
	drv_pci_write(d, 0x40 + 3, 0, 1); /* MSI-X control, at 0x40 in virtio/pci.c */
	drv_pci_write(d, 0x04, 0x0002, 2);
	drv_bar_write(d, 0x14, 0, 1);
	fz_poll();
}

/* Creates every device once. */
static inline void fz_machine_init(void)
{
	snprintf(fz_dir, sizeof(fz_dir), "/dev/shm/vireo-fuzz-virtio-XXXXXX");
	FZ_CHECK(mkdtemp(fz_dir));
	atexit(fz_cleanup);
	fz_quiet();
	for (unsigned int k = 0; k < DEV_COUNT; k++) {
		struct drv *d = fz_new_drv();

		FZ_CHECK(fz_create(k, d) == 0);
		drv_attach(d);
		fz_devs[k] = d;
	}
	fz_vsock_listener();
}

#endif
