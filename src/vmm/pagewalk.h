/* SPDX-License-Identifier: MIT */
/* The guest's page tables walked in software, with the permission checks of a data access, for
 * instructions the VMM completes itself (exits.c). KVM_TRANSLATE is no substitute: it reports
 * every mapped page as writable and never says whether user mode may reach it. Pure (guest RAM
 * only, no KVM), so it is unit-tested on page tables built in a buffer. */
#ifndef VIREO_VMM_PAGEWALK_H
#define VIREO_VMM_PAGEWALK_H

#include <stdbool.h>
#include <stdint.h>

struct guest_mem;

/* The control register, EFER and RFLAGS bits the walk reads (struct pw_cpu). */
#define CR0_PE 1ULL
#define CR0_WP (1ULL << 16)
#define CR0_PG (1ULL << 31)
#define CR4_PSE (1ULL << 4)
#define CR4_PAE (1ULL << 5)
#define CR4_LA57 (1ULL << 12)
#define CR4_SMAP (1ULL << 21)
#define EFER_LMA (1ULL << 10)
#define EFER_NXE (1ULL << 11)
#define RFLAGS_AC (1ULL << 18)

/* The control state that decides how an address translates and who may access it. */
struct pw_cpu {
	uint64_t cr0, cr3, cr4, efer, rflags;
	unsigned int cpl; /* 0..3: 3 is user mode */
};

#define PW_WRITE 1u /* the access writes */

/* #PF error code bits (SDM vol. 3, 4.7). */
#define PW_PF_PRESENT 1u /* the page was present: a protection violation */
#define PW_PF_WRITE 2u
#define PW_PF_USER 4u
#define PW_PF_RSVD 8u

/* Translates linear for a data access (access: PW_WRITE or 0) as the CPU would, in every paging
 * mode (none, 32-bit with 4 MiB pages, PAE, 4- and 5-level), checking present, writable (with
 * CR0.WP), user (CPL 3) and SMAP (CR4.SMAP without RFLAGS.AC). On success sets the accessed
 * bits of the entries used and the dirty bit of the last for a write (marked dirty for
 * migration), stores the guest-physical address and returns 0. Returns -EFAULT with *pf_error
 * set when the CPU would raise #PF, or -EIO when a table lies outside RAM (the access cannot be
 * completed). Touches nothing on failure. */
int pagewalk(struct guest_mem *mem, const struct pw_cpu *cpu, uint64_t linear, unsigned int access,
	     uint64_t *gpa, uint32_t *pf_error);

/* Whether linear is canonical for the CPU's paging mode (48 bits, or 57 with CR4.LA57); outside
 * long mode every address is. A data access to a non-canonical address raises #GP(0). */
bool pagewalk_canonical(const struct pw_cpu *cpu, uint64_t linear);

#endif
