/* SPDX-License-Identifier: MIT */
/* The virtio devices the machine can have, each on the virtio-pci transport. create() builds the
 * device and its PCI function (see virtio_pci_create); the returned pointer is what the
 * registry's device_ops take. Devices live as long as the machine and are never freed. */
#ifndef VIREO_VIRTIO_DEVICES_H
#define VIREO_VIRTIO_DEVICES_H

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

#endif
