// SPDX-License-Identifier: MIT
/* Software page walk for data accesses (SDM vol. 3, chapter 4): 32-bit paging, PAE, 4- and
 * 5-level paging, with the access rights a load or store of the given CPL has. */
#include "pagewalk.h"

#include <errno.h>

#include "../mem/memory.h"

#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
#define PTE_US 0x4ULL
#define PTE_A 0x20ULL
#define PTE_D 0x40ULL
#define PTE_PS 0x80ULL
#define PTE_NX (1ULL << 63)
#define PTE_ADDR 0x000ffffffffff000ULL /* bits 12..51 */
#define PDPTE_PAE_RSVD 0x1e6ULL /* bits 1, 2 and 5..8 of a PAE PDPTE */

#define MAX_LEVELS 5

/* One paging-structure entry the walk went through. */
struct pw_step {
	uint8_t *host;
	uint64_t gpa;
	unsigned int size; /* 4 or 8 bytes */
};

static uint64_t load_entry(const struct pw_step *s)
{
	if (s->size == 4)
		return __atomic_load_n((uint32_t *)(void *)s->host, __ATOMIC_ACQUIRE);
	return __atomic_load_n((uint64_t *)(void *)s->host, __ATOMIC_ACQUIRE);
}

/* Sets bits in an entry the guest may be changing on another vCPU, as the CPU does: an atomic
 * OR that leaves its other bits alone. */
static void set_bits(struct guest_mem *mem, const struct pw_step *s, uint64_t bits)
{
	uint64_t old;

	if (s->size == 4)
		old = __atomic_fetch_or((uint32_t *)(void *)s->host, (uint32_t)bits,
					__ATOMIC_ACQ_REL);
	else
		old = __atomic_fetch_or((uint64_t *)(void *)s->host, bits, __ATOMIC_ACQ_REL);
	if ((old & bits) != bits)
		memory_mark_dirty(mem, s->gpa, s->size);
}

bool pagewalk_canonical(const struct pw_cpu *cpu, uint64_t linear)
{
	int bits = (cpu->cr4 & CR4_LA57) ? 57 : 48;

	if (!(cpu->efer & EFER_LMA))
		return true;
	return (uint64_t)((int64_t)(linear << (64 - bits)) >> (64 - bits)) == linear;
}

/* Where the walk starts: the first table, its entry size and the number of levels. For PAE the
 * PDPTE (which has no access rights) is read here. Returns 0, -EFAULT with *err, or -EIO. */
static int walk_root(struct guest_mem *mem, const struct pw_cpu *cpu, uint64_t linear,
		     uint64_t *table, unsigned int *esize, int *levels, uint32_t *err)
{
	uint64_t pdpte;
	const uint8_t *p;

	if (cpu->efer & EFER_LMA) {
		*table = cpu->cr3 & PTE_ADDR;
		*esize = 8;
		*levels = (cpu->cr4 & CR4_LA57) ? 5 : 4;
		return 0;
	}
	if (!(cpu->cr4 & CR4_PAE)) {
		*table = cpu->cr3 & 0xfffff000ULL;
		*esize = 4;
		*levels = 2;
		return 0;
	}
	p = memory_gpa_ptr(mem, (cpu->cr3 & 0xffffffe0ULL) + ((linear >> 30) & 3) * 8, 8);
	if (!p)
		return -EIO;
	pdpte = __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_ACQUIRE);
	if (!(pdpte & PTE_P)) {
		*err = 0;
		return -EFAULT;
	}
	if ((pdpte & PDPTE_PAE_RSVD) || ((pdpte & PTE_NX) && !(cpu->efer & EFER_NXE))) {
		*err = PW_PF_PRESENT | PW_PF_RSVD;
		return -EFAULT;
	}
	*table = pdpte & PTE_ADDR;
	*esize = 8;
	*levels = 2;
	return 0;
}

/* Whether the entry at this level maps a page (rather than pointing to a table). */
static bool maps_page(const struct pw_cpu *cpu, uint64_t e, int level, unsigned int esize)
{
	if (level == 1)
		return true;
	if (!(e & PTE_PS))
		return false;
	if (esize == 4)
		return level == 2 && (cpu->cr4 & CR4_PSE);
	return level == 2 || level == 3;
}

static bool reserved_bits(const struct pw_cpu *cpu, uint64_t e, int level, unsigned int esize)
{
	if (esize == 4)
		return false;
	if ((e & PTE_NX) && !(cpu->efer & EFER_NXE))
		return true;
	/* PS is reserved in PML5 and PML4 entries. */
	return level >= 4 && (e & PTE_PS);
}

int pagewalk(struct guest_mem *mem, const struct pw_cpu *cpu, uint64_t linear, unsigned int access,
	     uint64_t *gpa, uint32_t *pf_error)
{
	bool write = access & PW_WRITE, user = cpu->cpl == 3;
	uint32_t kind = (write ? PW_PF_WRITE : 0) | (user ? PW_PF_USER : 0);
	struct pw_step steps[MAX_LEVELS];
	uint64_t table, e = 0, rights = PTE_RW | PTE_US;
	unsigned int esize;
	int levels, level, n = 0, ret;
	int shift = 12;

	*pf_error = 0;
	if (!(cpu->cr0 & CR0_PG)) {
		*gpa = linear & 0xffffffffULL;
		return 0;
	}
	ret = walk_root(mem, cpu, linear, &table, &esize, &levels, pf_error);
	if (ret) {
		*pf_error |= kind;
		return ret;
	}
	for (level = levels; level >= 1; level--) {
		struct pw_step *s = &steps[n++];
		unsigned int bits = esize == 8 ? 9 : 10;

		shift = 12 + (int)bits * (level - 1);
		s->size = esize;
		s->gpa = table + ((linear >> shift) & ((1u << bits) - 1)) * esize;
		s->host = memory_gpa_ptr(mem, s->gpa, esize);
		if (!s->host)
			return -EIO;
		e = load_entry(s);
		if (!(e & PTE_P)) {
			*pf_error = kind;
			return -EFAULT;
		}
		if (reserved_bits(cpu, e, level, esize)) {
			*pf_error = kind | PW_PF_PRESENT | PW_PF_RSVD;
			return -EFAULT;
		}
		rights &= e;
		if (maps_page(cpu, e, level, esize))
			break;
		table = e & (esize == 8 ? PTE_ADDR : 0xfffff000ULL);
	}

	/* Rights are the AND over all levels. A user access needs U/S everywhere, and R/W for a
	 * write; a supervisor write needs R/W only with CR0.WP; SMAP keeps the supervisor off
	 * user pages unless RFLAGS.AC is set. */
	if ((user && !(rights & PTE_US)) ||
	    (write && !(rights & PTE_RW) && (user || (cpu->cr0 & CR0_WP))) ||
	    (!user && (rights & PTE_US) && (cpu->cr4 & CR4_SMAP) && !(cpu->rflags & RFLAGS_AC))) {
		*pf_error = kind | PW_PF_PRESENT;
		return -EFAULT;
	}

	if (esize == 4 && level == 2)
		*gpa = (e & 0xffc00000ULL) | (((e >> 13) & 0xffULL) << 32);
	else
		*gpa = e & PTE_ADDR & ~((1ULL << shift) - 1);
	*gpa |= linear & ((1ULL << shift) - 1);
	for (int i = 0; i < n; i++)
		set_bits(mem, &steps[i], PTE_A | (write && i == n - 1 ? PTE_D : 0));
	return 0;
}
