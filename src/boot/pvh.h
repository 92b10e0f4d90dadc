/* SPDX-License-Identifier: MIT */
/* PVH direct boot (the x86/HVM direct boot ABI): a kernel whose ELF notes give a 32-bit entry
 * point (XEN_ELFNOTE_PHYS32_ENTRY) is entered in flat 32-bit protected mode, paging off, with
 * EBX pointing at a struct hvm_start_info that lists the command line, the initrd as module 0,
 * the memory map and the RSDP. */
#ifndef VIREO_BOOT_PVH_H
#define VIREO_BOOT_PVH_H

#include <stdint.h>
#include <asm/bootparam.h>

#include "../mem/memory.h"

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr; /* version 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* E820 types */
	uint32_t reserved;
};

/* Writes start_info, the module list and the memory map at info_addr (one page). Returns 0 or
 * -ENOSPC. */
int pvh_write_start_info(const struct guest_mem *mem, uint64_t info_addr, uint64_t cmdline_addr,
			 uint64_t initrd_addr, uint64_t initrd_size, uint64_t rsdp_addr,
			 const struct boot_e820_entry *e820, int ne820);

#endif
