/* SPDX-License-Identifier: MIT */
/* Reading and writing guest memory by linear (virtual) address from a vCPU's point of view. */
#ifndef VIREO_VMM_GUESTMEM_ACCESS_H
#define VIREO_VMM_GUESTMEM_ACCESS_H

#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

struct vcpu;

/* Translates a linear address through the guest's page tables (KVM_TRANSLATE). Returns 0 or
 * -EFAULT when not mapped. */
int guest_translate(struct vcpu *vcpu, const struct kvm_sregs *sregs, uint64_t linear,
		    uint64_t *gpa);
/* Copies up to len bytes; returns how many could be read before an unmapped page. Ignores
 * access rights (KVM_TRANSLATE does not report them): not for the data accesses of an
 * instruction the VMM completes (exits.c walks the page tables itself for those). */
int guest_read_virt(struct vcpu *vcpu, const struct kvm_sregs *sregs, uint64_t linear, void *buf,
		    size_t len);

#endif
