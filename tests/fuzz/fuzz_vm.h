/* SPDX-License-Identifier: MIT */
/* The fake machine of the state and migration fuzzers: a struct vm with two vCPUs, the legacy
 * devices (UART, RTC, platform, PCI bus) and the six virtio devices of fuzz_virtio_dev.h in its
 * device registry, and KVM replaced by fuzz_kvm.h. fz_vm_state() writes its state as
 * vmstate_save does, with every virtio device started and one request made on each. */
#ifndef VIREO_TESTS_FUZZ_VM_H
#define VIREO_TESTS_FUZZ_VM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "fuzz_kvm.h"
#include "fuzz_nop_ops.h"
#include "fuzz_virtio_dev.h"
#include "vmm/config.h"
#include "vmm/cpuid.h"
#include "vmm/vm.h"
#include "vmm/vcpu.h"
#include "vmm/vmstate.h"

#define NVCPUS 2

static struct vm vm;
static struct vcpu vcpus[NVCPUS];
static struct vm_config cfg;

static void add_device(const struct device_ops *ops, void *dev)
{
	vm.devices[vm.ndevices++] = (struct vm_device){ ops, dev, 0 };
}

static void fz_vm_init(void)
{
	static const struct device_ops *const vops[DEV_COUNT] = {
		&virtio_blk_device_ops, &virtio_net_device_ops,	    &virtio_console_device_ops,
		&virtio_rng_device_ops, &virtio_balloon_device_ops, &virtio_vsock_device_ops,
	};

	fz_machine_init();
	cfg.mem_size = DRV_RAM_SIZE;
	cfg.ncpus = NVCPUS;
	vm.cfg = &cfg;
	vm.kvm_fd = vm.vm_fd = FZ_KVM_VM_FD;
	vm.mem = fz_devs[DEV_RNG]->mem;
	vm.tsc_khz = 2000000;
	vm.vcpus = vcpus;
	vm.nvcpus = NVCPUS;
	for (unsigned int i = 0; i < NVCPUS; i++)
		vcpus[i] = (struct vcpu){ .vm = &vm, .index = i, .fd = FZ_KVM_VCPU_FD };
	serial8250_init(&vm.com1, &uart_ops, NULL);
	rtc_init(&vm.rtc);
	platform_init(&vm.platform, &plat_ops, NULL);
	pci_bus_init(&vm.pci);
	add_device(&serial8250_device_ops, &vm.com1);
	add_device(&rtc_device_ops, &vm.rtc);
	add_device(&platform_device_ops, &vm.platform);
	add_device(&pci_bus_device_ops, &vm.pci);
	for (unsigned int k = 0; k < DEV_COUNT; k++)
		add_device(vops[k], fz_devs[k]->vp);
	vm.virtio_blk[0] = fz_devs[DEV_BLK]->vp;
	vm.ndisks = 1;
}

/* The machine's configuration and state as vmstate_save_config and vmstate_save write them. */
static void fz_vm_state(struct tlv_writer *config, struct tlv_writer *state)
{
	char err[256];
	int n;

	cfg.payload = "/guest/payload.bin";
	cfg.virtio_rng = true;
	cfg.virtio_console = "socket:/run/console.sock";
	cfg.balloon = true;
	cfg.vsock = "cid=3,uds=/run/vsock";
	cfg.nnet = 2;
	cfg.net[0] = "user,hostfwd=tcp::2222-:22";
	cfg.net[1] = "tap=tap0,mac=52:54:00:00:00:02";
	n = cpuid_parse_features("-cx16,+x2apic", cfg.cpu_changes, CPUID_MAX_CHANGES, err,
				 sizeof(err));
	FZ_CHECK(n > 0);
	cfg.ncpu_changes = (size_t)n;
	for (unsigned int k = 0; k < DEV_COUNT; k++) {
		fz_start(fz_devs[k], 1ULL << 63, dev_nqueues[k]);
		drv_add1(fz_devs[k], 0, DRV_BUF_GPA, 64, true);
	}
	fz_kvm.regs.rip = 0xfff0;
	fz_kvm.sregs.cr0 = 0x60000010;
	tlv_writer_init(config);
	tlv_writer_init(state);
	FZ_CHECK(vmstate_save_config(&vm, config) == 0);
	FZ_CHECK(vmstate_save(&vm, state) == 0);
}

#endif
