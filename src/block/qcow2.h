/* SPDX-License-Identifier: MIT */
/* qcow2 driver internals shared by qcow2.c (header, open, create), qcow2_io.c (cluster mapping,
 * guest I/O) and qcow2_refcount.c (refcounts, allocation, check). */
#ifndef VIREO_BLOCK_QCOW2_H
#define VIREO_BLOCK_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk_int.h"

#define QCOW2_MAGIC 0x514649fbU
#define QCOW2_HDR_V2_LEN 72
#define QCOW2_HDR_V3_LEN 112
/* Byte offsets of the header fields rewritten in place. */
#define QCOW2_HDR_REFTABLE_OFFSET 48 /* u64 offset then u32 clusters */
#define QCOW2_HDR_INCOMPAT 72
#define QCOW2_HDR_AUTOCLEAR 88

#define QCOW2_INCOMPAT_DIRTY (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ULL << 4)

#define QCOW2_EXT_END 0
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acaU
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857U

#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ULL /* L1 and L2 entries */
#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ULL
#define QCOW2_OFLAG_COPIED (1ULL << 63)
#define QCOW2_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW2_OFLAG_ZERO 1ULL

/* Limits that keep a hostile header from making us allocate gigabytes (same as QEMU's). */
#define QCOW2_MAX_L1_BYTES (32ULL << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8ULL << 20)
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21

/* Write-through cache of cluster-sized metadata tables (L2 tables, refcount blocks), kept in
 * on-disk (big-endian) form. Eviction only drops: every change is written when made. */
struct qcow2_cache_entry {
	uint64_t offset; /* 0: empty slot */
	uint64_t lru;
	uint8_t *data;
};

struct qcow2_cache {
	struct qcow2_cache_entry *e;
	int n;
	uint64_t tick;
};

/* Cluster classes of L2 entries. */
enum qcow2_ctype {
	QCOW2_UNALLOCATED, /* from the backing file, zeros without one */
	QCOW2_ZERO,
	QCOW2_NORMAL,
	QCOW2_COMPRESSED,
};

/* A guest data transfer in progress outside s->lock: the host clusters it reads or writes. Lives
 * on the stack of the thread doing the transfer, linked in s->inflight while it runs. */
struct qcow2_inflight {
	uint64_t first, n;
	struct qcow2_inflight *prev, *next;
};

/* Host clusters unmapped while a transfer touched them: freed once none does. */
struct qcow2_deferred_free {
	uint64_t first, n;
};

struct qcow2 {
	/* Guards everything below that changes after open: L1, caches, refcounts, header, the
	 * in-flight list and the deferred frees. */
	pthread_mutex_t lock;
	struct blk_image *img;
	int fd;
	uint32_t version;
	uint32_t cluster_bits;
	uint64_t cluster_size;
	uint64_t l2_entries;
	uint32_t refcount_order;
	uint64_t rb_entries; /* refcounts per refcount block */
	uint32_t header_length;
	uint64_t incompat, compat, autoclear;
	uint32_t nb_snapshots;
	uint8_t compression_type;

	uint64_t *l1; /* host order */
	uint32_t l1_size;
	uint64_t l1_offset;

	uint64_t *reftable; /* host order */
	uint64_t reftable_size; /* entries */
	uint64_t reftable_offset;
	uint32_t reftable_clusters;

	/* Compressed cluster descriptors: host offset in bits [0, csize_shift), then sectors. */
	uint32_t csize_shift;
	uint64_t csize_mask;

	uint64_t end_cluster; /* first cluster index past the file and every allocation */
	uint64_t free_hint; /* no free cluster below this index */
	struct qcow2_cache l2_cache, rb_cache;

	struct qcow2_inflight *inflight;
	struct qcow2_deferred_free *deferred;
	size_t ndeferred, deferred_cap;
};

static inline uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}
static inline uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint16_t be16_get(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}
static inline void be32_put(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}
static inline void be16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint64_t qcow2_offset_to_cluster(const struct qcow2 *s, uint64_t off)
{
	return off >> s->cluster_bits;
}

/* qcow2_io.c */
int qcow2_cache_init(struct qcow2_cache *c, int n, uint64_t cluster_size);
void qcow2_cache_free(struct qcow2_cache *c);
/* Returns the table at offset, reading it if it is not cached. */
int qcow2_cache_get(struct qcow2 *s, struct qcow2_cache *c, uint64_t offset, uint8_t **data);
/* Caches a table that was just written as data (a new, zeroed one). */
void qcow2_cache_put(struct qcow2 *s, struct qcow2_cache *c, uint64_t offset, const uint8_t *data);
void qcow2_cache_drop(struct qcow2_cache *c, uint64_t offset);
enum qcow2_ctype qcow2_classify(const struct qcow2 *s, uint64_t l2e);
int qcow2_mark_dirty(struct qcow2 *s);
int qcow2_preadv(struct blk_image *img, const struct iovec *iov, int iovcnt, uint64_t off);
int qcow2_pwritev(struct blk_image *img, const struct iovec *iov, int iovcnt, uint64_t off);
int qcow2_discard(struct blk_image *img, uint64_t off, uint64_t len);
int qcow2_write_zeroes(struct blk_image *img, uint64_t off, uint64_t len);
int qcow2_block_status(struct blk_image *img, uint64_t off, uint64_t len, uint64_t *pnum);
/* Frees every deferred free whose clusters no transfer touches any more; s->lock held. */
void qcow2_run_deferred_frees(struct qcow2 *s);
/* Host clusters [first, first + n) that a compressed L2 entry covers. */
void qcow2_compressed_range(const struct qcow2 *s, uint64_t l2e, uint64_t *first, uint64_t *n);

/* qcow2_refcount.c; all with s->lock held. */
int qcow2_get_refcount(struct qcow2 *s, uint64_t cluster, uint64_t *rc);
/* Allocates n contiguous clusters with refcount 1 (written before return). */
int qcow2_alloc_clusters(struct qcow2 *s, uint64_t n, uint64_t *host_offset);
/* Drops one reference from each of n clusters from host_offset. */
int qcow2_free_clusters(struct qcow2 *s, uint64_t host_offset, uint64_t n);
int qcow2_check(struct blk_image *img, unsigned int flags, struct blk_check_result *res);

#endif
