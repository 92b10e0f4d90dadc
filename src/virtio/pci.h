/* SPDX-License-Identifier: MIT */
/* The modern virtio-pci transport (virtio 1.x section 4.1): a PCI function with vendor-specific
 * capabilities pointing into one 64-bit memory BAR that holds the common configuration, ISR,
 * device configuration, queue notification registers and the MSI-X table and PBA.
 *
 * The BAR is given an address in the PCI MMIO window when the device is created and the MMIO
 * range and notification ioeventfds stay there: Linux keeps firmware-assigned BARs that lie in
 * the host bridge's window. A guest that moves the BAR elsewhere loses the device (warned
 * once); sizing, which writes all ones with decoding off, works. */
#ifndef VIREO_VIRTIO_PCI_H
#define VIREO_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "../devices/device.h"
#include "../devices/pci.h"
#include "virtio.h"

struct bus;
struct guest_mem;

#define VIRTIO_PCI_BAR 4 /* BARs 4 and 5: one 64-bit BAR */
#define VIRTIO_PCI_BAR_SIZE 0x8000
#define VIRTIO_PCI_COMMON_OFF 0x0000
#define VIRTIO_PCI_ISR_OFF 0x1000
#define VIRTIO_PCI_DEVICE_OFF 0x2000
#define VIRTIO_PCI_NOTIFY_OFF 0x3000
#define VIRTIO_PCI_NOTIFY_MULT 4 /* queue q is notified at NOTIFY_OFF + 4 * q */
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x4000
#define VIRTIO_PCI_MSIX_PBA_OFF 0x6000
#define VIRTIO_PCI_MAX_VECTORS (VIRTIO_MAX_QUEUES + 1)
/* Chains one queue notification processes on the main loop before it yields (see kick_ready). */
#define VIRTIO_PCI_KICK_BUDGET 256

/* What the machine provides. Every hook may be NULL (unit tests have no KVM): notifications then
 * run the device directly and interrupts are only counted. */
struct virtio_pci_host {
	void *opaque;
	const struct guest_mem *mem;
	void (*mark_dirty)(void *opaque, uint64_t gpa, uint64_t len);
	/* KVM_IOEVENTFD: writes of len bytes at gpa signal fd. */
	int (*ioeventfd)(void *opaque, uint64_t gpa, uint32_t len, int fd, bool assign);
	/* A GSI for one MSI-X vector, its route, and an irqfd on it. msi_route only records the
	 * route; msi_commit (may be NULL) hands every recorded change to KVM in one
	 * KVM_SET_GSI_ROUTING, and is called before an interrupt is sent on a changed route. */
	int (*msi_alloc)(void *opaque, uint32_t *gsi);
	int (*msi_route)(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data);
	int (*msi_commit)(void *opaque);
	int (*irqfd)(void *opaque, uint32_t gsi, int fd);
	/* INTx: the level of the function's interrupt line. */
	void (*set_intx)(void *opaque, uint32_t irq, int level);
	/* Calls cb(arg) from the main loop whenever fd is readable. */
	int (*watch_fd)(void *opaque, int fd, void (*cb)(void *arg), void *arg);
	int (*unwatch_fd)(void *opaque, int fd);
};

struct virtio_pci;

struct virtio_pci_kick {
	struct virtio_pci *vp;
	unsigned int q;
	int fd;
	bool watched, ioeventfd; /* registered with the host, undone by a failed create */
};

struct virtio_pci {
	struct virtio_dev vdev;
	struct pci_device pci;
	const struct virtio_pci_host *host;
	uint64_t bar_addr; /* where the BAR was placed and the MMIO range registered */
	uint32_t intx_irq;
	bool bar_warned;

	uint32_t device_feature_select, driver_feature_select;
	uint16_t queue_select;
	uint8_t isr;
	bool intx_level;

	/* MSI-X: table entries {le64 address, le32 data, le32 vector control}, pending bits, and
	 * the capability's enable and function-mask bits (cached from config space). */
	unsigned int nvectors;
	uint8_t msix_table[VIRTIO_PCI_MAX_VECTORS * 16];
	uint64_t msix_pba;
	bool msix_enabled, msix_masked;
	uint32_t vector_gsi[VIRTIO_PCI_MAX_VECTORS];
	/* Vectors whose route changed since the last msi_commit: a guest rewriting its table
	 * costs one KVM_SET_GSI_ROUTING, made before the next interrupt it sends. */
	uint32_t routes_dirty;
	int vector_fd[VIRTIO_PCI_MAX_VECTORS];
	unsigned long msi_sent; /* interrupts sent without an irqfd (tests) */

	struct virtio_pci_kick kicks[VIRTIO_MAX_QUEUES];
	unsigned long requeued; /* notifications that hit the budget and were requeued */
};

/* Builds the PCI function for a device, puts it on the PCI bus, places its BAR in the MMIO
 * window and registers it on mmio, and sets up notification and interrupt plumbing through
 * host. priv is the device's state (vdev->priv). Returns 0 or -errno; on error nothing refers
 * to vp any more (only its share of the MMIO window and its GSIs stay used) and the caller may
 * free it. */
int virtio_pci_create(struct virtio_pci *vp, const struct virtio_device_ops *ops, void *priv,
		      const struct virtio_pci_host *host, struct pci_bus *pci, struct bus *mmio,
		      uint32_t intx_irq);
/* The BAR's MMIO handler (offset relative to the BAR). */
void virtio_pci_bar_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* device_ops for the registry: each virtio device has its own section id. */
int virtio_pci_save(void *dev, struct tlv_writer *w);
int virtio_pci_load(void *dev, const struct tlv_section *s);
void virtio_pci_quiesce(void *dev);
void virtio_pci_resume(void *dev);
#define VIRTIO_PCI_DEVICE_OPS(name_, section_)                                                   \
	{                                                                                        \
		.name = (name_), .section_id = (section_), .version = 1, .min_version = 1,       \
		.save = virtio_pci_save, .load = virtio_pci_load, .quiesce = virtio_pci_quiesce, \
		.resume = virtio_pci_resume                                                      \
	}

#endif
