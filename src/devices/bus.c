// SPDX-License-Identifier: MIT
#include "bus.h"

#include <errno.h>
#include <string.h>

#include "../common/log.h"

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque,
		 const char *name)
{
	if (!len || base + len < base)
		return -EINVAL;
	for (int i = 0; i < bus->nranges; i++) {
		const struct bus_range *r = &bus->ranges[i];
		if (base < r->base + r->len && r->base < base + len) {
			pr_err("%s: %s [%#llx+%#llx] overlaps %s", bus->name, name,
			       (unsigned long long)base, (unsigned long long)len, r->name);
			return -EEXIST;
		}
	}
	if (bus->nranges == BUS_MAX_RANGES)
		return -ENOSPC;
	bus->ranges[bus->nranges++] = (struct bus_range){ base, len, fn, opaque, name };
	return 0;
}

bool bus_access(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	for (int i = 0; i < bus->nranges; i++) {
		const struct bus_range *r = &bus->ranges[i];
		if (addr >= r->base && addr - r->base < r->len) {
			r->fn(r->opaque, addr - r->base, data, len, is_write);
			return true;
		}
	}
	__atomic_add_fetch(&bus->unclaimed, 1, __ATOMIC_RELAXED);
	if (!is_write)
		memset(data, 0xff, len);
	pr_debug("%s: unclaimed %s of %u bytes at %#llx", bus->name, is_write ? "write" : "read",
		 len, (unsigned long long)addr);
	return false;
}
