// SPDX-License-Identifier: MIT
#include "pvh.h"

#include <errno.h>
#include <string.h>

int pvh_write_start_info(const struct guest_mem *mem, uint64_t info_addr, uint64_t cmdline_addr,
			 uint64_t initrd_addr, uint64_t initrd_size, uint64_t rsdp_addr,
			 const struct boot_e820_entry *e820, int ne820)
{
	uint64_t mod_addr = info_addr + 64;
	uint64_t map_addr = mod_addr + sizeof(struct hvm_modlist_entry);
	size_t map_size = (size_t)ne820 * sizeof(struct hvm_memmap_table_entry);
	struct hvm_start_info si = { 0 };
	struct hvm_modlist_entry mod = { 0 };
	struct hvm_memmap_table_entry *map;
	uint8_t *page = memory_gpa_ptr(mem, info_addr, 4096);

	if (!page || map_addr + map_size > info_addr + 4096)
		return -ENOSPC;
	memset(page, 0, 4096);
	si.magic = HVM_START_MAGIC;
	si.version = 1;
	si.cmdline_paddr = cmdline_addr;
	si.rsdp_paddr = rsdp_addr;
	if (initrd_size) {
		mod.paddr = initrd_addr;
		mod.size = initrd_size;
		si.nr_modules = 1;
		si.modlist_paddr = mod_addr;
		memcpy(page + (mod_addr - info_addr), &mod, sizeof(mod));
	}
	si.memmap_paddr = map_addr;
	si.memmap_entries = (uint32_t)ne820;
	map = (struct hvm_memmap_table_entry *)(page + (map_addr - info_addr));
	for (int i = 0; i < ne820; i++) {
		map[i].addr = e820[i].addr;
		map[i].size = e820[i].size;
		map[i].type = e820[i].type;
		map[i].reserved = 0;
	}
	memcpy(page, &si, sizeof(si));
	return 0;
}
