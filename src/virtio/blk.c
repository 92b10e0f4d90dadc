// SPDX-License-Identifier: MIT
/*
 * virtio-blk (device ID 2) on the block layer: one request queue, requests parsed here and
 * handed to the asynchronous engine (blk_submit), completed on the main loop when the engine's
 * eventfd fires. Nothing blocks a vCPU thread except a device reset, which waits for the
 * requests in flight (they point into the rings the driver is taking back).
 *
 * A request is a chain: a 16-byte header {le32 type, le32 reserved, le64 sector} in the readable
 * part, then data (readable for writes, discard and write-zeroes segments; writable for reads and
 * GET_ID), then one writable status byte, the chain's last writable byte. Buffer boundaries do not
 * matter (VIRTIO_F_ANY_LAYOUT is part of virtio 1.x).
 *
 * Every callback and every completion runs with vdev->lock held, so the request pool, the queue
 * and the image handle are only ever touched by one thread at a time.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "../block/block.h"
#include "../common/log.h"
#include "../common/tlv.h"
#include "../common/util.h"
#include "devices.h"

#define BLK_QUEUE_SIZE 128
/* Data segments per request: the queue size less the header and status descriptors, as Linux
 * expects of a device without indirect descriptors; we also cap chains made of indirect tables. */
#define BLK_SEG_MAX (BLK_QUEUE_SIZE - 2)
#define BLK_SIZE_MAX (1u << 20) /* largest segment the driver should make */
#define SECTOR 512u
#define BLK_MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB per discard or write-zeroes request */

/* Feature bits (virtio 1.x 5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Device configuration layout (struct virtio_blk_config). */
#define CFG_CAPACITY 0
#define CFG_SIZE_MAX 8
#define CFG_SEG_MAX 12
#define CFG_BLK_SIZE 20
#define CFG_MAX_DISCARD_SECTORS 36
#define CFG_MAX_DISCARD_SEG 40
#define CFG_DISCARD_ALIGNMENT 44
#define CFG_MAX_WRITE_ZEROES_SECTORS 48
#define CFG_MAX_WRITE_ZEROES_SEG 52
#define CFG_WRITE_ZEROES_MAY_UNMAP 56
#define BLK_CONFIG_SIZE 60

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_WZ_F_UNMAP 1

#define HDR_LEN 16
#define SEG_LEN 16 /* discard / write-zeroes segment: le64 sector, le32 sectors, le32 flags */

/* Device-specific state fields (the transport's come first in the section). */
enum {
	BLK_T_CAPACITY = VIRTIO_TAG_DEVICE, /* u64 sectors: must match the image on load */
};

/* What a guest did wrong, each logged once per device. */
enum blk_complaint {
	BAD_SHORT_HEADER,
	BAD_RANGE,
	BAD_SEGMENTS,
	BAD_LENGTH,
	BAD_READ_ONLY,
	BAD_TYPE,
	BAD_IO,
	BAD_COUNT,
};

static const char *const complaint_text[BAD_COUNT] = {
	[BAD_SHORT_HEADER] = "request header shorter than 16 bytes",
	[BAD_RANGE] = "request beyond the end of the disk",
	[BAD_SEGMENTS] = "request with more data segments than seg_max",
	[BAD_LENGTH] = "request length not a multiple of 512 bytes",
	[BAD_READ_ONLY] = "write to a read-only disk",
	[BAD_TYPE] = "unsupported request type or flags",
	[BAD_IO] = "I/O error on the image",
};

struct blk_request {
	struct virtio_blk *blk;
	struct blk_req req;
	uint16_t head;
	uint8_t *status; /* the status byte, in guest RAM */
	uint64_t status_gpa;
	uint32_t written; /* bytes the device put in the writable part, status included */
	bool data_in; /* iov was written by the device (reads, GET_ID): mark it dirty */
	int niov;
	struct iovec iov[BLK_SEG_MAX];
	uint64_t iov_gpa[BLK_SEG_MAX];
	struct blk_request *next_free;
};

struct virtio_blk {
	struct virtio_pci vp;
	const struct virtio_pci_host *host;
	struct blk *b; /* NULL while released (migration) or before an incoming VM's state */
	char *path; /* absolute path of the top image */
	enum blk_format format; /* of the top image */
	bool read_only;
	char serial[VIRTIO_BLK_ID_BYTES];
	char name[64];
	uint64_t capacity; /* sectors */
	uint32_t discard_alignment; /* sectors */
	int aio_fd;
	bool watched;
	/* During a snapshot: the image the saved state goes with (the old top). */
	char *frozen;
	enum blk_format frozen_format;

	struct blk_request *reqs, *free;
	unsigned int inflight;
	bool starved; /* buffers left in the ring for want of a free request */
	bool resetting; /* completions must not touch the rings the driver reclaims */
	bool irq_pending;
	unsigned int complained; /* bit per enum blk_complaint */
	struct virtq_chain chain, done_chain;
};

static void complain(struct virtio_blk *blk, enum blk_complaint what, int err)
{
	if (blk->complained & (1u << what))
		return;
	blk->complained |= 1u << what;
	if (err)
		pr_warn("%s %s: %s (%s); further ones are not logged", blk->vp.vdev.ops->name,
			blk->path ? blk->path : "", complaint_text[what], strerror(-err));
	else
		pr_warn("%s %s: the guest sent a %s; further ones are not logged",
			blk->vp.vdev.ops->name, blk->path ? blk->path : "", complaint_text[what]);
}

static void mark_dirty(struct virtio_blk *blk, uint64_t gpa, uint64_t len)
{
	const struct virtq_mem *m = &blk->vp.vdev.vqs[0].m;

	if (m->mark_dirty && len)
		m->mark_dirty(m->opaque, gpa, len);
}

/* Hands the chain back with its status. The data a read brought is in guest RAM already, written
 * by the engine: that is reported for dirty tracking here. */
static void finish(struct blk_request *r, uint8_t status)
{
	struct virtio_blk *blk = r->blk;
	struct virtq *vq = &blk->vp.vdev.vqs[0];
	struct virtq_chain *c = &blk->done_chain;

	if (!blk->resetting) {
		*r->status = status;
		mark_dirty(blk, r->status_gpa, 1);
		if (r->data_in)
			for (int i = 0; i < r->niov; i++)
				mark_dirty(blk, r->iov_gpa[i], r->iov[i].iov_len);
		/* The buffers were reported above; the queue only needs the head and length. */
		c->head = r->head;
		c->nread = c->nwrite = 0;
		c->read_len = 0;
		c->write_len = r->written;
		virtq_push(vq, c, r->written);
		blk->irq_pending = true;
	}
	r->next_free = blk->free;
	blk->free = r;
	blk->inflight--;
}

static void flush_irq(struct virtio_blk *blk)
{
	if (blk->irq_pending) {
		blk->irq_pending = false;
		virtio_queue_interrupt(&blk->vp.vdev, 0);
	}
}

static void req_done(struct blk_req *req, int ret)
{
	struct blk_request *r = req->opaque;

	if (ret)
		complain(r->blk, BAD_IO, ret);
	finish(r, ret ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

/* Points r->iov at bytes [off, off + len) of the chain's buffers first..first+n. Returns 0, or
 * -E2BIG when that takes more than BLK_SEG_MAX pieces. */
static int map_data(struct blk_request *r, const struct virtq_chain *c, unsigned int first,
		    unsigned int n, uint64_t off, uint64_t len)
{
	r->niov = 0;
	for (unsigned int i = first; i < first + n && len; i++) {
		const struct virtq_buf *b = &c->bufs[i];
		uint64_t take;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		take = MIN(len, (uint64_t)b->len - off);
		if (r->niov == BLK_SEG_MAX)
			return -E2BIG;
		r->iov[r->niov].iov_base = b->host + off;
		r->iov[r->niov].iov_len = take;
		r->iov_gpa[r->niov] = b->gpa + off;
		r->niov++;
		len -= take;
		off = 0;
	}
	return 0;
}

/* Whether [sector, sector + bytes / 512) lies on the disk. */
static bool in_range(const struct virtio_blk *blk, uint64_t sector, uint64_t bytes)
{
	uint64_t n = bytes / SECTOR;

	return sector <= blk->capacity && n <= blk->capacity - sector;
}

/* A discard or write-zeroes request: one segment (max_*_seg is 1). Returns a status, or
 * VIRTIO_BLK_S_OK after queueing the operation in r->req. */
static uint8_t parse_ranged(struct virtio_blk *blk, struct blk_request *r,
			    const struct virtq_chain *c, uint32_t type)
{
	uint8_t seg[SEG_LEN];
	uint64_t sector;
	uint32_t nsec, flags;
	bool discard = type == VIRTIO_BLK_T_DISCARD;

	if (blk->read_only ||
	    !virtio_has_feature(&blk->vp.vdev,
				discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES)) {
		complain(blk, BAD_TYPE, 0);
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (c->read_len - HDR_LEN != SEG_LEN) {
		complain(blk, BAD_SEGMENTS, 0);
		return VIRTIO_BLK_S_IOERR;
	}
	virtq_chain_read(c, HDR_LEN, seg, SEG_LEN);
	sector = get_le64(seg);
	nsec = get_le32(seg + 8);
	flags = get_le32(seg + 12);
	/* Discard has no flags; write-zeroes may say the range may be deallocated. */
	if (flags & ~(discard ? 0u : (uint32_t)VIRTIO_BLK_WZ_F_UNMAP)) {
		complain(blk, BAD_TYPE, 0);
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (nsec > BLK_MAX_DISCARD_SECTORS || !in_range(blk, sector, (uint64_t)nsec * SECTOR)) {
		complain(blk, BAD_RANGE, 0);
		return VIRTIO_BLK_S_IOERR;
	}
	r->req.op = discard ? BLK_OP_DISCARD : BLK_OP_WRITE_ZEROES;
	r->req.offset = sector * SECTOR;
	r->req.len = (uint64_t)nsec * SECTOR;
	return VIRTIO_BLK_S_OK;
}

/*
 * Turns the popped chain into r: either an operation for the engine in r->req (returns OK and
 * sets *submit), or a final status (returns it; GET_ID is answered here). The chain has a status
 * byte (the caller checked).
 */
static uint8_t parse_request(struct virtio_blk *blk, struct blk_request *r,
			     const struct virtq_chain *c, bool *submit)
{
	uint8_t hdr[HDR_LEN];
	uint32_t type;
	uint64_t sector, len;

	*submit = false;
	if (virtq_chain_read(c, 0, hdr, HDR_LEN) < HDR_LEN) {
		complain(blk, BAD_SHORT_HEADER, 0);
		return VIRTIO_BLK_S_IOERR;
	}
	type = get_le32(hdr);
	sector = get_le64(hdr + 8);
	memset(&r->req, 0, sizeof(r->req));
	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (type == VIRTIO_BLK_T_OUT && blk->read_only) {
			/* 5.2.6.1: IOERR, and no data written. */
			complain(blk, BAD_READ_ONLY, 0);
			return VIRTIO_BLK_S_IOERR;
		}
		if (type == VIRTIO_BLK_T_IN) {
			len = c->write_len - 1;
			r->data_in = true;
			r->written = (uint32_t)MIN(c->write_len, (uint64_t)UINT32_MAX);
			if (map_data(r, c, c->nread, c->nwrite, 0, len))
				goto too_many;
		} else {
			len = c->read_len - HDR_LEN;
			if (map_data(r, c, 0, c->nread, HDR_LEN, len))
				goto too_many;
		}
		if (len % SECTOR) {
			complain(blk, BAD_LENGTH, 0);
			return VIRTIO_BLK_S_IOERR;
		}
		if (!in_range(blk, sector, len)) {
			complain(blk, BAD_RANGE, 0);
			return VIRTIO_BLK_S_IOERR;
		}
		if (!len)
			return VIRTIO_BLK_S_OK;
		r->req.op = type == VIRTIO_BLK_T_IN ? BLK_OP_READ : BLK_OP_WRITE;
		r->req.offset = sector * SECTOR;
		r->req.iov = r->iov;
		r->req.iovcnt = r->niov;
		*submit = true;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		/* Nothing of a read-only disk can be unwritten. */
		if (blk->read_only)
			return VIRTIO_BLK_S_OK;
		r->req.op = BLK_OP_FLUSH;
		*submit = true;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID: {
		size_t n = MIN((uint64_t)VIRTIO_BLK_ID_BYTES, c->write_len - 1);

		/* Up to 20 bytes, NUL-padded; not terminated when it is 20 long. At most 20
		 * bytes span at most 20 buffers, within BLK_SEG_MAX. */
		map_data(r, c, c->nread, c->nwrite, 0, n);
		r->data_in = true;
		virtq_chain_write(c, 0, blk->serial, n);
		r->written = (uint32_t)n + 1;
		return VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		uint8_t st = parse_ranged(blk, r, c, type);

		*submit = st == VIRTIO_BLK_S_OK;
		return st;
	}
	default:
		complain(blk, BAD_TYPE, 0);
		return VIRTIO_BLK_S_UNSUPP;
	}
too_many:
	r->niov = 0;
	r->data_in = false;
	complain(blk, BAD_SEGMENTS, 0);
	return VIRTIO_BLK_S_IOERR;
}

/* The status byte: the last byte of the writable part. */
static int find_status(const struct virtq_chain *c, uint8_t **host, uint64_t *gpa)
{
	for (unsigned int i = c->nread + c->nwrite; i > c->nread; i--) {
		const struct virtq_buf *b = &c->bufs[i - 1];

		if (b->len) {
			*host = b->host + b->len - 1;
			*gpa = b->gpa + b->len - 1;
			return 0;
		}
	}
	return -EINVAL;
}

static int blk_notify(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_blk *blk = vdev->priv;
	struct virtq *vq = &vdev->vqs[q];
	int ret = 0;

	while (blk->free) {
		struct blk_request *r;
		bool submit;
		uint8_t st;

		ret = virtq_pop(vq, &blk->chain);
		if (ret <= 0)
			break;
		ret = 0;
		r = blk->free;
		blk->free = r->next_free;
		blk->inflight++;
		r->head = blk->chain.head;
		r->niov = 0;
		r->data_in = false;
		r->written = 1;
		/* Without a status byte nothing can be reported: the driver broke the rules. */
		if (find_status(&blk->chain, &r->status, &r->status_gpa)) {
			r->next_free = blk->free;
			blk->free = r;
			blk->inflight--;
			flush_irq(blk);
			return -EINVAL;
		}
		st = parse_request(blk, r, &blk->chain, &submit);
		if (submit && !blk->b) {
			st = VIRTIO_BLK_S_IOERR;
			submit = false;
		}
		if (submit) {
			r->req.done = req_done;
			r->req.opaque = r;
			ret = blk_submit(blk->b, &r->req);
			if (!ret)
				continue;
			complain(blk, BAD_IO, ret);
			st = VIRTIO_BLK_S_IOERR;
			ret = 0;
		}
		finish(r, st);
	}
	blk->starved = !blk->free;
	flush_irq(blk);
	return ret;
}

/* The engine's eventfd: completions to hand back, and room for requests left waiting. */
static void aio_ready(void *arg)
{
	struct virtio_blk *blk = arg;
	struct virtio_dev *vdev = &blk->vp.vdev;

	virtio_lock(vdev);
	if (blk->b)
		blk_aio_complete(blk->b);
	flush_irq(blk);
	if (blk->starved && blk->free)
		virtio_dev_process(vdev, 0);
	virtio_unlock(vdev);
}

static void blk_drain_requests(struct virtio_blk *blk)
{
	if (blk->b)
		blk_drain(blk->b);
	flush_irq(blk);
}

static void blk_reset(struct virtio_dev *vdev)
{
	struct virtio_blk *blk = vdev->priv;

	/* The driver takes its buffers back: requests still reading into them finish first,
	 * without touching the (already reset) rings. */
	blk->resetting = true;
	blk_drain_requests(blk);
	blk->resetting = false;
	blk->irq_pending = false;
	blk->starved = false;
}

static void blk_quiesce(struct virtio_dev *vdev)
{
	blk_drain_requests(vdev->priv);
}

static void blk_config_read(struct virtio_dev *vdev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *blk = vdev->priv;
	uint8_t cfg[BLK_CONFIG_SIZE] = { 0 };

	put_le64(cfg + CFG_CAPACITY, blk->capacity);
	put_le32(cfg + CFG_SIZE_MAX, BLK_SIZE_MAX);
	put_le32(cfg + CFG_SEG_MAX, BLK_SEG_MAX);
	put_le32(cfg + CFG_BLK_SIZE, SECTOR);
	put_le32(cfg + CFG_MAX_DISCARD_SECTORS, BLK_MAX_DISCARD_SECTORS);
	put_le32(cfg + CFG_MAX_DISCARD_SEG, 1);
	put_le32(cfg + CFG_DISCARD_ALIGNMENT, blk->discard_alignment);
	put_le32(cfg + CFG_MAX_WRITE_ZEROES_SECTORS, BLK_MAX_DISCARD_SECTORS);
	put_le32(cfg + CFG_MAX_WRITE_ZEROES_SEG, 1);
	cfg[CFG_WRITE_ZEROES_MAY_UNMAP] = 1;
	memcpy(data, cfg + off, len);
}

static int blk_save(struct virtio_dev *vdev, struct tlv_writer *w)
{
	struct virtio_blk *blk = vdev->priv;

	/* Drained: requests in flight are never part of the state (see blk_quiesce). */
	if (blk->inflight)
		return -EBUSY;
	tlv_put_u64(w, BLK_T_CAPACITY, blk->capacity);
	return 0;
}

static int open_image(struct virtio_blk *blk);

static int blk_load(struct virtio_dev *vdev, const struct tlv_section *s)
{
	struct virtio_blk *blk = vdev->priv;
	uint64_t cap = 0;
	int ret;

	/* An incoming migration opens the image only now: until the source sent its state it
	 * was writing to it. */
	if (!blk->b) {
		ret = open_image(blk);
		if (ret)
			return ret;
	}
	ret = tlv_get_u64(s, BLK_T_CAPACITY, &cap);
	if (ret)
		return ret;
	if (cap && cap != blk->capacity) {
		pr_err("%s %s: the image has %llu sectors, the saved disk had %llu",
		       vdev->ops->name, blk->path, (unsigned long long)blk->capacity,
		       (unsigned long long)cap);
		return -EINVAL;
	}
	return 0;
}

#define BLK_OPS(name_, features_)                                                             \
	{                                                                                     \
		.name = (name_), .device_id = 2, .pci_class = 0x01, .pci_subclass = 0x00,     \
		.features = (features_), .num_queues = 1, .queue_size = BLK_QUEUE_SIZE,       \
		.config_size = BLK_CONFIG_SIZE, .config_read = blk_config_read,               \
		.notify = blk_notify, .reset = blk_reset, .save = blk_save, .load = blk_load, \
		.quiesce = blk_quiesce,                                                       \
	}

#define BLK_FEATURES                                                        \
	((1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) | \
	 (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH))

/* Read-only disks offer RO instead of discard and write-zeroes; the ops are static, so two. */
static const struct virtio_device_ops blk_rw_ops =
	BLK_OPS("virtio-blk", BLK_FEATURES | (1ULL << VIRTIO_BLK_F_DISCARD) |
				      (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
static const struct virtio_device_ops blk_ro_ops =
	BLK_OPS("virtio-blk", BLK_FEATURES | (1ULL << VIRTIO_BLK_F_RO));

/* Keeps the absolute path: snapshots record it and overlays name their backing file by it. */
static int set_path(struct virtio_blk *blk, const char *path)
{
	char *abs = realpath(path, NULL);

	if (!abs && blk->path)
		abs = strdup(path); /* a switch happened: keep going with the name as given */
	if (!abs)
		return errno ? -errno : -ENOMEM;
	free(blk->path);
	blk->path = abs;
	return 0;
}

/* Watches the engine's eventfd on the main loop (once per handle). */
static int watch_aio(struct virtio_blk *blk)
{
	const struct virtio_pci_host *h = blk->host;
	int fd = blk_aio_fd(blk->b), ret;

	if (fd < 0)
		return fd;
	blk->aio_fd = fd;
	if (!h->watch_fd)
		return 0;
	ret = h->watch_fd(h->opaque, fd, aio_ready, blk);
	blk->watched = !ret;
	return ret;
}

static void unwatch_aio(struct virtio_blk *blk)
{
	if (blk->watched && blk->host->unwatch_fd)
		blk->host->unwatch_fd(blk->host->opaque, blk->aio_fd);
	blk->watched = false;
	blk->aio_fd = -1;
}

static int open_image(struct virtio_blk *blk)
{
	struct blk_image_info info;
	uint64_t size;
	int ret;

	ret = blk_open(blk->path, blk->format, blk->read_only ? 0 : BLK_OPEN_RDWR, &blk->b);
	if (ret)
		return ret;
	size = blk_size(blk->b);
	blk->capacity = size / SECTOR;
	if (size % SECTOR)
		pr_warn("%s: %llu bytes, not a multiple of 512: the last %llu are not visible",
			blk->path, (unsigned long long)size, (unsigned long long)(size % SECTOR));
	/* qcow2 deallocates whole clusters only: tell the guest to discard in those. */
	blk->discard_alignment = 8;
	if (blk_get_info(blk->b, 0, &info) == 0 && info.format == BLK_FORMAT_QCOW2 &&
	    info.cluster_size >= SECTOR)
		blk->discard_alignment = info.cluster_size / SECTOR;
	blk->format = blk_format(blk->b);
	ret = watch_aio(blk);
	if (ret) {
		blk_close(blk->b);
		blk->b = NULL;
	}
	return ret;
}

static void close_image(struct virtio_blk *blk, int *err)
{
	int ret;

	if (!blk->b)
		return;
	blk_drain_requests(blk);
	unwatch_aio(blk);
	ret = blk_close(blk->b);
	blk->b = NULL;
	if (ret) {
		pr_err("%s: closing: %s", blk->path, strerror(-ret));
		if (err && !*err)
			*err = ret;
	}
}

int virtio_blk_create(struct virtio_pci **out, const struct virtio_pci_host *host,
		      struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq,
		      const struct virtio_blk_opts *opts)
{
	struct virtio_blk *blk = calloc(1, sizeof(*blk));
	int ret = -ENOMEM;

	if (!blk)
		return -ENOMEM;
	blk->host = host;
	blk->aio_fd = -1;
	blk->read_only = opts->read_only;
	blk->format = opts->format;
	blk->reqs = calloc(BLK_QUEUE_SIZE, sizeof(*blk->reqs));
	if (!blk->reqs)
		goto err_free;
	for (unsigned int i = 0; i < BLK_QUEUE_SIZE; i++) {
		blk->reqs[i].blk = blk;
		blk->reqs[i].next_free = blk->free;
		blk->free = &blk->reqs[i];
	}
	if (opts->serial)
		memcpy(blk->serial, opts->serial, strnlen(opts->serial, sizeof(blk->serial)));
	snprintf(blk->name, sizeof(blk->name), "%s", opts->name ? opts->name : "disk");
	ret = set_path(blk, opts->path);
	if (ret)
		goto err_reqs;
	if (!opts->deferred) {
		ret = open_image(blk);
		if (ret)
			goto err_path;
	}
	ret = virtio_pci_create(&blk->vp, blk->read_only ? &blk_ro_ops : &blk_rw_ops, blk, host,
				pci, mmio, intx_irq);
	if (ret)
		goto err_image; /* a failed create leaves nothing pointing at blk */
	*out = &blk->vp;
	return 0;
err_image:
	close_image(blk, NULL);
err_path:
	free(blk->path);
err_reqs:
	free(blk->reqs);
err_free:
	free(blk);
	return ret;
}

static struct virtio_blk *to_blk(struct virtio_pci *vp)
{
	return vp->vdev.priv;
}

void virtio_blk_describe(struct virtio_pci *vp, struct virtio_blk_info *info)
{
	struct virtio_blk *blk = to_blk(vp);

	virtio_lock(&vp->vdev);
	snprintf(info->path, sizeof(info->path), "%s", blk->frozen ? blk->frozen : blk->path);
	info->format = blk->frozen ? blk->frozen_format : blk->format;
	info->read_only = blk->read_only;
	memcpy(info->serial, blk->serial, VIRTIO_BLK_ID_BYTES);
	info->serial[VIRTIO_BLK_ID_BYTES] = '\0';
	snprintf(info->name, sizeof(info->name), "%s", blk->name);
	virtio_unlock(&vp->vdev);
}

int virtio_blk_switch_overlay(struct virtio_pci *vp, const char *new_path)
{
	struct virtio_blk *blk = to_blk(vp);
	char *old;
	enum blk_format old_format;
	int ret;

	virtio_lock(&vp->vdev);
	if (!blk->b || blk->read_only) {
		ret = blk->b ? -EROFS : -EBADF;
		goto out;
	}
	old = strdup(blk->path);
	old_format = blk->format;
	if (!old) {
		ret = -ENOMEM;
		goto out;
	}
	blk_drain_requests(blk);
	ret = blk_switch_to_overlay(blk->b, new_path);
	if (!ret)
		ret = set_path(blk, new_path);
	if (ret) {
		free(old);
		goto out;
	}
	blk->format = BLK_FORMAT_QCOW2;
	free(blk->frozen);
	blk->frozen = old;
	blk->frozen_format = old_format;
out:
	virtio_unlock(&vp->vdev);
	return ret;
}

void virtio_blk_end_snapshot(struct virtio_pci *vp)
{
	struct virtio_blk *blk = to_blk(vp);

	virtio_lock(&vp->vdev);
	free(blk->frozen);
	blk->frozen = NULL;
	virtio_unlock(&vp->vdev);
}

int virtio_blk_release(struct virtio_pci *vp)
{
	struct virtio_blk *blk = to_blk(vp);
	int err = 0;

	virtio_lock(&vp->vdev);
	close_image(blk, &err);
	virtio_unlock(&vp->vdev);
	return err;
}

int virtio_blk_reacquire(struct virtio_pci *vp)
{
	struct virtio_blk *blk = to_blk(vp);
	int ret = 0;

	virtio_lock(&vp->vdev);
	if (!blk->b)
		ret = open_image(blk);
	virtio_unlock(&vp->vdev);
	return ret;
}

int virtio_blk_close(struct virtio_pci *vp)
{
	struct virtio_blk *blk = to_blk(vp);
	int err = 0;

	virtio_lock(&vp->vdev);
	close_image(blk, &err);
	virtio_unlock(&vp->vdev);
	return err;
}

const struct device_ops virtio_blk_device_ops =
	VIRTIO_PCI_DEVICE_OPS("virtio-blk", SECTION_VIRTIO_BLK);

void virtio_blk_destroy(struct virtio_pci *vp)
{
	struct virtio_blk *blk = to_blk(vp);

	virtio_blk_close(vp);
	free(blk->path);
	free(blk->frozen);
	free(blk->reqs);
	free(blk);
}
