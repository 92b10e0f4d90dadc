/* SPDX-License-Identifier: MIT */
/* Interrupt routing, device notifications (irqfd, ioeventfd) and fds for the main loop. */
#ifndef VIREO_VMM_VMIO_H
#define VIREO_VMM_VMIO_H

#include <stdbool.h>
#include <stdint.h>

struct vm;

#define VM_MAX_ROUTES 128 /* GSI routing entries: 39 for the PICs and IOAPIC, the rest MSI */
#define VM_FIRST_MSI_GSI 24 /* after the IOAPIC's pins */
#define VM_MAX_WATCHES 64

/* An fd the main loop watches for a device (vm_watch_fd). */
struct vm_watch {
	int fd; /* -1: free */
	void (*cb)(void *arg);
	void *arg;
};

/* The ISA/IOAPIC routes, made explicit (called once, before any MSI route). */
int vm_irq_routing_init(struct vm *vm);
/* A GSI for one MSI source; its route is set by vm_msi_route. Returns 0 or -ENOSPC. */
int vm_msi_alloc(struct vm *vm, uint32_t *gsi);
/* Changes the route of an MSI GSI in the table only; vm_msi_commit hands the table to KVM
 * (one KVM_SET_GSI_ROUTING however many routes changed), which must happen before an interrupt
 * is sent on a changed route. */
int vm_msi_route(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data);
int vm_msi_commit(struct vm *vm);
/* Signalling fd injects GSI gsi (KVM_IRQFD). */
int vm_irqfd(struct vm *vm, uint32_t gsi, int fd);
/* Guest writes of len bytes at gpa signal fd instead of exiting (KVM_IOEVENTFD). */
int vm_ioeventfd(struct vm *vm, uint64_t gpa, uint32_t len, int fd, bool assign);
/* Calls cb(arg) on the main loop's thread while fd is readable (level-triggered). */
int vm_watch_fd(struct vm *vm, int fd, void (*cb)(void *arg), void *arg);
int vm_unwatch_fd(struct vm *vm, int fd);
/* Main loop: runs the callbacks of ready watched fds. */
void vm_dispatch_watches(struct vm *vm);

#endif
