// SPDX-License-Identifier: MIT
/* Unit tests for the software page walk (src/vmm/pagewalk.c) that LDMXCSR/STMXCSR completion
 * uses on PVM hosts: page tables built in a heap buffer as guest RAM, in every paging mode, and
 * the accesses a guest must not get: writes to read-only (copy-on-write) pages, user accesses to
 * supervisor pages, supervisor accesses to user pages under SMAP, not-present and reserved
 * entries, tables outside RAM. Each refused access leaves the tables untouched; allowed ones set
 * the accessed and dirty bits as the CPU does. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/tlv.h"
#include "common/util.h"
#include "mem/memory.h"
#include "vmm/pagewalk.h"

#define RAM_SIZE (8 * 1024 * 1024)

#define P 0x1ULL
#define RW 0x2ULL
#define US 0x4ULL
#define A 0x20ULL
#define D 0x40ULL
#define PS 0x80ULL
#define NX (1ULL << 63)

struct fixture {
	uint8_t *ram;
	struct guest_mem mem;
	uint64_t next_table; /* bump allocator for page tables */
	struct pw_cpu cpu;
};

static uint64_t get64(struct fixture *f, uint64_t gpa)
{
	return get_le64(f->ram + gpa);
}

static void set64(struct fixture *f, uint64_t gpa, uint64_t v)
{
	put_le64(f->ram + gpa, v);
}

static uint64_t new_table(struct fixture *f)
{
	uint64_t t = f->next_table;

	f->next_table += 4096;
	assert_true(f->next_table <= 0x100000);
	return t;
}

/* Maps linear to gpa with 8-byte entries (4- or 5-level paging), tables made on demand with
 * P|RW|US. Returns the gpa of the entry at stop_level (1: the PTE), whose flags are leaf. */
static uint64_t map(struct fixture *f, int levels, uint64_t linear, uint64_t gpa, uint64_t leaf,
		    int stop_level)
{
	uint64_t table = f->cpu.cr3 & ~0xfffULL;

	for (int level = levels; level >= 1; level--) {
		uint64_t e = table + ((linear >> (12 + 9 * (level - 1))) & 511) * 8;

		if (level == stop_level) {
			set64(f, e, gpa | leaf);
			return e;
		}
		if (!(get64(f, e) & P))
			set64(f, e, new_table(f) | P | RW | US);
		table = get64(f, e) & 0x000ffffffffff000ULL;
	}
	fail();
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->ram = calloc(1, RAM_SIZE);
	memory_attach(&f->mem, f->ram, RAM_SIZE);
	f->next_table = 0x1000;
	f->cpu.cr3 = new_table(f);
	f->cpu.cr0 = CR0_PE | CR0_PG | CR0_WP;
	f->cpu.cr4 = CR4_PAE;
	f->cpu.efer = EFER_LMA | EFER_NXE;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->ram);
	free(f);
	return 0;
}

/* Walks and returns -errno or 0; *err and *gpa as pagewalk left them. */
static int walk(struct fixture *f, uint64_t linear, unsigned int access, unsigned int cpl,
		uint64_t *gpa, uint32_t *err)
{
	f->cpu.cpl = cpl;
	return pagewalk(&f->mem, &f->cpu, linear, access, gpa, err);
}

static void test_rights_4level(void **state)
{
	struct fixture *f = *state;
	uint64_t gpa = 0, pte_user, pte_ro, pte_sup;
	uint32_t err;
	static uint8_t before[0x100000];

	pte_user = map(f, 4, 0x400000, 0x200000, P | RW | US, 1);
	pte_ro = map(f, 4, 0x401000, 0x201000, P | US, 1); /* copy-on-write: read-only */
	pte_sup = map(f, 4, 0x402000, 0x202000, P | RW, 1);

	/* Allowed: the address, the accessed bits on every level, dirty only for a write. */
	assert_int_equal(walk(f, 0x400123, 0, 0, &gpa, &err), 0);
	assert_int_equal(gpa, 0x200123);
	assert_true(get64(f, pte_user) & A);
	assert_false(get64(f, pte_user) & D);
	assert_true(get64(f, f->cpu.cr3) & A);
	assert_int_equal(walk(f, 0x400ffc, PW_WRITE, 3, &gpa, &err), 0);
	assert_true(get64(f, pte_user) & D);

	/* Refused, with the #PF error code the CPU gives, and nothing in the tables changed. */
	memcpy(before, f->ram, sizeof(before));
	assert_int_equal(walk(f, 0x401000, PW_WRITE, 0, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_WRITE);
	assert_int_equal(walk(f, 0x401000, PW_WRITE, 3, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_WRITE | PW_PF_USER);
	assert_int_equal(walk(f, 0x402000, 0, 3, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_USER);
	assert_int_equal(walk(f, 0x403000, 0, 3, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_USER);
	assert_int_equal(walk(f, 0x7fff00000000ULL, PW_WRITE, 0, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_WRITE);
	assert_memory_equal(before, f->ram, sizeof(before));
	assert_false(get64(f, pte_ro) & (A | D));

	/* The read-only page reads fine; a supervisor write goes through only with CR0.WP clear,
	 * as on the CPU. */
	assert_int_equal(walk(f, 0x401000, 0, 3, &gpa, &err), 0);
	f->cpu.cr0 &= ~CR0_WP;
	assert_int_equal(walk(f, 0x401000, PW_WRITE, 0, &gpa, &err), 0);
	f->cpu.cr0 |= CR0_WP;

	assert_int_equal(walk(f, 0x402000, PW_WRITE, 0, &gpa, &err), 0);
	assert_true(get64(f, pte_sup) & D);
}

/* Rights are the AND of all levels; SMAP; reserved bits. */
static void test_rights_all_levels(void **state)
{
	struct fixture *f = *state;
	uint64_t gpa, pml4e, pdpte, pde, pte;
	uint32_t err;

	pte = map(f, 4, 0x600000, 0x300000, P | RW | US, 1);
	pml4e = f->cpu.cr3 + 0;
	pdpte = (get64(f, pml4e) & ~0xfffULL) + 0;
	pde = (get64(f, pdpte) & ~0xfffULL) + ((0x600000 >> 21) & 511) * 8;
	assert_int_equal(get64(f, pde) & ~0xfffULL, pte & ~0xfffULL);

	set64(f, pde, get64(f, pde) & ~RW);
	assert_int_equal(walk(f, 0x600000, PW_WRITE, 3, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_WRITE | PW_PF_USER);
	assert_int_equal(walk(f, 0x600000, PW_WRITE, 0, &gpa, &err), -EFAULT);
	assert_int_equal(walk(f, 0x600000, 0, 3, &gpa, &err), 0);
	set64(f, pde, get64(f, pde) | RW);
	set64(f, pdpte, get64(f, pdpte) & ~US);
	assert_int_equal(walk(f, 0x600000, 0, 3, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_USER);
	assert_int_equal(walk(f, 0x600000, PW_WRITE, 0, &gpa, &err), 0);
	set64(f, pdpte, get64(f, pdpte) | US);

	/* SMAP: a supervisor access to a user page faults unless RFLAGS.AC is set. */
	f->cpu.cr4 |= CR4_SMAP;
	assert_int_equal(walk(f, 0x600000, 0, 0, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT);
	assert_int_equal(walk(f, 0x600000, PW_WRITE, 0, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_WRITE);
	f->cpu.rflags = RFLAGS_AC;
	assert_int_equal(walk(f, 0x600000, PW_WRITE, 0, &gpa, &err), 0);
	assert_int_equal(walk(f, 0x600000, PW_WRITE, 3, &gpa, &err), 0); /* user: SMAP n/a */

	/* Reserved bits: PS in a PML4 entry, NX without EFER.NXE. */
	set64(f, pml4e, get64(f, pml4e) | PS);
	assert_int_equal(walk(f, 0x600000, 0, 3, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_RSVD | PW_PF_USER);
	set64(f, pml4e, get64(f, pml4e) & ~PS);
	set64(f, pte, get64(f, pte) | NX);
	assert_int_equal(walk(f, 0x600000, 0, 0, &gpa, &err), 0); /* a data access */
	f->cpu.efer &= ~EFER_NXE;
	assert_int_equal(walk(f, 0x600000, 0, 0, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_RSVD);
}

static void test_large_pages(void **state)
{
	struct fixture *f = *state;
	uint64_t gpa, e;
	uint32_t err;

	/* 2 MiB: PS in the PDE. */
	e = map(f, 4, 0x40000000ULL, 0x400000, P | RW | US | PS, 2);
	assert_int_equal(walk(f, 0x40012345ULL, PW_WRITE, 3, &gpa, &err), 0);
	assert_int_equal(gpa, 0x412345);
	assert_true((get64(f, e) & (A | D)) == (A | D));
	set64(f, e, get64(f, e) & ~RW);
	assert_int_equal(walk(f, 0x40012345ULL, PW_WRITE, 3, &gpa, &err), -EFAULT);
	/* 1 GiB: PS in the PDPTE. */
	map(f, 4, 0x8000000000ULL, 0x40000000ULL, P | RW | PS, 3);
	assert_int_equal(walk(f, 0x8000123456ULL, 0, 0, &gpa, &err), 0);
	assert_int_equal(gpa, 0x40123456ULL);
	assert_int_equal(walk(f, 0x8000123456ULL, 0, 3, &gpa, &err), -EFAULT);
}

static void test_five_level(void **state)
{
	struct fixture *f = *state;
	uint64_t gpa, linear = (1ULL << 50) | 0x5000; /* PML5 index 2 */
	uint32_t err;

	f->cpu.cr4 |= CR4_LA57;
	map(f, 5, linear, 0x205000, P | US, 1);
	assert_int_equal(walk(f, linear + 4, 0, 3, &gpa, &err), 0);
	assert_int_equal(gpa, 0x205004);
	assert_int_equal(walk(f, linear + 4, PW_WRITE, 3, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_WRITE | PW_PF_USER);
	/* Canonical: 57 bits with LA57, 48 without, everything outside long mode. */
	assert_true(pagewalk_canonical(&f->cpu, linear));
	f->cpu.cr4 &= ~CR4_LA57;
	assert_false(pagewalk_canonical(&f->cpu, linear));
	assert_true(pagewalk_canonical(&f->cpu, 0xffff800000000000ULL));
	assert_false(pagewalk_canonical(&f->cpu, 0x0000800000000000ULL));
	f->cpu.efer = 0;
	assert_true(pagewalk_canonical(&f->cpu, 0x0000800000000000ULL));
}

static void test_pae(void **state)
{
	struct fixture *f = *state;
	uint64_t gpa, pdpt = 0x1000 + 0x20, pd = 0x2000, pt = 0x3000;
	uint32_t err;

	/* CR3 is 32-byte aligned here; PDPTEs have no access rights. */
	f->cpu.efer = EFER_NXE;
	f->cpu.cr3 = pdpt;
	set64(f, pdpt + 1 * 8, pd | P); /* 1-2 GiB */
	set64(f, pd + 0 * 8, pt | P | RW | US);
	set64(f, pt + 5 * 8, 0x205000 | P | US);
	assert_int_equal(walk(f, 0x40005008, 0, 3, &gpa, &err), 0);
	assert_int_equal(gpa, 0x205008);
	assert_int_equal(walk(f, 0x40005008, PW_WRITE, 3, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_WRITE | PW_PF_USER);
	assert_int_equal(walk(f, 0x00005008, 0, 3, &gpa, &err), -EFAULT); /* PDPTE 0 absent */
	assert_int_equal(err, PW_PF_USER);
	set64(f, pdpt + 1 * 8, pd | P | RW); /* RW is reserved in a PAE PDPTE */
	assert_int_equal(walk(f, 0x40005008, 0, 0, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_RSVD);
}

static void test_32bit(void **state)
{
	struct fixture *f = *state;
	uint64_t gpa, pd = 0x1000, pt = 0x2000;
	uint32_t err;

	f->cpu.efer = 0;
	f->cpu.cr4 = CR4_PSE;
	f->cpu.cr3 = pd;
	put_le32(f->ram + pd + 1 * 4, (uint32_t)(pt | P | RW | US)); /* 4-8 MiB */
	put_le32(f->ram + pt + 3 * 4, (uint32_t)(0x203000 | P | US));
	put_le32(f->ram + pd + 2 * 4, (uint32_t)(0x400000 | P | RW | PS)); /* 8-12 MiB: 4 MiB */
	assert_int_equal(walk(f, 0x403010, 0, 3, &gpa, &err), 0);
	assert_int_equal(gpa, 0x203010);
	assert_true(get_le32(f->ram + pt + 3 * 4) & A);
	assert_int_equal(walk(f, 0x403010, PW_WRITE, 3, &gpa, &err), -EFAULT);
	assert_int_equal(err, PW_PF_PRESENT | PW_PF_WRITE | PW_PF_USER);
	assert_int_equal(walk(f, 0x812345, PW_WRITE, 0, &gpa, &err), 0);
	assert_int_equal(gpa, 0x412345);
	assert_true(get_le32(f->ram + pd + 2 * 4) & D);
	assert_int_equal(walk(f, 0x812345, 0, 3, &gpa, &err), -EFAULT);
	/* Without CR4.PSE the PS bit is ignored: the entry points to a page table. */
	f->cpu.cr4 = 0;
	put_le32(f->ram + 0x400000 + 0x12 * 4, (uint32_t)(0x205000 | P | RW));
	assert_int_equal(walk(f, 0x812345, 0, 0, &gpa, &err), 0);
	assert_int_equal(gpa, 0x205345);
}

static void test_no_paging_and_tables_outside_ram(void **state)
{
	struct fixture *f = *state;
	uint64_t gpa;
	uint32_t err;

	f->cpu.cr0 = CR0_PE;
	f->cpu.efer = 0;
	assert_int_equal(walk(f, 0x12345678, PW_WRITE, 3, &gpa, &err), 0);
	assert_int_equal(gpa, 0x12345678);
	f->cpu.cr0 = CR0_PE | CR0_PG | CR0_WP;
	f->cpu.efer = EFER_LMA;
	f->cpu.cr3 = 0xfee00000; /* not RAM: the access cannot be completed */
	assert_int_equal(walk(f, 0x1000, 0, 0, &gpa, &err), -EIO);
	f->cpu.cr3 = 0x1000;
	set64(f, 0x1000, 0xfee00000ULL | P | RW);
	assert_int_equal(walk(f, 0x1000, 0, 0, &gpa, &err), -EIO);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rights_4level),
		T(test_rights_all_levels),
		T(test_large_pages),
		T(test_five_level),
		T(test_pae),
		T(test_32bit),
		T(test_no_paging_and_tables_outside_ram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
