/* SPDX-License-Identifier: MIT */
/* Split virtqueues (virtio 1.x, section 2.7), independent of the transport and of KVM.
 *
 * The guest owns the rings and may change them at any time, from any vCPU, while the device
 * reads them: every descriptor is copied once into host memory and checked there, every guest
 * address is translated with a bounds check, and anything malformed makes virtq_pop() fail with
 * -EINVAL, -EFAULT or -E2BIG instead of being followed. The caller (the transport) then puts the
 * device into DEVICE_NEEDS_RESET. A virtq is used by one thread at a time (its device's lock);
 * ordering against the guest uses acquire/release on the ring indices.
 *
 * The host is little-endian (x86-64), as virtio 1.x rings are: fields are read in place. */
#ifndef VIREO_VIRTIO_QUEUE_H
#define VIREO_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_mem;

#define VIRTQ_MAX_SIZE 1024 /* largest queue size a device may offer */
#define VIRTQ_MAX_CHAIN 1024 /* most buffers in one chain, indirect tables included */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

/* Feature bits the queue code implements (offered by every transport). */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29

/* How a queue reaches guest RAM. mark_dirty (may be NULL) is told about every byte the VMM
 * writes into guest memory through this queue (used ring, buffers the device filled), so live
 * migration can resend those pages. */
struct virtq_mem {
	const struct guest_mem *mem;
	void (*mark_dirty)(void *opaque, uint64_t gpa, uint64_t len);
	void *opaque;
};

struct virtq_buf {
	uint8_t *host; /* into guest RAM: valid for len bytes */
	uint64_t gpa;
	uint32_t len;
};

/* One popped chain: readable buffers first (bufs[0..nread)), then writable ones
 * (bufs[nread..nread+nwrite)). Large (VIRTQ_MAX_CHAIN buffers): allocate it once per device. */
struct virtq_chain {
	uint16_t head;
	unsigned int nread, nwrite;
	uint64_t read_len, write_len;
	struct virtq_buf bufs[VIRTQ_MAX_CHAIN];
};

struct virtq {
	/* Set by the driver through the transport. */
	uint16_t size; /* queue size (number of descriptors), a power of two */
	/* The largest size the device offers (set by virtq_reset): the driver may pick a
	 * smaller one, never a larger one. */
	uint16_t max_size;
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* Negotiated ring features. */
	bool indirect, event_idx;
	/* Device-side progress: the next avail entry to take, and the next used entry to fill
	 * (the guest-visible used->idx once published). */
	uint16_t last_avail;
	uint16_t used_idx;
	/* used_idx when the guest was last notified, for event-index suppression. */
	uint16_t signalled_used;
	bool signalled_valid;

	/* A limit on the chains virtq_pop hands out (virtq_set_budget), so that a driver
	 * refilling the ring as fast as it is emptied cannot keep one caller busy forever. */
	bool budgeted;
	unsigned int budget;
	bool over_budget; /* virtq_pop said "empty" because the budget ran out */

	/* Host views of the rings, computed by virtq_enable; NULL while disabled. */
	struct virtq_mem m;
	uint8_t *desc, *avail, *used;
};

/* Resets the queue to the driver-visible defaults (size = max_size, not ready, addresses 0). */
void virtq_reset(struct virtq *vq, const struct virtq_mem *m, uint16_t max_size);
/* Checks size (a power of two, at most max_size) and ring addresses (alignment, inside RAM) and
 * maps the rings. Called when the driver enables the queue and again after a state load.
 * Returns 0, -EINVAL or -EFAULT. */
int virtq_enable(struct virtq *vq);
/* Takes the next available chain. Returns 1 with *c filled, 0 when the queue is empty, or
 * -errno when the driver broke the rules (the queue must not be used again until reset). */
int virtq_pop(struct virtq *vq, struct virtq_chain *c);
/* From now on virtq_pop returns at most n more chains, then 0 as if the queue were empty (and
 * virtq_over_budget says so); n == 0 removes the limit. */
void virtq_set_budget(struct virtq *vq, unsigned int n);
/* Whether virtq_pop stopped at the budget since virtq_set_budget. */
bool virtq_over_budget(const struct virtq *vq);
/* Returns the chain to the driver with written bytes in its writable buffers (<= write_len).
 * Publishes used->idx with release ordering. */
void virtq_push(struct virtq *vq, const struct virtq_chain *c, uint32_t written);
/* Whether the driver wants an interrupt for what was pushed since the last time this returned
 * true (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with VIRTIO_RING_F_EVENT_IDX). */
bool virtq_need_notify(struct virtq *vq);
/* Whether the driver has made chains available that were not popped yet. */
bool virtq_has_avail(struct virtq *vq);

/* Copies out of the chain's readable part from offset off; returns the bytes copied. */
size_t virtq_chain_read(const struct virtq_chain *c, size_t off, void *dst, size_t len);
/* Copies into the chain's writable part from offset off; returns the bytes copied. */
size_t virtq_chain_write(const struct virtq_chain *c, size_t off, const void *src, size_t len);

/* One queue as a TLV field value (a fixed little-endian layout, documented in queue.c), and
 * back. virtq_decode leaves host views unmapped: call virtq_enable for a ready queue. */
#define VIRTQ_STATE_LEN 40
void virtq_encode(const struct virtq *vq, uint8_t out[VIRTQ_STATE_LEN]);
int virtq_decode(struct virtq *vq, const uint8_t *in, uint32_t len, uint16_t max_size);

#endif
