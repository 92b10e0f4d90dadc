// SPDX-License-Identifier: MIT
#include "pci.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/tlv.h"
#include "../common/util.h"
#include "../devices/bus.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040
#define VIRTIO_PCI_SUBSYS_DEVICE 0x1100

/* Config space: capabilities start at 0x40. */
#define CAP_MSIX 0x40
#define CAP_COMMON 0x50
#define CAP_ISR 0x60
#define CAP_NOTIFY 0x70
#define CAP_DEVICE 0x84

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_MASKED 1

/* Common configuration structure (virtio 1.x 4.1.4.3). */
#define COMMON_DFSELECT 0x00
#define COMMON_DF 0x04
#define COMMON_GFSELECT 0x08
#define COMMON_GF 0x0c
#define COMMON_MSIX 0x10
#define COMMON_NUMQ 0x12
#define COMMON_STATUS 0x14
#define COMMON_CFGGENERATION 0x15
#define COMMON_Q_SELECT 0x16
#define COMMON_Q_SIZE 0x18
#define COMMON_Q_MSIX 0x1a
#define COMMON_Q_ENABLE 0x1c
#define COMMON_Q_NOFF 0x1e
#define COMMON_Q_DESCLO 0x20
#define COMMON_Q_AVAILLO 0x28
#define COMMON_Q_USEDLO 0x30
#define COMMON_SIZE 0x38

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static void put_cap(struct pci_device *d, uint8_t at, uint8_t next, uint8_t type, uint32_t offset,
		    uint32_t length, uint8_t caplen)
{
	uint8_t *c = d->cfg + at;

	c[0] = PCI_CAP_ID_VNDR;
	c[1] = next;
	c[2] = caplen;
	c[3] = type;
	c[4] = VIRTIO_PCI_BAR;
	put_le32(c + 8, offset);
	put_le32(c + 12, length);
}

static void build_config_space(struct virtio_pci *vp)
{
	const struct virtio_device_ops *ops = vp->vdev.ops;
	struct pci_device *d = &vp->pci;
	uint8_t *bar = d->cfg + 0x10 + 4 * VIRTIO_PCI_BAR;
	uint8_t last = ops->config_size ? CAP_DEVICE : CAP_NOTIFY;

	pci_device_init(d, ops->name, VIRTIO_PCI_VENDOR,
			(uint16_t)(VIRTIO_PCI_DEVICE_BASE + ops->device_id), ops->pci_class,
			ops->pci_subclass, ops->pci_prog_if);
	d->cfg[0x06] = 0x10; /* status: capabilities list */
	d->cfg[0x08] = 1; /* revision 1: a modern (virtio 1.x) device */
	put_le16(d->cfg + 0x2c, VIRTIO_PCI_VENDOR);
	put_le16(d->cfg + 0x2e, VIRTIO_PCI_SUBSYS_DEVICE);
	d->cfg[0x34] = CAP_MSIX;
	d->cfg[0x3c] = (uint8_t)vp->intx_irq;
	d->cfg[0x3d] = 1; /* INTA# */

	/* BAR 4/5: 64-bit memory, not prefetchable (it holds the MSI-X table). The guest may write
	 * the address bits, which is also how it sizes the BAR. */
	put_le32(bar, (uint32_t)vp->bar_addr | 0x4);
	put_le32(bar + 4, (uint32_t)(vp->bar_addr >> 32));
	put_le32(d->wmask + 0x10 + 4 * VIRTIO_PCI_BAR, ~(uint32_t)(VIRTIO_PCI_BAR_SIZE - 1));
	put_le32(d->wmask + 0x14 + 4 * VIRTIO_PCI_BAR, 0xffffffff);

	d->cfg[CAP_MSIX] = PCI_CAP_ID_MSIX;
	d->cfg[CAP_MSIX + 1] = CAP_COMMON;
	put_le16(d->cfg + CAP_MSIX + 2, (uint16_t)(vp->nvectors - 1));
	d->wmask[CAP_MSIX + 3] = (MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL) >> 8;
	put_le32(d->cfg + CAP_MSIX + 4, VIRTIO_PCI_MSIX_TABLE_OFF | VIRTIO_PCI_BAR);
	put_le32(d->cfg + CAP_MSIX + 8, VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_BAR);

	put_cap(d, CAP_COMMON, CAP_ISR, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
		COMMON_SIZE, 16);
	put_cap(d, CAP_ISR, CAP_NOTIFY, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, 16);
	put_cap(d, CAP_NOTIFY, last == CAP_NOTIFY ? 0 : CAP_DEVICE, VIRTIO_PCI_CAP_NOTIFY_CFG,
		VIRTIO_PCI_NOTIFY_OFF, ops->num_queues * VIRTIO_PCI_NOTIFY_MULT, 20);
	put_le32(d->cfg + CAP_NOTIFY + 16, VIRTIO_PCI_NOTIFY_MULT);
	if (ops->config_size)
		put_cap(d, CAP_DEVICE, 0, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF,
			ops->config_size, 16);
}

/* ---- interrupts ---- */

static bool vector_masked(const struct virtio_pci *vp, unsigned int v)
{
	return vp->msix_masked || (vp->msix_table[v * 16 + 12] & MSIX_ENTRY_MASKED);
}

/* Hands changed routes to KVM, once for any number of table writes. Every interrupt goes out
 * through msix_send, which calls this first when its vector's route changed: the route KVM
 * uses is always the one in the table when the interrupt is sent. */
static void msix_commit(struct virtio_pci *vp)
{
	int ret;

	if (!vp->routes_dirty)
		return;
	vp->routes_dirty = 0;
	if (!vp->host->msi_commit)
		return;
	ret = vp->host->msi_commit(vp->host->opaque);
	if (ret)
		pr_warn("%s: MSI-X routes: %s", vp->vdev.ops->name, strerror(-ret));
}

static void msix_send(struct virtio_pci *vp, unsigned int v)
{
	uint64_t one = 1;

	if (vp->routes_dirty & (1u << v))
		msix_commit(vp);
	if (vp->vector_fd[v] < 0) {
		vp->msi_sent++;
		return;
	}
	if (write(vp->vector_fd[v], &one, sizeof(one)) < 0)
		pr_debug("%s: vector %u: %s", vp->vdev.ops->name, v, strerror(errno));
}

static void msix_signal(struct virtio_pci *vp, uint16_t v)
{
	if (v >= vp->nvectors)
		return;
	if (vector_masked(vp, v))
		vp->msix_pba |= 1ULL << v;
	else
		msix_send(vp, v);
}

/* Sends what became deliverable: pending vectors that are no longer masked. */
static void msix_flush_pending(struct virtio_pci *vp)
{
	if (!vp->msix_enabled)
		return;
	for (unsigned int v = 0; v < vp->nvectors; v++)
		if ((vp->msix_pba & (1ULL << v)) && !vector_masked(vp, v)) {
			vp->msix_pba &= ~(1ULL << v);
			msix_send(vp, v);
		}
}

static void msix_route(struct virtio_pci *vp, unsigned int v)
{
	const uint8_t *e = vp->msix_table + v * 16;
	int ret;

	if (!vp->host->msi_route || vp->vector_fd[v] < 0)
		return;
	ret = vp->host->msi_route(vp->host->opaque, vp->vector_gsi[v], get_le64(e),
				  get_le32(e + 8));
	if (ret)
		pr_warn("%s: MSI-X vector %u: route: %s", vp->vdev.ops->name, v, strerror(-ret));
	else
		vp->routes_dirty |= 1u << v;
}

static void intx_update(struct virtio_pci *vp)
{
	bool level = vp->isr && !vp->msix_enabled;

	if (level == vp->intx_level)
		return;
	vp->intx_level = level;
	if (vp->host->set_intx)
		vp->host->set_intx(vp->host->opaque, vp->intx_irq, level);
}

static void signal_queue(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_pci *vp = container_of(vdev, struct virtio_pci, vdev);

	if (vp->msix_enabled) {
		msix_signal(vp, vdev->queue_vector[q]);
		return;
	}
	vp->isr |= 1;
	intx_update(vp);
}

static void signal_config(struct virtio_dev *vdev)
{
	struct virtio_pci *vp = container_of(vdev, struct virtio_pci, vdev);

	if (vp->msix_enabled) {
		msix_signal(vp, vdev->config_vector);
		return;
	}
	vp->isr |= 2;
	intx_update(vp);
}

static const struct virtio_transport_ops pci_transport_ops = {
	.signal_queue = signal_queue,
	.signal_config = signal_config,
};

/* ---- common configuration ---- */

static struct virtq *selected_queue(struct virtio_pci *vp)
{
	return vp->queue_select < vp->vdev.ops->num_queues ? &vp->vdev.vqs[vp->queue_select] : NULL;
}

static void common_image(struct virtio_pci *vp, uint8_t img[COMMON_SIZE])
{
	struct virtio_dev *vdev = &vp->vdev;
	const struct virtq *vq = selected_queue(vp);
	uint64_t f = virtio_dev_features(vdev);

	memset(img, 0, COMMON_SIZE);
	put_le32(img + COMMON_DFSELECT, vp->device_feature_select);
	if (vp->device_feature_select < 2)
		put_le32(img + COMMON_DF, (uint32_t)(f >> (32 * vp->device_feature_select)));
	put_le32(img + COMMON_GFSELECT, vp->driver_feature_select);
	if (vp->driver_feature_select < 2)
		put_le32(img + COMMON_GF,
			 (uint32_t)(vdev->driver_features >> (32 * vp->driver_feature_select)));
	put_le16(img + COMMON_MSIX, vdev->config_vector);
	put_le16(img + COMMON_NUMQ, (uint16_t)vdev->ops->num_queues);
	img[COMMON_STATUS] = vdev->status;
	img[COMMON_CFGGENERATION] = vdev->config_generation;
	put_le16(img + COMMON_Q_SELECT, vp->queue_select);
	if (!vq)
		return;
	put_le16(img + COMMON_Q_SIZE, vq->size);
	put_le16(img + COMMON_Q_MSIX, vdev->queue_vector[vp->queue_select]);
	put_le16(img + COMMON_Q_ENABLE, vq->ready);
	put_le16(img + COMMON_Q_NOFF, vp->queue_select);
	put_le64(img + COMMON_Q_DESCLO, vq->desc_gpa);
	put_le64(img + COMMON_Q_AVAILLO, vq->avail_gpa);
	put_le64(img + COMMON_Q_USEDLO, vq->used_gpa);
}

static void transport_reset(struct virtio_pci *vp)
{
	vp->device_feature_select = vp->driver_feature_select = 0;
	vp->queue_select = 0;
	vp->isr = 0;
	intx_update(vp);
}

static void queue_enable(struct virtio_pci *vp, struct virtq *vq)
{
	int ret;

	if (vq->ready)
		return;
	ret = virtq_enable(vq);
	if (ret) {
		virtio_set_needs_reset(&vp->vdev, "queue enabled with a bad size or address", ret);
		return;
	}
	vq->ready = true;
}

static bool touches(uint32_t off, uint32_t len, uint32_t field, uint32_t size)
{
	return off < field + size && field < off + len;
}

/* The write is applied to an image of the registers, then each register it touched takes its
 * new value: that handles any access width, including 32-bit halves of the 64-bit addresses. */
static void common_write(struct virtio_pci *vp, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct virtio_dev *vdev = &vp->vdev;
	struct virtq *vq = selected_queue(vp);
	uint8_t img[COMMON_SIZE];

	common_image(vp, img);
	memcpy(img + off, data, len);
	if (touches(off, len, COMMON_DFSELECT, 4))
		vp->device_feature_select = get_le32(img + COMMON_DFSELECT);
	if (touches(off, len, COMMON_GFSELECT, 4))
		vp->driver_feature_select = get_le32(img + COMMON_GFSELECT);
	if (touches(off, len, COMMON_GF, 4) && vp->driver_feature_select < 2 &&
	    !(vdev->status & VIRTIO_STATUS_FEATURES_OK)) {
		unsigned int shift = 32 * vp->driver_feature_select;

		vdev->driver_features &= ~(0xffffffffULL << shift);
		vdev->driver_features |= (uint64_t)get_le32(img + COMMON_GF) << shift;
	}
	if (touches(off, len, COMMON_MSIX, 2)) {
		uint16_t v = get_le16(img + COMMON_MSIX);

		vdev->config_vector = v < vp->nvectors ? v : VIRTIO_NO_VECTOR;
	}
	if (touches(off, len, COMMON_STATUS, 1)) {
		virtio_dev_set_status(vdev, img[COMMON_STATUS]);
		if (!vdev->status)
			transport_reset(vp);
	}
	if (touches(off, len, COMMON_Q_SELECT, 2))
		vp->queue_select = get_le16(img + COMMON_Q_SELECT);
	if (!vq)
		return;
	if (touches(off, len, COMMON_Q_MSIX, 2)) {
		uint16_t v = get_le16(img + COMMON_Q_MSIX);

		vdev->queue_vector[vp->queue_select] = v < vp->nvectors ? v : VIRTIO_NO_VECTOR;
	}
	/* Size and addresses are fixed once the queue is enabled. */
	if (!vq->ready) {
		if (touches(off, len, COMMON_Q_SIZE, 2))
			vq->size = get_le16(img + COMMON_Q_SIZE);
		if (touches(off, len, COMMON_Q_DESCLO, 8))
			vq->desc_gpa = get_le64(img + COMMON_Q_DESCLO);
		if (touches(off, len, COMMON_Q_AVAILLO, 8))
			vq->avail_gpa = get_le64(img + COMMON_Q_AVAILLO);
		if (touches(off, len, COMMON_Q_USEDLO, 8))
			vq->used_gpa = get_le64(img + COMMON_Q_USEDLO);
	}
	if (touches(off, len, COMMON_Q_ENABLE, 2) && get_le16(img + COMMON_Q_ENABLE) == 1)
		queue_enable(vp, vq);
}

/* ---- the BAR ---- */

static bool bar_decoded(struct virtio_pci *vp)
{
	const uint8_t *cfg = vp->pci.cfg;
	uint64_t addr =
		((uint64_t)__atomic_load_n((const uint32_t *)(const void *)(cfg + 0x24),
					   __ATOMIC_RELAXED)
		 << 32) |
		(__atomic_load_n((const uint32_t *)(const void *)(cfg + 0x20), __ATOMIC_RELAXED) &
		 ~0xfu);

	if (!(__atomic_load_n(cfg + 0x04, __ATOMIC_RELAXED) & 0x2))
		return false;
	if (addr != vp->bar_addr) {
		if (!vp->bar_warned)
			pr_warn("%s: the guest moved BAR %d to %#llx; the device stays at %#llx "
				"and is unreachable",
				vp->vdev.ops->name, VIRTIO_PCI_BAR, (unsigned long long)addr,
				(unsigned long long)vp->bar_addr);
		vp->bar_warned = true;
		return false;
	}
	return true;
}

static void notify_write(struct virtio_pci *vp, unsigned int q)
{
	uint64_t one = 1;

	if (q >= vp->vdev.ops->num_queues)
		return;
	/* Usually KVM's ioeventfd takes the write before it gets here; otherwise hand it to
	 * the same path, so queues are always processed on the main loop. */
	if (vp->kicks[q].fd >= 0) {
		if (write(vp->kicks[q].fd, &one, sizeof(one)) < 0)
			pr_debug("%s: kick: %s", vp->vdev.ops->name, strerror(errno));
		return;
	}
	virtio_dev_process(&vp->vdev, q);
}

static void msix_table_write(struct virtio_pci *vp, uint32_t off, const uint8_t *data, uint32_t len)
{
	unsigned int v = off / 16;

	if (v >= vp->nvectors || (off % 16) + len > 16)
		return;
	memcpy(vp->msix_table + off, data, len);
	if (off % 16 < 12)
		msix_route(vp, v);
	msix_flush_pending(vp);
}

void virtio_pci_bar_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_pci *vp = opaque;
	const struct virtio_device_ops *ops = vp->vdev.ops;
	uint32_t off;

	if (!is_write)
		memset(data, 0, len);
	/* Naturally aligned accesses of 1, 2, 4 or 8 bytes only. */
	if (offset >= VIRTIO_PCI_BAR_SIZE || !len || len > 8 || (len & (len - 1)) ||
	    (offset & (len - 1)))
		return;
	pthread_mutex_lock(&vp->vdev.lock);
	if (!bar_decoded(vp)) {
		if (!is_write)
			memset(data, 0xff, len);
		goto out;
	}
	off = (uint32_t)offset;
	if (off < VIRTIO_PCI_COMMON_OFF + COMMON_SIZE) {
		if (off + len > COMMON_SIZE)
			goto out;
		if (is_write) {
			common_write(vp, off, data, len);
		} else {
			uint8_t img[COMMON_SIZE];

			common_image(vp, img);
			memcpy(data, img + off, len);
		}
	} else if (off == VIRTIO_PCI_ISR_OFF) {
		/* Reading the ISR acknowledges the interrupt. */
		if (!is_write) {
			data[0] = vp->isr;
			vp->isr = 0;
			intx_update(vp);
		}
	} else if (off >= VIRTIO_PCI_DEVICE_OFF && off < VIRTIO_PCI_DEVICE_OFF + ops->config_size) {
		off -= VIRTIO_PCI_DEVICE_OFF;
		if (off + len > ops->config_size)
			goto out;
		if (is_write && ops->config_write)
			ops->config_write(&vp->vdev, off, data, len);
		else if (!is_write && ops->config_read)
			ops->config_read(&vp->vdev, off, data, len);
	} else if (off >= VIRTIO_PCI_NOTIFY_OFF && off < VIRTIO_PCI_NOTIFY_OFF + 0x1000) {
		if (is_write)
			notify_write(vp, (off - VIRTIO_PCI_NOTIFY_OFF) / VIRTIO_PCI_NOTIFY_MULT);
	} else if (off >= VIRTIO_PCI_MSIX_TABLE_OFF && off < VIRTIO_PCI_MSIX_TABLE_OFF + 0x2000) {
		off -= VIRTIO_PCI_MSIX_TABLE_OFF;
		if (off / 16 >= vp->nvectors)
			goto out;
		if (is_write)
			msix_table_write(vp, off, data, len);
		else if ((off % 16) + len <= 16)
			memcpy(data, vp->msix_table + off, len);
	} else if (off >= VIRTIO_PCI_MSIX_PBA_OFF && off < VIRTIO_PCI_MSIX_PBA_OFF + 8) {
		if (!is_write) {
			uint8_t pba[8];

			put_le64(pba, vp->msix_pba);
			memcpy(data, pba + (off - VIRTIO_PCI_MSIX_PBA_OFF),
			       MIN(len, 8 - (off - VIRTIO_PCI_MSIX_PBA_OFF)));
		}
	}
out:
	pthread_mutex_unlock(&vp->vdev.lock);
}

/* MSI-X enable and function mask live in config space. */
static void msix_ctrl_update(struct virtio_pci *vp)
{
	uint16_t ctrl = get_le16(vp->pci.cfg + CAP_MSIX + 2);

	vp->msix_enabled = ctrl & MSIX_CTRL_ENABLE;
	vp->msix_masked = ctrl & MSIX_CTRL_MASKALL;
	intx_update(vp);
	msix_flush_pending(vp);
}

static void cfg_written(struct pci_device *dev, uint32_t offset, uint32_t len)
{
	struct virtio_pci *vp = dev->opaque;

	if (!touches(offset, len, CAP_MSIX + 2, 2))
		return;
	pthread_mutex_lock(&vp->vdev.lock);
	msix_ctrl_update(vp);
	pthread_mutex_unlock(&vp->vdev.lock);
}

/* A queue notification on the main loop. At most VIRTIO_PCI_KICK_BUDGET chains are taken
 * per call: a driver that refills the ring as fast as the device empties it would otherwise
 * hold the main loop (and the control socket it also serves) forever. What is left is
 * requeued by signalling the kick eventfd again, so the loop comes back after serving its
 * other ready fds. */
static void kick_ready(void *arg)
{
	struct virtio_pci_kick *k = arg;
	uint64_t v = 1;
	bool more;

	if (read(k->fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&k->vp->vdev.lock);
	more = virtio_dev_process_budget(&k->vp->vdev, k->q, VIRTIO_PCI_KICK_BUDGET);
	pthread_mutex_unlock(&k->vp->vdev.lock);
	v = 1;
	if (more) {
		k->vp->requeued++;
		if (write(k->fd, &v, sizeof(v)) < 0)
			pr_debug("%s: requeue: %s", k->vp->vdev.ops->name, strerror(errno));
	}
}

static int setup_vectors(struct virtio_pci *vp)
{
	const struct virtio_pci_host *h = vp->host;
	int ret;

	for (unsigned int v = 0; v < vp->nvectors; v++) {
		vp->vector_fd[v] = -1;
		vp->msix_table[v * 16 + 12] = MSIX_ENTRY_MASKED;
	}
	if (!h->msi_alloc || !h->msi_route || !h->irqfd)
		return 0;
	for (unsigned int v = 0; v < vp->nvectors; v++) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (fd < 0)
			return -errno;
		ret = h->msi_alloc(h->opaque, &vp->vector_gsi[v]);
		if (!ret)
			ret = h->irqfd(h->opaque, vp->vector_gsi[v], fd);
		if (ret) {
			close(fd);
			return ret;
		}
		vp->vector_fd[v] = fd;
	}
	return 0;
}

static uint64_t kick_gpa(const struct virtio_pci *vp, unsigned int q)
{
	return vp->bar_addr + VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * (uint64_t)q;
}

static int setup_kicks(struct virtio_pci *vp)
{
	const struct virtio_pci_host *h = vp->host;
	int ret;

	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->kicks[q] = (struct virtio_pci_kick){ vp, q, -1, false, false };
	if (!h->watch_fd)
		return 0;
	for (unsigned int q = 0; q < vp->vdev.ops->num_queues; q++) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (fd < 0)
			return -errno;
		vp->kicks[q].fd = fd;
		ret = h->watch_fd(h->opaque, fd, kick_ready, &vp->kicks[q]);
		if (ret)
			return ret;
		vp->kicks[q].watched = true;
		if (h->ioeventfd) {
			ret = h->ioeventfd(h->opaque, kick_gpa(vp, q), 2, fd, true);
			if (ret)
				return ret;
			vp->kicks[q].ioeventfd = true;
		}
	}
	return 0;
}

/* Undoes setup_vectors and setup_kicks after a failed create. The GSIs stay allocated (nothing
 * routes to them); closing an irqfd's eventfd detaches it in KVM. */
static void release_plumbing(struct virtio_pci *vp)
{
	const struct virtio_pci_host *h = vp->host;

	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct virtio_pci_kick *k = &vp->kicks[q];

		if (k->fd < 0)
			continue;
		if (k->ioeventfd)
			h->ioeventfd(h->opaque, kick_gpa(vp, q), 2, k->fd, false);
		if (k->watched && h->unwatch_fd)
			h->unwatch_fd(h->opaque, k->fd);
		close(k->fd);
		*k = (struct virtio_pci_kick){ vp, q, -1, false, false };
	}
	for (unsigned int v = 0; v < vp->nvectors; v++) {
		if (vp->vector_fd[v] >= 0)
			close(vp->vector_fd[v]);
		vp->vector_fd[v] = -1;
	}
}

int virtio_pci_create(struct virtio_pci *vp, const struct virtio_device_ops *ops, void *priv,
		      const struct virtio_pci_host *host, struct pci_bus *pci, struct bus *mmio,
		      uint32_t intx_irq)
{
	struct virtq_mem m = { host->mem, host->mark_dirty, host->opaque };
	int ret, slot;

	if (ops->num_queues > VIRTIO_MAX_QUEUES || ops->config_size > 0x1000 || !ops->queue_size ||
	    ops->queue_size > VIRTQ_MAX_SIZE || (ops->queue_size & (ops->queue_size - 1)))
		return -EINVAL;
	memset(vp, 0, sizeof(*vp));
	virtio_dev_init(&vp->vdev, ops, priv, &pci_transport_ops, &m);
	vp->host = host;
	vp->intx_irq = intx_irq;
	vp->nvectors = ops->num_queues + 1;
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->kicks[q].fd = -1;
	for (unsigned int v = 0; v < VIRTIO_PCI_MAX_VECTORS; v++)
		vp->vector_fd[v] = -1;
	ret = pci_bus_alloc_mmio(pci, VIRTIO_PCI_BAR_SIZE, &vp->bar_addr);
	if (ret)
		return ret;
	build_config_space(vp);
	vp->pci.cfg_written = cfg_written;
	vp->pci.opaque = vp;
	/* Interrupts and notifications first, the PCI slot and the MMIO range last: on any error
	 * nothing the machine keeps points at vp, and the caller may free it. */
	ret = setup_vectors(vp);
	if (!ret)
		ret = setup_kicks(vp);
	if (ret) {
		pr_err("%s: interrupt or notification setup: %s", ops->name, strerror(-ret));
		goto err_plumbing;
	}
	slot = pci_bus_add(pci, &vp->pci, 0);
	if (slot < 0) {
		ret = slot;
		goto err_plumbing;
	}
	if (mmio) {
		ret = bus_register(mmio, vp->bar_addr, VIRTIO_PCI_BAR_SIZE, virtio_pci_bar_io, vp,
				   ops->name);
		if (ret)
			goto err_slot;
	}
	return 0;
err_slot:
	pci->slots[slot] = NULL;
err_plumbing:
	release_plumbing(vp);
	return ret;
}

void virtio_pci_quiesce(void *dev)
{
	struct virtio_pci *vp = dev;

	pthread_mutex_lock(&vp->vdev.lock);
	virtio_dev_quiesce(&vp->vdev);
	pthread_mutex_unlock(&vp->vdev.lock);
}

void virtio_pci_resume(void *dev)
{
	struct virtio_pci *vp = dev;

	pthread_mutex_lock(&vp->vdev.lock);
	virtio_dev_resume(&vp->vdev);
	pthread_mutex_unlock(&vp->vdev.lock);
}

/* ---- state ---- */

/* Section fields (the section id is the device's). Tags from VIRTIO_TAG_DEVICE up are the
 * device's own. */
enum {
	VP_T_PCI_CONFIG = 1,
	VP_T_DEVICE_FEATURE_SELECT,
	VP_T_DRIVER_FEATURE_SELECT,
	VP_T_DRIVER_FEATURES,
	VP_T_STATUS,
	VP_T_CONFIG_GENERATION,
	VP_T_QUEUE_SELECT,
	VP_T_CONFIG_VECTOR,
	VP_T_ISR,
	VP_T_MSIX_TABLE,
	VP_T_MSIX_PBA,
	VP_T_QUEUE = 0x20, /* + queue index: virtq_encode() layout */
	VP_T_QUEUE_VECTOR = 0x40, /* + queue index: u16 */
};

int virtio_pci_save(void *dev, struct tlv_writer *w)
{
	struct virtio_pci *vp = dev;
	struct virtio_dev *vdev = &vp->vdev;
	int ret = 0;

	pthread_mutex_lock(&vdev->lock);
	pci_device_save_config(&vp->pci, w, VP_T_PCI_CONFIG);
	tlv_put_u32(w, VP_T_DEVICE_FEATURE_SELECT, vp->device_feature_select);
	tlv_put_u32(w, VP_T_DRIVER_FEATURE_SELECT, vp->driver_feature_select);
	tlv_put_u64(w, VP_T_DRIVER_FEATURES, vdev->driver_features);
	tlv_put_u8(w, VP_T_STATUS, vdev->status);
	tlv_put_u8(w, VP_T_CONFIG_GENERATION, vdev->config_generation);
	tlv_put_u16(w, VP_T_QUEUE_SELECT, vp->queue_select);
	tlv_put_u16(w, VP_T_CONFIG_VECTOR, vdev->config_vector);
	tlv_put_u8(w, VP_T_ISR, vp->isr);
	tlv_put(w, VP_T_MSIX_TABLE, vp->msix_table, vp->nvectors * 16);
	tlv_put_u64(w, VP_T_MSIX_PBA, vp->msix_pba);
	for (unsigned int q = 0; q < vdev->ops->num_queues; q++) {
		uint8_t buf[VIRTQ_STATE_LEN];

		virtq_encode(&vdev->vqs[q], buf);
		tlv_put(w, (uint16_t)(VP_T_QUEUE + q), buf, sizeof(buf));
		tlv_put_u16(w, (uint16_t)(VP_T_QUEUE_VECTOR + q), vdev->queue_vector[q]);
	}
	if (vdev->ops->save)
		ret = vdev->ops->save(vdev, w);
	pthread_mutex_unlock(&vdev->lock);
	return ret ? ret : w->err;
}

static int load_queues(struct virtio_pci *vp, const struct tlv_section *s)
{
	struct virtio_dev *vdev = &vp->vdev;
	struct tlv_field f;
	int ret;

	for (unsigned int q = 0; q < vdev->ops->num_queues; q++) {
		struct virtq *vq = &vdev->vqs[q];

		ret = tlv_get_u16(s, (uint16_t)(VP_T_QUEUE_VECTOR + q), &vdev->queue_vector[q]);
		if (ret)
			return ret;
		if (!tlv_find(s, (uint16_t)(VP_T_QUEUE + q), &f))
			continue;
		ret = virtq_decode(vq, f.data, f.len, vdev->ops->queue_size);
		if (ret)
			return ret;
		if (vq->ready && virtq_enable(vq))
			return -EINVAL;
	}
	return 0;
}

int virtio_pci_load(void *dev, const struct tlv_section *s)
{
	struct virtio_pci *vp = dev;
	struct virtio_dev *vdev = &vp->vdev;
	uint64_t one = 1;
	int ret;

	pthread_mutex_lock(&vdev->lock);
	ret = pci_device_load_config(&vp->pci, s, VP_T_PCI_CONFIG);
	if (!ret)
		ret = tlv_get_u32(s, VP_T_DEVICE_FEATURE_SELECT, &vp->device_feature_select);
	if (!ret)
		ret = tlv_get_u32(s, VP_T_DRIVER_FEATURE_SELECT, &vp->driver_feature_select);
	if (!ret)
		ret = tlv_get_u64(s, VP_T_DRIVER_FEATURES, &vdev->driver_features);
	if (!ret)
		ret = tlv_get_u8(s, VP_T_STATUS, &vdev->status);
	if (!ret)
		ret = tlv_get_u8(s, VP_T_CONFIG_GENERATION, &vdev->config_generation);
	if (!ret)
		ret = tlv_get_u16(s, VP_T_QUEUE_SELECT, &vp->queue_select);
	if (!ret)
		ret = tlv_get_u16(s, VP_T_CONFIG_VECTOR, &vdev->config_vector);
	if (!ret)
		ret = tlv_get_u8(s, VP_T_ISR, &vp->isr);
	if (!ret)
		ret = tlv_get_bytes(s, VP_T_MSIX_TABLE, vp->msix_table, vp->nvectors * 16);
	if (!ret)
		ret = tlv_get_u64(s, VP_T_MSIX_PBA, &vp->msix_pba);
	if (!ret)
		ret = load_queues(vp, s);
	if (!ret && vdev->ops->load)
		ret = vdev->ops->load(vdev, s);
	if (!ret) {
		/* KVM's routes and the interrupt line are rebuilt from the loaded state. */
		for (unsigned int v = 0; v < vp->nvectors; v++)
			msix_route(vp, v);
		msix_ctrl_update(vp);
		intx_update(vp);
	}
	pthread_mutex_unlock(&vdev->lock);
	/* Kick every queue once: notifications the guest sent just before the snapshot were
	 * not saved (the eventfd counts are host state), and processing an idle queue is
	 * harmless. */
	for (unsigned int q = 0; !ret && q < vdev->ops->num_queues; q++)
		if (vp->kicks[q].fd >= 0 && write(vp->kicks[q].fd, &one, sizeof(one)) < 0)
			pr_debug("%s: kick after load: %s", vdev->ops->name, strerror(errno));
	return ret;
}
