// SPDX-License-Identifier: MIT
#include "memory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../common/util.h"

void memory_layout(struct guest_mem *mem, uint64_t ram_size)
{
	uint64_t low = MIN(ram_size, MEM_HOLE_START);

	memset(mem, 0, sizeof(*mem));
	mem->ram_size = ram_size;
	mem->regions[0] = (struct mem_region){ 0, low, NULL };
	mem->nregions = 1;
	if (ram_size > low) {
		mem->regions[1] = (struct mem_region){ MEM_HOLE_END, ram_size - low, NULL };
		mem->nregions = 2;
	}
}

void memory_attach(struct guest_mem *mem, uint8_t *host, uint64_t ram_size)
{
	memory_layout(mem, ram_size);
	mem->base = host;
	mem->regions[0].hva = host;
	if (mem->nregions > 1)
		mem->regions[1].hva = host + mem->regions[0].size;
}

int memory_alloc(struct guest_mem *mem, uint64_t ram_size, bool hugepages)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	size_t size = ram_size;
	void *p;

	if (hugepages) {
		/* Huge pages are reserved at mmap time (no MAP_NORESERVE): a pool too small then
		 * fails here with ENOMEM instead of a SIGBUS when the guest touches the page. */
		size = ALIGN_UP(size, 2 * MIB);
		flags = (flags & ~MAP_NORESERVE) | MAP_HUGETLB;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	/* Transparent huge pages where the host allows them; merging for KSM is the daemon's
	 * choice later. */
	if (!hugepages)
		madvise(p, size, MADV_HUGEPAGE);
	memory_attach(mem, p, ram_size);
	mem->map_size = size;
	mem->hugepages = hugepages;
	return 0;
}

int memory_map_fd(struct guest_mem *mem, int fd, uint64_t ram_size)
{
	void *p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	memory_attach(mem, p, ram_size);
	mem->map_size = ram_size;
	mem->file_backed = true;
	return 0;
}

void memory_free(struct guest_mem *mem)
{
	if (mem->base && mem->map_size)
		munmap(mem->base, mem->map_size);
	mem->base = NULL;
	mem->map_size = 0;
}

void *memory_gpa_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < mem->nregions; i++) {
		const struct mem_region *r = &mem->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->hva ? r->hva + (gpa - r->gpa) : NULL;
	}
	return NULL;
}

uint64_t memory_low_end(const struct guest_mem *mem)
{
	return mem->regions[0].size;
}

uint64_t memory_ram_offset(const struct guest_mem *mem, uint64_t gpa)
{
	uint64_t off = 0;

	for (int i = 0; i < mem->nregions; i++) {
		const struct mem_region *r = &mem->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return off + (gpa - r->gpa);
		off += r->size;
	}
	return UINT64_MAX;
}

int memory_dirty_start(struct guest_mem *mem)
{
	uint64_t words = (mem->ram_size / 4096 + 63) / 64;
	uint64_t *b = calloc(words, sizeof(uint64_t));

	if (!b)
		return -ENOMEM;
	__atomic_store_n(&mem->dirty, b, __ATOMIC_RELEASE);
	return 0;
}

void memory_dirty_stop(struct guest_mem *mem)
{
	uint64_t *b = __atomic_exchange_n(&mem->dirty, NULL, __ATOMIC_ACQ_REL);

	/* Writers load the pointer once per mark and only while the migration thread, which
	 * calls this, has the guest paused or has finished; see migrate.c. */
	free(b);
}

void memory_mark_dirty(struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t *b = __atomic_load_n(&mem->dirty, __ATOMIC_ACQUIRE);
	uint64_t off, end;

	if (!b || !len)
		return;
	off = memory_ram_offset(mem, gpa);
	if (off == UINT64_MAX)
		return;
	end = MIN(off + len, mem->ram_size);
	for (uint64_t p = off / 4096; p < (end + 4095) / 4096; p++)
		__atomic_fetch_or(&b[p / 64], 1ULL << (p % 64), __ATOMIC_RELAXED);
}

void memory_dirty_take(struct guest_mem *mem, uint64_t first, uint64_t n, uint64_t *out)
{
	uint64_t *b = __atomic_load_n(&mem->dirty, __ATOMIC_ACQUIRE);

	for (uint64_t i = 0; i < n / 64; i++)
		out[i] = b ? __atomic_exchange_n(&b[first / 64 + i], 0, __ATOMIC_ACQ_REL) : 0;
}

/* Budget of fresh anonymous mappings over file-backed RAM; the default vm.max_map_count is 65530
 * and the rest of the process needs some. */
#define MEMORY_MAX_DISCARD_MAPS 16384

static int discard_host(struct guest_mem *mem, uint8_t *p, size_t len)
{
	if (mem->file_backed && mem->discard_maps < MEMORY_MAX_DISCARD_MAPS) {
		/* Same address, so KVM's memslot keeps its hva and follows the new pages through
		 * its MMU notifier. The kernel checks the mapping count before it unmaps
		 * anything, so a failure leaves the old pages in place. */
		void *q = mmap(p, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);

		if (q != MAP_FAILED) {
			mem->discard_maps++;
			return 0;
		}
	}
	return madvise(p, len, MADV_DONTNEED) < 0 ? -errno : 0;
}

int64_t memory_discard(struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t page = mem->hugepages ? 2 * MIB : 4096;
	uint64_t start = ALIGN_UP(gpa, page), end;
	uint8_t *p;
	int ret;

	if (!len || gpa + len < gpa || !memory_gpa_ptr(mem, gpa, len))
		return -EINVAL;
	end = (gpa + len) & ~(page - 1);
	if (end <= start)
		return 0;
	p = memory_gpa_ptr(mem, start, end - start);
	if (!p || !mem->base)
		return -EINVAL;
	ret = discard_host(mem, p, end - start);
	if (ret)
		return ret;
	memory_mark_dirty(mem, start, end - start);
	return (int64_t)(end - start);
}
