// SPDX-License-Identifier: MIT
/* Unit tests for the virtio-pci transport without KVM: config space and capabilities, feature
 * negotiation, the status state machine, queue setup, virtio-rng end to end through INTx and
 * MSI-X, malformed rings leading to DEVICE_NEEDS_RESET, and save/load. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/tlv.h"
#include "common/util.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "virtio/devices.h"
#include "virtio/pci.h"
#include "mem/memory.h"

#define RAM_SIZE 0x10000
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define BUF_GPA 0x8000
#define QSIZE 8

struct fixture {
	uint8_t *ram;
	struct guest_mem mem;
	struct pci_bus pci;
	struct bus mmio;
	struct virtio_pci_host host;
	struct virtio_pci *vp;
	unsigned int devfn;
	int intx_level;
	/* A model of vmio.c's routing layer: routes recorded by msi_route, what KVM has after
	 * msi_commit, and how many KVM_SET_GSI_ROUTING calls that took. */
	struct {
		uint64_t addr;
		uint32_t data;
	} routes[VIRTIO_PCI_MAX_VECTORS], kvm[VIRTIO_PCI_MAX_VECTORS];
	bool routes_dirty;
	unsigned int ngsi, routing_sets;
	int irqfd[VIRTIO_PCI_MAX_VECTORS];
	/* The main loop's watched fds, and a driver that makes a buffer available again each
	 * time the device returns one, refill_left more times. */
	struct {
		int fd;
		void (*cb)(void *arg);
		void *arg;
	} watch[VIRTIO_MAX_QUEUES];
	unsigned long refill_left;
};

static void fake_intx(void *opaque, uint32_t irq, int level)
{
	struct fixture *f = opaque;

	assert_int_equal(irq, 10);
	f->intx_level = level;
}

static uint32_t cfg_read(struct fixture *f, uint32_t off, uint32_t len)
{
	uint8_t b[4] = { 0 };

	pci_config_access(&f->pci, f->devfn, off, b, len, false);
	return get_le32(b);
}

static void cfg_write(struct fixture *f, uint32_t off, uint32_t v, uint32_t len)
{
	uint8_t b[4];

	put_le32(b, v);
	pci_config_access(&f->pci, f->devfn, off, b, len, true);
}

/* BAR accesses go through the MMIO bus, as a vCPU's would. */
static uint64_t bar_read(struct fixture *f, uint32_t off, uint32_t len)
{
	uint8_t b[8] = { 0 };

	assert_true(bus_access(&f->mmio, f->vp->bar_addr + off, b, len, false));
	return get_le64(b);
}

static void bar_write(struct fixture *f, uint32_t off, uint64_t v, uint32_t len)
{
	uint8_t b[8];

	put_le64(b, v);
	assert_true(bus_access(&f->mmio, f->vp->bar_addr + off, b, len, true));
}

static uint8_t status(struct fixture *f)
{
	return (uint8_t)bar_read(f, 0x14, 1);
}

static int fake_msi_alloc(void *opaque, uint32_t *gsi)
{
	struct fixture *f = opaque;

	assert_true(f->ngsi < VIRTIO_PCI_MAX_VECTORS);
	*gsi = f->ngsi++;
	return 0;
}

static int fake_msi_route(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct fixture *f = opaque;

	if (f->routes[gsi].addr != addr || f->routes[gsi].data != data)
		f->routes_dirty = true;
	f->routes[gsi].addr = addr;
	f->routes[gsi].data = data;
	return 0;
}

static int fake_msi_commit(void *opaque)
{
	struct fixture *f = opaque;

	if (!f->routes_dirty)
		return 0;
	/* Committed before the interrupt that needs it: nothing is sent yet. */
	for (uint32_t gsi = 0; gsi < f->ngsi; gsi++) {
		uint64_t n;

		assert_true(read(f->irqfd[gsi], &n, sizeof(n)) < 0 && errno == EAGAIN);
	}
	memcpy(f->kvm, f->routes, sizeof(f->kvm));
	f->routes_dirty = false;
	f->routing_sets++;
	return 0;
}

static int fake_irqfd(void *opaque, uint32_t gsi, int fd)
{
	struct fixture *f = opaque;

	f->irqfd[gsi] = fd;
	return 0;
}

/* Interrupts sent on a vector's irqfd since the last call. */
static uint64_t irqs(struct fixture *f, uint32_t gsi)
{
	uint64_t n = 0;

	if (read(f->irqfd[gsi], &n, sizeof(n)) < 0)
		assert_int_equal(errno, EAGAIN);
	return n;
}

static int fake_watch(void *opaque, int fd, void (*cb)(void *arg), void *arg)
{
	struct fixture *f = opaque;

	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if (!f->watch[i].cb) {
			f->watch[i].fd = fd;
			f->watch[i].cb = cb;
			f->watch[i].arg = arg;
			return 0;
		}
	return -ENOSPC;
}

static void make_avail(struct fixture *f, uint16_t head);

/* The device published a used entry (used->idx is the last thing it writes): the driver puts
 * the buffer back at once, as a guest vCPU spinning on the ring would. */
static void refilling_driver(void *opaque, uint64_t gpa, uint64_t len)
{
	struct fixture *f = opaque;

	(void)len;
	if (gpa == USED_GPA + 2 && f->refill_left) {
		f->refill_left--;
		make_avail(f, 0);
	}
}

static int setup_host(void **state, bool msi)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int slot;

	f->ram = calloc(1, RAM_SIZE);
	memory_attach(&f->mem, f->ram, RAM_SIZE);
	pci_bus_init(&f->pci);
	bus_init(&f->mmio, "mmio");
	f->host = (struct virtio_pci_host){ .opaque = f, .mem = &f->mem, .set_intx = fake_intx };
	if (msi) {
		f->host.msi_alloc = fake_msi_alloc;
		f->host.msi_route = fake_msi_route;
		f->host.msi_commit = fake_msi_commit;
		f->host.irqfd = fake_irqfd;
	}
	assert_int_equal(virtio_rng_create(&f->vp, &f->host, &f->pci, &f->mmio, 10), 0);
	for (slot = 1; slot < PCI_SLOTS && f->pci.slots[slot] != &f->vp->pci; slot++)
		;
	assert_true(slot < PCI_SLOTS);
	f->devfn = (unsigned int)slot << 3;
	cfg_write(f, 0x04, 0x0002, 2); /* memory decoding on */
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_host(state, false);
}

static int setup_msi(void **state)
{
	return setup_host(state, true);
}

/* Notifications go through eventfds watched by a main loop, as in vm_run. */
static int setup_loop(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int slot;

	f->ram = calloc(1, RAM_SIZE);
	memory_attach(&f->mem, f->ram, RAM_SIZE);
	pci_bus_init(&f->pci);
	bus_init(&f->mmio, "mmio");
	f->host = (struct virtio_pci_host){ .opaque = f,
					    .mem = &f->mem,
					    .set_intx = fake_intx,
					    .watch_fd = fake_watch,
					    .mark_dirty = refilling_driver };
	assert_int_equal(virtio_rng_create(&f->vp, &f->host, &f->pci, &f->mmio, 10), 0);
	for (slot = 1; slot < PCI_SLOTS && f->pci.slots[slot] != &f->vp->pci; slot++)
		;
	f->devfn = (unsigned int)slot << 3;
	cfg_write(f, 0x04, 0x0002, 2);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (unsigned int v = 0; v < f->vp->nvectors; v++)
		if (f->vp->vector_fd[v] >= 0)
			close(f->vp->vector_fd[v]);
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		if (f->vp->kicks[q].fd >= 0)
			close(f->vp->kicks[q].fd);

	free(f->ram);
	/* The device (allocated by virtio_rng_create, vp its first member) normally lives as
	 * long as the process. */
	free(f->vp);
	free(f);
	return 0;
}

/* Finds the vendor capability of a virtio cfg_type; returns its config offset or 0. */
static uint32_t find_virtio_cap(struct fixture *f, uint8_t type)
{
	for (uint32_t p = cfg_read(f, 0x34, 1); p; p = cfg_read(f, p + 1, 1))
		if (cfg_read(f, p, 1) == 0x09 && cfg_read(f, p + 3, 1) == type)
			return p;
	return 0;
}

static void test_config_space(void **state)
{
	struct fixture *f = *state;
	uint32_t notify;

	assert_int_equal(cfg_read(f, 0x00, 2), 0x1af4);
	assert_int_equal(cfg_read(f, 0x02, 2), 0x1044);
	assert_int_equal(cfg_read(f, 0x08, 1), 1);
	assert_int_equal(cfg_read(f, 0x2c, 2), 0x1af4);
	assert_int_equal(cfg_read(f, 0x3d, 1), 1);
	assert_true(cfg_read(f, 0x06, 2) & 0x10);
	/* Common, notify, ISR; no device config for virtio-rng. */
	assert_int_not_equal(find_virtio_cap(f, 1), 0);
	assert_int_not_equal(find_virtio_cap(f, 3), 0);
	assert_int_equal(find_virtio_cap(f, 4), 0);
	notify = find_virtio_cap(f, 2);
	assert_int_not_equal(notify, 0);
	assert_int_equal(cfg_read(f, notify + 4, 1), VIRTIO_PCI_BAR);
	assert_int_equal(cfg_read(f, notify + 8, 4), VIRTIO_PCI_NOTIFY_OFF);
	assert_int_equal(cfg_read(f, notify + 16, 4), VIRTIO_PCI_NOTIFY_MULT);
	/* MSI-X: 2 vectors (1 queue + config). */
	assert_int_equal(cfg_read(f, 0x40, 1), 0x11);
	assert_int_equal(cfg_read(f, 0x42, 2) & 0x7ff, 1);
}

static void test_bar_sizing(void **state)
{
	struct fixture *f = *state;
	uint32_t lo = cfg_read(f, 0x20, 4), hi = cfg_read(f, 0x24, 4);

	assert_int_equal(lo & 0xf, 0x4); /* 64-bit memory */
	assert_int_equal(((uint64_t)hi << 32) | (lo & ~0xfu), f->vp->bar_addr);
	assert_true(f->vp->bar_addr >= PCI_MMIO32_BASE);
	cfg_write(f, 0x04, 0, 2);
	cfg_write(f, 0x20, 0xffffffff, 4);
	cfg_write(f, 0x24, 0xffffffff, 4);
	assert_int_equal(cfg_read(f, 0x20, 4), ~(uint32_t)(VIRTIO_PCI_BAR_SIZE - 1) | 0x4);
	assert_int_equal(cfg_read(f, 0x24, 4), 0xffffffff);
	cfg_write(f, 0x20, lo, 4);
	cfg_write(f, 0x24, hi, 4);
	cfg_write(f, 0x04, 0x0002, 2);
	assert_int_equal(bar_read(f, 0x12, 2), 1); /* num_queues answers again */
}

static void test_decoding_off(void **state)
{
	struct fixture *f = *state;

	cfg_write(f, 0x04, 0, 2);
	assert_int_equal(bar_read(f, 0x12, 2), 0xffff);
}

static void negotiate(struct fixture *f, uint64_t features)
{
	bar_write(f, 0x14, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	bar_write(f, 0x08, 0, 4);
	bar_write(f, 0x0c, (uint32_t)features, 4);
	bar_write(f, 0x08, 1, 4);
	bar_write(f, 0x0c, (uint32_t)(features >> 32), 4);
	bar_write(f, 0x14,
		  VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK, 1);
}

static void test_features(void **state)
{
	struct fixture *f = *state;
	uint64_t offered;

	bar_write(f, 0x00, 0, 4);
	offered = bar_read(f, 0x04, 4);
	bar_write(f, 0x00, 1, 4);
	offered |= bar_read(f, 0x04, 4) << 32;
	assert_true(offered & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(offered & (1ULL << VIRTIO_RING_F_EVENT_IDX));
	assert_true(offered & (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
	bar_write(f, 0x00, 2, 4);
	assert_int_equal(bar_read(f, 0x04, 4), 0);

	/* Without VERSION_1 (a legacy driver): FEATURES_OK does not stick. */
	negotiate(f, 1ULL << VIRTIO_RING_F_EVENT_IDX);
	assert_false(status(f) & VIRTIO_STATUS_FEATURES_OK);
	bar_write(f, 0x14, 0, 1);
	assert_int_equal(status(f), 0);
	/* Something not offered. */
	negotiate(f, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 5));
	assert_false(status(f) & VIRTIO_STATUS_FEATURES_OK);
	bar_write(f, 0x14, 0, 1);
	negotiate(f, offered);
	assert_true(status(f) & VIRTIO_STATUS_FEATURES_OK);
	assert_true(f->vp->vdev.vqs[0].event_idx && f->vp->vdev.vqs[0].indirect);
	/* Features are frozen once accepted. */
	bar_write(f, 0x08, 0, 4);
	bar_write(f, 0x0c, 0, 4);
	assert_int_equal(f->vp->vdev.driver_features, offered);
	/* Reset clears everything. */
	bar_write(f, 0x14, 0, 1);
	assert_int_equal(f->vp->vdev.driver_features, 0);
}

static void test_driver_ok_needs_features_ok(void **state)
{
	struct fixture *f = *state;

	bar_write(f, 0x14,
		  VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK, 1);
	assert_false(status(f) & VIRTIO_STATUS_DRIVER_OK);
}

/* Sets up queue 0 at the fixture's ring addresses and sets DRIVER_OK. */
static void start_queue(struct fixture *f, bool event_idx)
{
	negotiate(f,
		  (1ULL << VIRTIO_F_VERSION_1) | (event_idx ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0));
	bar_write(f, 0x16, 0, 2);
	assert_int_equal(bar_read(f, 0x18, 2), 64); /* max size */
	bar_write(f, 0x18, QSIZE, 2);
	/* Addresses as two 32-bit halves, as Linux writes them. */
	bar_write(f, 0x20, DESC_GPA, 4);
	bar_write(f, 0x24, 0, 4);
	bar_write(f, 0x28, AVAIL_GPA, 4);
	bar_write(f, 0x2c, 0, 4);
	bar_write(f, 0x30, USED_GPA, 8);
	bar_write(f, 0x1c, 1, 2);
	assert_int_equal(bar_read(f, 0x1c, 2), 1);
	assert_int_equal(bar_read(f, 0x1e, 2), 0);
	assert_int_equal(bar_read(f, 0x20, 8), DESC_GPA);
	bar_write(f, 0x14, status(f) | VIRTIO_STATUS_DRIVER_OK, 1);
	assert_true(status(f) & VIRTIO_STATUS_DRIVER_OK);
}

static void put_desc(struct fixture *f, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *d = f->ram + DESC_GPA + 16 * i;

	put_le64(d, addr);
	put_le32(d + 8, len);
	put_le16(d + 12, flags);
	put_le16(d + 14, next);
}

static void make_avail(struct fixture *f, uint16_t head)
{
	uint16_t idx = get_le16(f->ram + AVAIL_GPA + 2);

	put_le16(f->ram + AVAIL_GPA + 4 + 2 * (idx % QSIZE), head);
	put_le16(f->ram + AVAIL_GPA + 2, (uint16_t)(idx + 1));
}

static void test_rng_intx(void **state)
{
	struct fixture *f = *state;
	static const uint8_t zeros[32];

	start_queue(f, false);
	put_desc(f, 0, BUF_GPA, 32, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	assert_int_equal(get_le16(f->ram + USED_GPA + 2), 1);
	assert_int_equal(get_le32(f->ram + USED_GPA + 8), 32);
	assert_memory_not_equal(f->ram + BUF_GPA, zeros, 32);
	/* INTx: ISR bit 0 and the line up; reading the ISR acknowledges. */
	assert_int_equal(f->intx_level, 1);
	assert_int_equal(bar_read(f, VIRTIO_PCI_ISR_OFF, 1), 1);
	assert_int_equal(f->intx_level, 0);
	assert_int_equal(bar_read(f, VIRTIO_PCI_ISR_OFF, 1), 0);
}

static void test_rng_msix(void **state)
{
	struct fixture *f = *state;

	start_queue(f, true);
	/* Vector 1 for the queue, 0 for config changes; an out-of-range vector reads back as
	 * NO_VECTOR. */
	bar_write(f, 0x1a, 7, 2);
	assert_int_equal(bar_read(f, 0x1a, 2), VIRTIO_NO_VECTOR);
	bar_write(f, 0x1a, 1, 2);
	bar_write(f, 0x10, 0, 2);
	cfg_write(f, 0x42, 0x8001, 2); /* MSI-X enable */
	bar_write(f, VIRTIO_PCI_MSIX_TABLE_OFF + 16, 0xfee00000, 8);
	bar_write(f, VIRTIO_PCI_MSIX_TABLE_OFF + 24, 0x41, 4);
	/* Entries start masked: the interrupt is pending in the PBA. */
	put_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	assert_int_equal(get_le16(f->ram + USED_GPA + 2), 1);
	assert_int_equal(f->vp->msi_sent, 0);
	assert_int_equal(bar_read(f, VIRTIO_PCI_MSIX_PBA_OFF, 8), 2);
	assert_int_equal(f->intx_level, 0);
	/* Unmasking delivers it. */
	bar_write(f, VIRTIO_PCI_MSIX_TABLE_OFF + 28, 0, 4);
	assert_int_equal(f->vp->msi_sent, 1);
	assert_int_equal(bar_read(f, VIRTIO_PCI_MSIX_PBA_OFF, 8), 0);
	/* Function mask holds the next one back, clearing it releases it. */
	cfg_write(f, 0x42, 0xc001, 2);
	put_le16(f->ram + AVAIL_GPA + 4 + 2 * QSIZE, 1); /* used_event: interrupt after entry 1 */
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	assert_int_equal(f->vp->msi_sent, 1);
	cfg_write(f, 0x42, 0x8001, 2);
	assert_int_equal(f->vp->msi_sent, 2);
}

static void msix_entry_write(struct fixture *f, unsigned int v, uint64_t addr, uint32_t data)
{
	/* As Linux writes an entry: address low, address high, data, each a 32-bit access. */
	bar_write(f, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * v, (uint32_t)addr, 4);
	bar_write(f, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * v + 4, (uint32_t)(addr >> 32), 4);
	bar_write(f, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * v + 8, data, 4);
}

static void kick(struct fixture *f)
{
	put_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
}

/* The guest rewrites its whole MSI-X table, masked and then unmasked: KVM's routing table is
 * replaced once, before the first interrupt, not once per table write (there were 6 here). A
 * route rewritten while its vector is unmasked reaches KVM before the next interrupt on it. */
static void test_msix_routes_batched(void **state)
{
	struct fixture *f = *state;

	start_queue(f, false);
	bar_write(f, 0x10, 0, 2); /* config vector 0 */
	bar_write(f, 0x1a, 1, 2); /* queue vector 1 */
	cfg_write(f, 0x42, 0x8001, 2); /* MSI-X enable */
	msix_entry_write(f, 0, 0xfee01000, 0x40);
	msix_entry_write(f, 1, 0xfee02000, 0x41);
	assert_int_equal(f->routing_sets, 0);
	bar_write(f, VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 12, 0, 4); /* unmask vector 1 */
	assert_int_equal(f->routing_sets, 0);
	kick(f);
	assert_int_equal(f->routing_sets, 1);
	assert_int_equal(f->kvm[1].addr, 0xfee02000);
	assert_int_equal(f->kvm[1].data, 0x41);
	assert_int_equal(f->kvm[0].data, 0x40);
	assert_int_equal(irqs(f, 1), 1);
	/* Nothing changed: the next interrupt needs no routing update. */
	kick(f);
	assert_int_equal(irqs(f, 1), 1);
	assert_int_equal(f->routing_sets, 1);
	/* Moved to another CPU while unmasked. */
	msix_entry_write(f, 1, 0xfee03000, 0x42);
	assert_int_equal(f->routing_sets, 1);
	kick(f);
	assert_int_equal(f->routing_sets, 2);
	assert_int_equal(f->kvm[1].addr, 0xfee03000);
	assert_int_equal(f->kvm[1].data, 0x42);
	assert_int_equal(irqs(f, 1), 1);
	/* Masked, rewritten, interrupt held pending, unmasked: delivered on the new route. */
	bar_write(f, VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 12, 1, 4);
	msix_entry_write(f, 1, 0xfee04000, 0x43);
	kick(f);
	assert_int_equal(irqs(f, 1), 0);
	assert_int_equal(f->routing_sets, 2);
	bar_write(f, VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 12, 0, 4);
	assert_int_equal(f->routing_sets, 3);
	assert_int_equal(f->kvm[1].data, 0x43);
	assert_int_equal(irqs(f, 1), 1);
}

/* A driver refills the queue as fast as the device empties it, and a control client asks for
 * "status" at the same time. The main loop (here: poll over the kick eventfd and the client's
 * socket, as vm_run's epoll) must answer the client within a round or two while the device
 * keeps working: each notification takes at most VIRTIO_PCI_KICK_BUDGET chains and requeues
 * itself. Before, the first notification ran until the driver stopped refilling. */
static void test_refilling_driver_cannot_starve_loop(void **state)
{
	struct fixture *f = *state;
	int ctl[2], answered = -1;
	uint16_t before, after = 0;
	char req[16];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, ctl), 0);
	start_queue(f, false);
	put_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	f->refill_left = 100000;
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2); /* to the kick eventfd */
	assert_int_equal(write(ctl[0], "status\n", 7), 7);
	for (int round = 0; round < 8; round++) {
		struct pollfd p[2] = { { .fd = f->watch[0].fd, .events = POLLIN },
				       { .fd = ctl[1], .events = POLLIN } };

		assert_true(poll(p, 2, 1000) > 0);
		if (p[0].revents & POLLIN) {
			before = get_le16(f->ram + USED_GPA + 2);
			f->watch[0].cb(f->watch[0].arg);
			after = get_le16(f->ram + USED_GPA + 2);
			assert_true((uint16_t)(after - before) <= VIRTIO_PCI_KICK_BUDGET);
		}
		if ((p[1].revents & POLLIN) && answered < 0) {
			assert_int_equal(read(ctl[1], req, sizeof(req)), 7);
			assert_int_equal(write(ctl[1], "running\n", 8), 8);
			answered = round;
		}
	}
	assert_true(answered >= 0 && answered <= 1);
	/* The device went on between the rounds: 8 budgets' worth, requeued each time. */
	assert_int_equal(after, 8 * VIRTIO_PCI_KICK_BUDGET);
	assert_true(f->vp->requeued >= 7);
	assert_false(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	close(ctl[0]);
	close(ctl[1]);
}

static void test_malformed_ring_needs_reset(void **state)
{
	struct fixture *f = *state;
	uint8_t gen;

	start_queue(f, false);
	gen = (uint8_t)bar_read(f, 0x15, 1);
	/* A loop. */
	put_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	put_desc(f, 1, BUF_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(get_le16(f->ram + USED_GPA + 2), 0);
	/* Configuration-change interrupt (INTx: ISR bit 1). */
	assert_int_equal(bar_read(f, VIRTIO_PCI_ISR_OFF, 1), 2);
	assert_int_equal((uint8_t)bar_read(f, 0x15, 1), gen);
	/* Dead until reset: the driver cannot clear NEEDS_RESET, notifications are ignored. */
	bar_write(f, 0x14, 0x0f, 1);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	put_desc(f, 1, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	assert_int_equal(get_le16(f->ram + USED_GPA + 2), 0);
	/* After a reset the device works again. */
	bar_write(f, 0x14, 0, 1);
	assert_int_equal(status(f), 0);
	memset(f->ram + AVAIL_GPA, 0, 0x2000);
	start_queue(f, false);
	put_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	assert_int_equal(get_le16(f->ram + USED_GPA + 2), 1);
}

static void test_rng_refuses_readable(void **state)
{
	struct fixture *f = *state;

	start_queue(f, false);
	put_desc(f, 0, BUF_GPA, 16, 0, 0);
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_queue_enable_bad_address(void **state)
{
	struct fixture *f = *state;

	negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
	bar_write(f, 0x18, QSIZE, 2);
	bar_write(f, 0x20, RAM_SIZE, 8);
	bar_write(f, 0x1c, 1, 2);
	assert_int_equal(bar_read(f, 0x1c, 2), 0);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
}

/* A driver writes a queue size above the device's maximum (64 for virtio-rng) and enables the
 * queue: the queue stays disabled and the device needs a reset. Accepted, that size would have
 * made the saved state unloadable (virtq_decode refuses it); the state saved now loads. */
/* Saves f's virtio-rng state into w and loads it into g, a second machine on the same RAM. */
static void save_into_second_machine(struct fixture *f, struct fixture *g, struct tlv_writer *w)
{
	struct tlv_section s;
	size_t pos = 0, start;

	tlv_writer_init(w);
	start = tlv_section_begin(w, virtio_rng_device_ops.section_id, 0, 1, 1);
	assert_int_equal(virtio_rng_device_ops.save(f->vp, w), 0);
	tlv_section_end(w, start);
	assert_int_equal(tlv_next_section(w->buf, w->len, &pos, &s), 1);
	memory_attach(&g->mem, f->ram, RAM_SIZE);
	pci_bus_init(&g->pci);
	bus_init(&g->mmio, "mmio");
	g->host = (struct virtio_pci_host){ .opaque = g, .mem = &g->mem, .set_intx = fake_intx };
	assert_int_equal(virtio_rng_create(&g->vp, &g->host, &g->pci, &g->mmio, 10), 0);
	assert_int_equal(virtio_rng_device_ops.load(g->vp, &s), 0);
}

static void test_queue_enable_oversize(void **state)
{
	struct fixture *f = *state;
	struct fixture g = { 0 };
	struct tlv_writer w;

	negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
	bar_write(f, 0x16, 0, 2);
	assert_int_equal(bar_read(f, 0x18, 2), 64);
	bar_write(f, 0x18, 128, 2);
	bar_write(f, 0x20, DESC_GPA, 8);
	bar_write(f, 0x28, AVAIL_GPA, 8);
	bar_write(f, 0x30, USED_GPA, 8);
	bar_write(f, 0x1c, 1, 2);
	assert_int_equal(bar_read(f, 0x1c, 2), 0);
	assert_false(f->vp->vdev.vqs[0].ready);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);

	/* The register keeps what the driver wrote (it reads it back), the state loads, and the
	 * loaded queue refuses to be enabled just the same. */
	save_into_second_machine(f, &g, &w);
	assert_int_equal(g.vp->vdev.vqs[0].size, 128);
	assert_false(g.vp->vdev.vqs[0].ready);
	assert_int_equal(virtq_enable(&g.vp->vdev.vqs[0]), -EINVAL);
	free(g.vp);
	tlv_writer_free(&w);

	/* After a reset, the largest allowed size works. */
	bar_write(f, 0x14, 0, 1);
	negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
	bar_write(f, 0x18, 64, 2);
	bar_write(f, 0x20, DESC_GPA, 8);
	bar_write(f, 0x28, AVAIL_GPA, 8);
	bar_write(f, 0x30, USED_GPA, 8);
	bar_write(f, 0x1c, 1, 2);
	assert_int_equal(bar_read(f, 0x1c, 2), 1);
}

static void test_bad_accesses_ignored(void **state)
{
	struct fixture *f = *state;

	/* Queue registers of a queue that does not exist read as zero and ignore writes. */
	bar_write(f, 0x16, 5, 2);
	assert_int_equal(bar_read(f, 0x18, 2), 0);
	bar_write(f, 0x1c, 1, 2);
	/* Notifying a queue that does not exist, unaligned and odd-sized accesses. */
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF + 4 * 7, 7, 2);
	bar_write(f, 0x13, 0xff, 2);
	bar_write(f, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * 9, 1, 4);
	assert_int_equal(bar_read(f, 0x7ffc, 4), 0);
	assert_int_equal(status(f), 0);
}

static void test_save_load(void **state)
{
	struct fixture *f = *state;
	struct fixture g = { 0 };
	struct tlv_writer w;

	start_queue(f, true);
	put_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	bar_write(f, 0x1a, 1, 2);

	save_into_second_machine(f, &g, &w);
	assert_int_equal(g.vp->vdev.status, f->vp->vdev.status);
	assert_int_equal(g.vp->vdev.driver_features, f->vp->vdev.driver_features);
	assert_int_equal(g.vp->vdev.queue_vector[0], 1);
	assert_true(g.vp->vdev.vqs[0].ready);
	assert_int_equal(g.vp->vdev.vqs[0].last_avail, 1);
	assert_int_equal(g.vp->vdev.vqs[0].used_idx, 1);
	assert_non_null(g.vp->vdev.vqs[0].desc);
	assert_int_equal(g.vp->pci.cfg[0x04], 0x02);
	/* The restored device goes on where the first stopped. */
	make_avail(f, 0);
	{
		uint8_t zero[2] = { 0 };

		virtio_pci_bar_io(g.vp, VIRTIO_PCI_NOTIFY_OFF, zero, 2, true);
	}
	assert_int_equal(get_le16(f->ram + USED_GPA + 2), 2);
	free(g.vp);
	tlv_writer_free(&w);
}

/* virtio-console with a file backend: queue 1 (transmit) output lands in the file; a writable
 * buffer on the transmit queue is a driver error. */
static void test_console_file(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/vireo-test-console-XXXXXX", spec[64], buf[32] = { 0 };
	struct virtio_pci *con;
	int fd = mkstemp(path), slot;

	assert_true(fd >= 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	assert_int_equal(virtio_console_create(&con, &f->host, &f->pci, &f->mmio, 10, spec), 0);
	/* Talk to the console instead of the rng. */
	free(f->vp);
	f->vp = con;
	for (slot = 1; slot < PCI_SLOTS && f->pci.slots[slot] != &con->pci; slot++)
		;
	f->devfn = (unsigned int)slot << 3;
	cfg_write(f, 0x04, 0x0002, 2);
	assert_int_equal(cfg_read(f, 0x02, 2), 0x1043);
	assert_int_equal(bar_read(f, 0x12, 2), 2);
	negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
	bar_write(f, 0x16, 1, 2);
	bar_write(f, 0x18, QSIZE, 2);
	bar_write(f, 0x20, DESC_GPA, 8);
	bar_write(f, 0x28, AVAIL_GPA, 8);
	bar_write(f, 0x30, USED_GPA, 8);
	bar_write(f, 0x1c, 1, 2);
	bar_write(f, 0x14, status(f) | VIRTIO_STATUS_DRIVER_OK, 1);
	assert_true(status(f) & VIRTIO_STATUS_DRIVER_OK);
	/* Device config: 12 bytes, zeros; past it nothing. */
	assert_int_equal(bar_read(f, VIRTIO_PCI_DEVICE_OFF + 8, 4), 0);

	memcpy(f->ram + BUF_GPA, "hello ", 6);
	memcpy(f->ram + BUF_GPA + 0x100, "console", 7);
	put_desc(f, 0, BUF_GPA, 6, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f, 1, BUF_GPA + 0x100, 7, 0, 0);
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF + 4, 1, 2);
	assert_int_equal(get_le16(f->ram + USED_GPA + 2), 1);
	assert_int_equal(read(fd, buf, sizeof(buf)), 13);
	assert_string_equal(buf, "hello console");

	put_desc(f, 0, BUF_GPA, 6, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0);
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF + 4, 1, 2);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	close(fd);
	unlink(path);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config_space),
		T(test_bar_sizing),
		T(test_decoding_off),
		T(test_features),
		T(test_driver_ok_needs_features_ok),
		T(test_rng_intx),
		T(test_rng_msix),
		T(test_malformed_ring_needs_reset),
		T(test_rng_refuses_readable),
		T(test_queue_enable_bad_address),
		T(test_queue_enable_oversize),
		cmocka_unit_test_setup_teardown(test_msix_routes_batched, setup_msi, teardown),
		cmocka_unit_test_setup_teardown(test_refilling_driver_cannot_starve_loop,
						setup_loop, teardown),
		T(test_bad_accesses_ignored),
		T(test_save_load),
		T(test_console_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
