/* SPDX-License-Identifier: MIT */
/* The guest's physical memory map, as the E820 BIOS call would report it. */
#ifndef VIREO_BOOT_E820_H
#define VIREO_BOOT_E820_H

#include <asm/bootparam.h>

#include "../mem/memory.h"

#define E820_RAM 1
#define E820_RESERVED 2

/* Fills up to max entries, sorted by address; returns the count. */
int e820_build(const struct guest_mem *mem, struct boot_e820_entry *e, int max);

#endif
