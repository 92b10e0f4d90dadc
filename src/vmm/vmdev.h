/* SPDX-License-Identifier: MIT */
/* Device wiring (vmdev.c). */
#ifndef VIREO_VMM_VMDEV_H
#define VIREO_VMM_VMDEV_H

struct vm;

/* Creates the platform devices and the virtio devices the configuration
 * asks for, registers their ranges on the buses and adds them to the registry (vm->devices).
 * Returns 0 or the first error, as it was: -EEXIST for an overlap, -ENOSPC when a table is
 * full. */
int vm_setup_devices(struct vm *vm);

#endif
