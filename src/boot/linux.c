// SPDX-License-Identifier: MIT
#include "linux.h"

#include <elf.h>
#include <errno.h>
#include <stddef.h>
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

/* The header and program-header fields the loader uses, read from either ELF class (ELF64 for a
 * vmlinux, ELF32 for a 32-bit PVH kernel) byte by byte, so a hostile image can be misaligned. */
struct elf_hdr {
	bool is64;
	uint64_t entry;
	uint64_t phoff;
	uint16_t phnum;
};

struct elf_phdr {
	uint32_t type;
	uint64_t offset;
	uint64_t paddr;
	uint64_t filesz;
	uint64_t memsz;
};

#define ELF_OFF(is64, type, field) \
	((is64) ? offsetof(Elf64_##type, field) : offsetof(Elf32_##type, field))

/* An address or offset field: 64 bits in ELF64, 32 in ELF32. */
static uint64_t elf_word(const uint8_t *p, bool is64)
{
	return is64 ? get_le64(p) : get_le32(p);
}

/* Checks the ELF header of an x86 executable with a complete program header table inside the
 * file, and reads it into eh. */
static int elf_read_hdr(const uint8_t *data, size_t size, struct elf_hdr *eh, char *err,
			size_t errlen)
{
	size_t ehsize, phentsize;
	bool is64;

	if (size < EI_NIDENT)
		return fail(err, errlen, -ENOEXEC, "ELF file is truncated (no complete header)");
	if (data[EI_CLASS] != ELFCLASS32 && data[EI_CLASS] != ELFCLASS64)
		return fail(err, errlen, -ENOEXEC,
			    "ELF file is neither 32-bit nor 64-bit (bad class)");
	is64 = data[EI_CLASS] == ELFCLASS64;
	ehsize = is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	phentsize = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	if (size < ehsize)
		return fail(err, errlen, -ENOEXEC, "ELF file is truncated (no complete header)");
	if (data[EI_DATA] != ELFDATA2LSB ||
	    get_le16(data + ELF_OFF(is64, Ehdr, e_machine)) != (is64 ? EM_X86_64 : EM_386))
		return fail(err, errlen, -ENOEXEC,
			    "ELF file is not an x86 kernel (a 64-bit ELF must be x86-64, a 32-bit "
			    "ELF i386)");
	if (get_le16(data + ELF_OFF(is64, Ehdr, e_type)) != ET_EXEC)
		return fail(err, errlen, -ENOEXEC, "ELF file is not an executable (vmlinux)");
	eh->is64 = is64;
	eh->entry = elf_word(data + ELF_OFF(is64, Ehdr, e_entry), is64);
	eh->phoff = elf_word(data + ELF_OFF(is64, Ehdr, e_phoff), is64);
	eh->phnum = get_le16(data + ELF_OFF(is64, Ehdr, e_phnum));
	if (get_le16(data + ELF_OFF(is64, Ehdr, e_phentsize)) != phentsize || eh->phnum == 0 ||
	    eh->phoff > size || (uint64_t)eh->phnum * phentsize > size - eh->phoff)
		return fail(err, errlen, -ENOEXEC, "ELF program headers are missing or truncated");
	return 0;
}

/* Reads program header i; elf_read_hdr has checked that the table lies inside the file. */
static void elf_read_phdr(const uint8_t *data, const struct elf_hdr *eh, int i, struct elf_phdr *ph)
{
	bool is64 = eh->is64;
	const uint8_t *p =
		data + eh->phoff + (size_t)i * (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr));

	ph->type = get_le32(p + ELF_OFF(is64, Phdr, p_type));
	ph->offset = elf_word(p + ELF_OFF(is64, Phdr, p_offset), is64);
	ph->paddr = elf_word(p + ELF_OFF(is64, Phdr, p_paddr), is64);
	ph->filesz = elf_word(p + ELF_OFF(is64, Phdr, p_filesz), is64);
	ph->memsz = elf_word(p + ELF_OFF(is64, Phdr, p_memsz), is64);
}

/* Looks for XEN_ELFNOTE_PHYS32_ENTRY in a PT_NOTE segment. The note header (three 32-bit words,
 * so Elf32_Nhdr serves both classes) is the same in both; the descriptor is 4 bytes in ELF32 and 8
 * in ELF64, and its low 32 bits are the entry either way. */
static void find_pvh_note(const uint8_t *data, size_t size, const struct elf_phdr *ph,
			  struct kernel_image *k)
{
	uint64_t off = ph->offset, end;

	if (ph->offset > size || ph->filesz > size - ph->offset)
		return;
	end = ph->offset + ph->filesz;
	while (off + sizeof(Elf32_Nhdr) <= end) {
		uint32_t namesz = get_le32(data + off + offsetof(Elf32_Nhdr, n_namesz));
		uint32_t descsz = get_le32(data + off + offsetof(Elf32_Nhdr, n_descsz));
		uint32_t type = get_le32(data + off + offsetof(Elf32_Nhdr, n_type));
		uint64_t name_off = off + sizeof(Elf32_Nhdr);
		uint64_t desc_off = name_off + ALIGN_UP((uint64_t)namesz, 4);
		uint64_t next = desc_off + ALIGN_UP((uint64_t)descsz, 4);

		if (next > end)
			return;
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
		    !memcmp(data + name_off, "Xen", 4) && descsz >= 4) {
			k->has_pvh = true;
			k->pvh_entry = get_le32(data + desc_off);
			return;
		}
		off = next;
	}
}

/* An ELF64 x86-64 vmlinux (entered at e_entry through the 64-bit boot protocol, or through PVH
 * if it has the note) or an ELF32 i386 image with a PVH note, which is its only way in. */
static int probe_elf(const uint8_t *data, size_t size, struct kernel_image *k, char *err,
		     size_t errlen)
{
	uint64_t lo = UINT64_MAX, hi = 0, entry;
	struct elf_hdr eh;
	struct elf_phdr ph;
	int nload = 0, ret;

	ret = elf_read_hdr(data, size, &eh, err, errlen);
	if (ret)
		return ret;
	for (int i = 0; i < eh.phnum; i++) {
		elf_read_phdr(data, &eh, i, &ph);
		if (ph.type == PT_NOTE)
			find_pvh_note(data, size, &ph, k);
		if (ph.type != PT_LOAD || ph.memsz == 0)
			continue;
		if (ph.offset > size || ph.filesz > size - ph.offset)
			return fail(err, errlen, -ENOEXEC,
				    "ELF segment extends past the end of the file (truncated?)");
		if (ph.filesz > ph.memsz || ph.paddr + ph.memsz < ph.paddr)
			return fail(err, errlen, -ENOEXEC, "ELF segment sizes are inconsistent");
		lo = MIN(lo, ph.paddr);
		hi = MAX(hi, ph.paddr + ph.memsz);
		nload++;
	}
	if (!nload)
		return fail(err, errlen, -ENOEXEC, "ELF file has no loadable segments");
	if (!eh.is64 && !k->has_pvh)
		return fail(err, errlen, -ENOEXEC,
			    "32-bit ELF kernel without a PVH entry point: a 32-bit ELF needs a PVH "
			    "(XEN_ELFNOTE_PHYS32_ENTRY) note");
	entry = eh.is64 ? eh.entry : k->pvh_entry;
	if (entry < lo || entry >= hi)
		return fail(
			err, errlen, -ENOEXEC,
			eh.is64 ? "ELF entry point is outside the loaded segments (not a vmlinux?)"
				: "PVH entry point is outside the loaded segments");
	k->format = KERNEL_ELF;
	k->pvh_only = !eh.is64;
	k->entry = eh.is64 ? eh.entry : 0;
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

/* Copies each PT_LOAD segment to its physical address and zeroes its tail (.bss). linux_probe has
 * checked the segments against the file; memory_gpa_ptr checks them against guest RAM. */
static int load_elf(const struct guest_mem *mem, const struct kernel_image *k, char *err,
		    size_t errlen)
{
	struct elf_hdr eh;
	struct elf_phdr ph;
	uint8_t *dst;
	int ret;

	ret = elf_read_hdr(k->data, k->size, &eh, err, errlen);
	if (ret)
		return ret;
	for (int i = 0; i < eh.phnum; i++) {
		elf_read_phdr(k->data, &eh, i, &ph);
		if (ph.type != PT_LOAD || ph.memsz == 0)
			continue;
		dst = memory_gpa_ptr(mem, ph.paddr, ph.memsz);
		if (!dst)
			return fail(err, errlen, -ENOSPC, "ELF segment does not fit in guest RAM");
		memcpy(dst, k->data + ph.offset, ph.filesz);
		memset(dst + ph.filesz, 0, ph.memsz - ph.filesz);
	}
	return 0;
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
	if (k->format == KERNEL_ELF)
		return load_elf(mem, k, err, errlen);
	dst = memory_gpa_ptr(mem, k->load_addr, k->size - k->setup_size);
	if (!dst)
		return fail(err, errlen, -ENOSPC, "kernel does not fit in guest RAM");
	memcpy(dst, k->data + k->setup_size, k->size - k->setup_size);
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
