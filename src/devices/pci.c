// SPDX-License-Identifier: MIT
#include "pci.h"

#include <errno.h>
#include <string.h>

#include "../common/tlv.h"

/* Host bridge IDs: Red Hat's generic PCIe host bridge ID, which Linux binds no driver to. */
#define HOST_BRIDGE_VENDOR 0x1b36
#define HOST_BRIDGE_DEVICE 0x0008

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void pci_device_init(struct pci_device *dev, const char *name, uint16_t vendor, uint16_t device,
		     uint8_t class, uint8_t subclass, uint8_t prog_if)
{
	memset(dev, 0, sizeof(*dev));
	dev->name = name;
	put16(dev->cfg + 0x00, vendor);
	put16(dev->cfg + 0x02, device);
	dev->cfg[0x09] = prog_if;
	dev->cfg[0x0a] = subclass;
	dev->cfg[0x0b] = class;
	/* command: I/O, memory, bus master, INTx disable are the guest's to set */
	put16(dev->wmask + 0x04, 0x0407);
	dev->wmask[0x0c] = 0xff; /* cache line size */
	dev->wmask[0x0d] = 0xff; /* latency timer */
	dev->wmask[0x3c] = 0xff; /* interrupt line */
}

void pci_bus_init(struct pci_bus *bus)
{
	memset(bus, 0, sizeof(*bus));
	pthread_mutex_init(&bus->lock, NULL);
	pci_device_init(&bus->host_bridge, "host-bridge", HOST_BRIDGE_VENDOR, HOST_BRIDGE_DEVICE,
			0x06, 0x00, 0x00);
	bus->slots[0] = &bus->host_bridge;
	bus->mmio_next = PCI_MMIO32_BASE;
}

int pci_bus_alloc_mmio(struct pci_bus *bus, uint64_t size, uint64_t *addr)
{
	uint64_t a = (bus->mmio_next + size - 1) & ~(size - 1);

	if (!size || (size & (size - 1)) || a + size > PCI_MMIO32_BASE + PCI_MMIO32_SIZE)
		return -ENOSPC;
	*addr = a;
	bus->mmio_next = a + size;
	return 0;
}

int pci_bus_add(struct pci_bus *bus, struct pci_device *dev, int slot)
{
	if (slot > 0) {
		if (slot >= PCI_SLOTS)
			return -EINVAL;
		if (bus->slots[slot])
			return -EBUSY;
		bus->slots[slot] = dev;
		return slot;
	}
	for (int i = 1; i < PCI_SLOTS; i++) {
		if (!bus->slots[i]) {
			bus->slots[i] = dev;
			return i;
		}
	}
	return -ENOSPC;
}

void pci_config_access(struct pci_bus *bus, unsigned int devfn, uint32_t offset, uint8_t *data,
		       uint32_t len, bool is_write)
{
	struct pci_device *dev;

	/* Single-function devices only: functions 1-7 are absent. */
	dev = (devfn & 7) ? NULL : bus->slots[(devfn >> 3) & 31];
	if (len > 4 || offset + len > PCI_CFG_SIZE || (offset & (len - 1))) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (!dev) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&bus->lock);
	if (is_write) {
		for (uint32_t i = 0; i < len; i++) {
			uint8_t m = dev->wmask[offset + i];
			dev->cfg[offset + i] =
				(uint8_t)((dev->cfg[offset + i] & ~m) | (data[i] & m));
		}
	} else {
		memcpy(data, dev->cfg + offset, len);
	}
	pthread_mutex_unlock(&bus->lock);
	if (is_write && dev->cfg_written)
		dev->cfg_written(dev, offset, len);
}

void pci_io_port(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *bus = opaque;
	uint32_t addr;

	if (offset < 4) {
		/* The address register is 32-bit only; byte accesses go elsewhere on a PC. */
		if (offset != 0 || len != 4) {
			if (!is_write)
				memset(data, 0xff, len);
			return;
		}
		if (is_write) {
			memcpy(&addr, data, 4);
			__atomic_store_n(&bus->config_address, addr & 0x80fffffc, __ATOMIC_RELAXED);
		} else {
			addr = __atomic_load_n(&bus->config_address, __ATOMIC_RELAXED);
			memcpy(data, &addr, 4);
		}
		return;
	}
	addr = __atomic_load_n(&bus->config_address, __ATOMIC_RELAXED);
	if (!(addr & 0x80000000) || ((addr >> 16) & 0xff) != 0) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pci_config_access(bus, (addr >> 8) & 0xff, (addr & 0xfc) + (uint32_t)(offset - 4), data,
			  len, is_write);
}

void pci_ecam_mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *bus = opaque;

	pci_config_access(bus, (unsigned int)(offset >> 12) & 0xff, (uint32_t)(offset & 0xfff),
			  data, len, is_write);
}

void pci_device_save_config(struct pci_device *dev, struct tlv_writer *w, uint16_t tag)
{
	tlv_put(w, tag, dev->cfg, PCI_CFG_SIZE);
}

int pci_device_load_config(struct pci_device *dev, const struct tlv_section *s, uint16_t tag)
{
	struct tlv_field f;

	if (!tlv_find(s, tag, &f))
		return 0;
	if (f.len != PCI_CFG_SIZE)
		return -EINVAL;
	/* Only what the guest could have written is taken: IDs and capabilities stay this
	 * build's. */
	for (unsigned int i = 0; i < PCI_CFG_SIZE; i++)
		dev->cfg[i] =
			(uint8_t)((dev->cfg[i] & ~dev->wmask[i]) | (f.data[i] & dev->wmask[i]));
	return 0;
}

/* Section SECTION_PCI_BUS, version 1: the address latch and the host bridge. Devices on the bus
 * save their own configuration space in their sections. */
enum {
	PCI_T_CONFIG_ADDRESS = 1,
	PCI_T_HOST_BRIDGE_CFG,
};

static int pci_bus_save(void *dev, struct tlv_writer *w)
{
	struct pci_bus *bus = dev;

	pthread_mutex_lock(&bus->lock);
	tlv_put_u32(w, PCI_T_CONFIG_ADDRESS, bus->config_address);
	pci_device_save_config(&bus->host_bridge, w, PCI_T_HOST_BRIDGE_CFG);
	pthread_mutex_unlock(&bus->lock);
	return w->err;
}

static int pci_bus_load(void *dev, const struct tlv_section *s)
{
	struct pci_bus *bus = dev;
	int ret;

	pthread_mutex_lock(&bus->lock);
	ret = tlv_get_u32(s, PCI_T_CONFIG_ADDRESS, &bus->config_address);
	if (!ret)
		ret = pci_device_load_config(&bus->host_bridge, s, PCI_T_HOST_BRIDGE_CFG);
	pthread_mutex_unlock(&bus->lock);
	return ret;
}

const struct device_ops pci_bus_device_ops = {
	.name = "pci-bus",
	.section_id = SECTION_PCI_BUS,
	.version = 1,
	.min_version = 1,
	.save = pci_bus_save,
	.load = pci_bus_load,
};
