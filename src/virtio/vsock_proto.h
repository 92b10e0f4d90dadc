/* SPDX-License-Identifier: MIT */
/* The virtio-vsock packet header and stream credit arithmetic (virtio 1.2 section 5.10), with
 * no device or socket behind them, so unit tests can check them alone.
 *
 * Credit: each side tells the other, in every packet, how much receive buffer it has for the
 * connection (buf_alloc) and how many bytes it has consumed so far (fwd_cnt). A sender may have
 * at most buf_alloc - (tx_cnt - fwd_cnt) bytes in flight, counters being free-running u32s. */
#ifndef VIREO_VIRTIO_VSOCK_PROTO_H
#define VIREO_VIRTIO_VSOCK_PROTO_H

#include <stdint.h>

#include "../common/tlv.h"
#include "../common/util.h"

#define VSOCK_HDR_LEN 44
#define VSOCK_HOST_CID 2
#define VSOCK_TYPE_STREAM 1
/* Receive buffer the device advertises per connection (guest data not yet taken by the host
 * socket). */
#define VSOCK_BUF_ALLOC (64 * 1024)

enum vsock_op {
	VSOCK_OP_INVALID,
	VSOCK_OP_REQUEST,
	VSOCK_OP_RESPONSE,
	VSOCK_OP_RST,
	VSOCK_OP_SHUTDOWN,
	VSOCK_OP_RW,
	VSOCK_OP_CREDIT_UPDATE,
	VSOCK_OP_CREDIT_REQUEST,
};

#define VSOCK_SHUTDOWN_RCV 1 /* the sender will receive no more */
#define VSOCK_SHUTDOWN_SEND 2 /* the sender will send no more */

#define VSOCK_EVENT_TRANSPORT_RESET 0

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags;
	uint32_t buf_alloc, fwd_cnt;
};

static inline void vsock_hdr_decode(struct vsock_hdr *h, const uint8_t *p)
{
	h->src_cid = get_le64(p);
	h->dst_cid = get_le64(p + 8);
	h->src_port = get_le32(p + 16);
	h->dst_port = get_le32(p + 20);
	h->len = get_le32(p + 24);
	h->type = get_le16(p + 28);
	h->op = get_le16(p + 30);
	h->flags = get_le32(p + 32);
	h->buf_alloc = get_le32(p + 36);
	h->fwd_cnt = get_le32(p + 40);
}

static inline void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *p)
{
	put_le64(p, h->src_cid);
	put_le64(p + 8, h->dst_cid);
	put_le32(p + 16, h->src_port);
	put_le32(p + 20, h->dst_port);
	put_le32(p + 24, h->len);
	put_le16(p + 28, h->type);
	put_le16(p + 30, h->op);
	put_le32(p + 32, h->flags);
	put_le32(p + 36, h->buf_alloc);
	put_le32(p + 40, h->fwd_cnt);
}

/* Bytes the sender may still send: the peer's buffer less what is in flight. A peer whose
 * fwd_cnt runs ahead of what was sent (a confused or hostile guest) grants nothing extra. */
static inline uint32_t vsock_credit(uint32_t peer_buf_alloc, uint32_t peer_fwd_cnt, uint32_t tx_cnt)
{
	uint32_t in_flight = tx_cnt - peer_fwd_cnt;

	return in_flight >= peer_buf_alloc ? 0 : peer_buf_alloc - in_flight;
}

#endif
