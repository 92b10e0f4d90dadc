/* SPDX-License-Identifier: MIT */
/* What every device offers the snapshot and migration code: saving its guest-visible state into
 * one versioned TLV section and loading it back (see common/tlv.h). The machine lists its
 * devices, with these ops, in one explicit registry table (vmm/vm.c), so the order in which they
 * are saved and loaded is visible in one place. */
#ifndef VIREO_DEVICES_DEVICE_H
#define VIREO_DEVICES_DEVICE_H

#include <stdint.h>

struct tlv_writer;
struct tlv_section;

/* Section ids, one per kind of state. Never reuse or renumber one: saved files keep them. */
enum state_section_id {
	SECTION_CONFIG = 1, /* the machine: memory, vCPUs, CPUID, devices */
	SECTION_VM = 2, /* KVM VM state: clock, PIT, PIC, IOAPIC */
	SECTION_VCPU = 3, /* one per vCPU (instance = index) */
	SECTION_SERIAL8250 = 16,
	SECTION_RTC = 17,
	SECTION_PLATFORM = 18,
	SECTION_PCI_BUS = 19,
	/* 32 and up: virtio devices */
	SECTION_VIRTIO_RNG = 32,
	SECTION_VIRTIO_CONSOLE = 33,
	SECTION_VIRTIO_BALLOON = 36,
	SECTION_VIRTIO_VSOCK = 37,
	SECTION_VIRTIO_BLK = 34, /* one per disk (instance = disk index) */
	SECTION_VIRTIO_NET = 35, /* one per NIC (instance = NIC number) */
};

struct device_ops {
	const char *name;
	uint32_t section_id;
	uint16_t version; /* of the section save writes */
	uint16_t min_version; /* the oldest load that can read what save writes */
	/* Fields into w (the section header is written by the caller). Returns 0 or -errno. */
	int (*save)(void *dev, struct tlv_writer *w);
	/* From a section the caller checked (id, min_version <= our version). Missing fields keep
	 * the device's reset values; a malformed field gives -EINVAL. */
	int (*load)(void *dev, const struct tlv_section *s);
	/* Optional. The vCPUs are parked (vm_pause): finish in-flight work (a disk drains its
	 * requests) and start none until resume, so a state saved now has nothing pending. */
	void (*quiesce)(void *dev);
	/* Optional. Undoes quiesce before the vCPUs run again (vm_resume). */
	void (*resume)(void *dev);
};

#endif
