/* SPDX-License-Identifier: MIT */
/* The virtio devices the machine can have, each on the virtio-pci transport. create() builds the
 * device and its PCI function (see virtio_pci_create); the returned pointer is what the
 * registry's device_ops take. Devices live as long as the machine and are never freed. */
#ifndef VIREO_VIRTIO_DEVICES_H
#define VIREO_VIRTIO_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "../devices/device.h"
#include "../net/net.h"
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

/* virtio-net (device ID 1) with the backend spec describes (a `--net` option: "user,..." or
 * "tap=NAME,..."); index is the NIC's number (default MAC address, log lines). Prints why and
 * returns -errno when the backend cannot be opened. */
int virtio_net_create(struct virtio_pci **out, const struct virtio_pci_host *host,
		      struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq, unsigned int index,
		      const char *spec);
extern const struct device_ops virtio_net_device_ops;

struct virtio_net_info {
	uint8_t mac[6];
	bool link_up;
	const char *backend; /* "user" or "tap" */
	unsigned long rx_frames, tx_frames, rx_dropped, tx_dropped;
};
/* Sets the link status the guest sees (a configuration change interrupt tells it); frames are
 * dropped both ways while the link is down. Any thread. */
int virtio_net_set_link(struct virtio_pci *vp, bool up);
void virtio_net_get_info(struct virtio_pci *vp, struct virtio_net_info *info);

#endif
