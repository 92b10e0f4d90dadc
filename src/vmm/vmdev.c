// SPDX-License-Identifier: MIT
/* Device wiring: every device of the machine, the ports and MMIO ranges of the platform devices,
 * the virtio devices the configuration asks for and their host (struct virtio_pci_host), and the
 * registry (vm->devices) they are saved and loaded in. Adding a device is a change here and in its
 * own files (docs/virtio.md, "Adding a device"). */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../virtio/devices.h"
#include "vmdev.h"
#include "vm.h"
#include "vmdisk.h"

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ 4
#define PAYLOAD_EXIT_PORT 0xf4

/* INTx lines for virtio functions, by creation order: ISA IRQs with no other user, which Linux
 * takes from the Interrupt Line register when ACPI has no _PRT (MSI-X is the normal path).
 * Functions past the fourth share lines round-robin: only the INTx fallback would notice. */
static const uint32_t virtio_intx_irqs[] = { 10, 11, 5, 9 };

/* Functions beyond the fourth share lines: INTx is only the fallback without MSI-X. */
static uint32_t intx_irq(unsigned int *n)
{
	return virtio_intx_irqs[(*n)++ % ARRAY_SIZE(virtio_intx_irqs)];
}

static void irq_line(struct vm *vm, uint32_t irq, int level)
{
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		pr_debug("KVM_IRQ_LINE %u: %s", irq, strerror(errno));
}

static void com1_tx(void *opaque, uint8_t byte)
{
	struct vm *vm = opaque;

	console_write(&vm->console, &byte, 1);
}

static void com1_irq(void *opaque, int level)
{
	irq_line(opaque, SERIAL_COM1_IRQ, level);
}

static void com1_rx_space(void *opaque)
{
	struct vm *vm = opaque;
	uint64_t one = 1;

	if (write(vm->rx_space_fd, &one, sizeof(one)) < 0)
		pr_debug("rx_space eventfd: %s", strerror(errno));
}

static const struct serial8250_ops com1_ops = {
	.tx = com1_tx,
	.set_irq = com1_irq,
	.rx_space = com1_rx_space,
};

static void platform_event(void *opaque, enum platform_event ev)
{
	struct vm *vm = opaque;

	if (ev == PLATFORM_POWEROFF)
		vm_request_stop(vm, STOP_POWEROFF, EXIT_GUEST_OFF);
	else
		vm_request_stop(vm, STOP_REBOOT, EXIT_GUEST_OFF);
}

static void platform_sci(void *opaque, int level)
{
	irq_line(opaque, ACPI_SCI_IRQ, level);
}

static const struct platform_ops platform_ops = {
	.event = platform_event,
	.set_sci = platform_sci,
};

static void payload_exit_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			    bool is_write)
{
	(void)offset;
	if (is_write)
		vm_request_stop(opaque, STOP_PAYLOAD_EXIT, data[0]);
	else
		memset(data, 0, len);
}

static void ignore_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	(void)opaque;
	(void)offset;
	if (!is_write)
		memset(data, 0xff, len);
}

/* On PC chipsets 0xCF8 is the PCI address register for dword access only, and a byte access at
 * 0xCF9 is the reset control register. */
static void pci_port_filter(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			    bool is_write)
{
	struct vm *vm = opaque;

	if (offset == 1 && len == 1)
		platform_rcr_io(&vm->platform, 0, data, len, is_write);
	else
		pci_io_port(&vm->pci, offset, data, len, is_write);
}

/* Devices of one kind (several disks) are told apart by their instance number: their order. */
static int add_device(struct vm *vm, const struct device_ops *ops, void *dev)
{
	uint32_t instance = 0;

	if (vm->ndevices >= VM_MAX_DEVICES)
		return -ENOSPC;
	for (unsigned int i = 0; i < vm->ndevices; i++)
		if (vm->devices[i].ops->section_id == ops->section_id)
			instance++;
	vm->devices[vm->ndevices++] = (struct vm_device){ ops, dev, instance };
	return 0;
}
/* ---- the virtio devices' host ---- */

static int host_ioeventfd(void *opaque, uint64_t gpa, uint32_t len, int fd, bool assign)
{
	return vm_ioeventfd(opaque, gpa, len, fd, assign);
}

static int host_msi_alloc(void *opaque, uint32_t *gsi)
{
	return vm_msi_alloc(opaque, gsi);
}

static int host_msi_route(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data)
{
	return vm_msi_route(opaque, gsi, addr, data);
}

static int host_msi_commit(void *opaque)
{
	return vm_msi_commit(opaque);
}

static int host_irqfd(void *opaque, uint32_t gsi, int fd)
{
	return vm_irqfd(opaque, gsi, fd);
}

static void host_set_intx(void *opaque, uint32_t irq, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		pr_debug("KVM_IRQ_LINE %u: %s", irq, strerror(errno));
}

/* Device writes to guest RAM, for the migration's dirty page tracking. */
static void host_mark_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
	struct vm *vm = opaque;

	memory_mark_dirty(&vm->mem, gpa, len);
}

static int host_watch_fd(void *opaque, int fd, void (*cb)(void *arg), void *arg)
{
	return vm_watch_fd(opaque, fd, cb, arg);
}

static int host_unwatch_fd(void *opaque, int fd)
{
	return vm_unwatch_fd(opaque, fd);
}

static int setup_virtio(struct vm *vm)
{
	unsigned int nirq = 0;
	int ret = 0;

	vm->virtio_host = (struct virtio_pci_host){
		.opaque = vm,
		.mem = &vm->mem,
		.mark_dirty = host_mark_dirty,
		.ioeventfd = host_ioeventfd,
		.msi_alloc = host_msi_alloc,
		.msi_route = host_msi_route,
		.msi_commit = host_msi_commit,
		.irqfd = host_irqfd,
		.set_intx = host_set_intx,
		.watch_fd = host_watch_fd,
		.unwatch_fd = host_unwatch_fd,
	};
	if (vm->cfg->virtio_rng) {
		ret = virtio_rng_create(&vm->virtio_rng, &vm->virtio_host, &vm->pci, &vm->mmio,
					intx_irq(&nirq));
		if (!ret)
			ret = add_device(vm, &virtio_rng_device_ops, vm->virtio_rng);
		if (ret) {
			pr_err("virtio-rng: %s", strerror(-ret));
			return ret;
		}
	}
	if (vm->cfg->virtio_console) {
		ret = virtio_console_create(&vm->virtio_console, &vm->virtio_host, &vm->pci,
					    &vm->mmio, intx_irq(&nirq), vm->cfg->virtio_console);
		if (!ret)
			ret = add_device(vm, &virtio_console_device_ops, vm->virtio_console);
		if (ret) {
			pr_err("virtio-console %s: %s", vm->cfg->virtio_console, strerror(-ret));
			return ret;
		}
	}
	if (vm->cfg->balloon) {
		ret = virtio_balloon_create(&vm->virtio_balloon, &vm->virtio_host, &vm->mem,
					    &vm->pci, &vm->mmio, intx_irq(&nirq),
					    vm->cfg->balloon_flags);
		if (!ret)
			ret = add_device(vm, &virtio_balloon_device_ops, vm->virtio_balloon);
		if (ret) {
			pr_err("virtio-balloon: %s", strerror(-ret));
			return ret;
		}
	}
	if (vm->cfg->vsock) {
		ret = virtio_vsock_create(&vm->virtio_vsock, &vm->virtio_host, &vm->pci, &vm->mmio,
					  intx_irq(&nirq), vm->cfg->vsock_cid, vm->cfg->vsock_uds);
		if (!ret)
			ret = add_device(vm, &virtio_vsock_device_ops, vm->virtio_vsock);
		if (ret) {
			pr_err("virtio-vsock %s: %s", vm->cfg->vsock, strerror(-ret));
			return ret;
		}
	}
	for (unsigned int i = 0; i < vm->cfg->ndisks; i++) {
		struct virtio_blk_opts opts;
		char overlay[4096];

		ret = vm_disk_prepare(vm, i, &opts, overlay, sizeof(overlay));
		if (ret)
			return ret;
		ret = virtio_blk_create(&vm->virtio_blk[i], &vm->virtio_host, &vm->pci, &vm->mmio,
					intx_irq(&nirq), &opts);
		if (!ret) {
			vm->ndisks = i + 1;
			ret = add_device(vm, &virtio_blk_device_ops, vm->virtio_blk[i]);
		}
		if (ret) {
			pr_err("--disk %s: cannot use it: %s", opts.path,
			       ret == -ENOSPC ? "too many devices" : strerror(-ret));
			return ret;
		}
	}
	for (unsigned int i = 0; i < vm->cfg->nnet; i++) {
		/* virtio_net_create says what went wrong with the backend itself. */
		ret = virtio_net_create(&vm->virtio_net[i], &vm->virtio_host, &vm->pci, &vm->mmio,
					intx_irq(&nirq), i, vm->cfg->net[i]);
		if (ret)
			return ret;
		vm->nnet++;
		ret = add_device(vm, &virtio_net_device_ops, vm->virtio_net[i]);
		if (ret) {
			pr_err("virtio-net%u: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* The port-I/O and MMIO ranges of the platform devices: the registry, every device and the
 * ports it owns in one place. opaque is found from the vm by offset. */
struct vm_range {
	bool mmio;
	uint64_t base, len;
	bus_io_fn fn;
	size_t dev_off; /* offset of the device in struct vm; SIZE_MAX for the vm itself */
	const char *name;
};

#define VM_DEV(member) offsetof(struct vm, member)
#define VM_SELF SIZE_MAX

static const struct vm_range platform_ranges[] = {
	{ false, SERIAL_COM1_PORT, 8, serial8250_io, VM_DEV(com1), "com1" },
	{ false, 0x70, 2, rtc_io, VM_DEV(rtc), "cmos-rtc" },
	/* 0x60 data and 0x64 command/status; 0x61 (PIT gate/speaker) is KVM's. */
	{ false, I8042_DATA_PORT, 5, platform_i8042_io, VM_DEV(platform), "i8042" },
	{ false, ACPI_PM1_EVT_PORT, 12, platform_pm_io, VM_DEV(platform), "acpi-pm" },
	{ false, PCI_CONFIG_PORT, 8, pci_port_filter, VM_SELF, "pci-cfg+rcr" },
	{ false, 0x80, 1, ignore_io, VM_SELF, "post-code" },
	{ true, PCI_ECAM_BASE, PCI_ECAM_SIZE, pci_ecam_mmio, VM_DEV(pci), "pci-ecam" },
};

/* Returns 0 or the first error, as it was: -EEXIST for an overlap, -ENOSPC when a table is
 * full (bus_register and add_device say which). */
int vm_setup_devices(struct vm *vm)
{
	int ret = 0;

	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	serial8250_init(&vm->com1, &com1_ops, vm);
	rtc_init(&vm->rtc);
	platform_init(&vm->platform, &platform_ops, vm);
	pci_bus_init(&vm->pci);

	for (size_t i = 0; !ret && i < ARRAY_SIZE(platform_ranges); i++) {
		const struct vm_range *r = &platform_ranges[i];
		void *opaque = r->dev_off == VM_SELF ? (void *)vm : (char *)vm + r->dev_off;

		ret = bus_register(r->mmio ? &vm->mmio : &vm->pio, r->base, r->len, r->fn, opaque,
				   r->name);
	}
	if (!ret && vm->cfg->payload)
		ret = bus_register(&vm->pio, PAYLOAD_EXIT_PORT, 1, payload_exit_io, vm,
				   "payload-exit");
	/* Saved and loaded in this order. Interrupt lines are raised again by each load, before the
	 * interrupt controllers' own state is loaded. */
	if (!ret)
		ret = add_device(vm, &serial8250_device_ops, &vm->com1);
	if (!ret)
		ret = add_device(vm, &rtc_device_ops, &vm->rtc);
	if (!ret)
		ret = add_device(vm, &platform_device_ops, &vm->platform);
	if (!ret)
		ret = add_device(vm, &pci_bus_device_ops, &vm->pci);
	if (ret) {
		pr_err("platform devices: %s", strerror(-ret));
		return ret;
	}
	return setup_virtio(vm);
}
