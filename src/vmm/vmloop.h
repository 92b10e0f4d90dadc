/* SPDX-License-Identifier: MIT */
/* The main loop of a running VM. */
#ifndef VIREO_VMM_VMLOOP_H
#define VIREO_VMM_VMLOOP_H

struct vm;

/* Starts the vCPUs and runs the main loop until the VM stops; returns the exit status. */
int vm_run(struct vm *vm);

#endif
