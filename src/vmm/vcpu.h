/* SPDX-License-Identifier: MIT */
/* One vCPU: its KVM fd and thread, set-up for each entry mode, kicks and profiling samples. */
#ifndef VIREO_VMM_VCPU_H
#define VIREO_VMM_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned int index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	unsigned long exits;
	unsigned long emulated; /* instructions completed by the VMM for the host's emulator */
	/* --profile: RIP samples taken when the profiler interrupts KVM_RUN. */
	bool sample_requested;
	uint64_t *samples;
	size_t nsamples, samples_cap;
};

int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned int index);
/* Fingerprint of the CPUID that vCPU 0 of this machine gets (cpuid_fingerprint()). */
uint64_t vcpu_cpuid_fingerprint(struct vm *vm);
int vcpu_setup_long_mode(struct vcpu *vcpu, uint64_t entry, uint64_t boot_params);
/* PVH entry: flat 32-bit protected mode, paging off, EBX = start info. */
int vcpu_setup_protected_mode(struct vcpu *vcpu, uint64_t entry, uint64_t start_info);
int vcpu_setup_real_mode(struct vcpu *vcpu, uint16_t cs, uint16_t ip, uint16_t sp);
void *vcpu_thread(void *arg);
void vcpu_kick(struct vcpu *vcpu);
/* --profile: interrupts KVM_RUN so the vCPU thread records its RIP. */
void vcpu_request_sample(struct vcpu *vcpu);
void vcpu_dump_regs(struct vcpu *vcpu);
void vcpu_destroy(struct vcpu *vcpu);

/* vCPU side of pause: parks the calling vCPU thread until resumed or stopped. */
void vcpu_park(struct vcpu *vcpu);

#endif
