// SPDX-License-Identifier: MIT
/* Unit tests for Linux direct boot (src/boot/linux.c), the E820 map (src/boot/e820.c) and the
 * guest memory layout (src/mem/memory.c), on synthetic kernel images. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "boot/e820.h"
#include "boot/linux.h"
#include "boot/pvh.h"
#include "common/util.h"
#include "mem/memory.h"

#define SETUP_SECTS 4
#define SETUP_SIZE ((SETUP_SECTS + 1) * 512)
#define PM_SIZE (64 * 1024)
#define BZ_SIZE (SETUP_SIZE + PM_SIZE)
#define LOAD_ADDR 0x1000000ULL
#define INIT_SIZE 0x400000u
#define GUEST_RAM (64 * MIB)

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t pm_byte(size_t i)
{
	return (uint8_t)(i * 31 + (i >> 9) + 1);
}

/* A minimal bzImage: the setup header and PM_SIZE bytes of "protected-mode code". */
static uint8_t *make_bzimage(void)
{
	uint8_t *d = calloc(1, BZ_SIZE);

	assert_non_null(d);
	d[0x1f1] = SETUP_SECTS;
	put32(d + 0x1f4, PM_SIZE / 16); /* syssize */
	put16(d + 0x1fe, 0xaa55);
	d[0x200] = 0xeb; /* jmp short to the end of the header at 0x268 */
	d[0x201] = 0x66;
	memcpy(d + 0x202, "HdrS", 4);
	put16(d + 0x206, 0x020f);
	put32(d + 0x22c, 0x7fffffff); /* initrd_addr_max */
	put32(d + 0x230, 0x200000); /* kernel_alignment */
	d[0x236] = 0x01 | 0x02; /* XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G */
	put32(d + 0x238, 2047); /* cmdline_size */
	put64(d + 0x258, LOAD_ADDR); /* pref_address */
	put32(d + 0x260, INIT_SIZE);
	for (size_t i = 0; i < PM_SIZE; i++)
		d[SETUP_SIZE + i] = pm_byte(i);
	return d;
}

#define ELF_PADDR 0x200000ULL
#define ELF_FILESZ 0x800u
#define ELF_MEMSZ 0x3000u
#define ELF_OFFSET 0x1000u
#define ELF_SIZE (ELF_OFFSET + ELF_FILESZ)
#define ELF_NOTE_OFFSET 0x200u
#define PVH_ENTRY 0x1234560u

/* A minimal vmlinux: one PT_LOAD with a .bss tail, optionally a PVH note. */
/* A note to skip, then the PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); ELF32 and ELF64 notes
 * have the same layout. Returns the notes' size. */
static uint32_t put_pvh_notes(uint8_t *at, uint32_t entry)
{
	Elf32_Nhdr *n = (Elf32_Nhdr *)at;

	n->n_namesz = 4;
	n->n_descsz = 6;
	n->n_type = 1;
	memcpy(n + 1, "GNU", 4);
	n = (Elf32_Nhdr *)(at + sizeof(*n) + 4 + 8);
	n->n_namesz = 4;
	n->n_descsz = 4;
	n->n_type = 18;
	memcpy(n + 1, "Xen", 4);
	put32((uint8_t *)(n + 1) + 4, entry);
	return 2 * (sizeof(*n) + 4) + 8 + 4;
}

static uint8_t *make_elf(bool with_note)
{
	uint8_t *d = calloc(1, ELF_SIZE);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)d;
	Elf64_Phdr *ph = (Elf64_Phdr *)(d + sizeof(*eh));

	assert_non_null(d);
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = ELF_PADDR + 0x100;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = with_note ? 2 : 1;
	ph[0].p_type = PT_LOAD;
	ph[0].p_flags = PF_R | PF_X;
	ph[0].p_offset = ELF_OFFSET;
	ph[0].p_vaddr = 0xffffffff81000000ULL;
	ph[0].p_paddr = ELF_PADDR;
	ph[0].p_filesz = ELF_FILESZ;
	ph[0].p_memsz = ELF_MEMSZ;
	ph[0].p_align = 0x1000;
	for (size_t i = 0; i < ELF_FILESZ; i++)
		d[ELF_OFFSET + i] = pm_byte(i);
	if (with_note) {
		ph[1].p_type = PT_NOTE;
		ph[1].p_offset = ELF_NOTE_OFFSET;
		ph[1].p_filesz = put_pvh_notes(d + ELF_NOTE_OFFSET, PVH_ENTRY);
		ph[1].p_align = 4;
	}
	return d;
}

#define ELF32_PADDR 0x100000u
#define ELF32_ENTRY (ELF32_PADDR + 0x10) /* multiboot-style entry, unused by PVH */
#define PVH32_ENTRY (ELF32_PADDR + 0x40)

/* A minimal 32-bit PVH kernel: ELF32 i386, one PT_LOAD with a .bss tail, optionally a PT_NOTE
 * with a note to skip and the PVH entry note (4-byte descriptor, as in an ELF32 kernel). */
static uint8_t *make_elf32(bool with_note)
{
	uint8_t *d = calloc(1, ELF_SIZE);
	Elf32_Ehdr *eh = (Elf32_Ehdr *)d;
	Elf32_Phdr *ph = (Elf32_Phdr *)(d + sizeof(*eh));

	assert_non_null(d);
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_386;
	eh->e_version = EV_CURRENT;
	eh->e_entry = ELF32_ENTRY;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = with_note ? 2 : 1;
	ph[0].p_type = PT_LOAD;
	ph[0].p_flags = PF_R | PF_X;
	ph[0].p_offset = ELF_OFFSET;
	ph[0].p_vaddr = ELF32_PADDR;
	ph[0].p_paddr = ELF32_PADDR;
	ph[0].p_filesz = ELF_FILESZ;
	ph[0].p_memsz = ELF_MEMSZ;
	ph[0].p_align = 0x1000;
	for (size_t i = 0; i < ELF_FILESZ; i++)
		d[ELF_OFFSET + i] = pm_byte(i);
	if (with_note) {
		ph[1].p_type = PT_NOTE;
		ph[1].p_offset = ELF_NOTE_OFFSET;
		ph[1].p_filesz = put_pvh_notes(d + ELF_NOTE_OFFSET, PVH32_ENTRY);
		ph[1].p_align = 4;
	}
	return d;
}

static void assert_err_contains(const char *err, const char *what)
{
	if (!strstr(err, what))
		fail_msg("error message '%s' does not mention '%s'", err, what);
}

/* --- linux_probe --- */

static void test_probe_bzimage(void **state)
{
	uint8_t *d = make_bzimage();
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), 0);
	assert_int_equal(k.format, KERNEL_BZIMAGE);
	assert_ptr_equal(k.data, d);
	assert_int_equal(k.size, BZ_SIZE);
	assert_int_equal(k.version, 0x020f);
	assert_int_equal(k.setup_size, SETUP_SIZE);
	assert_true(k.load_addr == LOAD_ADDR);
	assert_true(k.entry == LOAD_ADDR + 0x200);
	assert_true(k.end == LOAD_ADDR + INIT_SIZE);
	assert_int_equal(k.initrd_addr_max, 0x7fffffff);
	assert_int_equal(k.cmdline_max, 2047);
	free(d);
}

static void test_probe_bzimage_defaults(void **state)
{
	uint8_t *d = make_bzimage();
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	put64(d + 0x258, 0); /* no preferred address: 1 MiB */
	put32(d + 0x260, 0x1000); /* init_size smaller than the image */
	put32(d + 0x238, 0); /* no cmdline_size: 255 */
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), 0);
	assert_true(k.load_addr == 0x100000);
	assert_true(k.entry == 0x100200);
	assert_true(k.end == 0x100000 + PM_SIZE);
	assert_int_equal(k.cmdline_max, 255);
	free(d);
}

static void test_probe_bzimage_errors(void **state)
{
	uint8_t *d = make_bzimage();
	struct kernel_image k;
	char err[256];

	(void)state;
	/* syssize larger than the file. */
	put32(d + 0x1f4, PM_SIZE / 16 + 1);
	err[0] = '\0';
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "truncated");
	put32(d + 0x1f4, PM_SIZE / 16);
	/* File cut inside the setup code. */
	err[0] = '\0';
	assert_int_equal(linux_probe(d, SETUP_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "truncated");
	err[0] = '\0';
	assert_int_equal(linux_probe(d, 0x260, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "truncated");

	/* No 64-bit entry point. */
	d[0x236] = 0x02;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "64-bit");
	d[0x236] = 0x03;

	/* Boot protocol too old. */
	put16(d + 0x206, 0x020b);
	err[0] = '\0';
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "2.12");
	put16(d + 0x206, 0x020f);

	/* Misaligned or low preferred address. */
	put64(d + 0x258, 0x1000800);
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	put64(d + 0x258, 0x80000);
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	put64(d + 0x258, LOAD_ADDR);
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), 0);

	/* A boot sector without the Linux header. */
	memcpy(d + 0x202, "XXXX", 4);
	err[0] = '\0';
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "HdrS");
	free(d);
}

static void test_probe_garbage(void **state)
{
	uint8_t d[4096];
	struct kernel_image k;
	char err[256] = "";
	uint32_t x = 12345;

	(void)state;
	for (size_t i = 0; i < sizeof(d); i++) {
		x = x * 1103515245u + 12345u;
		d[i] = (uint8_t)(x >> 16);
	}
	d[0x1fe] = 0; /* not a boot sector either */
	d[0] = 0; /* not ELF */
	assert_int_equal(linux_probe(d, sizeof(d), &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "not a Linux kernel");
	err[0] = '\0';
	assert_int_equal(linux_probe(d, 3, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "not a Linux kernel");
}

static void test_probe_elf(void **state)
{
	uint8_t *d = make_elf(false);
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	assert_int_equal(k.format, KERNEL_ELF);
	assert_true(k.entry == ELF_PADDR + 0x100);
	assert_true(k.load_addr == ELF_PADDR);
	assert_true(k.end == ELF_PADDR + ELF_MEMSZ);
	assert_int_equal(k.version, 0x020f);
	assert_false(k.has_pvh);
	free(d);
}

static void test_probe_elf_pvh_note(void **state)
{
	uint8_t *d = make_elf(true);
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	assert_true(k.has_pvh);
	assert_int_equal(k.pvh_entry, PVH_ENTRY);
	free(d);
}

static void test_probe_elf_errors(void **state)
{
	uint8_t *d = make_elf(false);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)d;
	Elf64_Phdr *ph = (Elf64_Phdr *)(d + sizeof(*eh));
	struct kernel_image k;
	char err[256];

	(void)state;
	/* Segment past the end of the file. */
	ph->p_filesz = ELF_FILESZ + 1;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "past the end");
	ph->p_filesz = ELF_FILESZ;
	ph->p_offset = ELF_SIZE + 0x1000;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "past the end");
	ph->p_offset = ELF_OFFSET;
	/* The same image cut short. */
	assert_int_equal(linux_probe(d, ELF_SIZE - 1, &k, err, sizeof(err)), -ENOEXEC);
	assert_int_equal(linux_probe(d, sizeof(*eh) - 1, &k, err, sizeof(err)), -ENOEXEC);

	/* filesz > memsz. */
	ph->p_memsz = ELF_FILESZ - 1;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	ph->p_memsz = ELF_MEMSZ;

	/* Entry outside the segments. */
	eh->e_entry = ELF_PADDR + ELF_MEMSZ;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "entry");
	eh->e_entry = ELF_PADDR;

	/* Wrong machine, class, type. */
	eh->e_machine = EM_386;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	eh->e_machine = EM_X86_64;
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_type = ET_DYN;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	eh->e_type = ET_EXEC;

	/* No loadable segment. */
	ph->p_type = PT_NOTE;
	ph->p_filesz = 0;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	ph->p_type = PT_LOAD;
	ph->p_filesz = ELF_FILESZ;

	/* Program headers outside the file. */
	eh->e_phoff = ELF_SIZE - 8;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	eh->e_phoff = sizeof(*eh);

	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	free(d);
}

static void test_probe_elf32_pvh(void **state)
{
	uint8_t *d = make_elf32(true);
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	assert_int_equal(k.format, KERNEL_ELF);
	assert_true(k.has_pvh);
	assert_true(k.pvh_only);
	assert_int_equal(k.pvh_entry, PVH32_ENTRY);
	assert_true(k.load_addr == ELF32_PADDR);
	assert_true(k.end == ELF32_PADDR + ELF_MEMSZ);
	free(d);

	/* An ELF64 vmlinux can still be entered through the 64-bit protocol. */
	d = make_elf(true);
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	assert_false(k.pvh_only);
	free(d);
}

static void test_probe_elf32_without_pvh_note(void **state)
{
	uint8_t *d = make_elf32(false);
	Elf32_Phdr *note;
	Elf32_Nhdr *n;
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "32-bit ELF");
	assert_err_contains(err, "PVH (XEN_ELFNOTE_PHYS32_ENTRY) note");
	free(d);

	/* A PT_NOTE whose first note claims a huge name is skipped, not followed out of the
	 * segment, so the image has no PVH note either. */
	d = make_elf32(true);
	note = (Elf32_Phdr *)(d + sizeof(Elf32_Ehdr)) + 1;
	n = (Elf32_Nhdr *)(d + note->p_offset);
	n->n_namesz = 0xffffffff;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "XEN_ELFNOTE_PHYS32_ENTRY");
	n->n_namesz = 4;
	/* A PT_NOTE that runs past the end of the file is ignored too. */
	note->p_offset = 0xfffffff0;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	note->p_offset = ELF_NOTE_OFFSET;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	free(d);
}

static void test_probe_elf32_errors(void **state)
{
	uint8_t *d = make_elf32(true);
	Elf32_Ehdr *eh = (Elf32_Ehdr *)d;
	Elf32_Phdr *ph = (Elf32_Phdr *)(d + sizeof(*eh));
	struct kernel_image k;
	char err[256];

	(void)state;
	/* Header cut short: an ELF32 header is 52 bytes. */
	err[0] = '\0';
	assert_int_equal(linux_probe(d, sizeof(*eh) - 1, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "truncated");
	/* Program header table past the end of the file, or wrapping around. */
	eh->e_phnum = 0xffff;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "program headers");
	eh->e_phnum = 2;
	eh->e_phoff = 0xffffffe0;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	eh->e_phoff = ELF_SIZE - sizeof(*ph);
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	eh->e_phoff = sizeof(*eh);
	/* ELF64-sized program header entries in an ELF32 file. */
	eh->e_phentsize = sizeof(Elf64_Phdr);
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	eh->e_phentsize = sizeof(*ph);

	/* Segment whose offset + filesz wraps past 4 GiB. */
	ph->p_offset = 0xffffffff;
	ph->p_filesz = 2;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "past the end");
	ph->p_offset = ELF_OFFSET;
	ph->p_filesz = ELF_FILESZ + 1;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	ph->p_filesz = ELF_FILESZ;
	ph->p_memsz = ELF_FILESZ - 1;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	ph->p_memsz = ELF_MEMSZ;

	/* The PVH entry must lie in a loaded segment; e_entry is not used. */
	ph->p_paddr = PVH32_ENTRY + 1;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "PVH entry point");
	ph->p_paddr = ELF32_PADDR;
	eh->e_entry = 0xdeadbeef;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	eh->e_entry = ELF32_ENTRY;

	/* Class and machine must agree. */
	eh->e_machine = EM_X86_64;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "not an x86 kernel");
	eh->e_machine = EM_386;
	eh->e_ident[EI_CLASS] = ELFCLASSNONE;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	eh->e_ident[EI_DATA] = ELFDATA2MSB;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	eh->e_ident[EI_DATA] = ELFDATA2LSB;

	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	free(d);
}

static void test_probe_elf64_overflow(void **state)
{
	uint8_t *d = make_elf(true);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)d;
	Elf64_Phdr *ph = (Elf64_Phdr *)(d + sizeof(*eh));
	struct kernel_image k;
	char err[256];

	(void)state;
	/* e_phoff near 2^64: phoff + phnum * phentsize would wrap. */
	eh->e_phoff = UINT64_MAX - 8;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "program headers");
	eh->e_phoff = sizeof(*eh);
	/* p_offset + p_filesz would wrap. */
	ph->p_offset = UINT64_MAX;
	ph->p_filesz = 2;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "past the end");
	ph->p_offset = ELF_OFFSET;
	ph->p_filesz = ELF_FILESZ;
	/* p_paddr + p_memsz would wrap. */
	ph->p_paddr = UINT64_MAX - 0x100;
	err[0] = '\0';
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), -ENOEXEC);
	assert_err_contains(err, "inconsistent");
	ph->p_paddr = ELF_PADDR;
	/* A PT_NOTE at an offset near 2^64 is ignored. */
	ph[1].p_offset = UINT64_MAX - 4;
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	assert_false(k.has_pvh);
	free(d);
}

/* A hostile image need not be aligned: every field is read byte by byte (UBSan checks). */
static void test_probe_elf_misaligned(void **state)
{
	uint8_t *d32 = make_elf32(true), *d64 = make_elf(true);
	uint8_t *buf = malloc(ELF_SIZE + 1);
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	assert_non_null(buf);
	memcpy(buf + 1, d32, ELF_SIZE);
	assert_int_equal(linux_probe(buf + 1, ELF_SIZE, &k, err, sizeof(err)), 0);
	assert_int_equal(k.pvh_entry, PVH32_ENTRY);
	memcpy(buf + 1, d64, ELF_SIZE);
	assert_int_equal(linux_probe(buf + 1, ELF_SIZE, &k, err, sizeof(err)), 0);
	assert_int_equal(k.pvh_entry, PVH_ENTRY);
	free(buf);
	free(d64);
	free(d32);
}

/* --- linux_load, linux_place_initrd --- */

struct ram {
	uint8_t *buf;
	struct guest_mem mem;
};

static int ram_setup(void **state)
{
	struct ram *r = calloc(1, sizeof(*r));

	if (!r)
		return -1;
	r->buf = malloc(GUEST_RAM);
	if (!r->buf)
		return -1;
	memset(r->buf, 0xcc, GUEST_RAM);
	memory_attach(&r->mem, r->buf, GUEST_RAM);
	*state = r;
	return 0;
}

static int ram_teardown(void **state)
{
	struct ram *r = *state;

	free(r->buf);
	free(r);
	return 0;
}

static void test_load_bzimage(void **state)
{
	struct ram *r = *state;
	uint8_t *d = make_bzimage();
	struct kernel_image k;
	char err[256] = "";

	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), 0);
	assert_int_equal(linux_load(&r->mem, &k, err, sizeof(err)), 0);
	/* Only the protected-mode part is copied, to the load address. */
	assert_memory_equal(r->buf + LOAD_ADDR, d + SETUP_SIZE, PM_SIZE);
	assert_int_equal(r->buf[LOAD_ADDR - 1], 0xcc);
	assert_int_equal(r->buf[LOAD_ADDR + PM_SIZE], 0xcc);
	free(d);
}

static void test_load_elf_zeroes_bss(void **state)
{
	struct ram *r = *state;
	uint8_t *d = make_elf(false);
	struct kernel_image k;
	char err[256] = "";

	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	assert_int_equal(linux_load(&r->mem, &k, err, sizeof(err)), 0);
	assert_memory_equal(r->buf + ELF_PADDR, d + ELF_OFFSET, ELF_FILESZ);
	for (size_t i = ELF_FILESZ; i < ELF_MEMSZ; i++)
		if (r->buf[ELF_PADDR + i] != 0)
			fail_msg("bss byte at %#zx is %#x, not 0", i, r->buf[ELF_PADDR + i]);
	assert_int_equal(r->buf[ELF_PADDR - 1], 0xcc);
	assert_int_equal(r->buf[ELF_PADDR + ELF_MEMSZ], 0xcc);
	free(d);
}

static void test_load_too_big(void **state)
{
	uint8_t *d = make_bzimage();
	uint8_t *small = malloc(16 * MIB);
	struct guest_mem mem;
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	assert_non_null(small);
	memory_attach(&mem, small, 16 * MIB);
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), 0);
	assert_int_equal(linux_load(&mem, &k, err, sizeof(err)), -ENOSPC);
	assert_err_contains(err, "MiB");
	free(small);
	free(d);
}

static void test_load_elf32_pvh(void **state)
{
	struct ram *r = *state;
	uint8_t *d = make_elf32(true);
	struct kernel_image k;
	char err[256] = "";

	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	assert_int_equal(linux_load(&r->mem, &k, err, sizeof(err)), 0);
	assert_memory_equal(r->buf + ELF32_PADDR, d + ELF_OFFSET, ELF_FILESZ);
	for (size_t i = ELF_FILESZ; i < ELF_MEMSZ; i++)
		if (r->buf[ELF32_PADDR + i] != 0)
			fail_msg("bss byte at %#zx is %#x, not 0", i, r->buf[ELF32_PADDR + i]);
	assert_int_equal(r->buf[ELF32_PADDR - 1], 0xcc);
	assert_int_equal(r->buf[ELF32_PADDR + ELF_MEMSZ], 0xcc);
	free(d);
}

/* Segments that end past guest RAM are refused with the sizes, nothing is written. */
static void test_load_elf_beyond_ram(void **state)
{
	struct ram *r = *state;
	uint8_t *d32 = make_elf32(true), *d64 = make_elf(false);
	Elf32_Phdr *ph32 = (Elf32_Phdr *)(d32 + sizeof(Elf32_Ehdr));
	Elf64_Ehdr *eh64 = (Elf64_Ehdr *)d64;
	Elf64_Phdr *ph64 = (Elf64_Phdr *)(d64 + sizeof(*eh64));
	struct kernel_image k;
	char err[256];

	/* ELF32: the .bss tail runs one page past the end of RAM. */
	ph32->p_paddr = GUEST_RAM - ELF_MEMSZ + 0x1000;
	put32((uint8_t *)d32 + ELF_NOTE_OFFSET + 2 * sizeof(Elf32_Nhdr) + 4 + 8 + 4, ph32->p_paddr);
	assert_int_equal(linux_probe(d32, ELF_SIZE, &k, err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(linux_load(&r->mem, &k, err, sizeof(err)), -ENOSPC);
	assert_err_contains(err, "MiB");
	/* ELF32: a segment at the top of the 32-bit space, far above RAM. */
	ph32->p_paddr = 0xfffff000;
	put32((uint8_t *)d32 + ELF_NOTE_OFFSET + 2 * sizeof(Elf32_Nhdr) + 4 + 8 + 4, ph32->p_paddr);
	assert_int_equal(linux_probe(d32, ELF_SIZE, &k, err, sizeof(err)), 0);
	assert_true(k.end == 0xfffff000ULL + ELF_MEMSZ);
	assert_int_equal(linux_load(&r->mem, &k, err, sizeof(err)), -ENOSPC);

	/* ELF64: a segment above 4 GiB. */
	ph64->p_paddr = 8 * GIB;
	eh64->e_entry = ph64->p_paddr;
	assert_int_equal(linux_probe(d64, ELF_SIZE, &k, err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(linux_load(&r->mem, &k, err, sizeof(err)), -ENOSPC);
	assert_err_contains(err, "MiB");

	for (size_t i = 0; i < GUEST_RAM; i += 4096)
		if (r->buf[i] != 0xcc)
			fail_msg("guest RAM at %#zx was written", i);
	free(d64);
	free(d32);
}

static void test_place_initrd(void **state)
{
	struct ram *r = *state;
	uint8_t *d = make_bzimage();
	struct kernel_image k;
	char err[256] = "";
	uint64_t addr = 0, size = 5 * MIB + 123;

	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), 0);
	assert_int_equal(linux_place_initrd(&r->mem, &k, size, &addr, err, sizeof(err)), 0);
	assert_int_equal(addr % 4096, 0);
	assert_true(addr + size <= memory_low_end(&r->mem));
	assert_true(addr >= k.end);
	/* As high as possible: less than a page below the end of RAM. */
	assert_true(GUEST_RAM - (addr + size) < 4096);

	/* initrd_addr_max caps it. */
	k.initrd_addr_max = 32 * MIB - 1;
	assert_int_equal(linux_place_initrd(&r->mem, &k, size, &addr, err, sizeof(err)), 0);
	assert_true(addr + size <= 32 * MIB);
	assert_true(32 * MIB - (addr + size) < 4096);
	assert_true(addr >= k.end);
	k.initrd_addr_max = 0x7fffffff;

	/* Exactly the free space between the kernel and the end of RAM. */
	size = GUEST_RAM - k.end;
	assert_int_equal(linux_place_initrd(&r->mem, &k, size, &addr, err, sizeof(err)), 0);
	assert_true(addr == k.end);

	/* One byte more does not fit. */
	err[0] = '\0';
	assert_int_equal(linux_place_initrd(&r->mem, &k, size + 1, &addr, err, sizeof(err)),
			 -ENOSPC);
	assert_err_contains(err, "initrd");
	assert_err_contains(err, "--memory");
	err[0] = '\0';
	assert_int_equal(linux_place_initrd(&r->mem, &k, 100 * MIB, &addr, err, sizeof(err)),
			 -ENOSPC);
	assert_err_contains(err, "does not fit");
	free(d);
}

/* --- linux_fill_boot_params --- */

static void test_boot_params_bzimage(void **state)
{
	uint8_t *d = make_bzimage();
	struct boot_params *bp = malloc(sizeof(*bp));
	struct boot_e820_entry e820[3] = {
		{ 0, 0x9fc00, 1 },
		{ 0x9fc00, 0x400, 2 },
		{ 0x100000, 0x3f00000, 1 },
	};
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	assert_non_null(bp);
	memset(bp, 0xaa, sizeof(*bp));
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), 0);
	linux_fill_boot_params(bp, &k, 0x20000, 30, 0x3000000, 0x123456, e820, 3, 0xe0000);
	/* The kernel's own header was copied. */
	assert_int_equal(bp->hdr.setup_sects, SETUP_SECTS);
	assert_int_equal(bp->hdr.syssize, PM_SIZE / 16);
	assert_int_equal(bp->hdr.boot_flag, 0xaa55);
	assert_int_equal(bp->hdr.header, 0x53726448);
	assert_int_equal(bp->hdr.version, 0x020f);
	assert_int_equal(bp->hdr.initrd_addr_max, 0x7fffffff);
	assert_int_equal(bp->hdr.kernel_alignment, 0x200000);
	assert_int_equal(bp->hdr.cmdline_size, 2047);
	assert_true(bp->hdr.pref_address == LOAD_ADDR);
	assert_int_equal(bp->hdr.init_size, INIT_SIZE);
	assert_int_equal(bp->hdr.xloadflags, 0x03);
	/* And what the loader fills in. */
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_int_equal(bp->hdr.loadflags & 0x81, 0x81); /* LOADED_HIGH | CAN_USE_HEAP */
	assert_int_equal(bp->hdr.heap_end_ptr, 0xfe00);
	assert_int_equal(bp->hdr.vid_mode, 0xffff);
	assert_int_equal(bp->hdr.cmd_line_ptr, 0x20000);
	assert_int_equal(bp->ext_cmd_line_ptr, 0);
	assert_int_equal(bp->hdr.ramdisk_image, 0x3000000);
	assert_int_equal(bp->hdr.ramdisk_size, 0x123456);
	assert_int_equal(bp->ext_ramdisk_image, 0);
	assert_int_equal(bp->ext_ramdisk_size, 0);
	assert_true(bp->acpi_rsdp_addr == 0xe0000);
	assert_int_equal(bp->e820_entries, 3);
	assert_memory_equal(bp->e820_table, e820, sizeof(e820));
	/* Everything else is zero (the 0xaa fill is gone). */
	assert_int_equal(bp->screen_info.orig_video_isVGA, 0);
	assert_int_equal(bp->sentinel, 0);
	assert_true(bp->e820_table[3].addr == 0 && bp->e820_table[3].size == 0);
	free(bp);
	free(d);
}

static void test_boot_params_short_header(void **state)
{
	uint8_t *d = make_bzimage();
	struct boot_params *bp = malloc(sizeof(*bp));
	struct boot_e820_entry none = { 0 };
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	assert_non_null(bp);
	/* Protocol 2.12 with a header ending at 0x264 (jump 0x62): init_size (0x260) is inside,
	 * handover_offset (0x264) and kernel_info_offset (0x268) are not, and 2.12 has no
	 * acpi_rsdp_addr. */
	put16(d + 0x206, 0x020c);
	d[0x201] = 0x62;
	put32(d + 0x264, 0x190);
	put32(d + 0x268, 0xdeadbeef);
	assert_int_equal(linux_probe(d, BZ_SIZE, &k, err, sizeof(err)), 0);
	linux_fill_boot_params(bp, &k, 0x20000, 10, 0, 0, &none, 0, 0xe0000);
	assert_int_equal(bp->hdr.version, 0x020c);
	assert_int_equal(bp->hdr.init_size, INIT_SIZE);
	assert_int_equal(bp->hdr.handover_offset, 0);
	assert_int_equal(bp->hdr.kernel_info_offset, 0);
	assert_true(bp->acpi_rsdp_addr == 0);
	assert_int_equal(bp->e820_entries, 0);
	free(bp);
	free(d);
}

static void test_boot_params_elf_and_high_addresses(void **state)
{
	uint8_t *d = make_elf(false);
	struct boot_params *bp = malloc(sizeof(*bp));
	struct boot_e820_entry *e820 = calloc(130, sizeof(*e820));
	struct kernel_image k;
	char err[256] = "";

	(void)state;
	assert_non_null(bp);
	assert_non_null(e820);
	for (int i = 0; i < 130; i++) {
		e820[i].addr = (uint64_t)i << 20;
		e820[i].size = 1 << 20;
		e820[i].type = 1;
	}
	assert_int_equal(linux_probe(d, ELF_SIZE, &k, err, sizeof(err)), 0);
	linux_fill_boot_params(bp, &k, 0x100002000ULL, 10, 0x123456000ULL, 0x100000010ULL, e820,
			       130, 0xe0000);
	/* A header made up for the kernel. */
	assert_int_equal(bp->hdr.boot_flag, 0xaa55);
	assert_int_equal(bp->hdr.header, 0x53726448);
	assert_int_equal(bp->hdr.version, 0x020f);
	assert_int_equal(bp->hdr.cmdline_size, 2047);
	assert_int_equal(bp->hdr.initrd_addr_max, 0x7fffffff);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	/* 64-bit addresses are split between the header and the ext_ fields. */
	assert_int_equal(bp->hdr.cmd_line_ptr, 0x00002000);
	assert_int_equal(bp->ext_cmd_line_ptr, 1);
	assert_int_equal(bp->hdr.ramdisk_image, 0x23456000);
	assert_int_equal(bp->ext_ramdisk_image, 1);
	assert_int_equal(bp->hdr.ramdisk_size, 0x10);
	assert_int_equal(bp->ext_ramdisk_size, 1);
	assert_true(bp->acpi_rsdp_addr == 0xe0000);
	/* The zero page holds at most 128 entries. */
	assert_int_equal(bp->e820_entries, 128);
	assert_true(bp->e820_table[127].addr == 127ULL << 20);
	free(e820);
	free(bp);
	free(d);
}

/* --- e820 and memory --- */

static uint64_t ram_total(const struct boot_e820_entry *e, int n)
{
	uint64_t t = 0;

	for (int i = 0; i < n; i++)
		if (e[i].type == E820_RAM)
			t += e[i].size;
	return t;
}

static void assert_sorted_disjoint(const struct boot_e820_entry *e, int n)
{
	for (int i = 0; i < n; i++) {
		assert_true(e[i].size > 0);
		if (i > 0 && e[i].addr < e[i - 1].addr + e[i - 1].size)
			fail_msg("e820 entry %d [%#llx+%#llx] overlaps or precedes entry %d", i,
				 (unsigned long long)e[i].addr, (unsigned long long)e[i].size,
				 i - 1);
	}
}

static bool ram_overlaps(const struct boot_e820_entry *e, int n, uint64_t start, uint64_t end)
{
	for (int i = 0; i < n; i++)
		if (e[i].type == E820_RAM && e[i].addr < end && start < e[i].addr + e[i].size)
			return true;
	return false;
}

static bool is_reserved(const struct boot_e820_entry *e, int n, uint64_t start, uint64_t end)
{
	for (int i = 0; i < n; i++)
		if (e[i].type == E820_RESERVED && e[i].addr <= start &&
		    end <= e[i].addr + e[i].size)
			return true;
	return false;
}

static void test_pvh_start_info(void **state)
{
	struct ram *r = *state;
	struct boot_e820_entry e820[16];
	const struct hvm_start_info *si;
	const struct hvm_modlist_entry *mod;
	const struct hvm_memmap_table_entry *map;
	int n = e820_build(&r->mem, e820, 16);

	assert_int_equal(pvh_write_start_info(&r->mem, 0xf000, 0x20000, 0x3000000, 0x123456,
					      0xe0000, e820, n),
			 0);
	si = (const struct hvm_start_info *)(r->buf + 0xf000);
	assert_int_equal(si->magic, HVM_START_MAGIC);
	assert_int_equal(si->version, 1);
	assert_int_equal(si->cmdline_paddr, 0x20000);
	assert_int_equal(si->rsdp_paddr, 0xe0000);
	assert_int_equal(si->nr_modules, 1);
	assert_true(si->modlist_paddr >= 0xf000 + sizeof(*si) && si->modlist_paddr < 0x10000);
	mod = (const struct hvm_modlist_entry *)(r->buf + si->modlist_paddr);
	assert_int_equal(mod->paddr, 0x3000000);
	assert_int_equal(mod->size, 0x123456);
	assert_int_equal(si->memmap_entries, n);
	map = (const struct hvm_memmap_table_entry *)(r->buf + si->memmap_paddr);
	for (int i = 0; i < n; i++) {
		assert_int_equal(map[i].addr, e820[i].addr);
		assert_int_equal(map[i].size, e820[i].size);
		assert_int_equal(map[i].type, e820[i].type);
	}
	/* No initrd: no module list. */
	assert_int_equal(pvh_write_start_info(&r->mem, 0xf000, 0x20000, 0, 0, 0xe0000, e820, n), 0);
	assert_int_equal(si->nr_modules, 0);
	assert_int_equal(si->modlist_paddr, 0);
	/* A map that cannot fit in the page is refused. */
	assert_int_equal(pvh_write_start_info(&r->mem, 0xf000, 0x20000, 0, 0, 0xe0000, e820, 200),
			 -ENOSPC);
}

static void test_e820_256m(void **state)
{
	struct guest_mem mem;
	struct boot_e820_entry e[16];
	int n;

	(void)state;
	memory_layout(&mem, 256 * MIB);
	n = e820_build(&mem, e, 16);
	assert_true(n >= 3);
	assert_sorted_disjoint(e, n);
	assert_true(ram_total(e, n) == 256 * MIB - (0x100000 - 0x9fc00));
	assert_false(ram_overlaps(e, n, 0x9fc00, 0x100000));
	assert_true(ram_overlaps(e, n, 0, 0x1000));
	assert_true(ram_overlaps(e, n, 256 * MIB - 1, 256 * MIB));
	assert_false(ram_overlaps(e, n, 256 * MIB, 1ULL << 40));
	assert_true(is_reserved(e, n, 0xe0000, 0x100000)); /* ACPI and MP tables */
	assert_true(is_reserved(e, n, 0xe0000000, 0xe0100000)); /* ECAM */
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].type, E820_RAM);
	assert_true(e[0].size == 0x9fc00);

	/* max limits the count. */
	assert_int_equal(e820_build(&mem, e, 2), 2);
	assert_int_equal(e820_build(&mem, e, 0), 0);
}

static void test_e820_4g(void **state)
{
	struct guest_mem mem;
	struct boot_e820_entry e[16];
	bool high = false;
	int n;

	(void)state;
	memory_layout(&mem, 4 * GIB);
	n = e820_build(&mem, e, 16);
	assert_sorted_disjoint(e, n);
	assert_false(ram_overlaps(e, n, 3 * GIB, 4 * GIB));
	assert_false(ram_overlaps(e, n, 0x9fc00, 0x100000));
	for (int i = 0; i < n; i++)
		if (e[i].type == E820_RAM && e[i].addr == 4 * GIB && e[i].size == GIB)
			high = true;
	assert_true(high);
	assert_true(ram_overlaps(e, n, 3 * GIB - 1, 3 * GIB));
	assert_true(ram_total(e, n) == 4 * GIB - (0x100000 - 0x9fc00));
	assert_false(ram_overlaps(e, n, 5 * GIB, 1ULL << 50));
	assert_true(is_reserved(e, n, 0xe0000000, 0xe0100000));
}

static void test_memory_layout(void **state)
{
	struct guest_mem mem;

	(void)state;
	memory_layout(&mem, 256 * MIB);
	assert_int_equal(mem.nregions, 1);
	assert_true(mem.regions[0].gpa == 0 && mem.regions[0].size == 256 * MIB);
	assert_true(memory_low_end(&mem) == 256 * MIB);
	assert_true(mem.ram_size == 256 * MIB);

	memory_layout(&mem, 3 * GIB);
	assert_int_equal(mem.nregions, 1);
	assert_true(memory_low_end(&mem) == 3 * GIB);

	memory_layout(&mem, 3 * GIB + 4096);
	assert_int_equal(mem.nregions, 2);
	assert_true(mem.regions[1].gpa == 4 * GIB && mem.regions[1].size == 4096);

	memory_layout(&mem, 8 * GIB);
	assert_int_equal(mem.nregions, 2);
	assert_true(mem.regions[0].gpa == 0 && mem.regions[0].size == 3 * GIB);
	assert_true(mem.regions[1].gpa == 4 * GIB && mem.regions[1].size == 5 * GIB);
	assert_true(memory_low_end(&mem) == 3 * GIB);
	assert_true(mem.ram_size == 8 * GIB);
}

static void test_memory_gpa_ptr(void **state)
{
	uint8_t *buf = malloc(64 * KIB);
	uint8_t high[8192];
	struct guest_mem mem;

	(void)state;
	assert_non_null(buf);
	memory_attach(&mem, buf, 64 * KIB);
	assert_ptr_equal(mem.base, buf);
	assert_ptr_equal(memory_gpa_ptr(&mem, 0, 16), buf);
	assert_ptr_equal(memory_gpa_ptr(&mem, 0x1000, 0x1000), buf + 0x1000);
	assert_ptr_equal(memory_gpa_ptr(&mem, 0xff00, 0x100), buf + 0xff00);
	assert_ptr_equal(memory_gpa_ptr(&mem, 0, 64 * KIB), buf);
	assert_null(memory_gpa_ptr(&mem, 0xff00, 0x101));
	assert_null(memory_gpa_ptr(&mem, 0, 64 * KIB + 1));
	assert_null(memory_gpa_ptr(&mem, 64 * KIB, 1));
	assert_null(memory_gpa_ptr(&mem, 0x1000, UINT64_MAX));
	assert_null(memory_gpa_ptr(&mem, UINT64_MAX, 2));
	assert_null(memory_gpa_ptr(&mem, UINT64_MAX - 0x10, 0x20));

	/* Two regions: nothing spans the hole. */
	memory_layout(&mem, 3 * GIB + sizeof(high));
	mem.regions[1].hva = high;
	assert_ptr_equal(memory_gpa_ptr(&mem, 4 * GIB, 16), high);
	assert_ptr_equal(memory_gpa_ptr(&mem, 4 * GIB + 0x100, 0x100), high + 0x100);
	assert_null(memory_gpa_ptr(&mem, 4 * GIB + 0x100, sizeof(high)));
	assert_null(memory_gpa_ptr(&mem, 3 * GIB + 0x1000, 4));
	assert_null(memory_gpa_ptr(&mem, 3 * GIB - 4, 8));
	assert_null(memory_gpa_ptr(&mem, 4 * GIB - 4, 8));
	/* The low region has no mapping here. */
	assert_null(memory_gpa_ptr(&mem, 0x1000, 4));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_bzimage),
		cmocka_unit_test(test_probe_bzimage_defaults),
		cmocka_unit_test(test_probe_bzimage_errors),
		cmocka_unit_test(test_probe_garbage),
		cmocka_unit_test(test_probe_elf),
		cmocka_unit_test(test_probe_elf_pvh_note),
		cmocka_unit_test(test_probe_elf_errors),
		cmocka_unit_test(test_probe_elf32_pvh),
		cmocka_unit_test(test_probe_elf32_without_pvh_note),
		cmocka_unit_test(test_probe_elf32_errors),
		cmocka_unit_test(test_probe_elf64_overflow),
		cmocka_unit_test(test_probe_elf_misaligned),
		cmocka_unit_test_setup_teardown(test_load_bzimage, ram_setup, ram_teardown),
		cmocka_unit_test_setup_teardown(test_load_elf_zeroes_bss, ram_setup, ram_teardown),
		cmocka_unit_test(test_load_too_big),
		cmocka_unit_test_setup_teardown(test_load_elf32_pvh, ram_setup, ram_teardown),
		cmocka_unit_test_setup_teardown(test_load_elf_beyond_ram, ram_setup, ram_teardown),
		cmocka_unit_test_setup_teardown(test_place_initrd, ram_setup, ram_teardown),
		cmocka_unit_test(test_boot_params_bzimage),
		cmocka_unit_test(test_boot_params_short_header),
		cmocka_unit_test(test_boot_params_elf_and_high_addresses),
		cmocka_unit_test_setup_teardown(test_pvh_start_info, ram_setup, ram_teardown),
		cmocka_unit_test(test_e820_256m),
		cmocka_unit_test(test_e820_4g),
		cmocka_unit_test(test_memory_layout),
		cmocka_unit_test(test_memory_gpa_ptr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
