// SPDX-License-Identifier: MIT
#include "queue.h"

#include <errno.h>
#include <string.h>

#include "../common/tlv.h"
#include "../common/util.h"
#include "../mem/memory.h"

/* Ring layouts (virtio 1.x 2.7): a descriptor is {le64 addr, le32 len, le16 flags, le16 next};
 * the available ring {le16 flags, le16 idx, le16 ring[size], le16 used_event}; the used ring
 * {le16 flags, le16 idx, {le32 id, le32 len} ring[size], le16 avail_event}. */
#define DESC_SIZE 16
#define AVAIL_IDX 2
#define AVAIL_RING 4
#define USED_IDX 2
#define USED_RING 4
#define USED_ELEM 8

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static size_t avail_bytes(uint16_t size)
{
	return AVAIL_RING + 2 * (size_t)size + 2;
}

static size_t used_bytes(uint16_t size)
{
	return USED_RING + USED_ELEM * (size_t)size + 2;
}

static void mark_dirty(const struct virtq *vq, uint64_t gpa, uint64_t len)
{
	if (vq->m.mark_dirty && len)
		vq->m.mark_dirty(vq->m.opaque, gpa, len);
}

/* The rings are 2-byte aligned (checked at enable), so these are single atomic accesses: the
 * driver may write the same words concurrently. */
static uint16_t load16(const uint8_t *p, int order)
{
	return __atomic_load_n((const uint16_t *)(const void *)p, order);
}

static void store16(uint8_t *p, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)(void *)p, v, order);
}

void virtq_reset(struct virtq *vq, const struct virtq_mem *m, uint16_t max_size)
{
	memset(vq, 0, sizeof(*vq));
	vq->size = max_size;
	vq->max_size = max_size;
	if (m)
		vq->m = *m;
}

int virtq_enable(struct virtq *vq)
{
	const struct guest_mem *mem = vq->m.mem;
	uint16_t n = vq->size;

	vq->desc = vq->avail = vq->used = NULL;
	/* A size above the device's maximum would be refused by virtq_decode when the state is
	 * loaded again (snapshot, migration), so it is refused here, where the driver sees it. */
	if (!n || n > VIRTQ_MAX_SIZE || n > vq->max_size || (n & (n - 1)))
		return -EINVAL;
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return -EINVAL;
	if (!mem)
		return -EFAULT;
	vq->desc = memory_gpa_ptr(mem, vq->desc_gpa, (uint64_t)n * DESC_SIZE);
	vq->avail = memory_gpa_ptr(mem, vq->avail_gpa, avail_bytes(n));
	vq->used = memory_gpa_ptr(mem, vq->used_gpa, used_bytes(n));
	if (!vq->desc || !vq->avail || !vq->used) {
		vq->desc = vq->avail = vq->used = NULL;
		return -EFAULT;
	}
	return 0;
}

bool virtq_has_avail(struct virtq *vq)
{
	if (!vq->avail)
		return false;
	return load16(vq->avail + AVAIL_IDX, __ATOMIC_ACQUIRE) != vq->last_avail;
}

/* Tells the driver (event index) which avail entry should trigger the next notification. */
static void set_avail_event(struct virtq *vq)
{
	uint64_t off = USED_RING + USED_ELEM * (uint64_t)vq->size;

	store16(vq->used + off, vq->last_avail, __ATOMIC_RELAXED);
	mark_dirty(vq, vq->used_gpa + off, 2);
}

static int add_buf(struct virtq *vq, struct virtq_chain *c, const struct desc *d, bool *seen_write)
{
	struct virtq_buf *b;
	uint8_t *host;

	/* A device-writable buffer followed by a readable one: the driver broke the order. */
	if (!(d->flags & VIRTQ_DESC_F_WRITE) && *seen_write)
		return -EINVAL;
	if (d->flags & VIRTQ_DESC_F_WRITE)
		*seen_write = true;
	if (!d->len)
		return 0;
	if (c->nread + c->nwrite >= VIRTQ_MAX_CHAIN)
		return -E2BIG;
	/* used.len is 32 bits: a chain larger than that cannot be described. */
	if (c->read_len + c->write_len + d->len > UINT32_MAX)
		return -EINVAL;
	host = memory_gpa_ptr(vq->m.mem, d->addr, d->len);
	if (!host)
		return -EFAULT;
	b = &c->bufs[c->nread + c->nwrite];
	b->host = host;
	b->gpa = d->addr;
	b->len = d->len;
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		c->nwrite++;
		c->write_len += d->len;
	} else {
		c->nread++;
		c->read_len += d->len;
	}
	return 0;
}

/* Follows the chain starting at head. Each descriptor is copied before it is looked at, so a
 * driver rewriting it meanwhile cannot make us act on values we did not check. Loops are caught
 * by counting: no chain visits more descriptors than its table has. */
static int walk_chain(struct virtq *vq, uint16_t head, struct virtq_chain *c)
{
	const uint8_t *table = vq->desc;
	uint32_t tsize = vq->size, idx = head, count = 0;
	bool in_indirect = false, seen_write = false;
	struct desc d;
	int ret;

	c->head = head;
	c->nread = c->nwrite = 0;
	c->read_len = c->write_len = 0;
	if (head >= vq->size)
		return -EINVAL;
	for (;;) {
		memcpy(&d, table + (size_t)idx * DESC_SIZE, sizeof(d));
		if (++count > tsize)
			return -EINVAL;
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* One level only, not combined with NEXT, and only when negotiated. */
			if (!vq->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				return -EINVAL;
			if (!d.len || d.len % DESC_SIZE || d.len / DESC_SIZE > VIRTQ_MAX_CHAIN)
				return -EINVAL;
			table = memory_gpa_ptr(vq->m.mem, d.addr, d.len);
			if (!table)
				return -EFAULT;
			tsize = d.len / DESC_SIZE;
			in_indirect = true;
			idx = 0;
			count = 0;
			continue;
		}
		ret = add_buf(vq, c, &d, &seen_write);
		if (ret)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		idx = d.next;
		if (idx >= tsize)
			return -EINVAL;
	}
}

int virtq_pop(struct virtq *vq, struct virtq_chain *c)
{
	uint16_t avail_idx, head, pending;
	int ret;

	if (!vq->ready || !vq->desc)
		return 0;
	if (vq->budgeted && !vq->budget) {
		/* Left for the next round: no avail_event update, the caller requeues. */
		vq->over_budget = true;
		return 0;
	}
	/* Acquire: the ring entries and descriptors the driver wrote before bumping idx are
	 * visible once we see the new idx. */
	avail_idx = load16(vq->avail + AVAIL_IDX, __ATOMIC_ACQUIRE);
	if (avail_idx == vq->last_avail) {
		if (!vq->event_idx)
			return 0;
		/* Ask for a notification at the next entry, then look again: the driver may have
		 * added one before it could see our avail_event. */
		set_avail_event(vq);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = load16(vq->avail + AVAIL_IDX, __ATOMIC_ACQUIRE);
		if (avail_idx == vq->last_avail)
			return 0;
	}
	pending = (uint16_t)(avail_idx - vq->last_avail);
	if (pending > vq->size)
		return -EINVAL;
	head = load16(vq->avail + AVAIL_RING + 2 * (vq->last_avail & (vq->size - 1)),
		      __ATOMIC_RELAXED);
	ret = walk_chain(vq, head, c);
	if (ret)
		return ret;
	vq->last_avail++;
	if (vq->event_idx)
		set_avail_event(vq);
	if (vq->budgeted)
		vq->budget--;
	return 1;
}

void virtq_set_budget(struct virtq *vq, unsigned int n)
{
	vq->budgeted = n != 0;
	vq->budget = n;
	vq->over_budget = false;
}

bool virtq_over_budget(const struct virtq *vq)
{
	return vq->over_budget;
}

void virtq_push(struct virtq *vq, const struct virtq_chain *c, uint32_t written)
{
	uint64_t elem = USED_RING + USED_ELEM * (uint64_t)(vq->used_idx & (vq->size - 1));
	uint64_t left;

	if (!vq->used)
		return;
	if (written > c->write_len)
		written = (uint32_t)c->write_len;
	left = written;
	for (unsigned int i = c->nread; left && i < c->nread + c->nwrite; i++) {
		uint64_t n = MIN(left, (uint64_t)c->bufs[i].len);

		mark_dirty(vq, c->bufs[i].gpa, n);
		left -= n;
	}
	put_le32(vq->used + elem, c->head);
	put_le32(vq->used + elem + 4, written);
	mark_dirty(vq, vq->used_gpa + elem, USED_ELEM);
	vq->used_idx++;
	/* Release: the element and the buffer contents are visible before the new idx. */
	store16(vq->used + USED_IDX, vq->used_idx, __ATOMIC_RELEASE);
	mark_dirty(vq, vq->used_gpa + USED_IDX, 2);
}

bool virtq_need_notify(struct virtq *vq)
{
	uint16_t old = vq->signalled_used, cur = vq->used_idx, ev;
	bool valid = vq->signalled_valid;

	if (!vq->avail)
		return false;
	/* Our used->idx store must be ordered before we read the driver's suppression state,
	 * or both sides could decide the other will act. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(load16(vq->avail, __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	vq->signalled_used = cur;
	vq->signalled_valid = true;
	if (!valid)
		return true;
	ev = load16(vq->avail + AVAIL_RING + 2 * (uint64_t)vq->size, __ATOMIC_RELAXED);
	/* vring_need_event(): did used->idx step past used_event since the last interrupt? */
	return (uint16_t)(cur - ev - 1) < (uint16_t)(cur - old);
}

size_t virtq_chain_read(const struct virtq_chain *c, size_t off, void *dst, size_t len)
{
	uint8_t *out = dst;
	size_t done = 0;

	for (unsigned int i = 0; i < c->nread && done < len; i++) {
		const struct virtq_buf *b = &c->bufs[i];
		size_t n;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n = MIN(len - done, b->len - off);
		memcpy(out + done, b->host + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtq_chain_write(const struct virtq_chain *c, size_t off, const void *src, size_t len)
{
	const uint8_t *in = src;
	size_t done = 0;

	for (unsigned int i = c->nread; i < c->nread + c->nwrite && done < len; i++) {
		const struct virtq_buf *b = &c->bufs[i];
		size_t n;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n = MIN(len - done, b->len - off);
		memcpy(b->host + off, in + done, n);
		done += n;
		off = 0;
	}
	return done;
}

/* Saved layout, VIRTQ_STATE_LEN bytes, little-endian; later versions may append bytes:
 *   0 u16 size, 2 u8 ready, 3 u8 flags (1 indirect, 2 event_idx, 4 signalled_valid),
 *   4 u16 last_avail, 6 u16 used_idx, 8 u64 desc, 16 u64 avail (driver area),
 *   24 u64 used (device area), 32 u16 signalled_used, 34..39 zero. */
void virtq_encode(const struct virtq *vq, uint8_t out[VIRTQ_STATE_LEN])
{
	memset(out, 0, VIRTQ_STATE_LEN);
	put_le16(out, vq->size);
	out[2] = vq->ready;
	out[3] = (uint8_t)((vq->indirect ? 1 : 0) | (vq->event_idx ? 2 : 0) |
			   (vq->signalled_valid ? 4 : 0));
	put_le16(out + 4, vq->last_avail);
	put_le16(out + 6, vq->used_idx);
	put_le64(out + 8, vq->desc_gpa);
	put_le64(out + 16, vq->avail_gpa);
	put_le64(out + 24, vq->used_gpa);
	put_le16(out + 32, vq->signalled_used);
}

int virtq_decode(struct virtq *vq, const uint8_t *in, uint32_t len, uint16_t max_size)
{
	uint16_t size;

	if (len < VIRTQ_STATE_LEN)
		return -EINVAL;
	size = get_le16(in);
	/* A disabled queue's size is only the register the driver wrote, whatever it holds:
	 * virtq_enable checks it when the driver enables the queue. A ready queue's was checked
	 * then and must still fit this device. */
	if (in[2] > 1 || (in[2] && (!size || size > max_size || (size & (size - 1)))))
		return -EINVAL;
	vq->size = size;
	vq->max_size = max_size;
	vq->ready = in[2];
	vq->indirect = in[3] & 1;
	vq->event_idx = in[3] & 2;
	vq->signalled_valid = in[3] & 4;
	vq->last_avail = get_le16(in + 4);
	vq->used_idx = get_le16(in + 6);
	vq->desc_gpa = get_le64(in + 8);
	vq->avail_gpa = get_le64(in + 16);
	vq->used_gpa = get_le64(in + 24);
	vq->signalled_used = get_le16(in + 32);
	vq->desc = vq->avail = vq->used = NULL;
	return 0;
}
