// SPDX-License-Identifier: MIT
/*
 * qcow2: header parsing and validation, open/close, creation.
 *
 * Consistency: metadata is written through (never cached dirty) in the order data, L2 entry,
 * L1 entry, and refcounts are raised before anything points at a cluster and lowered only after
 * nothing does, so a killed process leaves at most leaked clusters. Against power loss the
 * dirty bit (v3) is set before the first metadata change and cleared on close after fdatasync;
 * an image found dirty at read-write open has its refcounts checked and leaks repaired.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "qcow2.h"

/* Metadata cache sizes. The fuzz build (tests/fuzz) opens thousands of images a second, and
 * allocating 5 MiB of cache each time would dominate its run time. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define QCOW2_L2_CACHE_BYTES (64 * KIB)
#define QCOW2_RB_CACHE_BYTES (16 * KIB)
#else
#define QCOW2_L2_CACHE_BYTES (4 * MIB)
#define QCOW2_RB_CACHE_BYTES MIB
#endif

/* Names of the features this driver knows, for messages and for the table it writes. */
static const struct {
	uint8_t type, bit;
	const char *name;
} known_features[] = {
	{ 0, 0, "dirty bit" },
	{ 0, 1, "corrupt bit" },
	{ 0, 2, "external data file" },
	{ 0, 3, "compression type" },
	{ 0, 4, "extended L2 entries" },
	{ 1, 0, "lazy refcounts" },
	{ 2, 0, "bitmaps" },
	{ 2, 1, "raw external data" },
};

struct qcow2_hdr {
	uint32_t magic, version;
	uint64_t backing_offset;
	uint32_t backing_size, cluster_bits;
	uint64_t size;
	uint32_t crypt_method, l1_size;
	uint64_t l1_offset, reftable_offset;
	uint32_t reftable_clusters, nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompat, compat, autoclear;
	uint32_t refcount_order, header_length;
	uint8_t compression_type;
};

static void hdr_decode(const uint8_t *p, struct qcow2_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->magic = be32_get(p);
	h->version = be32_get(p + 4);
	h->backing_offset = be64_get(p + 8);
	h->backing_size = be32_get(p + 16);
	h->cluster_bits = be32_get(p + 20);
	h->size = be64_get(p + 24);
	h->crypt_method = be32_get(p + 32);
	h->l1_size = be32_get(p + 36);
	h->l1_offset = be64_get(p + 40);
	h->reftable_offset = be64_get(p + 48);
	h->reftable_clusters = be32_get(p + 56);
	h->nb_snapshots = be32_get(p + 60);
	h->snapshots_offset = be64_get(p + 64);
	if (h->version < 3) {
		h->refcount_order = 4;
		h->header_length = QCOW2_HDR_V2_LEN;
		return;
	}
	h->incompat = be64_get(p + 72);
	h->compat = be64_get(p + 80);
	h->autoclear = be64_get(p + 88);
	h->refcount_order = be32_get(p + 96);
	h->header_length = be32_get(p + 100);
	if (h->header_length > 104)
		h->compression_type = p[104];
}

static void hdr_encode(uint8_t *p, const struct qcow2_hdr *h)
{
	be32_put(p, h->magic);
	be32_put(p + 4, h->version);
	be64_put(p + 8, h->backing_offset);
	be32_put(p + 16, h->backing_size);
	be32_put(p + 20, h->cluster_bits);
	be64_put(p + 24, h->size);
	be32_put(p + 32, h->crypt_method);
	be32_put(p + 36, h->l1_size);
	be64_put(p + 40, h->l1_offset);
	be64_put(p + 48, h->reftable_offset);
	be32_put(p + 56, h->reftable_clusters);
	be32_put(p + 60, h->nb_snapshots);
	be64_put(p + 64, h->snapshots_offset);
	be64_put(p + 72, h->incompat);
	be64_put(p + 80, h->compat);
	be64_put(p + 88, h->autoclear);
	be32_put(p + 96, h->refcount_order);
	be32_put(p + 100, h->header_length);
	p[104] = h->compression_type;
}

/* Feature names read from the image's own table, so unknown bits can be named. */
struct feature_names {
	const uint8_t *table;
	uint32_t count;
};

static const char *feature_name(const struct feature_names *fn, int type, int bit, char *buf,
				size_t len)
{
	for (uint32_t i = 0; i < fn->count; i++) {
		const uint8_t *e = fn->table + i * 48;

		if (e[0] == type && e[1] == bit) {
			snprintf(buf, len, "%.46s", (const char *)e + 2);
			return buf;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(known_features); i++)
		if (known_features[i].type == type && known_features[i].bit == bit)
			return known_features[i].name;
	return "unnamed";
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

#define REFUSE(fmt, ...)                                               \
	do {                                                           \
		blk_set_error("qcow2: %s: " fmt, path, ##__VA_ARGS__); \
		return -EINVAL;                                        \
	} while (0)

/* Checks the fixed header fields against each other and the file size. */
static int hdr_validate(const char *path, const struct qcow2_hdr *h, uint64_t file_size)
{
	uint64_t cs, l2_entries, l1_need;

	if (h->magic != QCOW2_MAGIC)
		REFUSE("bad magic 0x%08x (not a qcow2 image)\n", h->magic);
	if (h->version != 2 && h->version != 3)
		REFUSE("unsupported qcow2 version %u (2 and 3 are supported)\n", h->version);
	if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		REFUSE("cluster_bits %u out of range [%d, %d]\n", h->cluster_bits,
		       QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS);
	cs = 1ULL << h->cluster_bits;
	if (h->version >= 3 && (h->header_length < 104 || h->header_length > cs))
		REFUSE("header_length %u invalid (104 up to the cluster size)\n", h->header_length);
	if (h->crypt_method)
		REFUSE("encrypted images (crypt_method %u) are not supported\n", h->crypt_method);
	if (h->refcount_order > 6)
		REFUSE("refcount_order %u unsupported (refcounts of 1 to 64 bits)\n",
		       h->refcount_order);
	if (h->compression_type)
		REFUSE("compression type %u%s is not supported (only zlib)\n", h->compression_type,
		       h->compression_type == 1 ? " (zstd)" : "");
	if (h->size > (1ULL << 62))
		REFUSE("virtual size %llu too large\n", (unsigned long long)h->size);
	if (file_size < cs && file_size < QCOW2_HDR_V3_LEN)
		REFUSE("file of %llu bytes is too short for its header\n",
		       (unsigned long long)file_size);

	l2_entries = cs / 8;
	l1_need = (h->size + cs * l2_entries - 1) / (cs * l2_entries);
	if (h->l1_size < l1_need)
		REFUSE("L1 table of %u entries too small for virtual size %llu (needs %llu)\n",
		       h->l1_size, (unsigned long long)h->size, (unsigned long long)l1_need);
	if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		REFUSE("L1 table of %u entries is larger than the 32 MiB limit\n", h->l1_size);
	if (h->l1_size && (h->l1_offset & (cs - 1)))
		REFUSE("L1 table offset 0x%llx not cluster-aligned\n",
		       (unsigned long long)h->l1_offset);
	if (h->l1_size &&
	    (h->l1_offset > file_size || h->l1_size * 8ULL > file_size - h->l1_offset))
		REFUSE("L1 table (offset 0x%llx, %u entries) beyond file end (%llu bytes)\n",
		       (unsigned long long)h->l1_offset, h->l1_size, (unsigned long long)file_size);

	if (!h->reftable_clusters)
		REFUSE("refcount table has no clusters\n");
	if (h->reftable_offset & (cs - 1))
		REFUSE("refcount table offset 0x%llx not cluster-aligned\n",
		       (unsigned long long)h->reftable_offset);
	if ((uint64_t)h->reftable_clusters * cs > QCOW2_MAX_REFTABLE_BYTES)
		REFUSE("refcount table of %u clusters is larger than the 8 MiB limit\n",
		       h->reftable_clusters);
	if (h->reftable_offset > file_size ||
	    h->reftable_clusters * cs > file_size - h->reftable_offset)
		REFUSE("refcount table (offset 0x%llx, %u clusters) beyond file end (%llu bytes)\n",
		       (unsigned long long)h->reftable_offset, h->reftable_clusters,
		       (unsigned long long)file_size);

	if (ranges_overlap(0, cs, h->l1_offset, h->l1_size * 8ULL))
		REFUSE("L1 table overlaps the header cluster\n");
	if (ranges_overlap(0, cs, h->reftable_offset, h->reftable_clusters * cs))
		REFUSE("refcount table overlaps the header cluster\n");
	if (ranges_overlap(h->l1_offset, h->l1_size * 8ULL, h->reftable_offset,
			   h->reftable_clusters * cs))
		REFUSE("L1 table and refcount table overlap\n");
	if (h->nb_snapshots && (h->snapshots_offset & (cs - 1) || h->snapshots_offset >= file_size))
		REFUSE("snapshot table offset 0x%llx invalid\n",
		       (unsigned long long)h->snapshots_offset);

	if (h->backing_offset) {
		if (h->backing_size == 0 || h->backing_size > 1023)
			REFUSE("backing file name length %u invalid (1..1023)\n", h->backing_size);
		if (h->backing_offset >= cs || h->backing_size > cs - h->backing_offset)
			REFUSE("backing file name lies outside the header cluster\n");
		if (h->backing_offset < h->header_length)
			REFUSE("backing file name overlaps the header\n");
	}
	return 0;
}

/* Incompatible feature bits: the known ones we cannot honour, and unknown ones by name. */
static int features_validate(const char *path, const struct qcow2_hdr *h,
			     const struct feature_names *fn)
{
	uint64_t unknown = h->incompat & ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
					   QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_DATA_FILE |
					   QCOW2_INCOMPAT_EXTL2);
	char name[64];

	if (h->incompat & QCOW2_INCOMPAT_DATA_FILE)
		REFUSE("images with an external data file are not supported\n");
	if (h->incompat & QCOW2_INCOMPAT_EXTL2)
		REFUSE("extended L2 entries (subclusters) are not supported\n");
	for (int bit = 0; bit < 64; bit++)
		if (unknown & (1ULL << bit))
			REFUSE("unknown incompatible feature bit %d (%s)\n", bit,
			       feature_name(fn, 0, bit, name, sizeof(name)));
	return 0;
}

/* Walks the header extensions between the header and the end of the header cluster. */
static int parse_extensions(const char *path, struct blk_image *img, const uint8_t *c0,
			    uint64_t end, uint32_t start, struct feature_names *fn)
{
	uint64_t off = start;

	while (off + 8 <= end) {
		uint32_t type = be32_get(c0 + off), len = be32_get(c0 + off + 4);

		off += 8;
		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - off)
			REFUSE("header extension 0x%08x of %u bytes runs past the header cluster\n",
			       type, len);
		if (type == QCOW2_EXT_BACKING_FORMAT) {
			char fmt[32];

			snprintf(fmt, sizeof(fmt), "%.*s", (int)MIN(len, 31U),
				 (const char *)c0 + off);
			if (blk_parse_format(fmt, &img->backing_format))
				REFUSE("backing format '%s' not supported\n", fmt);
		} else if (type == QCOW2_EXT_FEATURE_TABLE) {
			fn->table = c0 + off;
			fn->count = len / 48;
		}
		off += ALIGN_UP((uint64_t)len, 8);
	}
	return 0;
}

/* Loads and checks the L1 table and the refcount table. */
static int load_tables(const char *path, struct qcow2 *s, uint64_t file_size)
{
	uint64_t cs = s->cluster_size;
	uint8_t *buf;
	size_t len;
	int ret;

	len = MAX((size_t)s->l1_size * 8, (size_t)s->reftable_clusters * cs);
	buf = malloc(len ? len : 1);
	s->l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	s->reftable = calloc(s->reftable_size, 8);
	if (!buf || !s->l1 || !s->reftable) {
		free(buf);
		return -ENOMEM;
	}
	ret = blk_full_pread(s->fd, buf, s->l1_size * 8ULL, s->l1_offset, false);
	if (ret)
		goto out;
	for (uint32_t i = 0; i < s->l1_size; i++) {
		s->l1[i] = be64_get(buf + i * 8ULL);
		uint64_t l2 = s->l1[i] & QCOW2_OFFSET_MASK;

		if (l2 & (cs - 1) || (l2 && l2 >= file_size)) {
			blk_set_error("qcow2: %s: L1 entry %u points to 0x%llx: %s\n", path, i,
				      (unsigned long long)l2,
				      l2 & (cs - 1) ? "not cluster-aligned" : "beyond file end");
			ret = -EINVAL;
			goto out;
		}
	}
	ret = blk_full_pread(s->fd, buf, s->reftable_clusters * cs, s->reftable_offset, false);
	if (ret)
		goto out;
	for (uint64_t i = 0; i < s->reftable_size; i++) {
		s->reftable[i] = be64_get(buf + i * 8);
		uint64_t rb = s->reftable[i] & QCOW2_REFT_OFFSET_MASK;

		if (rb & (cs - 1)) {
			blk_set_error("qcow2: %s: refcount block %llu offset 0x%llx not "
				      "cluster-aligned\n",
				      path, (unsigned long long)i, (unsigned long long)rb);
			ret = -EINVAL;
			goto out;
		}
		if (rb && (rb < cs || rb >= file_size)) {
			blk_set_error("qcow2: %s: refcount block %llu at 0x%llx %s\n", path,
				      (unsigned long long)i, (unsigned long long)rb,
				      rb < cs ? "overlaps the header" : "beyond file end");
			ret = -EINVAL;
			goto out;
		}
	}
out:
	free(buf);
	return ret;
}

static void qcow2_free_state(struct qcow2 *s)
{
	if (!s)
		return;
	qcow2_cache_free(&s->l2_cache);
	qcow2_cache_free(&s->rb_cache);
	free(s->l1);
	free(s->reftable);
	free(s->deferred);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int write_incompat(struct qcow2 *s)
{
	uint8_t b[8];

	be64_put(b, s->incompat);
	return blk_full_pwrite(s->fd, b, 8, QCOW2_HDR_INCOMPAT);
}

/* Read-write open of an image left dirty: refcounts may be stale; leaks are repaired, anything
 * worse refuses the open. */
static int repair_dirty(struct blk_image *img)
{
	struct qcow2 *s = img->priv;
	struct blk_check_result res;
	int ret;

	pr_warn("qcow2: %s: image was not closed cleanly, checking refcounts\n", img->path);
	ret = qcow2_check(img, BLK_CHECK_REPAIR_LEAKS, &res);
	if (ret)
		return ret;
	if (res.corruptions) {
		blk_set_error(
			"qcow2: %s: %llu corruptions found; run 'vireo img check' and repair\n",
			img->path, (unsigned long long)res.corruptions);
		return -EUCLEAN;
	}
	if (fdatasync(s->fd) < 0)
		return -errno;
	s->incompat &= ~QCOW2_INCOMPAT_DIRTY;
	ret = write_incompat(s);
	if (!ret && fdatasync(s->fd) < 0)
		ret = -errno;
	return ret;
}

static int qcow2_open(struct blk_image *img)
{
	const char *path = img->path;
	struct feature_names fn = { 0 };
	struct qcow2_hdr h;
	struct qcow2 *s;
	struct stat st;
	uint8_t *c0;
	uint64_t cs, ext_end;
	int ret;

	if (fstat(img->fd, &st) < 0)
		return -errno;
	c0 = calloc(1, 1 << QCOW2_MAX_CLUSTER_BITS);
	if (!c0)
		return -ENOMEM;
	ret = blk_full_pread(img->fd, c0, QCOW2_HDR_V3_LEN, 0, true);
	if (ret)
		goto err_c0;
	hdr_decode(c0, &h);
	ret = hdr_validate(path, &h, (uint64_t)st.st_size);
	if (ret)
		goto err_c0;
	cs = 1ULL << h.cluster_bits;
	ret = blk_full_pread(img->fd, c0, cs, 0, true);
	if (ret)
		goto err_c0;
	ext_end = h.backing_offset ? h.backing_offset : cs;
	ret = parse_extensions(path, img, c0, ext_end, h.header_length, &fn);
	if (ret)
		goto err_c0;
	ret = features_validate(path, &h, &fn);
	if (ret)
		goto err_c0;
	if (!img->read_only && h.nb_snapshots) {
		blk_set_error("qcow2: %s: images with internal snapshots (%u) can only be opened "
			      "read-only\n",
			      path, h.nb_snapshots);
		ret = -ENOTSUP;
		goto err_c0;
	}
	if (!img->read_only && (h.incompat & QCOW2_INCOMPAT_CORRUPT)) {
		blk_set_error(
			"qcow2: %s: image is marked corrupt; it can only be opened read-only\n",
			path);
		ret = -EUCLEAN;
		goto err_c0;
	}
	if (h.backing_offset) {
		img->backing_name = strndup((const char *)c0 + h.backing_offset, h.backing_size);
		if (!img->backing_name) {
			ret = -ENOMEM;
			goto err_c0;
		}
	}

	s = calloc(1, sizeof(*s));
	if (!s) {
		ret = -ENOMEM;
		goto err_c0;
	}
	pthread_mutex_init(&s->lock, NULL);
	img->priv = s;
	s->img = img;
	s->fd = img->fd;
	s->version = h.version;
	s->cluster_bits = h.cluster_bits;
	s->cluster_size = cs;
	s->l2_entries = cs / 8;
	s->refcount_order = h.refcount_order;
	s->rb_entries = (cs * 8) >> h.refcount_order;
	s->header_length = h.header_length;
	s->incompat = h.incompat;
	s->compat = h.compat;
	s->autoclear = h.autoclear;
	s->nb_snapshots = h.nb_snapshots;
	s->l1_size = h.l1_size;
	s->l1_offset = h.l1_offset;
	s->reftable_offset = h.reftable_offset;
	s->reftable_clusters = h.reftable_clusters;
	s->reftable_size = h.reftable_clusters * cs / 8;
	s->csize_shift = 62 - (h.cluster_bits - 8);
	s->csize_mask = (1ULL << (h.cluster_bits - 8)) - 1;
	s->end_cluster = ALIGN_UP((uint64_t)st.st_size, cs) >> h.cluster_bits;
	img->size = h.size;

	ret = load_tables(path, s, (uint64_t)st.st_size);
	if (ret)
		goto err_state;
	/* About 4 MiB of L2 tables (32 GiB of disk with 64 KiB clusters), 1 MiB of refcounts. */
	ret = qcow2_cache_init(&s->l2_cache, (int)MAX(4, QCOW2_L2_CACHE_BYTES >> h.cluster_bits),
			       cs);
	if (!ret)
		ret = qcow2_cache_init(&s->rb_cache,
				       (int)MAX(2, QCOW2_RB_CACHE_BYTES >> h.cluster_bits), cs);
	if (ret)
		goto err_state;

	if (!img->read_only && s->autoclear) {
		/* Bits we do not understand must be cleared by a writer (bitmaps become stale). */
		uint8_t b[8] = { 0 };

		s->autoclear = 0;
		ret = blk_full_pwrite(s->fd, b, 8, QCOW2_HDR_AUTOCLEAR);
		if (ret)
			goto err_state;
	}
	if (!img->read_only && (s->incompat & QCOW2_INCOMPAT_DIRTY)) {
		ret = repair_dirty(img);
		if (ret)
			goto err_state;
	}
	free(c0);
	return 0;
err_state:
	img->priv = NULL;
	qcow2_free_state(s);
err_c0:
	free(c0);
	return ret;
}

static int qcow2_flush(struct blk_image *img)
{
	return fdatasync(img->fd) < 0 ? -errno : 0;
}

/* Makes the image clean on disk: data synced, then the dirty bit cleared and synced. */
static int qcow2_make_clean(struct blk_image *img)
{
	struct qcow2 *s = img->priv;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	/* Idle now: nothing holds back a free any more. */
	qcow2_run_deferred_frees(s);
	if (fdatasync(s->fd) < 0)
		ret = -errno;
	if (!ret && (s->incompat & QCOW2_INCOMPAT_DIRTY)) {
		s->incompat &= ~QCOW2_INCOMPAT_DIRTY;
		ret = write_incompat(s);
		if (!ret && fdatasync(s->fd) < 0)
			ret = -errno;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static void qcow2_close(struct blk_image *img)
{
	if (!img->priv)
		return;
	if (!img->read_only && qcow2_make_clean(img))
		pr_err("qcow2: %s: could not clear the dirty bit\n", img->path);
	qcow2_free_state(img->priv);
	img->priv = NULL;
}

static void qcow2_info(struct blk_image *img, struct blk_image_info *info)
{
	struct qcow2 *s = img->priv;

	info->cluster_size = (uint32_t)s->cluster_size;
	info->refcount_bits = 1u << s->refcount_order;
	info->qcow2_version = (int)s->version;
	info->dirty = s->incompat & QCOW2_INCOMPAT_DIRTY;
	info->corrupt = s->incompat & QCOW2_INCOMPAT_CORRUPT;
}

const struct blk_driver blk_qcow2_driver = {
	.name = "qcow2",
	.format = BLK_FORMAT_QCOW2,
	.open = qcow2_open,
	.close = qcow2_close,
	.preadv = qcow2_preadv,
	.pwritev = qcow2_pwritev,
	.flush = qcow2_flush,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.block_status = qcow2_block_status,
	.make_read_only = qcow2_make_clean,
	.check = qcow2_check,
	.info = qcow2_info,
};

/* Size and format of the backing file of a new image: the size when none is given, the format
 * (probed, with the limits of blk_open()) to record when none is given. */
static int backing_probe(const char *path, const struct blk_create_opts *o, uint64_t *size,
			 enum blk_format *fmt)
{
	char *copy = strdup(path), *full = NULL;
	struct blk *b;
	int ret;

	if (!copy)
		return -ENOMEM;
	if (o->backing[0] == '/')
		full = strdup(o->backing);
	else if (asprintf(&full, "%s/%s", dirname(copy), o->backing) < 0)
		full = NULL;
	free(copy);
	if (!full)
		return -ENOMEM;
	ret = blk_open(full, o->backing_format, 0, &b);
	if (ret) {
		blk_set_error("qcow2: cannot open backing file %s\n", full);
		free(full);
		return ret;
	}
	*size = blk_size(b);
	*fmt = blk_format(b);
	blk_close(b);
	free(full);
	return 0;
}

/* Appends a header extension at *off in the header cluster. */
static void put_ext(uint8_t *c0, uint64_t *off, uint32_t type, const void *data, uint32_t len)
{
	be32_put(c0 + *off, type);
	be32_put(c0 + *off + 4, len);
	memcpy(c0 + *off + 8, data, len);
	*off += 8 + ALIGN_UP((uint64_t)len, 8);
}

static int create_layout(const char *path, const struct blk_create_opts *o, int fd)
{
	uint32_t cs = o->cluster_size ? o->cluster_size : 65536;
	uint32_t rbits = o->refcount_bits ? o->refcount_bits : 16;
	struct qcow2_hdr h = { 0 };
	uint64_t size = o->size, l1_size, l1_clusters, rb_entries, nb_rb = 1, rt_clusters = 1,
		 total;
	uint8_t *buf = NULL, ftable[ARRAY_SIZE(known_features) * 48] = { 0 };
	uint64_t off = QCOW2_HDR_V3_LEN, blen = o->backing ? strlen(o->backing) : 0, bsize = 0;
	enum blk_format bfmt = o->backing_format;
	int ret;

	if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1)))
		REFUSE("cluster size %u must be a power of two from 512 to 2M\n", cs);
	if (rbits > 64 || (rbits & (rbits - 1)))
		REFUSE("refcount_bits %u must be a power of two from 1 to 64\n", rbits);
	if (blen > 1023)
		REFUSE("backing file name longer than 1023 bytes\n");
	if (o->backing && (!size || bfmt == BLK_FORMAT_AUTO)) {
		ret = backing_probe(path, o, &bsize, &bfmt);
		if (ret)
			return ret;
		size = size ? size : bsize;
	}
	h.cluster_bits = (uint32_t)__builtin_ctz(cs);
	h.refcount_order = (uint32_t)__builtin_ctz(rbits);
	if (size > (1ULL << 56))
		REFUSE("virtual size %llu too large\n", (unsigned long long)size);
	l1_size = (size + (uint64_t)cs * (cs / 8) - 1) / ((uint64_t)cs * (cs / 8));
	if (l1_size * 8 > QCOW2_MAX_L1_BYTES)
		REFUSE("virtual size needs an L1 table above 32 MiB: use larger clusters\n");
	l1_clusters = (l1_size * 8 + cs - 1) / cs;
	rb_entries = ((uint64_t)cs * 8) >> h.refcount_order;
	/* Header, refcount table, refcount blocks, L1: grow the metadata until it covers itself. */
	for (;;) {
		total = 1 + rt_clusters + nb_rb + l1_clusters;
		uint64_t need_rb = (total + rb_entries - 1) / rb_entries;
		uint64_t need_rt = (need_rb * 8 + cs - 1) / cs;

		if (need_rb == nb_rb && need_rt == rt_clusters)
			break;
		nb_rb = need_rb;
		rt_clusters = need_rt;
	}

	h.magic = QCOW2_MAGIC;
	h.version = 3;
	h.size = size;
	h.l1_size = (uint32_t)l1_size;
	h.reftable_offset = cs;
	h.reftable_clusters = (uint32_t)rt_clusters;
	h.l1_offset = (uint64_t)cs * (1 + rt_clusters + nb_rb);
	h.header_length = QCOW2_HDR_V3_LEN;

	buf = calloc(total, cs);
	if (!buf)
		return -ENOMEM;
	if (o->backing) {
		const char *bf = blk_format_name(bfmt);

		put_ext(buf, &off, QCOW2_EXT_BACKING_FORMAT, bf, (uint32_t)strlen(bf));
	}
	for (size_t i = 0; i < ARRAY_SIZE(known_features); i++) {
		ftable[i * 48] = known_features[i].type;
		ftable[i * 48 + 1] = known_features[i].bit;
		memcpy(ftable + i * 48 + 2, known_features[i].name, strlen(known_features[i].name));
	}
	/* The feature table is a courtesy: left out when small clusters leave no room. */
	if (off + 8 + sizeof(ftable) + 8 + blen <= cs)
		put_ext(buf, &off, QCOW2_EXT_FEATURE_TABLE, ftable, sizeof(ftable));
	off += 8; /* end of extensions */
	if (off + blen > cs) {
		free(buf);
		REFUSE("backing file name does not fit in a %u-byte header cluster\n", cs);
	}
	if (o->backing) {
		h.backing_offset = off;
		h.backing_size = (uint32_t)blen;
		memcpy(buf + off, o->backing, blen);
	}
	hdr_encode(buf, &h);
	for (uint64_t i = 0; i < nb_rb; i++)
		be64_put(buf + cs + i * 8, (uint64_t)cs * (1 + rt_clusters + i));
	for (uint64_t c = 0; c < total; c++) {
		/* 16-bit refcounts are the common case; others go through the generic packing. */
		uint8_t *rb = buf + (uint64_t)cs * (1 + rt_clusters + c / rb_entries);
		uint64_t i = c % rb_entries;

		if (rbits >= 8)
			rb[i * (rbits / 8) + rbits / 8 - 1] = 1;
		else
			rb[i * rbits / 8] |= (uint8_t)(1u << ((i * rbits) % 8));
	}
	ret = blk_full_pwrite(fd, buf, total * cs, 0);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	free(buf);
	return ret;
}

int qcow2_create(const char *path, const struct blk_create_opts *opts)
{
	int fd, ret;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, opts->mode ? opts->mode : 0644);
	if (fd < 0) {
		ret = -errno;
		blk_set_error("qcow2: %s: %s\n", path, strerror(errno));
		return ret;
	}
	ret = create_layout(path, opts, fd);
	close(fd);
	if (ret)
		unlink(path);
	return ret;
}
