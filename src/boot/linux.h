/* SPDX-License-Identifier: MIT */
/* Linux direct boot: recognising a bzImage or an ELF kernel (an x86-64 vmlinux, or an i386 ELF32
 * with a PVH note), copying it into guest RAM, placing the initrd and command line, and filling
 * the zero page (struct boot_params). */
#ifndef VIREO_BOOT_LINUX_H
#define VIREO_BOOT_LINUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <asm/bootparam.h>

#include "../mem/memory.h"

enum kernel_format {
	KERNEL_BZIMAGE,
	KERNEL_ELF
};

struct kernel_image {
	enum kernel_format format;
	const uint8_t *data; /* the whole file, owned by the caller */
	size_t size;
	uint64_t entry; /* guest-physical address of the 64-bit entry point (0 when pvh_only) */
	uint64_t load_addr; /* lowest guest-physical address the kernel occupies */
	uint64_t end; /* first byte after everything the kernel needs (incl. init_size) */
	uint16_t version; /* boot protocol version (bzImage; 0x020f assumed for ELF) */
	size_t setup_size; /* bzImage: bytes of real-mode setup before the 64-bit kernel */
	uint32_t initrd_addr_max;
	uint32_t cmdline_max; /* longest command line the kernel accepts, without the NUL */
	bool has_pvh; /* ELF note XEN_ELFNOTE_PHYS32_ENTRY present */
	uint32_t pvh_entry;
	bool pvh_only; /* ELF32: no 64-bit entry point, so it can only be booted through PVH */
};

/* Recognises the image and checks it is complete and bootable. Returns 0 or -EINVAL/-ENOEXEC
 * with a message in err. */
int linux_probe(const uint8_t *data, size_t size, struct kernel_image *k, char *err, size_t errlen);
/* Copies the kernel into guest RAM. */
int linux_load(const struct guest_mem *mem, const struct kernel_image *k, char *err, size_t errlen);
/* Chooses where an initrd of size bytes goes: as high as the kernel allows, below the 32-bit
 * hole, above the kernel. Returns 0 or -ENOSPC with a message. */
int linux_place_initrd(const struct guest_mem *mem, const struct kernel_image *k, uint64_t size,
		       uint64_t *addr, char *err, size_t errlen);
/* Fills the zero page. e820 entries are copied in. */
void linux_fill_boot_params(struct boot_params *bp, const struct kernel_image *k,
			    uint64_t cmdline_addr, uint32_t cmdline_len, uint64_t initrd_addr,
			    uint64_t initrd_size, const struct boot_e820_entry *e820, int ne820,
			    uint64_t rsdp_addr);

#endif
