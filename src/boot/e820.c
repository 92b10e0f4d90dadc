// SPDX-License-Identifier: MIT
#include "e820.h"

#include "../devices/pci.h"
#include "layout.h"

static int add(struct boot_e820_entry *e, int n, int max, uint64_t addr, uint64_t size,
	       uint32_t type)
{
	if (n >= max || size == 0)
		return n;
	e[n].addr = addr;
	e[n].size = size;
	e[n].type = type;
	return n + 1;
}

int e820_build(const struct guest_mem *mem, struct boot_e820_entry *e, int max)
{
	uint64_t low_end = memory_low_end(mem);
	int n = 0;

	n = add(e, n, max, 0, EBDA_START, E820_RAM);
	n = add(e, n, max, EBDA_START, 0xa0000 - EBDA_START, E820_RESERVED);
	/* ACPI tables and the MP table live here, where the BIOS would have put them. */
	n = add(e, n, max, BIOS_AREA_START, HIGH_MEMORY_START - BIOS_AREA_START, E820_RESERVED);
	n = add(e, n, max, HIGH_MEMORY_START, low_end - HIGH_MEMORY_START, E820_RAM);
	/* Linux checks that the ECAM window is reserved before it uses MMCONFIG. */
	n = add(e, n, max, PCI_ECAM_BASE, PCI_ECAM_SIZE, E820_RESERVED);
	if (mem->nregions > 1)
		n = add(e, n, max, mem->regions[1].gpa, mem->regions[1].size, E820_RAM);
	return n;
}
