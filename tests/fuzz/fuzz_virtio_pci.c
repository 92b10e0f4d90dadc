// SPDX-License-Identifier: MIT
/* libFuzzer target for the virtio-pci register space: the common configuration, ISR, device
 * configuration, notification registers, MSI-X table and PBA in the BAR, and the PCI
 * configuration space (command register, BAR sizing, MSI-X capability). The devices are those of
 * fuzz_virtio (fuzz_virtio_dev.h); the input is:
 *
 *   u8 device, then operations until the input ends (at most MAX_OPS):
 *   BAR_WRITE  u16 offset, u8 size, u64 value     (offsets past the BAR hit nothing)
 *   BAR_READ   u16 offset, u8 size
 *   CFG_WRITE  u8 offset, u8 size, u32 value      (PCI configuration space)
 *   CFG_READ   u8 offset, u8 size
 *   MSIX       u8 control bits (enable, mask all) written to the MSI-X capability
 *   REQUEST    u8 queue: a 64-byte writable buffer made available on a queue set up earlier
 *              by BAR writes, and notified (the device answers with an interrupt)
 *   HOST       u8: a configuration change from the host (balloon target, net link)
 *   POLL       the main loop runs (kicks through the ioeventfd path, completions)
 *
 * Sizes are 1, 2, 4 or 8 bytes mostly and sometimes odd (3, 5..7), as a guest may try. Every
 * access must be answered without touching memory outside the device and RAM. */
#include <stdint.h>

#include "fuzz_common.h"
#include "fuzz_virtio_dev.h"

#define MAX_OPS 64
#define CAP_MSIX 0x40 /* where virtio/pci.c puts the MSI-X capability */

enum {
	OP_BAR_WRITE,
	OP_BAR_READ,
	OP_CFG_WRITE,
	OP_CFG_READ,
	OP_MSIX,
	OP_REQUEST,
	OP_HOST,
	OP_POLL,
	OP_COUNT
};

static uint32_t access_size(uint8_t b)
{
	static const uint32_t sizes[8] = { 1, 2, 4, 8, 1, 2, 4, 3 };

	return (b & 0x80) ? 1 + b % 8 : sizes[b % 8];
}

static void bar_access(struct drv *d, struct fz *f, bool write)
{
	uint32_t off = fz_u16(f), len = access_size(fz_u8(f));
	uint8_t b[8] = { 0 };

	if (write)
		fz_bytes(f, b, 8);
	/* The BAR is 0x8000 bytes; offsets up to 0xffff also try just past it. */
	bus_access(&d->mmio, d->vp->bar_addr + off, b, len, write);
}

static void cfg_access(struct drv *d, struct fz *f, bool write)
{
	uint32_t off = fz_u8(f), len = access_size(fz_u8(f)) % 5;
	uint8_t b[4] = { 0 };

	if (len == 3 || !len)
		len = 4;
	if (write)
		fz_bytes(f, b, 4);
	if (off + len <= 256)
		pci_config_access(&d->pci, d->devfn, off, b, len, write);
}

static void request(struct drv *d, struct fz *f)
{
	unsigned int q = fz_u8(f) % 8;

	if (q >= dev_nqueues[fz_dev_kind(d)])
		return;
	drv_add1(d, q, DRV_BUF_GPA + 0x1000 * q, 64, true);
	drv_kick(d, q);
}

static void host_event(struct drv *d, struct fz *f)
{
	uint8_t b = fz_u8(f);

	if (fz_dev_kind(d) == DEV_BALLOON)
		virtio_balloon_set_target(d->vp, (uint64_t)b * 4096);
	else if (fz_dev_kind(d) == DEV_NET)
		virtio_net_set_link(d->vp, b & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct fz f = fz_init(data, size);
	struct drv *d;

	if (!init) {
		fz_machine_init();
		init = true;
	}
	if (size < 1)
		return 0;
	d = fz_devs[fz_u8(&f) % DEV_COUNT];
	for (unsigned int i = 0; i < MAX_OPS && fz_left(&f); i++) {
		switch (fz_u8(&f) % OP_COUNT) {
		case OP_BAR_WRITE:
			bar_access(d, &f, true);
			break;
		case OP_BAR_READ:
			bar_access(d, &f, false);
			break;
		case OP_CFG_WRITE:
			cfg_access(d, &f, true);
			break;
		case OP_CFG_READ:
			cfg_access(d, &f, false);
			break;
		case OP_MSIX:
			drv_pci_write(d, CAP_MSIX + 3, fz_u8(&f) & 0xc0, 1);
			break;
		case OP_REQUEST:
			request(d, &f);
			break;
		case OP_HOST:
			host_event(d, &f);
			break;
		default:
			fz_poll();
			break;
		}
	}
	fz_power_on(d);
	return 0;
}
