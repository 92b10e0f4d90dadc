/* SPDX-License-Identifier: MIT */
/* Port-I/O and MMIO dispatch. Ranges are registered before the vCPUs start and never change
 * afterwards, so lookups from vCPU threads take no lock; each device locks its own state. */
#ifndef VIREO_DEVICES_BUS_H
#define VIREO_DEVICES_BUS_H

#include <stdbool.h>
#include <stdint.h>

/* offset is relative to the range base; data holds len bytes (1, 2, 4 or 8), little endian. */
typedef void (*bus_io_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			  bool is_write);

#define BUS_MAX_RANGES 64

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_io_fn fn;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name;
	struct bus_range ranges[BUS_MAX_RANGES];
	int nranges;
	/* Accesses no device claimed: reads return all ones, writes are dropped. */
	unsigned long unclaimed;
};

void bus_init(struct bus *bus, const char *name);
/* Returns 0, -EEXIST for an overlap, -ENOSPC when full. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque,
		 const char *name);
/* Returns true when a device claimed the access. */
bool bus_access(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
