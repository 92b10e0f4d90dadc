// SPDX-License-Identifier: MIT
#include "linux.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "layout.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define SETUP_HDR_OFFSET 0x1f1
#ifndef XLF_KERNEL_64
#define XLF_KERNEL_64 0x01
#endif
#define LOADFLAG_LOADED_HIGH 0x01
#define LOADFLAG_CAN_USE_HEAP 0x80

static int fail(char *err, size_t errlen, int ret, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return ret;
}

static void find_pvh_note(const uint8_t *data, size_t size, const Elf64_Phdr *ph,
			  struct kernel_image *k)
{
	uint64_t off = ph->p_offset, end;

	if (ph->p_offset > size || ph->p_filesz > size - ph->p_offset)
		return;
	end = ph->p_offset + ph->p_filesz;
	while (off + sizeof(Elf64_Nhdr) <= end) {
		const Elf64_Nhdr *n = (const Elf64_Nhdr *)(data + off);
		uint64_t name_off = off + sizeof(*n);
		uint64_t desc_off = name_off + ALIGN_UP((uint64_t)n->n_namesz, 4);
		uint64_t next = desc_off + ALIGN_UP((uint64_t)n->n_descsz, 4);

		if (next > end || next <= off)
			return;
		if (n->n_type == XEN_ELFNOTE_PHYS32_ENTRY && n->n_namesz == 4 &&
		    !memcmp(data + name_off, "Xen", 4) && n->n_descsz >= 4) {
			k->has_pvh = true;
			k->pvh_entry = get_le32(data + desc_off);
			return;
		}
		off = next;
	}
}

static int probe_elf(const uint8_t *data, size_t size, struct kernel_image *k, char *err,
		     size_t errlen)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)data;
	uint64_t lo = UINT64_MAX, hi = 0;
	int nload = 0;

	if (size < sizeof(*eh))
		return fail(err, errlen, -ENOEXEC, "ELF file is truncated (no complete header)");
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64)
		return fail(err, errlen, -ENOEXEC,
			    "ELF file is not a 64-bit x86-64 kernel (wrong class or machine)");
	if (eh->e_type != ET_EXEC)
		return fail(err, errlen, -ENOEXEC, "ELF file is not an executable (vmlinux)");
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phoff > size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff)
		return fail(err, errlen, -ENOEXEC, "ELF program headers are missing or truncated");
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(data + eh->e_phoff) + i;

		if (ph->p_type == PT_NOTE)
			find_pvh_note(data, size, ph, k);
		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		if (ph->p_offset > size || ph->p_filesz > size - ph->p_offset)
			return fail(err, errlen, -ENOEXEC,
				    "ELF segment extends past the end of the file (truncated?)");
		if (ph->p_filesz > ph->p_memsz || ph->p_paddr + ph->p_memsz < ph->p_paddr)
			return fail(err, errlen, -ENOEXEC, "ELF segment sizes are inconsistent");
		lo = MIN(lo, ph->p_paddr);
		hi = MAX(hi, ph->p_paddr + ph->p_memsz);
		nload++;
	}
	if (!nload)
		return fail(err, errlen, -ENOEXEC, "ELF file has no loadable segments");
	if (eh->e_entry < lo || eh->e_entry >= hi)
		return fail(err, errlen, -ENOEXEC,
			    "ELF entry point is outside the loaded segments (not a vmlinux?)");
	k->format = KERNEL_ELF;
	k->entry = eh->e_entry;
	k->load_addr = lo;
	k->end = hi;
	k->version = 0x020f;
	k->initrd_addr_max = 0x7fffffff;
	k->cmdline_max = 2047;
	return 0;
}

static int probe_bzimage(const uint8_t *data, size_t size, struct kernel_image *k, char *err,
			 size_t errlen)
{
	unsigned int setup_sects;
	uint64_t syssize, pm_size, init_size, pref;
	uint8_t xloadflags;

	if (size < 0x268)
		return fail(err, errlen, -ENOEXEC,
			    "bzImage is truncated (setup header incomplete)");
	k->version = get_le16(data + 0x206);
	if (k->version < 0x020c)
		return fail(err, errlen, -ENOEXEC,
			    "kernel boot protocol is older than 2.12: no 64-bit entry point");
	xloadflags = data[0x236];
	if (!(xloadflags & XLF_KERNEL_64))
		return fail(err, errlen, -ENOEXEC,
			    "kernel has no 64-bit entry point (XLF_KERNEL_64 not set; 32-bit "
			    "kernel?)");
	setup_sects = data[0x1f1] ? data[0x1f1] : 4;
	k->setup_size = (size_t)(setup_sects + 1) * 512;
	if (size <= k->setup_size)
		return fail(err, errlen, -ENOEXEC, "bzImage is truncated (no protected-mode code)");
	syssize = (uint64_t)get_le32(data + 0x1f4) * 16;
	pm_size = size - k->setup_size;
	if (syssize > pm_size)
		return fail(err, errlen, -ENOEXEC,
			    "bzImage is truncated (shorter than its header's syssize)");
	pref = get_le64(data + 0x258);
	init_size = get_le32(data + 0x260);
	k->format = KERNEL_BZIMAGE;
	k->load_addr = pref ? pref : HIGH_MEMORY_START;
	if (k->load_addr < HIGH_MEMORY_START || (k->load_addr & 0xfff))
		return fail(err, errlen, -ENOEXEC, "bzImage asks for an invalid load address");
	k->entry = k->load_addr + 0x200;
	k->end = k->load_addr + MAX(init_size, pm_size);
	k->initrd_addr_max = get_le32(data + 0x22c);
	k->cmdline_max = get_le32(data + 0x238);
	if (!k->cmdline_max)
		k->cmdline_max = 255;
	return 0;
}

int linux_probe(const uint8_t *data, size_t size, struct kernel_image *k, char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	k->data = data;
	k->size = size;
	if (size >= 4 && !memcmp(data, ELFMAG, SELFMAG))
		return probe_elf(data, size, k, err, errlen);
	if (size >= 0x206 && get_le16(data + 0x1fe) == 0xaa55 && !memcmp(data + 0x202, "HdrS", 4))
		return probe_bzimage(data, size, k, err, errlen);
	if (size >= 0x206 && get_le16(data + 0x1fe) == 0xaa55)
		return fail(err, errlen, -ENOEXEC,
			    "file is a boot sector but not a Linux bzImage (no 'HdrS' header)");
	return fail(err, errlen, -ENOEXEC,
		    "file is not a Linux kernel (neither an ELF vmlinux nor a bzImage)");
}

int linux_load(const struct guest_mem *mem, const struct kernel_image *k, char *err, size_t errlen)
{
	char msg[160];
	uint8_t *dst;

	if (k->end > memory_low_end(mem)) {
		snprintf(
			msg, sizeof(msg),
			"kernel needs guest RAM up to %llu MiB but the VM has %llu MiB below 3 GiB",
			(unsigned long long)(k->end >> 20),
			(unsigned long long)(memory_low_end(mem) >> 20));
		return fail(err, errlen, -ENOSPC, msg);
	}
	if (k->format == KERNEL_BZIMAGE) {
		dst = memory_gpa_ptr(mem, k->load_addr, k->size - k->setup_size);
		if (!dst)
			return fail(err, errlen, -ENOSPC, "kernel does not fit in guest RAM");
		memcpy(dst, k->data + k->setup_size, k->size - k->setup_size);
		return 0;
	}
	{
		const Elf64_Ehdr *eh = (const Elf64_Ehdr *)k->data;

		for (int i = 0; i < eh->e_phnum; i++) {
			const Elf64_Phdr *ph = (const Elf64_Phdr *)(k->data + eh->e_phoff) + i;

			if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
				continue;
			dst = memory_gpa_ptr(mem, ph->p_paddr, ph->p_memsz);
			if (!dst)
				return fail(err, errlen, -ENOSPC,
					    "ELF segment does not fit in guest RAM");
			memcpy(dst, k->data + ph->p_offset, ph->p_filesz);
			memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		}
	}
	return 0;
}

int linux_place_initrd(const struct guest_mem *mem, const struct kernel_image *k, uint64_t size,
		       uint64_t *addr, char *err, size_t errlen)
{
	uint64_t top = MIN((uint64_t)k->initrd_addr_max + 1, memory_low_end(mem));
	char msg[200];

	if (size > top || ALIGN_DOWN(top - size, 4096) < ALIGN_UP(k->end, 4096)) {
		snprintf(msg, sizeof(msg),
			 "initrd of %llu MiB does not fit in guest RAM: %llu MiB free between the "
			 "kernel and %llu MiB (use a larger --memory)",
			 (unsigned long long)(size >> 20),
			 (unsigned long long)(top > k->end ? (top - k->end) >> 20 : 0),
			 (unsigned long long)(top >> 20));
		return fail(err, errlen, -ENOSPC, msg);
	}
	*addr = ALIGN_DOWN(top - size, 4096);
	return 0;
}

void linux_fill_boot_params(struct boot_params *bp, const struct kernel_image *k,
			    uint64_t cmdline_addr, uint32_t cmdline_len, uint64_t initrd_addr,
			    uint64_t initrd_size, const struct boot_e820_entry *e820, int ne820,
			    uint64_t rsdp_addr)
{
	struct setup_header *h = &bp->hdr;

	memset(bp, 0, sizeof(*bp));
	if (k->format == KERNEL_BZIMAGE) {
		/* The header runs from 0x1f1 to the end given by the jump at 0x200. */
		size_t end = 0x202 + k->data[0x201];
		size_t len = MIN(end, SETUP_HDR_OFFSET + sizeof(*h)) - SETUP_HDR_OFFSET;
		memcpy(h, k->data + SETUP_HDR_OFFSET, len);
	} else {
		h->boot_flag = 0xaa55;
		h->header = 0x53726448; /* "HdrS" */
		h->version = k->version;
		h->kernel_alignment = 0x1000000;
		h->cmdline_size = k->cmdline_max;
		h->initrd_addr_max = k->initrd_addr_max;
	}
	h->type_of_loader = 0xff;
	h->loadflags |= LOADFLAG_LOADED_HIGH | LOADFLAG_CAN_USE_HEAP;
	h->heap_end_ptr = 0xfe00;
	h->cmd_line_ptr = (uint32_t)cmdline_addr;
	bp->ext_cmd_line_ptr = (uint32_t)(cmdline_addr >> 32);
	(void)cmdline_len;
	h->ramdisk_image = (uint32_t)initrd_addr;
	h->ramdisk_size = (uint32_t)initrd_size;
	bp->ext_ramdisk_image = (uint32_t)(initrd_addr >> 32);
	bp->ext_ramdisk_size = (uint32_t)(initrd_size >> 32);
	h->vid_mode = 0xffff;
	if (k->version >= 0x020e)
		bp->acpi_rsdp_addr = rsdp_addr;
	ne820 = MIN(ne820, (int)ARRAY_SIZE(bp->e820_table));
	memcpy(bp->e820_table, e820, sizeof(*e820) * (size_t)ne820);
	bp->e820_entries = (uint8_t)ne820;
}
