// SPDX-License-Identifier: MIT
/*
 * qcow2 guest I/O: metadata caches, cluster mapping, reads (with backing files and compressed
 * clusters), allocating writes with copy-on-write, discard and write-zeroes.
 *
 * Locking: s->lock is held to look up or change L1/L2/refcounts. Reads and writes to clusters
 * that are already allocated move data outside the lock; writes that allocate hold it until the
 * data and the new L2 entries are on their way, so two writers never allocate the same cluster.
 *
 * A transfer outside the lock must not meet a discard (or a copy-on-write, or write-zeroes) that
 * unmaps its host clusters, frees them, and lets the allocator hand them out again as another
 * guest cluster or an L2 table: the transfer would then read foreign data or, for a write,
 * overwrite it. So a transfer registers its host cluster range in s->inflight under the lock, in
 * the same critical section that looked up the mapping, and unregisters it after moving the data.
 * Dropping a reference to clusters that a registered transfer touches is deferred (the refcount
 * stays, nothing maps them, the allocator cannot take them) until the last such transfer ends,
 * which runs the deferred frees. The fast path pays one more short lock round per transfer and
 * no allocation (the list node lives on the stack); only a discard racing with I/O on the same
 * clusters waits, and it does not block. See docs/images.md, "Concurrency model".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../common/log.h"
#include "../common/util.h"
#include "qcow2.h"

int qcow2_cache_init(struct qcow2_cache *c, int n, uint64_t cluster_size)
{
	c->e = calloc((size_t)n, sizeof(*c->e));
	if (!c->e)
		return -ENOMEM;
	c->n = n;
	for (int i = 0; i < n; i++) {
		c->e[i].data = malloc(cluster_size);
		if (!c->e[i].data)
			return -ENOMEM;
	}
	return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
	for (int i = 0; c->e && i < c->n; i++)
		free(c->e[i].data);
	free(c->e);
	c->e = NULL;
}

static struct qcow2_cache_entry *cache_slot(struct qcow2_cache *c, uint64_t offset, bool *hit)
{
	struct qcow2_cache_entry *victim = &c->e[0];

	for (int i = 0; i < c->n; i++) {
		if (c->e[i].offset == offset) {
			*hit = true;
			c->e[i].lru = ++c->tick;
			return &c->e[i];
		}
		if (c->e[i].lru < victim->lru)
			victim = &c->e[i];
	}
	*hit = false;
	victim->offset = 0;
	victim->lru = ++c->tick;
	return victim;
}

int qcow2_cache_get(struct qcow2 *s, struct qcow2_cache *c, uint64_t offset, uint8_t **data)
{
	bool hit;
	struct qcow2_cache_entry *e = cache_slot(c, offset, &hit);
	int ret;

	if (!hit) {
		/* Tables past the end of file read as zeros, like a fresh table. */
		ret = blk_full_pread(s->fd, e->data, s->cluster_size, offset, true);
		if (ret)
			return ret;
		e->offset = offset;
	}
	*data = e->data;
	return 0;
}

void qcow2_cache_put(struct qcow2 *s, struct qcow2_cache *c, uint64_t offset, const uint8_t *data)
{
	bool hit;
	struct qcow2_cache_entry *e = cache_slot(c, offset, &hit);

	memcpy(e->data, data, s->cluster_size);
	e->offset = offset;
}

void qcow2_cache_drop(struct qcow2_cache *c, uint64_t offset)
{
	for (int i = 0; i < c->n; i++)
		if (c->e[i].offset == offset)
			c->e[i].offset = 0;
}

enum qcow2_ctype qcow2_classify(const struct qcow2 *s, uint64_t l2e)
{
	if (l2e & QCOW2_OFLAG_COMPRESSED)
		return QCOW2_COMPRESSED;
	if (s->version >= 3 && (l2e & QCOW2_OFLAG_ZERO))
		return QCOW2_ZERO;
	if (!(l2e & QCOW2_OFFSET_MASK))
		return QCOW2_UNALLOCATED;
	return QCOW2_NORMAL;
}

int qcow2_mark_dirty(struct qcow2 *s)
{
	uint8_t b[8];
	int ret;

	if (s->version < 3 || (s->incompat & QCOW2_INCOMPAT_DIRTY))
		return 0;
	be64_put(b, s->incompat | QCOW2_INCOMPAT_DIRTY);
	ret = blk_full_pwrite(s->fd, b, 8, QCOW2_HDR_INCOMPAT);
	if (!ret && fdatasync(s->fd) < 0)
		ret = -errno;
	if (!ret)
		s->incompat |= QCOW2_INCOMPAT_DIRTY;
	return ret;
}

static int corrupt(struct qcow2 *s, const char *what, uint64_t value)
{
	pr_err("qcow2: %s: %s 0x%llx\n", s->img->path, what, (unsigned long long)value);
	return -EIO;
}

/* Loads the L2 table for guest cluster c. Without one, *table is NULL unless alloc is set, in
 * which case a zeroed table is allocated and linked into L1 (table written, then L1). */
static int l2_load(struct qcow2 *s, uint64_t c, bool alloc, uint8_t **table, uint64_t *l2_off)
{
	uint64_t l1i = c / s->l2_entries, off;
	uint8_t *zero, b[8];
	int ret;

	if (l1i >= s->l1_size)
		return corrupt(s, "guest cluster beyond the L1 table:", c);
	off = s->l1[l1i] & QCOW2_OFFSET_MASK;
	if (off) {
		if (off & (s->cluster_size - 1))
			return corrupt(s, "L2 table offset not cluster-aligned:", off);
		*l2_off = off;
		return qcow2_cache_get(s, &s->l2_cache, off, table);
	}
	*table = NULL;
	if (!alloc)
		return 0;
	ret = qcow2_mark_dirty(s);
	if (ret)
		return ret;
	ret = qcow2_alloc_clusters(s, 1, &off);
	if (ret)
		return ret;
	zero = calloc(1, s->cluster_size);
	if (!zero)
		return -ENOMEM;
	ret = blk_full_pwrite(s->fd, zero, s->cluster_size, off);
	if (!ret) {
		qcow2_cache_put(s, &s->l2_cache, off, zero);
		be64_put(b, off | QCOW2_OFLAG_COPIED);
		ret = blk_full_pwrite(s->fd, b, 8, s->l1_offset + l1i * 8);
	}
	free(zero);
	if (ret)
		return ret;
	s->l1[l1i] = off | QCOW2_OFLAG_COPIED;
	*l2_off = off;
	return qcow2_cache_get(s, &s->l2_cache, off, table);
}

/* Mapping of a run of guest bytes that share one cluster class (and, for NORMAL, contiguous host
 * clusters). */
struct qcow2_map {
	enum qcow2_ctype type;
	uint64_t l2e; /* first entry of the run */
	uint64_t host; /* NORMAL: host offset of the first byte */
	uint64_t bytes;
};

static int map_range(struct qcow2 *s, uint64_t off, uint64_t len, struct qcow2_map *m)
{
	uint64_t cs = s->cluster_size, c = off >> s->cluster_bits, in = off & (cs - 1);
	uint64_t l2i = c % s->l2_entries, avail = (s->l2_entries - l2i) * cs - in, n = 1;
	uint64_t l2_off = 0, max_n;
	uint8_t *t;
	int ret = l2_load(s, c, false, &t, &l2_off);

	if (ret)
		return ret;
	len = MIN(len, avail);
	max_n = (in + len + cs - 1) / cs;
	if (!t) {
		m->type = QCOW2_UNALLOCATED;
		m->l2e = 0;
		m->bytes = len;
		return 0;
	}
	m->l2e = be64_get(t + l2i * 8);
	m->type = qcow2_classify(s, m->l2e);
	if (m->type == QCOW2_NORMAL) {
		uint64_t h = m->l2e & QCOW2_OFFSET_MASK;

		if (h & (cs - 1))
			return corrupt(s, "data cluster offset not cluster-aligned:", h);
		m->host = h + in;
		while (n < max_n) {
			uint64_t e = be64_get(t + (l2i + n) * 8);

			if (qcow2_classify(s, e) != QCOW2_NORMAL ||
			    (e & QCOW2_OFFSET_MASK) != h + n * cs)
				break;
			n++;
		}
	} else if (m->type != QCOW2_COMPRESSED) {
		while (n < max_n && qcow2_classify(s, be64_get(t + (l2i + n) * 8)) == m->type)
			n++;
	}
	m->bytes = MIN(n * cs - in, len);
	return 0;
}

void qcow2_compressed_range(const struct qcow2 *s, uint64_t l2e, uint64_t *first, uint64_t *n)
{
	uint64_t off = l2e & ((1ULL << s->csize_shift) - 1);
	uint64_t sectors = ((l2e >> s->csize_shift) & s->csize_mask) + 1;
	uint64_t end = (off & ~(BLK_SECTOR - 1)) + sectors * BLK_SECTOR;

	*first = off >> s->cluster_bits;
	*n = ((end - 1) >> s->cluster_bits) - *first + 1;
}

/* Inflates a compressed cluster into out (cluster_size bytes). Compressed clusters are never
 * written in place, so no lock is needed. */
static int read_compressed(struct qcow2 *s, uint64_t l2e, uint8_t *out)
{
	uint64_t off = l2e & ((1ULL << s->csize_shift) - 1);
	uint64_t sectors = ((l2e >> s->csize_shift) & s->csize_mask) + 1;
	uint64_t clen = sectors * BLK_SECTOR - (off & (BLK_SECTOR - 1));
	z_stream z = { 0 };
	uint8_t *in = malloc(clen);
	int ret, zr;

	if (!in)
		return -ENOMEM;
	ret = blk_full_pread(s->fd, in, clen, off, true);
	if (ret)
		goto out;
	if (inflateInit2(&z, -12) != Z_OK) {
		ret = -ENOMEM;
		goto out;
	}
	z.next_in = in;
	z.avail_in = (uInt)clen;
	z.next_out = out;
	z.avail_out = (uInt)s->cluster_size;
	zr = inflate(&z, Z_FINISH);
	if ((zr != Z_STREAM_END && zr != Z_BUF_ERROR) || z.avail_out)
		ret = corrupt(s, "compressed cluster does not inflate, entry", l2e);
	inflateEnd(&z);
out:
	free(in);
	return ret;
}

/* Reads n bytes at byte `in` of guest cluster `gc` as they were before a write: the old content
 * that copy-on-write keeps around the written part. */
static int read_old(struct qcow2 *s, uint64_t l2e, uint64_t gc, uint64_t in, uint8_t *buf,
		    uint64_t n)
{
	struct iovec v = { buf, n };
	uint8_t *tmp;
	int ret;

	switch (qcow2_classify(s, l2e)) {
	case QCOW2_ZERO:
		memset(buf, 0, n);
		return 0;
	case QCOW2_UNALLOCATED:
		return blk_image_read(s->img->backing, &v, 1, (gc << s->cluster_bits) + in);
	case QCOW2_NORMAL:
		return blk_full_pread(s->fd, buf, n, (l2e & QCOW2_OFFSET_MASK) + in, true);
	case QCOW2_COMPRESSED:
		tmp = malloc(s->cluster_size);
		if (!tmp)
			return -ENOMEM;
		ret = read_compressed(s, l2e, tmp);
		if (!ret)
			memcpy(buf, tmp + in, n);
		free(tmp);
		return ret;
	}
	return -EINVAL;
}

static bool inflight_overlaps(const struct qcow2 *s, uint64_t first, uint64_t n)
{
	for (const struct qcow2_inflight *f = s->inflight; f; f = f->next)
		if (first < f->first + f->n && f->first < first + n)
			return true;
	return false;
}

void qcow2_run_deferred_frees(struct qcow2 *s)
{
	for (size_t i = 0; i < s->ndeferred;) {
		struct qcow2_deferred_free d = s->deferred[i];

		if (inflight_overlaps(s, d.first, d.n)) {
			i++;
			continue;
		}
		s->deferred[i] = s->deferred[--s->ndeferred];
		/* The entry pointing at them is gone already: a failure only leaks them. */
		if (qcow2_free_clusters(s, d.first << s->cluster_bits, d.n))
			pr_err("qcow2: %s: could not free clusters %llu+%llu (leaked)\n",
			       s->img->path, (unsigned long long)d.first, (unsigned long long)d.n);
	}
}

/* Drops a reference to host clusters [first, first + n) that nothing maps any more: now, or
 * once no transfer touches them. */
static int release_clusters(struct qcow2 *s, uint64_t first, uint64_t n)
{
	if (!inflight_overlaps(s, first, n))
		return qcow2_free_clusters(s, first << s->cluster_bits, n);
	if (s->ndeferred == s->deferred_cap) {
		size_t cap = s->deferred_cap ? s->deferred_cap * 2 : 16;
		struct qcow2_deferred_free *d = realloc(s->deferred, cap * sizeof(*d));

		if (!d) {
			pr_err("qcow2: %s: out of memory: clusters %llu+%llu leaked\n",
			       s->img->path, (unsigned long long)first, (unsigned long long)n);
			return 0;
		}
		s->deferred = d;
		s->deferred_cap = cap;
	}
	s->deferred[s->ndeferred++] = (struct qcow2_deferred_free){ first, n };
	return 0;
}

/* Registers a transfer of host clusters [first, first + n); s->lock held. */
static void inflight_begin(struct qcow2 *s, struct qcow2_inflight *f, uint64_t first, uint64_t n)
{
	f->first = first;
	f->n = n;
	f->prev = NULL;
	f->next = s->inflight;
	if (s->inflight)
		s->inflight->prev = f;
	s->inflight = f;
}

/* Ends a transfer (takes s->lock) and runs the frees it held back. */
static void inflight_end(struct qcow2 *s, struct qcow2_inflight *f)
{
	pthread_mutex_lock(&s->lock);
	if (f->prev)
		f->prev->next = f->next;
	else
		s->inflight = f->next;
	if (f->next)
		f->next->prev = f->prev;
	if (s->ndeferred)
		qcow2_run_deferred_frees(s);
	pthread_mutex_unlock(&s->lock);
}

/* Drops the host clusters an L2 entry held (after the entry no longer points at them). */
static int release_entry(struct qcow2 *s, uint64_t l2e)
{
	uint64_t first, n;

	switch (qcow2_classify(s, l2e)) {
	case QCOW2_NORMAL:
	case QCOW2_ZERO:
		if (l2e & QCOW2_OFFSET_MASK)
			return release_clusters(s, (l2e & QCOW2_OFFSET_MASK) >> s->cluster_bits, 1);
		return 0;
	case QCOW2_COMPRESSED:
		qcow2_compressed_range(s, l2e, &first, &n);
		return release_clusters(s, first, n);
	default:
		return 0;
	}
}

int qcow2_preadv(struct blk_image *img, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct qcow2 *s = img->priv;
	uint64_t len = iov_size(iov, iovcnt), done = 0;
	struct iovec *part = malloc(sizeof(*part) * (size_t)iovcnt);
	uint8_t *tmp = NULL;
	int ret = 0;

	if (!part)
		return -ENOMEM;
	while (done < len && !ret) {
		struct qcow2_inflight f = { 0 };
		struct qcow2_map m;
		uint64_t cur = off + done, first, n;

		pthread_mutex_lock(&s->lock);
		ret = map_range(s, cur, len - done, &m);
		/* Host clusters read outside the lock stay ours until the read is done. */
		if (!ret && m.type == QCOW2_NORMAL)
			inflight_begin(s, &f, m.host >> s->cluster_bits,
				       ((m.host + m.bytes - 1) >> s->cluster_bits) -
					       (m.host >> s->cluster_bits) + 1);
		if (!ret && m.type == QCOW2_COMPRESSED) {
			qcow2_compressed_range(s, m.l2e, &first, &n);
			inflight_begin(s, &f, first, n);
		}
		pthread_mutex_unlock(&s->lock);
		if (ret)
			break;
		int k = iov_slice(iov, iovcnt, done, m.bytes, part);

		switch (m.type) {
		case QCOW2_NORMAL:
			ret = blk_full_preadv(s->fd, part, k, m.host, true);
			break;
		case QCOW2_ZERO:
			iov_memset(part, k, 0);
			break;
		case QCOW2_UNALLOCATED:
			ret = blk_image_read(img->backing, part, k, cur);
			break;
		case QCOW2_COMPRESSED:
			if (!tmp)
				tmp = malloc(s->cluster_size);
			if (!tmp) {
				ret = -ENOMEM;
				break;
			}
			ret = read_compressed(s, m.l2e, tmp);
			for (int i = 0, o = 0; !ret && i < k; o += (int)part[i].iov_len, i++)
				memcpy(part[i].iov_base, tmp + (cur & (s->cluster_size - 1)) + o,
				       part[i].iov_len);
			break;
		}
		if (f.n)
			inflight_end(s, &f);
		done += m.bytes;
	}
	free(tmp);
	free(part);
	return ret;
}

/* Sets entries [l2i, l2i + n) of the table at l2_off to new[] (cache and disk), then releases
 * what the old entries held. */
static int l2_update(struct qcow2 *s, uint8_t *t, uint64_t l2_off, uint64_t l2i, uint64_t n,
		     const uint64_t *new)
{
	uint64_t *old = malloc(n * 8);
	int ret;

	if (!old)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		old[i] = be64_get(t + (l2i + i) * 8);
		be64_put(t + (l2i + i) * 8, new[i]);
	}
	ret = blk_full_pwrite(s->fd, t + l2i * 8, n * 8, l2_off + l2i * 8);
	if (ret) {
		/* The table on disk is unknown now: forget the cached copy. */
		qcow2_cache_drop(&s->l2_cache, l2_off);
		goto out;
	}
	for (uint64_t i = 0; i < n && !ret; i++)
		if ((old[i] & ~QCOW2_OFLAG_COPIED) != (new[i] & ~QCOW2_OFLAG_COPIED))
			ret = release_entry(s, old[i]);
out:
	free(old);
	return ret;
}

static bool in_place(const struct qcow2 *s, uint64_t l2e)
{
	return qcow2_classify(s, l2e) == QCOW2_NORMAL && (l2e & QCOW2_OFLAG_COPIED);
}

/* Writes guest bytes [cur, cur + len) (len > 0, inside one L2 table) that need new clusters:
 * allocates them, fills the parts of the first and last cluster the write does not cover from
 * their old content, writes everything in one go, then points the L2 entries at it. Returns the
 * bytes handled in *done. Called with s->lock held. */
static int write_alloc(struct qcow2 *s, uint8_t *t, uint64_t l2_off, const struct iovec *iov,
		       int iovcnt, uint64_t iov_off, uint64_t cur, uint64_t len, uint64_t *done)
{
	uint64_t cs = s->cluster_size, c = cur >> s->cluster_bits, in = cur & (cs - 1);
	uint64_t l2i = c % s->l2_entries, max_n = (in + len + cs - 1) / cs, n = 1, host;
	uint64_t first_e = be64_get(t + l2i * 8), last_e, bytes, tail;
	uint8_t *head_buf = NULL, *tail_buf = NULL;
	struct iovec *v;
	uint64_t *new;
	int cnt = 0, ret;

	while (n < max_n && !in_place(s, be64_get(t + (l2i + n) * 8)))
		n++;
	bytes = MIN(n * cs - in, len);
	tail = n * cs - in - bytes;
	last_e = be64_get(t + (l2i + n - 1) * 8);

	v = malloc(sizeof(*v) * (size_t)(iovcnt + 2));
	new = malloc(n * 8);
	if (!v || !new) {
		ret = -ENOMEM;
		goto out;
	}
	if (in) {
		head_buf = malloc(in);
		ret = head_buf ? read_old(s, first_e, c, 0, head_buf, in) : -ENOMEM;
		if (ret)
			goto out;
		v[cnt++] = (struct iovec){ head_buf, in };
	}
	cnt += iov_slice(iov, iovcnt, iov_off, bytes, v + cnt);
	if (tail) {
		tail_buf = malloc(tail);
		ret = tail_buf ? read_old(s, last_e, c + n - 1, cs - tail, tail_buf, tail)
			       : -ENOMEM;
		if (ret)
			goto out;
		v[cnt++] = (struct iovec){ tail_buf, tail };
	}
	ret = qcow2_mark_dirty(s);
	if (!ret)
		ret = qcow2_alloc_clusters(s, n, &host);
	if (ret)
		goto out;
	ret = blk_full_pwritev(s->fd, v, cnt, host);
	if (ret) {
		qcow2_free_clusters(s, host, n);
		goto out;
	}
	for (uint64_t i = 0; i < n; i++)
		new[i] = (host + i * cs) | QCOW2_OFLAG_COPIED;
	ret = l2_update(s, t, l2_off, l2i, n, new);
	*done = bytes;
out:
	free(head_buf);
	free(tail_buf);
	free(new);
	free(v);
	return ret;
}

int qcow2_pwritev(struct blk_image *img, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct qcow2 *s = img->priv;
	uint64_t cs = s->cluster_size, len = iov_size(iov, iovcnt), done = 0;
	struct iovec *part = malloc(sizeof(*part) * (size_t)iovcnt);
	int ret = 0;

	if (!part)
		return -ENOMEM;
	while (done < len && !ret) {
		uint64_t cur = off + done, c = cur >> s->cluster_bits, in = cur & (cs - 1);
		uint64_t l2i = c % s->l2_entries, l2_off = 0, n = 1, host, max_n, bytes = 0;
		uint64_t chunk = MIN(len - done, (s->l2_entries - l2i) * cs - in);
		struct qcow2_inflight f;
		uint8_t *t;

		pthread_mutex_lock(&s->lock);
		ret = l2_load(s, c, true, &t, &l2_off);
		if (ret) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		uint64_t e = be64_get(t + l2i * 8);

		if (!in_place(s, e)) {
			ret = write_alloc(s, t, l2_off, iov, iovcnt, done, cur, chunk, &bytes);
			pthread_mutex_unlock(&s->lock);
			done += bytes;
			continue;
		}
		/* Already ours: overwrite in place, outside the lock. */
		host = e & QCOW2_OFFSET_MASK;
		max_n = (in + chunk + cs - 1) / cs;
		while (n < max_n) {
			uint64_t e2 = be64_get(t + (l2i + n) * 8);

			if (!in_place(s, e2) || (e2 & QCOW2_OFFSET_MASK) != host + n * cs)
				break;
			n++;
		}
		if (host & (cs - 1))
			ret = corrupt(s, "data cluster offset not cluster-aligned:", host);
		/* Only a damaged L2 table points past everything allocated: do not grow the file
		 * there. */
		else if ((host >> s->cluster_bits) + n > s->end_cluster)
			ret = corrupt(s, "data cluster beyond the end of the image:", host);
		else
			inflight_begin(s, &f, host >> s->cluster_bits, n);
		pthread_mutex_unlock(&s->lock);
		if (ret)
			break;
		bytes = MIN(n * cs - in, chunk);
		int k = iov_slice(iov, iovcnt, done, bytes, part);

		ret = blk_full_pwritev(s->fd, part, k, host + in);
		inflight_end(s, &f);
		done += bytes;
	}
	free(part);
	return ret;
}

/* Whole clusters [c, c + n) of one L2 table become `zero` (ZERO flag) or unallocated. */
static int zero_clusters(struct qcow2 *s, uint64_t c, uint64_t n, bool zero)
{
	uint64_t l2i = c % s->l2_entries, l2_off = 0, *new;
	bool backing = s->img->backing || s->img->backing_name;
	uint8_t *t;
	int ret;

	/* Without a table, clusters read as zeros unless a backing file shows through. */
	ret = l2_load(s, c, zero && backing, &t, &l2_off);
	if (ret || !t)
		return ret;
	new = malloc(n * 8);
	if (!new)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		new[i] = zero ? QCOW2_OFLAG_ZERO : 0;
	ret = qcow2_mark_dirty(s);
	if (!ret)
		ret = l2_update(s, t, l2_off, l2i, n, new);
	free(new);
	return ret;
}

/* Writes real zeros, a megabyte at a time. */
static int write_zero_bytes(struct blk_image *img, uint64_t off, uint64_t len)
{
	uint8_t *z = calloc(1, MIN(len, MIB));
	int ret = z ? 0 : -ENOMEM;

	while (len && !ret) {
		struct iovec v = { z, MIN(len, MIB) };

		ret = qcow2_pwritev(img, &v, 1, off);
		off += v.iov_len;
		len -= v.iov_len;
	}
	free(z);
	return ret;
}

static int zero_or_discard(struct blk_image *img, uint64_t off, uint64_t len, bool discard)
{
	struct qcow2 *s = img->priv;
	uint64_t cs = s->cluster_size;
	bool backing = img->backing || img->backing_name;
	int ret = 0;

	while (len && !ret) {
		uint64_t in = off & (cs - 1), c = off >> s->cluster_bits;
		uint64_t n = MIN(len, cs - in);

		if (in || n < cs) {
			/* Partial cluster: discard is only a hint; write-zeroes writes zeros. */
			if (!discard)
				ret = write_zero_bytes(img, off, n);
		} else {
			uint64_t l2i = c % s->l2_entries;

			n = MIN(len / cs, s->l2_entries - l2i);
			pthread_mutex_lock(&s->lock);
			if (s->version >= 3)
				ret = zero_clusters(s, c, n, backing || !discard);
			else if (!backing || discard)
				ret = zero_clusters(s, c, n, false);
			else
				ret = 1; /* v2 over a backing file: real zeros below */
			pthread_mutex_unlock(&s->lock);
			n *= cs;
			if (ret == 1)
				ret = write_zero_bytes(img, off, n);
		}
		off += n;
		len -= n;
	}
	return ret;
}

int qcow2_discard(struct blk_image *img, uint64_t off, uint64_t len)
{
	return zero_or_discard(img, off, len, true);
}

int qcow2_write_zeroes(struct blk_image *img, uint64_t off, uint64_t len)
{
	return zero_or_discard(img, off, len, false);
}

int qcow2_block_status(struct blk_image *img, uint64_t off, uint64_t len, uint64_t *pnum)
{
	struct qcow2 *s = img->priv;
	struct qcow2_map m;
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = map_range(s, off, len, &m);
	pthread_mutex_unlock(&s->lock);
	if (ret)
		return ret;
	*pnum = m.bytes;
	switch (m.type) {
	case QCOW2_ZERO:
		return BLK_STATUS_ZERO;
	case QCOW2_UNALLOCATED:
		return img->backing ? BLK_STATUS_BACKING : BLK_STATUS_ZERO;
	default:
		return BLK_STATUS_DATA;
	}
}
