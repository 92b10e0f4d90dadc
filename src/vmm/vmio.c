// SPDX-License-Identifier: MIT
/* Interrupt routing (the ISA/IOAPIC table plus MSI routes), irqfds and ioeventfds, fds the main
 * loop watches for devices, and the virtio devices' view of all that (struct virtio_pci_host). */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../virtio/devices.h"
#include "vm.h"

/* INTx lines for virtio functions, by creation order: ISA IRQs with no other user, which Linux
 * takes from the Interrupt Line register when ACPI has no _PRT (MSI-X is the normal path).
 * Functions past the fourth share lines round-robin: only the INTx fallback would notice. */
static const uint32_t virtio_intx_irqs[] = { 10, 11, 5, 9 };

/* Functions beyond the fourth share lines: INTx is only the fallback without MSI-X. */
static uint32_t intx_irq(unsigned int *n)
{
	return virtio_intx_irqs[(*n)++ % ARRAY_SIZE(virtio_intx_irqs)];
}

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

/* ---- the virtio devices' host ---- */

static int host_ioeventfd(void *opaque, uint64_t gpa, uint32_t len, int fd, bool assign)
{
	return vm_ioeventfd(opaque, gpa, len, fd, assign);
}

static int host_msi_alloc(void *opaque, uint32_t *gsi)
{
	return vm_msi_alloc(opaque, gsi);
}

static int host_msi_route(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data)
{
	return vm_msi_route(opaque, gsi, addr, data);
}

static int host_msi_commit(void *opaque)
{
	return vm_msi_commit(opaque);
}

static int host_irqfd(void *opaque, uint32_t gsi, int fd)
{
	return vm_irqfd(opaque, gsi, fd);
}

static void host_set_intx(void *opaque, uint32_t irq, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		pr_debug("KVM_IRQ_LINE %u: %s", irq, strerror(errno));
}

/* Device writes to guest RAM, for the migration's dirty page tracking. */
static void host_mark_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
	struct vm *vm = opaque;

	memory_mark_dirty(&vm->mem, gpa, len);
}

static int host_watch_fd(void *opaque, int fd, void (*cb)(void *arg), void *arg)
{
	return vm_watch_fd(opaque, fd, cb, arg);
}

static int host_unwatch_fd(void *opaque, int fd)
{
	return vm_unwatch_fd(opaque, fd);
}

int vm_setup_virtio(struct vm *vm,
		    int (*add)(struct vm *vm, const struct device_ops *ops, void *dev))
{
	unsigned int nirq = 0;
	int ret = 0;

	vm->virtio_host = (struct virtio_pci_host){
		.opaque = vm,
		.mem = &vm->mem,
		.mark_dirty = host_mark_dirty,
		.ioeventfd = host_ioeventfd,
		.msi_alloc = host_msi_alloc,
		.msi_route = host_msi_route,
		.msi_commit = host_msi_commit,
		.irqfd = host_irqfd,
		.set_intx = host_set_intx,
		.watch_fd = host_watch_fd,
		.unwatch_fd = host_unwatch_fd,
	};
	if (vm->cfg->virtio_rng) {
		ret = virtio_rng_create(&vm->virtio_rng, &vm->virtio_host, &vm->pci, &vm->mmio,
					intx_irq(&nirq));
		if (!ret)
			ret = add(vm, &virtio_rng_device_ops, vm->virtio_rng);
		if (ret) {
			pr_err("virtio-rng: %s", strerror(-ret));
			return ret;
		}
	}
	if (vm->cfg->virtio_console) {
		ret = virtio_console_create(&vm->virtio_console, &vm->virtio_host, &vm->pci,
					    &vm->mmio, intx_irq(&nirq), vm->cfg->virtio_console);
		if (!ret)
			ret = add(vm, &virtio_console_device_ops, vm->virtio_console);
		if (ret) {
			pr_err("virtio-console %s: %s", vm->cfg->virtio_console, strerror(-ret));
			return ret;
		}
	}
	if (vm->cfg->balloon) {
		ret = virtio_balloon_create(&vm->virtio_balloon, &vm->virtio_host, &vm->mem,
					    &vm->pci, &vm->mmio, intx_irq(&nirq),
					    vm->cfg->balloon_flags);
		if (!ret)
			ret = add(vm, &virtio_balloon_device_ops, vm->virtio_balloon);
		if (ret) {
			pr_err("virtio-balloon: %s", strerror(-ret));
			return ret;
		}
	}
	if (vm->cfg->vsock) {
		ret = virtio_vsock_create(&vm->virtio_vsock, &vm->virtio_host, &vm->pci, &vm->mmio,
					  intx_irq(&nirq), vm->cfg->vsock_cid, vm->cfg->vsock_uds);
		if (!ret)
			ret = add(vm, &virtio_vsock_device_ops, vm->virtio_vsock);
		if (ret) {
			pr_err("virtio-vsock %s: %s", vm->cfg->vsock, strerror(-ret));
			return ret;
		}
	}
	for (unsigned int i = 0; i < vm->cfg->ndisks; i++) {
		struct virtio_blk_opts opts;
		char overlay[4096];

		ret = vm_disk_prepare(vm, i, &opts, overlay, sizeof(overlay));
		if (ret)
			return ret;
		ret = virtio_blk_create(&vm->virtio_blk[i], &vm->virtio_host, &vm->pci, &vm->mmio,
					intx_irq(&nirq), &opts);
		if (!ret) {
			vm->ndisks = i + 1;
			ret = add(vm, &virtio_blk_device_ops, vm->virtio_blk[i]);
		}
		if (ret) {
			pr_err("--disk %s: cannot use it: %s", opts.path,
			       ret == -ENOSPC ? "too many devices" : strerror(-ret));
			return ret;
		}
	}
	for (unsigned int i = 0; i < vm->cfg->nnet; i++) {
		/* virtio_net_create says what went wrong with the backend itself. */
		ret = virtio_net_create(&vm->virtio_net[i], &vm->virtio_host, &vm->pci, &vm->mmio,
					intx_irq(&nirq), i, vm->cfg->net[i]);
		if (ret)
			return ret;
		vm->nnet++;
		ret = add(vm, &virtio_net_device_ops, vm->virtio_net[i]);
		if (ret) {
			pr_err("virtio-net%u: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}
