// SPDX-License-Identifier: MIT
/* virtio-vsock (device ID 19) in userspace, bridged to unix sockets as Firecracker does:
 *
 * - host to guest: a host program connects to the unix socket PATH (uds=PATH) and writes
 *   "CONNECT <port>\n"; the device sends OP_REQUEST to the guest's port, and when the guest
 *   accepts, writes "OK <host port>\n" back and relays the stream both ways.
 * - guest to host: a guest connection to CID 2 port P is connected to the unix socket PATH_P.
 *
 * Queues: 0 rx (device to driver), 1 tx (driver to device), 2 event. Credit-based flow control
 * both ways (vsock_proto.h): data from the guest is buffered per connection up to VSOCK_BUF_ALLOC
 * (what we advertise) until the socket takes it, and the socket is only read while the guest
 * has credit and receive buffers, so a slow side throttles the other and nothing grows without
 * bound. Connections are not part of snapshots: after a restore or migration the device sends
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, which makes the driver drop its connections and read the
 * CID again.
 *
 * Host sockets live in a private epoll set that the main loop watches as one fd (it needs
 * EPOLLOUT as well as EPOLLIN); its callback and the queue notifications run under the device
 * lock on the main loop's thread. /dev/vhost-vsock is not used yet (see docs/virtio.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "devices.h"
#include "vsock_proto.h"

#define VSOCK_QUEUE_SIZE 128
#define RX_QUEUE 0
#define TX_QUEUE 1
#define EVENT_QUEUE 2
#define VSOCK_MAX_CONNS 64
#define VSOCK_MAX_RSTS 64
#define VSOCK_FIRST_HOST_PORT (1u << 30) /* host ports of host-initiated connections */
#define HANDSHAKE_MAX 40
#define EP_LISTENER UINT64_MAX

enum {
	T_CID = VIRTIO_TAG_DEVICE, /* u64: the guest's CID when saved (informational) */
};

enum conn_state {
	C_FREE,
	C_HANDSHAKE, /* host client accepted, reading "CONNECT <port>\n" */
	C_CONNECTING, /* OP_REQUEST to the guest sent or pending, waiting for OP_RESPONSE */
	C_ESTABLISHED,
};

/* Control packets a connection owes the guest, sent as receive buffers allow. */
#define P_REQUEST 1u
#define P_RESPONSE 2u
#define P_SHUTDOWN 4u
#define P_CREDIT_UPDATE 8u
#define P_CREDIT_REQUEST 16u

struct vsock_conn {
	enum conn_state state;
	int fd;
	uint32_t local_port, peer_port; /* host side, guest side */
	uint32_t pending; /* P_* */
	uint32_t shutdown_flags; /* for P_SHUTDOWN */
	/* Guest to host: bytes taken from the guest and not yet written to the socket, in a ring
	 * of VSOCK_BUF_ALLOC (allocated while established). */
	uint8_t *out;
	uint32_t out_head, out_len;
	uint32_t fwd_cnt, fwd_told; /* written to the socket; what the guest last heard */
	bool guest_shut_send, guest_shut_rcv, host_eof, shut_wr_done;
	/* Host to guest: what was sent and the guest's last credit figures. */
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	bool credit_requested;
	uint32_t ep_events;
	bool in_ep;
	char hs[HANDSHAKE_MAX];
	size_t hs_len;
};

struct vsock_rst {
	uint32_t local_port, peer_port;
};

struct virtio_vsock {
	struct virtio_pci vp;
	const struct virtio_pci_host *host;
	uint64_t cid;
	char uds[108];
	int listen_fd, ep;
	struct vsock_conn conns[VSOCK_MAX_CONNS];
	unsigned int rr; /* where the next receive pass starts: fairness between connections */
	uint32_t next_port;
	/* Resets owed for packets that belong to no connection (or to one just torn down). */
	struct vsock_rst rsts[VSOCK_MAX_RSTS];
	unsigned int nrsts;
	bool rx_full; /* the guest had no receive buffer: wait for its notification */
	bool event_pending; /* TRANSPORT_RESET to deliver */
	unsigned long dropped_rsts, guest_errors;
	bool guest_error_logged;
	uint8_t buf[VSOCK_BUF_ALLOC];
	struct virtq_chain chain;
};

static void conn_update_events(struct virtio_vsock *vs, struct vsock_conn *c);
static void rx_kick(struct virtio_vsock *vs);

static unsigned int conn_index(struct virtio_vsock *vs, struct vsock_conn *c)
{
	return (unsigned int)(c - vs->conns);
}

static struct vsock_conn *conn_find(struct virtio_vsock *vs, uint32_t local, uint32_t peer)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &vs->conns[i];

		if (c->state != C_FREE && c->state != C_HANDSHAKE && c->local_port == local &&
		    c->peer_port == peer)
			return c;
	}
	return NULL;
}

static struct vsock_conn *conn_alloc(struct virtio_vsock *vs, int fd, enum conn_state state)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &vs->conns[i];

		if (c->state == C_FREE) {
			memset(c, 0, sizeof(*c));
			c->state = state;
			c->fd = fd;
			return c;
		}
	}
	return NULL;
}

static void queue_rst(struct virtio_vsock *vs, uint32_t local, uint32_t peer)
{
	if (vs->nrsts == VSOCK_MAX_RSTS) {
		/* The guest does not take our packets: it will time out the connection. */
		vs->dropped_rsts++;
		return;
	}
	vs->rsts[vs->nrsts++] = (struct vsock_rst){ local, peer };
}

static void conn_free(struct virtio_vsock *vs, struct vsock_conn *c)
{
	if (c->in_ep)
		epoll_ctl(vs->ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->state = C_FREE;
}

/* Tears the connection down and tells the guest (unless it never heard of it). */
static void conn_reset(struct virtio_vsock *vs, struct vsock_conn *c)
{
	if (c->state == C_ESTABLISHED || (c->state == C_CONNECTING && !(c->pending & P_REQUEST)))
		queue_rst(vs, c->local_port, c->peer_port);
	conn_free(vs, c);
}

/* The guest broke the protocol on one connection: reset it, and say so once. */
static void guest_error(struct virtio_vsock *vs, struct vsock_conn *c, const char *why)
{
	vs->guest_errors++;
	if (!vs->guest_error_logged) {
		vs->guest_error_logged = true;
		pr_warn("virtio-vsock: guest port %u: %s; connection reset (further errors "
			"counted, "
			"not logged)",
			c->peer_port, why);
	}
	conn_reset(vs, c);
}

static uint32_t conn_credit(const struct vsock_conn *c)
{
	return vsock_credit(c->peer_buf_alloc, c->peer_fwd_cnt, c->tx_cnt);
}

static bool conn_wants_read(const struct virtio_vsock *vs, const struct vsock_conn *c)
{
	if (c->state == C_HANDSHAKE)
		return true;
	return c->state == C_ESTABLISHED && !c->host_eof && !c->guest_shut_rcv && !vs->rx_full &&
	       conn_credit(c) > 0;
}

/* Level-triggered interest as the connection's state allows. A socket with nothing wanted is
 * taken out of the set: a hung-up peer would otherwise report EPOLLHUP in a loop. */
static void conn_update_events(struct virtio_vsock *vs, struct vsock_conn *c)
{
	uint32_t ev = (conn_wants_read(vs, c) ? EPOLLIN : 0) | (c->out_len ? EPOLLOUT : 0);
	struct epoll_event e = { .events = ev, .data.u64 = conn_index(vs, c) };

	if (c->fd < 0 || (c->in_ep && ev == c->ep_events))
		return;
	if (!ev) {
		if (c->in_ep)
			epoll_ctl(vs->ep, EPOLL_CTL_DEL, c->fd, NULL);
		c->in_ep = false;
	} else if (epoll_ctl(vs->ep, c->in_ep ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e) == 0) {
		c->in_ep = true;
	}
	c->ep_events = ev;
}

/* Writes buffered guest data to the socket. Returns 0, or -1 when the connection was reset. */
static int conn_flush(struct virtio_vsock *vs, struct vsock_conn *c)
{
	while (c->out_len) {
		uint32_t chunk = MIN(c->out_len, VSOCK_BUF_ALLOC - c->out_head);
		ssize_t n = send(c->fd, c->out + c->out_head, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			conn_reset(vs, c);
			return -1;
		}
		c->out_head = (c->out_head + (uint32_t)n) % VSOCK_BUF_ALLOC;
		c->out_len -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	if (!c->out_len && c->guest_shut_send && !c->shut_wr_done) {
		shutdown(c->fd, SHUT_WR);
		c->shut_wr_done = true;
	}
	/* The guest does not ask for credit when it runs out (Linux just waits): tell it when
	 * a quarter of the buffer has been freed, or all of it. */
	if (c->fwd_cnt - c->fwd_told >= VSOCK_BUF_ALLOC / 4 ||
	    (!c->out_len && c->fwd_cnt != c->fwd_told))
		c->pending |= P_CREDIT_UPDATE;
	conn_update_events(vs, c);
	return 0;
}

static void fill_hdr(struct virtio_vsock *vs, struct vsock_hdr *h, uint32_t local, uint32_t peer,
		     uint16_t op)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = vs->cid;
	h->src_port = local;
	h->dst_port = peer;
	h->type = VSOCK_TYPE_STREAM;
	h->op = op;
	h->buf_alloc = VSOCK_BUF_ALLOC;
}

/* Takes a receive buffer: 1 with vs->chain filled, 0 when the guest has none (rx_full is set
 * and every socket stops being read until it adds some), -1 when the queue is broken (the
 * device then needs a reset). */
static int rx_get(struct virtio_vsock *vs)
{
	struct virtio_dev *vdev = &vs->vp.vdev;
	int ret = virtq_pop(&vdev->vqs[RX_QUEUE], &vs->chain);

	if (ret == 0) {
		vs->rx_full = true;
		return 0;
	}
	if (ret > 0 && (vs->chain.nread || vs->chain.write_len < VSOCK_HDR_LEN))
		ret = -EINVAL;
	if (ret < 0) {
		virtio_set_needs_reset(vdev, "bad receive buffer", ret);
		return -1;
	}
	return 1;
}

static void rx_put(struct virtio_vsock *vs, struct vsock_hdr *h, const uint8_t *data)
{
	uint8_t raw[VSOCK_HDR_LEN];

	vsock_hdr_encode(h, raw);
	virtq_chain_write(&vs->chain, 0, raw, sizeof(raw));
	if (h->len)
		virtq_chain_write(&vs->chain, VSOCK_HDR_LEN, data, h->len);
	virtq_push(&vs->vp.vdev.vqs[RX_QUEUE], &vs->chain, VSOCK_HDR_LEN + h->len);
}

/* One control packet the connection owes, lowest bit first. */
static void conn_send_control(struct virtio_vsock *vs, struct vsock_conn *c)
{
	static const uint16_t ops[] = { VSOCK_OP_REQUEST, VSOCK_OP_RESPONSE, VSOCK_OP_SHUTDOWN,
					VSOCK_OP_CREDIT_UPDATE, VSOCK_OP_CREDIT_REQUEST };
	unsigned int bit = (unsigned int)__builtin_ctz(c->pending);
	struct vsock_hdr h;

	fill_hdr(vs, &h, c->local_port, c->peer_port, ops[bit]);
	h.fwd_cnt = c->fwd_told = c->fwd_cnt;
	if (ops[bit] == VSOCK_OP_SHUTDOWN)
		h.flags = c->shutdown_flags;
	c->pending &= ~(1u << bit);
	/* A packet that carries our credit makes a separate update unnecessary. */
	c->pending &= ~P_CREDIT_UPDATE;
	rx_put(vs, &h, NULL);
}

/* Moves socket data to the guest while it has credit. Returns 1 when a packet went or one is now
 * owed (end of stream, reset), 0 when there was nothing to do, -1 when no receive buffer could
 * be had. */
static int conn_send_data(struct virtio_vsock *vs, struct vsock_conn *c)
{
	uint32_t want;
	struct vsock_hdr h;
	uint8_t b;
	ssize_t n;
	int ret;

	if (!conn_wants_read(vs, c) || c->state != C_ESTABLISHED)
		return 0;
	/* Peek first: a popped buffer cannot be handed back unused. */
	n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0) {
		conn_reset(vs, c);
		return 1; /* a reset to send */
	}
	if (n == 0) {
		/* The host side will send no more; the guest may still. */
		c->host_eof = true;
		c->shutdown_flags = VSOCK_SHUTDOWN_SEND;
		c->pending |= P_SHUTDOWN;
		conn_update_events(vs, c);
		return 1;
	}
	ret = rx_get(vs);
	if (ret <= 0)
		return -1;
	want = MIN(conn_credit(c),
		   (uint32_t)MIN(vs->chain.write_len - VSOCK_HDR_LEN, (uint64_t)sizeof(vs->buf)));
	n = want ? recv(c->fd, vs->buf, want, MSG_DONTWAIT) : 0;
	fill_hdr(vs, &h, c->local_port, c->peer_port, VSOCK_OP_RW);
	h.fwd_cnt = c->fwd_told = c->fwd_cnt;
	if (n <= 0) {
		/* Cannot happen after the peek (a zero-sized buffer aside): use the buffer for a
		 * credit update rather than waste it. */
		h.op = VSOCK_OP_CREDIT_UPDATE;
		rx_put(vs, &h, NULL);
		return 1;
	}
	h.len = (uint32_t)n;
	c->tx_cnt += (uint32_t)n;
	c->pending &= ~P_CREDIT_UPDATE;
	rx_put(vs, &h, vs->buf);
	if (!conn_credit(c) && !c->credit_requested) {
		c->credit_requested = true;
		c->pending |= P_CREDIT_REQUEST;
	}
	conn_update_events(vs, c);
	return 1;
}

static void deliver_event(struct virtio_vsock *vs)
{
	struct virtio_dev *vdev = &vs->vp.vdev;
	struct virtq *vq = &vdev->vqs[EVENT_QUEUE];
	uint8_t ev[4];
	int ret;

	if (!vs->event_pending || !virtio_live(vdev) || !vq->ready)
		return;
	ret = virtq_pop(vq, &vs->chain);
	if (ret == 0)
		return;
	if (ret > 0 && (vs->chain.nread || vs->chain.write_len < sizeof(ev)))
		ret = -EINVAL;
	if (ret < 0) {
		virtio_set_needs_reset(vdev, "bad event buffer", ret);
		return;
	}
	put_le32(ev, VSOCK_EVENT_TRANSPORT_RESET);
	virtq_chain_write(&vs->chain, 0, ev, sizeof(ev));
	virtq_push(vq, &vs->chain, sizeof(ev));
	virtio_queue_interrupt(vdev, EVENT_QUEUE);
	vs->event_pending = false;
}

/* Sends what is owed to the guest: resets first, then each connection's control packets and
 * data, round-robin, until the guest runs out of receive buffers or nothing is left. */
static void rx_kick(struct virtio_vsock *vs)
{
	struct virtio_dev *vdev = &vs->vp.vdev;
	bool pushed = false, progress = true;

	if (!virtio_live(vdev) || !vdev->vqs[RX_QUEUE].ready)
		return;
	while (progress && !vs->rx_full) {
		progress = false;
		while (vs->nrsts) {
			struct vsock_rst r = vs->rsts[0];
			struct vsock_hdr h;

			if (rx_get(vs) <= 0)
				goto out;
			fill_hdr(vs, &h, r.local_port, r.peer_port, VSOCK_OP_RST);
			rx_put(vs, &h, NULL);
			pushed = true;
			memmove(vs->rsts, vs->rsts + 1, --vs->nrsts * sizeof(vs->rsts[0]));
		}
		for (unsigned int k = 0; k < VSOCK_MAX_CONNS && !vs->rx_full; k++) {
			struct vsock_conn *c = &vs->conns[(vs->rr + k) % VSOCK_MAX_CONNS];
			int ret;

			if (c->state == C_FREE || c->state == C_HANDSHAKE)
				continue;
			if (c->pending) {
				if (rx_get(vs) <= 0)
					goto out;
				conn_send_control(vs, c);
				pushed = progress = true;
				continue;
			}
			ret = conn_send_data(vs, c);
			if (ret < 0)
				goto out;
			if (ret > 0)
				pushed = progress = true;
		}
		vs->rr = (vs->rr + 1) % VSOCK_MAX_CONNS;
	}
out:
	if (pushed)
		virtio_queue_interrupt(vdev, RX_QUEUE);
	if (vs->rx_full)
		for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
			if (vs->conns[i].state == C_ESTABLISHED)
				conn_update_events(vs, &vs->conns[i]);
}

static int connect_guest_to_host(struct virtio_vsock *vs, uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (!vs->uds[0])
		return -ECONNREFUSED;
	/* --vsock checked that the path leaves room for "_4294967295". */
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%.96s_%u", vs->uds, port) >=
	    (int)sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A unix connect completes at once or fails (EAGAIN: the listener's backlog is full,
	 * which the guest sees as a refusal too). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void handle_request(struct virtio_vsock *vs, const struct vsock_hdr *h)
{
	struct vsock_conn *c;
	int fd;

	if (conn_find(vs, h->dst_port, h->src_port)) {
		queue_rst(vs, h->dst_port, h->src_port);
		return;
	}
	fd = connect_guest_to_host(vs, h->dst_port);
	if (fd < 0) {
		pr_debug("virtio-vsock: guest port %u to host port %u: %s", h->src_port,
			 h->dst_port, strerror(-fd));
		queue_rst(vs, h->dst_port, h->src_port);
		return;
	}
	c = conn_alloc(vs, fd, C_ESTABLISHED);
	if (c)
		c->out = malloc(VSOCK_BUF_ALLOC);
	if (!c || !c->out) {
		if (c)
			conn_free(vs, c);
		else
			close(fd);
		queue_rst(vs, h->dst_port, h->src_port);
		return;
	}
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pending = P_RESPONSE;
	conn_update_events(vs, c);
}

static void handle_response(struct virtio_vsock *vs, struct vsock_conn *c)
{
	char ok[24];
	int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);

	c->out = malloc(VSOCK_BUF_ALLOC);
	/* The client's socket is new and empty: the short line fits. */
	if (!c->out || send(c->fd, ok, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
		conn_reset(vs, c);
		return;
	}
	c->state = C_ESTABLISHED;
	conn_update_events(vs, c);
}

static void handle_rw(struct virtio_vsock *vs, struct vsock_conn *c, const struct vsock_hdr *h,
		      size_t off)
{
	uint32_t tail, first;

	if (h->len > VSOCK_BUF_ALLOC - c->out_len) {
		guest_error(vs, c, "sent beyond the credit it was given");
		return;
	}
	if (c->guest_shut_send) {
		guest_error(vs, c, "sent data after shutting down sending");
		return;
	}
	tail = (c->out_head + c->out_len) % VSOCK_BUF_ALLOC;
	first = MIN(h->len, VSOCK_BUF_ALLOC - tail);
	virtq_chain_read(&vs->chain, off, c->out + tail, first);
	if (h->len > first)
		virtq_chain_read(&vs->chain, off + first, c->out, h->len - first);
	c->out_len += h->len;
	conn_flush(vs, c);
}

static void handle_shutdown(struct virtio_vsock *vs, struct vsock_conn *c, uint32_t flags)
{
	if (flags & VSOCK_SHUTDOWN_RCV)
		c->guest_shut_rcv = true;
	if (flags & VSOCK_SHUTDOWN_SEND)
		c->guest_shut_send = true;
	if (c->guest_shut_rcv && c->guest_shut_send) {
		/* The guest is done: what it sent goes out if the socket takes it now, then the
		 * reset that completes its close. */
		if (conn_flush(vs, c) == 0)
			conn_reset(vs, c);
		return;
	}
	if (conn_flush(vs, c) == 0)
		conn_update_events(vs, c);
}

/* One packet from the guest; its payload is in vs->chain from offset off. */
static void handle_packet(struct virtio_vsock *vs, const struct vsock_hdr *h, size_t off)
{
	struct vsock_conn *c;

	/* Only the host is reachable through this device, and only stream sockets. */
	if (h->dst_cid != VSOCK_HOST_CID || h->src_cid != vs->cid || h->type != VSOCK_TYPE_STREAM) {
		if (h->op != VSOCK_OP_RST)
			queue_rst(vs, h->dst_port, h->src_port);
		return;
	}
	if (h->op == VSOCK_OP_REQUEST) {
		handle_request(vs, h);
		return;
	}
	c = conn_find(vs, h->dst_port, h->src_port);
	if (!c) {
		if (h->op != VSOCK_OP_RST)
			queue_rst(vs, h->dst_port, h->src_port);
		return;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (conn_credit(c))
		c->credit_requested = false;
	switch (h->op) {
	case VSOCK_OP_RESPONSE:
		if (c->state == C_CONNECTING)
			handle_response(vs, c);
		else
			guest_error(vs, c, "unexpected OP_RESPONSE");
		break;
	case VSOCK_OP_RST:
		conn_free(vs, c); /* no reply to a reset */
		break;
	case VSOCK_OP_SHUTDOWN:
		handle_shutdown(vs, c, h->flags);
		break;
	case VSOCK_OP_RW:
		if (c->state == C_ESTABLISHED)
			handle_rw(vs, c, h, off);
		else
			guest_error(vs, c, "data before the connection was established");
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		conn_update_events(vs, c);
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pending |= P_CREDIT_UPDATE;
		break;
	default:
		guest_error(vs, c, "unknown operation");
		break;
	}
}

static int tx_process(struct virtio_vsock *vs)
{
	struct virtio_dev *vdev = &vs->vp.vdev;
	struct virtq *vq = &vdev->vqs[TX_QUEUE];
	uint8_t raw[VSOCK_HDR_LEN];
	struct vsock_hdr h;
	bool pushed = false;
	int ret;

	while ((ret = virtq_pop(vq, &vs->chain)) == 1) {
		if (vs->chain.nwrite ||
		    virtq_chain_read(&vs->chain, 0, raw, sizeof(raw)) != sizeof(raw)) {
			ret = -EINVAL;
			break;
		}
		vsock_hdr_decode(&h, raw);
		if (h.len > vs->chain.read_len - VSOCK_HDR_LEN) {
			ret = -EINVAL;
			break;
		}
		handle_packet(vs, &h, VSOCK_HDR_LEN);
		virtq_push(vq, &vs->chain, 0);
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(vdev, TX_QUEUE);
	if (ret >= 0)
		rx_kick(vs);
	return ret;
}

static int vsock_notify(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_vsock *vs = vdev->priv;

	switch (q) {
	case TX_QUEUE:
		return tx_process(vs);
	case RX_QUEUE:
		/* New receive buffers: whatever waited for them goes now. */
		vs->rx_full = false;
		rx_kick(vs);
		if (!vs->rx_full)
			for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
				if (vs->conns[i].state == C_ESTABLISHED)
					conn_update_events(vs, &vs->conns[i]);
		return 0;
	default:
		deliver_event(vs);
		return 0;
	}
}

/* ---- host side: the listener and handshakes ---- */

static void handshake_line(struct virtio_vsock *vs, struct vsock_conn *c)
{
	unsigned int port;
	char extra;

	c->hs[c->hs_len] = '\0';
	if (sscanf(c->hs, "CONNECT %u%c", &port, &extra) != 2 || extra != '\n') {
		conn_free(vs, c);
		return;
	}
	/* A host port no other connection to the guest uses. */
	do {
		c->local_port = vs->next_port++;
		if (vs->next_port < VSOCK_FIRST_HOST_PORT)
			vs->next_port = VSOCK_FIRST_HOST_PORT;
	} while (conn_find(vs, c->local_port, port));
	c->peer_port = port;
	c->state = C_CONNECTING;
	c->pending = P_REQUEST;
	conn_update_events(vs, c);
}

static void handshake_read(struct virtio_vsock *vs, struct vsock_conn *c)
{
	/* Byte by byte: whatever the client sends after the line is stream data, which must
	 * stay in the socket until the guest has accepted. */
	while (c->state == C_HANDSHAKE) {
		ssize_t n = recv(c->fd, c->hs + c->hs_len, 1, MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0 || ++c->hs_len == HANDSHAKE_MAX - 1) {
			conn_free(vs, c);
			return;
		}
		if (c->hs[c->hs_len - 1] == '\n')
			handshake_line(vs, c);
	}
}

static void listener_accept(struct virtio_vsock *vs)
{
	int fd = accept4(vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct vsock_conn *c;

	if (fd < 0)
		return;
	c = conn_alloc(vs, fd, C_HANDSHAKE);
	if (!c) {
		close(fd);
		return;
	}
	conn_update_events(vs, c);
}

void virtio_vsock_poll(struct virtio_pci *vp)
{
	struct virtio_vsock *vs = vp->vdev.priv;
	struct epoll_event evs[16];
	int n;

	virtio_lock(&vp->vdev);
	n = epoll_wait(vs->ep, evs, 16, 0);
	for (int i = 0; i < n; i++) {
		struct vsock_conn *c;

		if (evs[i].data.u64 == EP_LISTENER) {
			listener_accept(vs);
			continue;
		}
		c = &vs->conns[evs[i].data.u64];
		if (c->state == C_HANDSHAKE)
			handshake_read(vs, c);
		else if (c->state != C_FREE && c->out_len && (evs[i].events & EPOLLOUT))
			conn_flush(vs, c);
	}
	/* Readable sockets are read here, as credit and receive buffers allow. */
	rx_kick(vs);
	virtio_unlock(&vp->vdev);
}

static void poll_cb(void *arg)
{
	virtio_vsock_poll(arg);
}

/* ---- device ---- */

static void vsock_config_read(struct virtio_dev *vdev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_vsock *vs = vdev->priv;
	uint8_t cfg[8];

	put_le64(cfg, vs->cid);
	memcpy(data, cfg + off, len);
}

static void reset_all(struct virtio_vsock *vs)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		if (vs->conns[i].state != C_FREE)
			conn_free(vs, &vs->conns[i]);
	vs->nrsts = 0;
	vs->rx_full = false;
}

static void vsock_reset(struct virtio_dev *vdev)
{
	struct virtio_vsock *vs = vdev->priv;

	/* The driver forgot every connection: so do we (host clients see their socket close). */
	reset_all(vs);
	vs->event_pending = false;
}

static void vsock_activate(struct virtio_dev *vdev)
{
	/* Host clients may have asked for connections while the driver was not ready. */
	rx_kick(vdev->priv);
}

static int vsock_save(struct virtio_dev *vdev, struct tlv_writer *w)
{
	struct virtio_vsock *vs = vdev->priv;

	tlv_put_u64(w, T_CID, vs->cid);
	return w->err;
}

static int vsock_load(struct virtio_dev *vdev, const struct tlv_section *s)
{
	struct virtio_vsock *vs = vdev->priv;

	(void)s;
	/* The CID is this run's (--vsock may change it on restore). Connections never come
	 * along, so the driver is told to drop its own; the transport kicks every queue after
	 * loading, which delivers the event if a buffer is there. */
	reset_all(vs);
	vs->event_pending = true;
	return 0;
}

static const struct virtio_device_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = 19,
	.pci_class = 0xff,
	.num_queues = 3,
	.queue_size = VSOCK_QUEUE_SIZE,
	.config_size = 8,
	.config_read = vsock_config_read,
	.notify = vsock_notify,
	.activate = vsock_activate,
	.reset = vsock_reset,
	.save = vsock_save,
	.load = vsock_load,
};

int virtio_vsock_create(struct virtio_pci **out, const struct virtio_pci_host *host,
			struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq, uint32_t cid,
			const char *uds)
{
	struct virtio_vsock *vs = calloc(1, sizeof(*vs));
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = EP_LISTENER };
	int ret;

	if (!vs)
		return -ENOMEM;
	vs->host = host;
	vs->cid = cid;
	vs->listen_fd = -1;
	vs->next_port = VSOCK_FIRST_HOST_PORT;
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		vs->conns[i].fd = -1;
	if (!access("/dev/vhost-vsock", R_OK | W_OK))
		pr_info("virtio-vsock: /dev/vhost-vsock is there but not used yet: the device "
			"runs in userspace");
	vs->ep = epoll_create1(EPOLL_CLOEXEC);
	if (vs->ep < 0) {
		ret = -errno;
		goto err_free;
	}
	if (uds && *uds) {
		snprintf(vs->uds, sizeof(vs->uds), "%s", uds);
		vs->listen_fd = unix_listen(uds, 16);
		if (vs->listen_fd < 0) {
			ret = vs->listen_fd;
			pr_err("virtio-vsock uds %s: %s", uds, unix_listen_strerror(ret));
			goto err_ep;
		}
		if (epoll_ctl(vs->ep, EPOLL_CTL_ADD, vs->listen_fd, &e) < 0) {
			ret = -errno;
			goto err_listen;
		}
	}
	ret = virtio_pci_create(&vs->vp, &vsock_ops, vs, host, pci, mmio, intx_irq);
	if (ret)
		return ret; /* the machine is being torn down: left allocated */
	if (host->watch_fd) {
		ret = host->watch_fd(host->opaque, vs->ep, poll_cb, &vs->vp);
		if (ret)
			return ret;
	}
	*out = &vs->vp;
	return 0;

err_listen:
	close(vs->listen_fd);
	unlink(uds);
err_ep:
	close(vs->ep);
err_free:
	free(vs);
	return ret;
}

void virtio_vsock_destroy(struct virtio_pci *vp)
{
	struct virtio_vsock *vs = vp->vdev.priv;

	reset_all(vs);
	if (vs->listen_fd >= 0) {
		close(vs->listen_fd);
		unlink(vs->uds);
	}
	close(vs->ep);
	free(vs);
}

const struct device_ops virtio_vsock_device_ops =
	VIRTIO_PCI_DEVICE_OPS("virtio-vsock", SECTION_VIRTIO_VSOCK);
