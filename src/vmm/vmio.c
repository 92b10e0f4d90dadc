// SPDX-License-Identifier: MIT
/* Interrupt routing (the ISA/IOAPIC table plus MSI routes), irqfds and ioeventfds, and fds the
 * main loop watches for devices. The devices themselves are wired in vmdev.c. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "vmio.h"
#include "vm.h"

static int set_routes(struct vm *vm)
{
	struct {
		struct kvm_irq_routing hdr;
		struct kvm_irq_routing_entry e[VM_MAX_ROUTES];
	} r;

	memset(&r, 0, sizeof(r));
	vm->routing_sets++;
	r.hdr.nr = vm->nroutes;
	memcpy(r.e, vm->routes, vm->nroutes * sizeof(r.e[0]));
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, &r) < 0) {
		int err = -errno;

		pr_err("KVM_SET_GSI_ROUTING: %s", strerror(-err));
		return err;
	}
	return 0;
}

/* The default GSI routing made explicit: ISA IRQs to both PICs and the IOAPIC, 16-23 to the
 * IOAPIC only. MSI routes are appended by vm_msi_route. */
int vm_irq_routing_init(struct vm *vm)
{
	unsigned int n = 0;

	pthread_mutex_init(&vm->irq_lock, NULL);
	memset(vm->routes, 0, sizeof(vm->routes));
	for (uint32_t gsi = 0; gsi < VM_FIRST_MSI_GSI; gsi++) {
		if (gsi < 16 && gsi != 2) {
			vm->routes[n].gsi = gsi;
			vm->routes[n].type = KVM_IRQ_ROUTING_IRQCHIP;
			vm->routes[n].u.irqchip.irqchip =
				gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
			vm->routes[n].u.irqchip.pin = gsi % 8;
			n++;
		}
		vm->routes[n].gsi = gsi;
		vm->routes[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		vm->routes[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		/* ISA IRQ 0 (the PIT) is wired to IOAPIC pin 2, as the MADT override says. */
		vm->routes[n].u.irqchip.pin = gsi == 0 ? 2 : gsi == 2 ? 0 : gsi;
		n++;
	}
	vm->nroutes = n;
	vm->next_msi_gsi = VM_FIRST_MSI_GSI;
	return set_routes(vm);
}

int vm_msi_alloc(struct vm *vm, uint32_t *gsi)
{
	int ret = 0;

	pthread_mutex_lock(&vm->irq_lock);
	if (vm->next_msi_gsi - VM_FIRST_MSI_GSI + 39 >= VM_MAX_ROUTES)
		ret = -ENOSPC;
	else
		*gsi = vm->next_msi_gsi++;
	pthread_mutex_unlock(&vm->irq_lock);
	return ret;
}

int vm_msi_route(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct kvm_irq_routing_entry *e = NULL;

	pthread_mutex_lock(&vm->irq_lock);
	for (unsigned int i = 0; i < vm->nroutes; i++)
		if (vm->routes[i].gsi == gsi && vm->routes[i].type == KVM_IRQ_ROUTING_MSI)
			e = &vm->routes[i];
	if (!e) {
		if (vm->nroutes == VM_MAX_ROUTES) {
			pthread_mutex_unlock(&vm->irq_lock);
			return -ENOSPC;
		}
		e = &vm->routes[vm->nroutes++];
		memset(e, 0, sizeof(*e));
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_MSI;
	} else if (e->u.msi.address_lo == (uint32_t)addr &&
		   e->u.msi.address_hi == (uint32_t)(addr >> 32) && e->u.msi.data == data) {
		pthread_mutex_unlock(&vm->irq_lock);
		return 0;
	}
	e->u.msi.address_lo = (uint32_t)addr;
	e->u.msi.address_hi = (uint32_t)(addr >> 32);
	e->u.msi.data = data;
	vm->routes_dirty = true;
	pthread_mutex_unlock(&vm->irq_lock);
	return 0;
}

int vm_msi_commit(struct vm *vm)
{
	int ret = 0;

	pthread_mutex_lock(&vm->irq_lock);
	if (vm->routes_dirty) {
		ret = set_routes(vm);
		if (!ret)
			vm->routes_dirty = false;
	}
	pthread_mutex_unlock(&vm->irq_lock);
	return ret;
}

int vm_irqfd(struct vm *vm, uint32_t gsi, int fd)
{
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fd, .gsi = gsi };

	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return -errno;
	return 0;
}

int vm_ioeventfd(struct vm *vm, uint64_t gpa, uint32_t len, int fd, bool assign)
{
	struct kvm_ioeventfd io = {
		.addr = gpa,
		.len = len,
		.fd = fd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
		return -errno;
	return 0;
}

int vm_watch_fd(struct vm *vm, int fd, void (*cb)(void *arg), void *arg)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ret = -ENOSPC;

	if (vm->watch_ep < 0)
		return -EBADF;
	pthread_mutex_lock(&vm->watch_lock);
	for (unsigned int i = 0; i < VM_MAX_WATCHES; i++) {
		if (vm->watches[i].cb)
			continue;
		ev.data.u64 = i;
		ret = 0;
		if (epoll_ctl(vm->watch_ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			ret = -errno;
		else
			vm->watches[i] = (struct vm_watch){ fd, cb, arg };
		break;
	}
	pthread_mutex_unlock(&vm->watch_lock);
	return ret;
}

int vm_unwatch_fd(struct vm *vm, int fd)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&vm->watch_lock);
	for (unsigned int i = 0; i < VM_MAX_WATCHES; i++)
		if (vm->watches[i].cb && vm->watches[i].fd == fd) {
			vm->watches[i] = (struct vm_watch){ -1, NULL, NULL };
			ret = epoll_ctl(vm->watch_ep, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
			break;
		}
	pthread_mutex_unlock(&vm->watch_lock);
	return ret;
}

void vm_dispatch_watches(struct vm *vm)
{
	struct epoll_event evs[16];
	int n = epoll_wait(vm->watch_ep, evs, 16, 0);

	for (int i = 0; i < n; i++) {
		struct vm_watch w;

		/* Copied under the lock and called without it: callbacks take their device's
		 * lock and may (un)watch fds themselves. An fd unwatched meanwhile can still see
		 * one late callback, which finds nothing to read. */
		pthread_mutex_lock(&vm->watch_lock);
		w = vm->watches[evs[i].data.u64];
		pthread_mutex_unlock(&vm->watch_lock);
		if (w.cb)
			w.cb(w.arg);
	}
}
