/* SPDX-License-Identifier: MIT */
/* PCI bus 0: configuration mechanism #1 (ports 0xCF8/0xCFC) and ECAM (MMIO), a host bridge at
 * 00:00.0, and slots for devices with their own config space. */
#ifndef VIREO_DEVICES_PCI_H
#define VIREO_DEVICES_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "device.h"

#define PCI_ECAM_BASE 0xe0000000ULL
#define PCI_ECAM_SIZE (1ULL << 20) /* bus 0 only */
#define PCI_MMIO32_BASE 0xc0000000ULL
#define PCI_MMIO32_SIZE 0x20000000ULL /* up to the ECAM window */
#define PCI_CONFIG_PORT 0xcf8
#define PCI_SLOTS 32
#define PCI_CFG_SIZE 4096

struct pci_device {
	const char *name;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may change */
	/* Optional hook after the guest wrote config space (BAR moves, command changes). */
	void (*cfg_written)(struct pci_device *dev, uint32_t offset, uint32_t len);
	void *opaque;
};

struct pci_bus {
	pthread_mutex_t lock;
	uint32_t config_address; /* last value written to 0xCF8 */
	struct pci_device *slots[PCI_SLOTS];
	struct pci_device host_bridge;
	uint64_t mmio_next; /* BAR placement in the 32-bit MMIO window */
};

void pci_bus_init(struct pci_bus *bus);
/* Puts a device in a free slot (or the one asked for, slot > 0). Returns the slot or -errno. */
int pci_bus_add(struct pci_bus *bus, struct pci_device *dev, int slot);
/* Places a memory BAR of size bytes (a power of two) in the 32-bit MMIO window, naturally
 * aligned, as firmware would. Called while the machine is built. Returns 0 or -ENOSPC. */
int pci_bus_alloc_mmio(struct pci_bus *bus, uint64_t size, uint64_t *addr);
/* Fills the standard header of a type-0 function. */
void pci_device_init(struct pci_device *dev, const char *name, uint16_t vendor, uint16_t device,
		     uint8_t class, uint8_t subclass, uint8_t prog_if);
/* Reads/writes config space of bus 0 (used by both access mechanisms). */
void pci_config_access(struct pci_bus *bus, unsigned int devfn, uint32_t offset, uint8_t *data,
		       uint32_t len, bool is_write);
/* Bus callbacks: ports 0xCF8-0xCFF and the ECAM window. */
void pci_io_port(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void pci_ecam_mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

struct tlv_writer;
struct tlv_section;
/* A device's configuration space as one field of its section, and back (guest-writable bits
 * only). */
void pci_device_save_config(struct pci_device *dev, struct tlv_writer *w, uint16_t tag);
int pci_device_load_config(struct pci_device *dev, const struct tlv_section *s, uint16_t tag);
extern const struct device_ops pci_bus_device_ops;

#endif
