// SPDX-License-Identifier: MIT
/*
 * qcow2 refcounts: lookup, cluster allocation (with new refcount blocks and a growing refcount
 * table), freeing, and the consistency check that rebuilds every refcount from the tables.
 * Every function here runs with s->lock held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "qcow2.h"

static uint64_t rb_get(const struct qcow2 *s, const uint8_t *rb, uint64_t i)
{
	uint32_t bits = 1u << s->refcount_order;

	switch (s->refcount_order) {
	case 3:
		return rb[i];
	case 4:
		return be16_get(rb + i * 2);
	case 5:
		return be32_get(rb + i * 4);
	case 6:
		return be64_get(rb + i * 8);
	default:
		return (rb[i * bits / 8] >> ((i * bits) % 8)) & ((1u << bits) - 1);
	}
}

/* Stores v and returns the byte offset and length within the block that changed. */
static void rb_set(const struct qcow2 *s, uint8_t *rb, uint64_t i, uint64_t v, uint64_t *at,
		   uint64_t *len)
{
	uint32_t bits = 1u << s->refcount_order, mask = (1u << (bits & 7)) - 1;

	switch (s->refcount_order) {
	case 3:
		rb[i] = (uint8_t)v;
		break;
	case 4:
		be16_put(rb + i * 2, (uint16_t)v);
		break;
	case 5:
		be32_put(rb + i * 4, (uint32_t)v);
		break;
	case 6:
		be64_put(rb + i * 8, v);
		break;
	default:
		rb[i * bits / 8] &= (uint8_t) ~(mask << ((i * bits) % 8));
		rb[i * bits / 8] |= (uint8_t)((v & mask) << ((i * bits) % 8));
		*at = i * bits / 8;
		*len = 1;
		return;
	}
	*at = i * (bits / 8);
	*len = bits / 8;
}

static uint64_t refcount_max(const struct qcow2 *s)
{
	return s->refcount_order == 6 ? UINT64_MAX : (1ULL << (1u << s->refcount_order)) - 1;
}

static bool rb_missing(const struct qcow2 *s, uint64_t t)
{
	return t >= s->reftable_size || !(s->reftable[t] & QCOW2_REFT_OFFSET_MASK);
}

int qcow2_get_refcount(struct qcow2 *s, uint64_t cluster, uint64_t *rc)
{
	uint64_t t = cluster / s->rb_entries;
	uint8_t *rb;
	int ret;

	if (rb_missing(s, t)) {
		*rc = 0;
		return 0;
	}
	ret = qcow2_cache_get(s, &s->rb_cache, s->reftable[t] & QCOW2_REFT_OFFSET_MASK, &rb);
	if (ret)
		return ret;
	*rc = rb_get(s, rb, cluster % s->rb_entries);
	return 0;
}

/* Adds delta to the refcounts of clusters [first, first + n), whose refcount blocks exist,
 * writing each block's changed bytes once. */
static int refcount_add(struct qcow2 *s, uint64_t first, uint64_t n, int64_t delta)
{
	while (n) {
		uint64_t t = first / s->rb_entries, i0 = first % s->rb_entries;
		uint64_t k = MIN(n, s->rb_entries - i0), lo = UINT64_MAX, hi = 0, off;
		uint8_t *rb;
		int ret;

		if (rb_missing(s, t)) {
			pr_err("qcow2: %s: no refcount block for cluster %llu\n", s->img->path,
			       (unsigned long long)first);
			return -EIO;
		}
		off = s->reftable[t] & QCOW2_REFT_OFFSET_MASK;
		ret = qcow2_cache_get(s, &s->rb_cache, off, &rb);
		if (ret)
			return ret;
		for (uint64_t i = i0; i < i0 + k; i++) {
			uint64_t v = rb_get(s, rb, i), at, len;

			if ((delta < 0 && v < (uint64_t)-delta) ||
			    (delta > 0 && v > refcount_max(s) - (uint64_t)delta)) {
				pr_err("qcow2: %s: refcount of cluster %llu would leave its "
				       "range\n",
				       s->img->path, (unsigned long long)(t * s->rb_entries + i));
				qcow2_cache_drop(&s->rb_cache, off);
				return -EIO;
			}
			rb_set(s, rb, i, v + (uint64_t)delta, &at, &len);
			lo = MIN(lo, at);
			hi = MAX(hi, at + len);
			if (v + (uint64_t)delta == 0)
				s->free_hint = MIN(s->free_hint, t * s->rb_entries + i);
		}
		ret = blk_full_pwrite(s->fd, rb + lo, hi - lo, off + lo);
		if (ret) {
			qcow2_cache_drop(&s->rb_cache, off);
			return ret;
		}
		first += k;
		n -= k;
	}
	return 0;
}

/*
 * Creates the refcount block for table index t_need, at the end of the file. The new blocks
 * must also count themselves, and when the table is too small a larger table is written after
 * them (also counted), switched to in the header, and the old one freed. Repeats the layout until
 * it covers itself.
 */
static int refcount_extend(struct qcow2 *s, uint64_t t_need)
{
	uint64_t cs = s->cluster_size, rbe = s->rb_entries, p = s->end_cluster;
	uint64_t nb_rb = 0, tab_clusters = 0, total = 0, lo = 0, hi = 0, *ts = NULL, nts = 0;
	uint8_t *blocks = NULL, *tab = NULL, hdr[12];
	int ret, iter;

	for (iter = 0; iter < 64; iter++) {
		uint64_t cnt = rb_missing(s, t_need), max_t, tc = 0;

		total = nb_rb + tab_clusters;
		lo = p / rbe;
		hi = (p + MAX(total, 1) - 1) / rbe;
		max_t = MAX(t_need, hi);
		for (uint64_t t = lo; t <= hi; t++)
			cnt += t != t_need && rb_missing(s, t);
		if (max_t >= s->reftable_size)
			tc = (MAX(max_t + 1, s->reftable_size * 2) * 8 + cs - 1) / cs;
		if (cnt == nb_rb && tc == tab_clusters)
			break;
		nb_rb = cnt;
		tab_clusters = tc;
	}
	if (iter == 64 || tab_clusters * cs > QCOW2_MAX_REFTABLE_BYTES)
		return -EFBIG;

	ts = calloc(nb_rb + 1, 8);
	blocks = calloc(nb_rb ? nb_rb : 1, cs);
	if (!ts || !blocks) {
		ret = -ENOMEM;
		goto out;
	}
	if (rb_missing(s, t_need))
		ts[nts++] = t_need;
	for (uint64_t t = lo; t <= hi; t++)
		if (t != t_need && rb_missing(s, t))
			ts[nts++] = t;
	/* Counts for the new clusters: inside the new blocks, or in blocks that exist. */
	for (uint64_t c = p; c < p + total; c++) {
		uint64_t k, at, len;

		for (k = 0; k < nts && ts[k] != c / rbe; k++)
			;
		if (k < nts)
			rb_set(s, blocks + k * cs, c % rbe, 1, &at, &len);
	}
	ret = blk_full_pwrite(s->fd, blocks, nb_rb * cs, p * cs);
	for (uint64_t c = p; !ret && c < p + total; c++)
		if (!rb_missing(s, c / rbe))
			ret = refcount_add(s, c, 1, 1);
	if (ret)
		goto out;

	if (!tab_clusters) {
		for (uint64_t k = 0; k < nts && !ret; k++) {
			uint8_t b[8];

			be64_put(b, (p + k) * cs);
			ret = blk_full_pwrite(s->fd, b, 8, s->reftable_offset + ts[k] * 8);
			if (!ret)
				s->reftable[ts[k]] = (p + k) * cs;
		}
		s->end_cluster = p + total;
		goto out;
	}

	uint64_t new_size = tab_clusters * cs / 8, old_off = s->reftable_offset;
	uint64_t old_clusters = s->reftable_clusters;
	uint64_t *mem = calloc(new_size, 8);

	tab = calloc(tab_clusters, cs);
	if (!mem || !tab) {
		free(mem);
		ret = -ENOMEM;
		goto out;
	}
	memcpy(mem, s->reftable, s->reftable_size * 8);
	for (uint64_t k = 0; k < nts; k++)
		mem[ts[k]] = (p + k) * cs;
	for (uint64_t i = 0; i < new_size; i++)
		be64_put(tab + i * 8, mem[i]);
	ret = blk_full_pwrite(s->fd, tab, tab_clusters * cs, (p + nb_rb) * cs);
	/* The new table must be durable before the header points at it. */
	if (!ret && fdatasync(s->fd) < 0)
		ret = -errno;
	if (!ret) {
		be64_put(hdr, (p + nb_rb) * cs);
		be32_put(hdr + 8, (uint32_t)tab_clusters);
		ret = blk_full_pwrite(s->fd, hdr, sizeof(hdr), QCOW2_HDR_REFTABLE_OFFSET);
	}
	if (!ret && fdatasync(s->fd) < 0)
		ret = -errno;
	if (ret) {
		free(mem);
		goto out;
	}
	free(s->reftable);
	s->reftable = mem;
	s->reftable_size = new_size;
	s->reftable_offset = (p + nb_rb) * cs;
	s->reftable_clusters = (uint32_t)tab_clusters;
	s->end_cluster = p + total;
	ret = qcow2_free_clusters(s, old_off, old_clusters);
out:
	free(tab);
	free(blocks);
	free(ts);
	return ret;
}

/* Clusters that hold fixed metadata are never handed out, whatever a damaged refcount says. */
static bool reserved(const struct qcow2 *s, uint64_t c)
{
	uint64_t off = c << s->cluster_bits, cs = s->cluster_size;

	return c == 0 || (off + cs > s->l1_offset && off < s->l1_offset + s->l1_size * 8ULL) ||
	       (off + cs > s->reftable_offset &&
		off < s->reftable_offset + (uint64_t)s->reftable_clusters * cs);
}

static int find_free_run(struct qcow2 *s, uint64_t n, uint64_t *start)
{
	uint64_t i = s->free_hint, run = 0, first_free = UINT64_MAX;

	while (run < n) {
		uint64_t rc = 1;
		int ret = 0;

		if (!reserved(s, i))
			ret = qcow2_get_refcount(s, i, &rc);
		if (ret)
			return ret;
		if (rc == 0) {
			if (!run)
				*start = i;
			run++;
			first_free = MIN(first_free, i);
		} else {
			run = 0;
		}
		i++;
		if (i >> (63 - s->cluster_bits))
			return -EFBIG;
	}
	s->free_hint = first_free;
	return 0;
}

int qcow2_alloc_clusters(struct qcow2 *s, uint64_t n, uint64_t *host_offset)
{
	uint64_t idx = 0;
	int ret;

	for (;;) {
		uint64_t t, missing = UINT64_MAX;

		ret = find_free_run(s, n, &idx);
		if (ret)
			return ret;
		for (t = idx / s->rb_entries; t <= (idx + n - 1) / s->rb_entries; t++) {
			if (rb_missing(s, t)) {
				missing = t;
				break;
			}
		}
		if (missing == UINT64_MAX)
			break;
		ret = refcount_extend(s, missing);
		if (ret)
			return ret;
	}
	ret = refcount_add(s, idx, n, 1);
	if (ret)
		return ret;
	if (s->free_hint == idx)
		s->free_hint = idx + n;
	s->end_cluster = MAX(s->end_cluster, idx + n);
	*host_offset = idx << s->cluster_bits;
	return 0;
}

int qcow2_free_clusters(struct qcow2 *s, uint64_t host_offset, uint64_t n)
{
	uint64_t first = host_offset >> s->cluster_bits;

	for (uint64_t i = 0; i < n; i++) {
		qcow2_cache_drop(&s->l2_cache, (first + i) << s->cluster_bits);
		qcow2_cache_drop(&s->rb_cache, (first + i) << s->cluster_bits);
	}
	return refcount_add(s, first, n, -1);
}

/* State of one check: refcounts rebuilt from the tables. */
struct check {
	struct qcow2 *s;
	uint32_t *ref;
	uint64_t nb;
	struct blk_check_result *res;
};

static void check_ref(struct check *ck, uint64_t off, uint64_t len, const char *what)
{
	uint64_t first = off >> ck->s->cluster_bits;
	uint64_t last = (off + len - 1) >> ck->s->cluster_bits;

	for (uint64_t c = first; len && c <= last; c++) {
		if (c >= ck->nb) {
			pr_warn("check: %s at 0x%llx is beyond the end of the file\n", what,
				(unsigned long long)off);
			ck->res->corruptions++;
			continue;
		}
		ck->ref[c]++;
	}
}

/* OFLAG_COPIED must be set exactly when the refcount is 1. */
static int check_copied(struct check *ck, uint64_t entry, uint64_t off, const char *what)
{
	uint64_t rc;
	int ret = qcow2_get_refcount(ck->s, off >> ck->s->cluster_bits, &rc);

	if (ret)
		return ret;
	if (!!(entry & QCOW2_OFLAG_COPIED) != (rc == 1)) {
		pr_warn("check: %s at 0x%llx: OFLAG_COPIED %s but refcount %llu\n", what,
			(unsigned long long)off, entry & QCOW2_OFLAG_COPIED ? "set" : "clear",
			(unsigned long long)rc);
		ck->res->corruptions++;
	}
	return 0;
}

static int check_l2(struct check *ck, uint64_t l2_off, uint8_t *t)
{
	struct qcow2 *s = ck->s;
	uint64_t cs = s->cluster_size;
	int ret = blk_full_pread(s->fd, t, cs, l2_off, true);

	for (uint64_t i = 0; !ret && i < s->l2_entries; i++) {
		uint64_t e = be64_get(t + i * 8), off = e & QCOW2_OFFSET_MASK, first, n;

		switch (qcow2_classify(s, e)) {
		case QCOW2_COMPRESSED:
			qcow2_compressed_range(s, e, &first, &n);
			check_ref(ck, first << s->cluster_bits, n * cs, "compressed cluster");
			break;
		case QCOW2_NORMAL:
		case QCOW2_ZERO:
			if (!off)
				break;
			if (off & (cs - 1)) {
				pr_warn("check: L2 entry 0x%llx not cluster-aligned\n",
					(unsigned long long)e);
				ck->res->corruptions++;
				break;
			}
			check_ref(ck, off, cs, "data cluster");
			ret = check_copied(ck, e, off, "data cluster");
			break;
		default:
			break;
		}
	}
	return ret;
}

/* Compares one stored refcount with the rebuilt one; repairs leaks when asked. */
static int check_compare(struct check *ck, uint64_t c, uint64_t stored, unsigned int flags)
{
	uint64_t want = c < ck->nb ? ck->ref[c] : 0;

	if (stored == want)
		return 0;
	if (stored < want) {
		pr_warn("check: cluster %llu refcount %llu, referenced %llu times\n",
			(unsigned long long)c, (unsigned long long)stored,
			(unsigned long long)want);
		ck->res->corruptions++;
		return 0;
	}
	if (!(flags & BLK_CHECK_REPAIR_LEAKS)) {
		ck->res->leaks++;
		return 0;
	}
	int ret = refcount_add(ck->s, c, 1, -(int64_t)(stored - want));

	if (!ret)
		ck->res->leaks_fixed++;
	return ret;
}

int qcow2_check(struct blk_image *img, unsigned int flags, struct blk_check_result *res)
{
	struct qcow2 *s = img->priv;
	struct check ck = { .s = s, .res = res };
	uint64_t cs = s->cluster_size;
	uint8_t *t = NULL;
	struct stat st;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	if (s->nb_snapshots) {
		blk_set_error("qcow2: %s: checking images with internal snapshots is not supported",
			      img->path);
		ret = -ENOTSUP;
		goto out;
	}
	if (fstat(s->fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	/* References past the end of the file are reported, not counted. */
	ck.nb = ALIGN_UP((uint64_t)st.st_size, cs) / cs;
	if (ck.nb > (1ULL << 30)) {
		blk_set_error("qcow2: %s: %llu clusters are too many to check", img->path,
			      (unsigned long long)ck.nb);
		ret = -EFBIG;
		goto out;
	}
	ck.ref = calloc(ck.nb, sizeof(*ck.ref));
	t = malloc(cs);
	if (!ck.ref || !t) {
		ret = -ENOMEM;
		goto out;
	}
	check_ref(&ck, 0, cs, "header");
	if (s->l1_size)
		check_ref(&ck, s->l1_offset, s->l1_size * 8ULL, "L1 table");
	check_ref(&ck, s->reftable_offset, s->reftable_clusters * cs, "refcount table");
	for (uint64_t i = 0; i < s->reftable_size; i++)
		if (!rb_missing(s, i))
			check_ref(&ck, s->reftable[i] & QCOW2_REFT_OFFSET_MASK, cs,
				  "refcount block");
	for (uint32_t i = 0; i < s->l1_size && !ret; i++) {
		uint64_t l2 = s->l1[i] & QCOW2_OFFSET_MASK;

		if (!l2)
			continue;
		check_ref(&ck, l2, cs, "L2 table");
		ret = check_copied(&ck, s->l1[i], l2, "L2 table");
		if (!ret)
			ret = check_l2(&ck, l2, t);
	}
	/* Stored refcounts: every block's entries, then referenced clusters without a block. */
	for (uint64_t b = 0; b < s->reftable_size && !ret; b++) {
		uint8_t *rb;

		if (rb_missing(s, b)) {
			for (uint64_t c = b * s->rb_entries;
			     c < MIN(ck.nb, (b + 1) * s->rb_entries); c++)
				ret = check_compare(&ck, c, 0, flags);
			continue;
		}
		for (uint64_t i = 0; i < s->rb_entries && !ret; i++) {
			ret = qcow2_cache_get(s, &s->rb_cache,
					      s->reftable[b] & QCOW2_REFT_OFFSET_MASK, &rb);
			if (!ret)
				ret = check_compare(&ck, b * s->rb_entries + i, rb_get(s, rb, i),
						    flags);
		}
	}
	for (uint64_t c = s->reftable_size * s->rb_entries; c < ck.nb && !ret; c++)
		ret = check_compare(&ck, c, 0, flags);
	for (uint64_t c = 0; c < ck.nb; c++) {
		if (ck.ref[c]) {
			res->allocated_clusters++;
			res->image_end_offset = (c + 1) * cs;
		}
	}
	res->total_clusters = (img->size + cs - 1) / cs;
	if (res->leaks_fixed)
		s->free_hint = 0;
out:
	pthread_mutex_unlock(&s->lock);
	free(t);
	free(ck.ref);
	return ret;
}
