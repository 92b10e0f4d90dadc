/* SPDX-License-Identifier: MIT */
/* Where the VMM puts boot structures in guest physical memory. All below 1 MiB except the
 * kernel and initrd. */
#ifndef VIREO_BOOT_LAYOUT_H
#define VIREO_BOOT_LAYOUT_H

#define BOOT_GDT_ADDR 0x500
#define BOOT_PARAMS_ADDR 0x7000
#define BOOT_STACK_TOP 0x8ff0
#define PAYLOAD_ADDR 0x8000 /* freestanding test payloads (real mode, like a boot sector) */
#define BOOT_PML4_ADDR 0x9000
#define BOOT_PDPT_ADDR 0xa000
#define BOOT_PD_ADDR 0xb000 /* four page directories: identity map of the first 4 GiB */
#define BOOT_PVH_INFO_ADDR 0xf000
#define BOOT_CMDLINE_ADDR 0x20000
#define BOOT_CMDLINE_MAX 0x10000
#define EBDA_START 0x9fc00
#define BIOS_AREA_START 0xe0000 /* reserved: ACPI tables, MP table */
#define ACPI_TABLES_ADDR 0xe0000
#define ACPI_TABLES_MAX 0x10000
#define MPTABLE_ADDR 0xf0000
#define MPTABLE_MAX 0x10000
#define HIGH_MEMORY_START 0x100000
#define IOAPIC_ADDR 0xfec00000
#define LAPIC_ADDR 0xfee00000

/* Boot GDT selectors (the Linux boot protocol's __BOOT_CS / __BOOT_DS). */
#define BOOT_CS32 0x08
#define BOOT_CS 0x10
#define BOOT_DS 0x18
#define BOOT_TSS 0x20

#endif
