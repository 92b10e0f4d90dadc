/* SPDX-License-Identifier: MIT */
/* The virtio devices the machine can have, each on the virtio-pci transport. create() builds the
 * device and its PCI function (see virtio_pci_create); the returned pointer is what the
 * registry's device_ops take. Devices live as long as the machine and are never freed. */
#ifndef VIREO_VIRTIO_DEVICES_H
#define VIREO_VIRTIO_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "../devices/device.h"
#include "pci.h"

/* virtio-rng (entropy, device ID 4): requests are filled from getrandom(). */
int virtio_rng_create(struct virtio_pci **out, const struct virtio_pci_host *host,
		      struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq);
extern const struct device_ops virtio_rng_device_ops;

/* virtio-console (device ID 3): one port (hvc0 in a Linux guest), backed by a unix socket the
 * VMM listens on (one client at a time) or by a file that receives the output. spec is
 * "socket:PATH" or "file:PATH". */
int virtio_console_create(struct virtio_pci **out, const struct virtio_pci_host *host,
			  struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq,
			  const char *spec);
extern const struct device_ops virtio_console_device_ops;

/* virtio-balloon (device ID 5): the control socket sets a target, the guest's driver inflates
 * (the pages go back to the host) or deflates towards it; memory statistics on request; free
 * page reporting. mem is the RAM that inflated and reported pages are discarded from. */
#define BALLOON_DEFLATE_ON_OOM 1u /* flags: offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
#define BALLOON_NR_STATS 10 /* VIRTIO_BALLOON_S_SWAP_IN .. S_HTLB_PGFAIL */
struct guest_mem;
struct balloon_status {
	uint64_t target_bytes, actual_bytes;
	uint64_t inflated_pages, deflated_pages; /* requests the driver made, in 4 KiB pages */
	uint64_t discarded_bytes; /* given back to the host on inflation */
	uint64_t reported_bytes; /* given back through free page reporting */
	uint64_t bad_pfns; /* pages outside RAM the driver named (ignored) */
	uint64_t stats[BALLOON_NR_STATS];
	uint32_t stats_mask; /* which stats the driver reported */
	uint64_t stats_updates;
	int64_t stats_age_ms; /* since the last update, -1: never */
	bool driver_ok;
	uint64_t features; /* negotiated */
};
extern const char *const virtio_balloon_stat_names[BALLOON_NR_STATS];
int virtio_balloon_create(struct virtio_pci **out, const struct virtio_pci_host *host,
			  struct guest_mem *mem, struct pci_bus *pci, struct bus *mmio,
			  uint32_t intx_irq, uint32_t flags);
/* Sets the target size of the balloon (<= RAM, else -ERANGE) and tells the driver. */
int virtio_balloon_set_target(struct virtio_pci *vp, uint64_t bytes);
/* Asks the driver for fresh statistics (they arrive asynchronously): 0, -EAGAIN when a request
 * is already out, -ENOTSUP when the driver does not use the statistics queue. */
int virtio_balloon_request_stats(struct virtio_pci *vp);
void virtio_balloon_get_status(struct virtio_pci *vp, struct balloon_status *st);
extern const struct device_ops virtio_balloon_device_ops;

/* virtio-vsock (device ID 19) for guest CID cid, in userspace: host programs reach guest ports
 * through the unix socket uds ("CONNECT <port>\n", answered "OK <host port>\n"), and guest
 * connections to CID 2 port P go to the unix socket uds_P (see vsock.c). uds may be NULL: no
 * host side, every connection is refused. */
int virtio_vsock_create(struct virtio_pci **out, const struct virtio_pci_host *host,
			struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq, uint32_t cid,
			const char *uds);
/* What the main loop does when the device's sockets are ready (tests call it directly). */
void virtio_vsock_poll(struct virtio_pci *vp);
/* Closes the device's sockets and frees it (tests; machines keep their devices). */
void virtio_vsock_destroy(struct virtio_pci *vp);
extern const struct device_ops virtio_vsock_device_ops;

#endif
