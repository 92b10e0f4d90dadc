/* SPDX-License-Identifier: MIT */
/* Instruction completion for the host's emulator (PVM hosts). */
#ifndef VIREO_VMM_EXITS_H
#define VIREO_VMM_EXITS_H

struct vcpu;

/* Completes instructions the host's emulator refused. Returns 0 when the vCPU can go
 * on, -ENOTSUP (after explaining) when it cannot. */
int vcpu_handle_emulation_failure(struct vcpu *vcpu);

#endif
