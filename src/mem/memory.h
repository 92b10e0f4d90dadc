/* SPDX-License-Identifier: MIT */
/* Guest RAM: one anonymous host mapping, shown to the guest as up to two slots split around the
 * 32-bit MMIO hole (3 GiB .. 4 GiB) when RAM is larger than 3 GiB. */
#ifndef VIREO_MEM_MEMORY_H
#define VIREO_MEM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEM_HOLE_START 0xc0000000ULL /* 3 GiB: PCI MMIO, ECAM, IOAPIC, LAPIC above */
#define MEM_HOLE_END 0x100000000ULL /* 4 GiB */

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	struct mem_region regions[2];
	int nregions;
	uint64_t ram_size;
	uint8_t *base; /* host mapping of all RAM, owned here */
	size_t map_size;
	bool hugepages;
	/* RAM is a private mapping of a file (memory_map_fd): a page dropped with MADV_DONTNEED
	 * would read back the file's content, so memory_discard maps fresh zero pages instead. */
	bool file_backed;
	/* Fresh mappings made by memory_discard over file-backed RAM: each may split a VMA, and a
	 * process has a limited number, so past a budget discards fall back to MADV_DONTNEED. */
	unsigned int discard_maps;
	/* While a migration runs: one bit per 4 KiB page of RAM (linear offset, low RAM first)
	 * that the VMM itself wrote, which KVM's dirty log cannot see. */
	uint64_t *dirty;
};

/* Splits ram_size into regions (no mapping). Pure, for tests and for memory_alloc. */
void memory_layout(struct guest_mem *mem, uint64_t ram_size);
/* Maps RAM (MAP_NORESERVE; MAP_HUGETLB with hugepages). Returns 0 or -errno. */
int memory_alloc(struct guest_mem *mem, uint64_t ram_size, bool hugepages);
/* Maps RAM copy-on-write from a file holding it byte for byte (a snapshot's memory file):
 * pages are read when the guest first touches them, and writes stay private to this VM. */
int memory_map_fd(struct guest_mem *mem, int fd, uint64_t ram_size);
/* Uses caller-owned host memory instead (tests). */
void memory_attach(struct guest_mem *mem, uint8_t *host, uint64_t ram_size);
void memory_free(struct guest_mem *mem);
/* Host pointer for [gpa, gpa+len) if the whole range is RAM in one region, else NULL. */
void *memory_gpa_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);
/* Linear RAM offset of gpa (the index into base and into a snapshot's memory file), or
 * UINT64_MAX when gpa is not RAM. */
uint64_t memory_ram_offset(const struct guest_mem *mem, uint64_t gpa);
/* Dirty tracking of VMM writes to guest RAM (migration). start allocates the bitmap; mark is
 * called by every VMM write to guest memory and costs one load when tracking is off; take
 * moves the marks for pages [first, first + n) into out (n a multiple of 64, first too). */
int memory_dirty_start(struct guest_mem *mem);
void memory_dirty_stop(struct guest_mem *mem);
void memory_mark_dirty(struct guest_mem *mem, uint64_t gpa, uint64_t len);
void memory_dirty_take(struct guest_mem *mem, uint64_t first, uint64_t n, uint64_t *out);
/* Gives the host pages wholly inside guest RAM [gpa, gpa + len) back to the host (balloon, free
 * page reporting): they read as zero afterwards (or, past the mapping budget of file-backed
 * RAM, as the snapshot file's content, which a guest must not rely on either way) and cost no
 * memory until the guest touches them. Partial host pages at either end are kept (2 MiB with
 * hugepages). The range is marked dirty for a running migration. Returns the bytes discarded,
 * or -EINVAL when the range is not RAM, or -errno from the kernel. */
int64_t memory_discard(struct guest_mem *mem, uint64_t gpa, uint64_t len);
/* End of RAM below the hole (the low region's end). */
uint64_t memory_low_end(const struct guest_mem *mem);

#endif
