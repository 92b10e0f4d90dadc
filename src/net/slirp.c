// SPDX-License-Identifier: MIT
/* User-mode networking with libslirp: the guest sits on 10.0.2.0/24 behind a NAT that is this
 * process's own sockets. 10.0.2.2 is the gateway (and the host's loopback), 10.0.2.3 the DNS
 * forwarder, and DHCP hands out 10.0.2.15 onwards. No privileges are needed.
 *
 * The guest is hostile, and this process's sockets are on the host: by default the guest cannot
 * reach the host's loopback (guest_filter below). host-loopback=on lets it; restrict=on
 * (libslirp's restricted mode, as QEMU's) lets nothing out. Forwarded host ports work either way.
 *
 * Main loop integration: slirp wants to be asked, before every sleep, which fds it waits on and
 * for how long (slirp_pollfds_fill), and to be told afterwards what happened
 * (slirp_pollfds_poll). Here the fds it asks for are kept in a private epoll set, and that epoll
 * fd plus a timerfd (the nearest of slirp's TCP timeouts and its own timers) are what the main
 * loop watches. Whenever either fires, the fds are polled without waiting, slirp handles them,
 * and the set is brought up to date. Everything runs on the main loop's thread; slirp may hand
 * frames to the device from any of these calls, so they run with the device's lock held. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <slirp/libslirp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "net.h"

#define GUEST_ERRORS_LOGGED 8
#define UDP_PEERS 64
#define VHOST_ADDR 0x0a000202 /* 10.0.2.2 */
#define VDNS_ADDR 0x0a000203 /* 10.0.2.3 */

struct slirp_timer {
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms; /* -1: not armed */
	struct slirp_timer *next;
};

/* An fd in the private epoll set, with the events it is registered for. */
struct slirp_reg {
	int fd;
	uint32_t events;
};

struct slirp_backend {
	struct net_backend be;
	Slirp *slirp;
	int ep, timer_fd;
	/* What the last slirp_pollfds_fill asked for; slirp_pollfds_poll reads revents by index. */
	struct pollfd *pfds;
	unsigned int npfds, pfds_cap;
	struct slirp_reg *regs;
	unsigned int nregs, regs_cap;
	struct slirp_timer *timers;
	unsigned int guest_errors;
	bool host_loopback;
	unsigned long loopback_dropped; /* guest frames to the host's loopback, dropped */
	/* UDP datagrams slirp delivered from 10.0.2.2 (a client of a UDP hostfwd on the host's
	 * loopback): {guest port, host port}, so the guest's replies may go back. A ring. */
	struct {
		uint16_t guest_port, host_port;
	} udp_peers[UDP_PEERS];
	unsigned int udp_peer_next;
};

/* ---- slirp's callbacks ---- */

/* The IPv4 header of an Ethernet frame and (in *l4) the transport header after it; NULL when the
 * frame is not IPv4 or too short to hold the ports. */
static const uint8_t *ipv4_header(const uint8_t *frame, size_t len, const uint8_t **l4)
{
	const uint8_t *ip = frame + 14;
	size_t hlen;

	if (len < 14 + 20 || frame[12] != 0x08 || frame[13] != 0x00)
		return NULL;
	hlen = (size_t)(ip[0] & 0xf) * 4;
	if (hlen < 20 || len < 14 + hlen + 4)
		return NULL;
	*l4 = ip + hlen;
	return ip;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* A UDP datagram for the guest from 10.0.2.2: a client on the host's loopback wrote to a UDP
 * hostfwd. Remember the pair so that the guest may answer it. */
static void note_udp_peer(struct slirp_backend *sb, const uint8_t *frame, size_t len)
{
	const uint8_t *ip, *udp;
	uint16_t gport, hport;

	ip = ipv4_header(frame, len, &udp);
	if (!ip || ip[9] != 17 || get_be32(ip + 12) != VHOST_ADDR)
		return;
	gport = get_be16(udp + 2);
	hport = get_be16(udp);
	for (unsigned int i = 0; i < UDP_PEERS; i++)
		if (sb->udp_peers[i].guest_port == gport && sb->udp_peers[i].host_port == hport)
			return;
	sb->udp_peers[sb->udp_peer_next].guest_port = gport;
	sb->udp_peers[sb->udp_peer_next].host_port = hport;
	sb->udp_peer_next = (sb->udp_peer_next + 1) % UDP_PEERS;
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirp_backend *sb = opaque;

	if (!sb->host_loopback)
		note_udp_peer(sb, buf, len);
	sb->be.peer.receive(sb->be.peer.opaque, buf, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct slirp_backend *sb = opaque;

	if (sb->guest_errors++ < GUEST_ERRORS_LOGGED)
		pr_warn("user networking: bad guest packet: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return clock_ns(CLOCK_MONOTONIC);
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct slirp_backend *sb = opaque;
	struct slirp_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->id = id;
	t->cb_opaque = cb_opaque;
	t->expire_ms = -1;
	t->next = sb->timers;
	sb->timers = t;
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct slirp_backend *sb = opaque;

	for (struct slirp_timer **p = &sb->timers; *p; p = &(*p)->next) {
		if (*p == timer) {
			*p = ((struct slirp_timer *)timer)->next;
			free(timer);
			return;
		}
	}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	(void)opaque;
	if (timer)
		((struct slirp_timer *)timer)->expire_ms = expire_ms;
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

/* slirp is about to close fd: forget its registration, so that a new socket that gets the same
 * number is registered afresh (the kernel drops a closed fd from the epoll set by itself). */
static void cb_unregister_poll_fd(int fd, void *opaque)
{
	struct slirp_backend *sb = opaque;

	for (unsigned int i = 0; i < sb->nregs; i++) {
		if (sb->regs[i].fd == fd) {
			epoll_ctl(sb->ep, EPOLL_CTL_DEL, fd, NULL);
			sb->regs[i] = sb->regs[--sb->nregs];
			return;
		}
	}
}

static void cb_notify(void *opaque)
{
	(void)opaque;
}

static const SlirpCb slirp_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

/* ---- the poll set ---- */

static int add_poll(int fd, int events, void *opaque)
{
	struct slirp_backend *sb = opaque;
	struct pollfd *p;

	if (sb->npfds == sb->pfds_cap) {
		unsigned int cap = sb->pfds_cap ? 2 * sb->pfds_cap : 16;

		p = realloc(sb->pfds, cap * sizeof(*p));
		if (!p)
			return -1; /* slirp then sees no events for this fd this round */
		sb->pfds = p;
		sb->pfds_cap = cap;
	}
	p = &sb->pfds[sb->npfds];
	p->fd = fd;
	p->events = (short)(((events & SLIRP_POLL_IN) ? POLLIN : 0) |
			    ((events & SLIRP_POLL_OUT) ? POLLOUT : 0) |
			    ((events & SLIRP_POLL_PRI) ? POLLPRI : 0));
	p->revents = 0;
	return (int)sb->npfds++;
}

static int get_revents(int idx, void *opaque)
{
	struct slirp_backend *sb = opaque;
	short r;

	if (idx < 0 || (unsigned int)idx >= sb->npfds)
		return 0;
	r = sb->pfds[idx].revents;
	return ((r & POLLIN) ? SLIRP_POLL_IN : 0) | ((r & POLLOUT) ? SLIRP_POLL_OUT : 0) |
	       ((r & POLLPRI) ? SLIRP_POLL_PRI : 0) | ((r & POLLERR) ? SLIRP_POLL_ERR : 0) |
	       ((r & POLLHUP) ? SLIRP_POLL_HUP : 0);
}

static uint32_t epoll_events(short events)
{
	return ((events & POLLIN) ? EPOLLIN : 0) | ((events & POLLOUT) ? EPOLLOUT : 0) |
	       ((events & POLLPRI) ? EPOLLPRI : 0);
}

/* Registers fd for events in the private epoll set (merging with what it has). */
static void reg_want(struct slirp_backend *sb, int fd, uint32_t events, bool *seen)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };
	unsigned int i;

	for (i = 0; i < sb->nregs && sb->regs[i].fd != fd; i++)
		;
	if (i < sb->nregs) {
		if (seen[i])
			events |= sb->regs[i].events; /* fd asked for twice this round */
		seen[i] = true;
		if (sb->regs[i].events == events)
			return;
		ev.events = events;
		if (epoll_ctl(sb->ep, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
			epoll_ctl(sb->ep, EPOLL_CTL_ADD, fd, &ev);
		sb->regs[i].events = events;
		return;
	}
	if (sb->nregs == sb->regs_cap) {
		unsigned int cap = sb->regs_cap ? 2 * sb->regs_cap : 16;
		struct slirp_reg *r = realloc(sb->regs, cap * sizeof(*r));

		if (!r)
			return;
		sb->regs = r;
		sb->regs_cap = cap;
	}
	if (epoll_ctl(sb->ep, EPOLL_CTL_ADD, fd, &ev) < 0 &&
	    (errno != EEXIST || epoll_ctl(sb->ep, EPOLL_CTL_MOD, fd, &ev) < 0))
		return;
	seen[sb->nregs] = true;
	sb->regs[sb->nregs++] = (struct slirp_reg){ fd, events };
}

/* Asks slirp what it waits for now and makes the epoll set and the timer say the same. Called
 * after anything that may have changed slirp's sockets or timers. */
static void slirp_sync(struct slirp_backend *sb)
{
	uint32_t timeout = UINT32_MAX;
	int64_t now_ms = clock_ns(CLOCK_MONOTONIC) / 1000000, next = -1;
	struct itimerspec its = { 0 };
	bool *seen;
	unsigned int i;

	sb->npfds = 0;
	slirp_pollfds_fill(sb->slirp, &timeout, add_poll, sb);
	/* One flag per registration: room for every current one plus every new fd. */
	seen = calloc(sb->nregs + sb->npfds + 1, sizeof(*seen));
	if (seen) {
		for (i = 0; i < sb->npfds; i++)
			reg_want(sb, sb->pfds[i].fd, epoll_events(sb->pfds[i].events), seen);
		for (i = 0; i < sb->nregs;) {
			if (seen[i]) {
				i++;
				continue;
			}
			epoll_ctl(sb->ep, EPOLL_CTL_DEL, sb->regs[i].fd, NULL);
			sb->regs[i] = sb->regs[--sb->nregs];
			seen[i] = seen[sb->nregs];
		}
		free(seen);
	}

	if (timeout != UINT32_MAX)
		next = now_ms + timeout;
	for (struct slirp_timer *t = sb->timers; t; t = t->next)
		if (t->expire_ms >= 0 && (next < 0 || t->expire_ms < next))
			next = t->expire_ms;
	if (next >= 0) {
		int64_t delta = next > now_ms ? next - now_ms : 0;

		its.it_value.tv_sec = delta / 1000;
		/* At least 1 ns: a zero it_value would disarm the timer. */
		its.it_value.tv_nsec = (delta % 1000) * 1000000 + 1;
	}
	timerfd_settime(sb->timer_fd, 0, &its, NULL);
}

static void run_timers(struct slirp_backend *sb)
{
	int64_t now_ms = clock_ns(CLOCK_MONOTONIC) / 1000000;
	bool again = true;

	/* A timer callback may re-arm or free timers: rescan from the start after each one. */
	while (again) {
		again = false;
		for (struct slirp_timer *t = sb->timers; t; t = t->next) {
			if (t->expire_ms >= 0 && t->expire_ms <= now_ms) {
				t->expire_ms = -1;
				slirp_handle_timer(sb->slirp, t->id, t->cb_opaque);
				again = true;
				break;
			}
		}
	}
}

/* The main loop saw the epoll set or the timer ready. */
static void slirp_event(void *arg)
{
	struct slirp_backend *sb = arg;
	struct net_peer *peer = &sb->be.peer;
	uint64_t ticks;
	int n;

	peer->lock(peer->opaque);
	if (read(sb->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		pr_debug("%s: timerfd: %s", __func__, strerror(errno));
	run_timers(sb);
	n = poll(sb->pfds, sb->npfds, 0);
	slirp_pollfds_poll(sb->slirp, n < 0, get_revents, sb);
	slirp_sync(sb);
	peer->unlock(peer->opaque);
}

/* ---- the backend ---- */

/*
 * Whether a frame from the guest would reach the host's loopback, with host-loopback off.
 * libslirp sends what the guest addresses to 10.0.2.x (but 10.0.2.3 port 53, DNS) to 127.0.0.1,
 * and connect()s to 127.0.0.0/8 and 0.0.0.0/8 (the local host) when the guest addresses them
 * directly, as a guest building its own frames can. Its disable_host_loopback flag is not used:
 * it also stops the guest's answers to a UDP hostfwd client on the host's loopback. So:
 * - anything to 127.0.0.0/8 or 0.0.0.0/8 is dropped;
 * - to 10.0.2.x: a TCP SYN (a new connection: libslirp connects out only on a bare SYN) is
 *   dropped unless to DNS; TCP of existing connections (hostfwd ones) passes;
 * - UDP to 10.0.2.x passes for DNS, DHCP and TFTP (answered by libslirp itself), and for a reply
 *   to a datagram slirp delivered from 10.0.2.2 (a UDP hostfwd's client); the rest is dropped;
 * - ICMP passes (echo to the aliases is answered by libslirp; nothing reaches a service).
 * VLAN tags are not looked through: libslirp drops tagged frames itself. IPv6 is not enabled.
 */
static bool to_host_loopback(struct slirp_backend *sb, const uint8_t *frame, size_t len)
{
	const uint8_t *ip, *l4;
	uint32_t dst;
	uint16_t sport, dport;

	if (len < 14 + 20 || frame[12] != 0x08 || frame[13] != 0x00)
		return false;
	dst = get_be32(frame + 14 + 16);
	if ((dst >> 24) == 127 || (dst >> 24) == 0)
		return true;
	if ((dst & 0xffffff00) != (VHOST_ADDR & 0xffffff00))
		return false;
	ip = ipv4_header(frame, len, &l4);
	if (!ip)
		return true; /* too short to be anything libslirp would pass on */
	sport = get_be16(l4);
	dport = get_be16(l4 + 2);
	if (dst == VDNS_ADDR && dport == 53)
		return false;
	if (ip[9] == 6)
		return (size_t)(l4 - frame) + 14 > len || (l4[13] & 0x12) == 0x02; /* bare SYN */
	if (ip[9] != 17)
		return false;
	if (dport == 67 || (dst == VHOST_ADDR && dport == 69))
		return false;
	for (unsigned int i = 0; i < UDP_PEERS; i++)
		if (dst == VHOST_ADDR && sb->udp_peers[i].guest_port == sport &&
		    sb->udp_peers[i].host_port == dport && dport)
			return false;
	return true;
}

static int slirp_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
	struct slirp_backend *sb = (struct slirp_backend *)be;

	if (!sb->host_loopback && to_host_loopback(sb, frame, len)) {
		if (sb->loopback_dropped++ < GUEST_ERRORS_LOGGED)
			pr_warn("user networking: dropped a guest packet to a loopback address "
				"(host-loopback is off)");
		return -EACCES;
	}
	slirp_input(sb->slirp, frame, (int)len);
	slirp_sync(sb);
	return 0;
}

static const struct net_backend_ops slirp_backend_ops = {
	.kind = "user",
	.checksums_valid = true,
	.send = slirp_send,
};

int net_slirp_open(struct net_backend **out, const struct net_spec *spec,
		   const struct net_peer *peer, const struct net_loop *loop, char *err,
		   size_t errlen)
{
	struct slirp_backend *sb = calloc(1, sizeof(*sb));
	SlirpConfig cfg = {
		.version = 4,
		.in_enabled = true,
		.vnetwork.s_addr = htonl(0x0a000200), /* 10.0.2.0/24 */
		.vnetmask.s_addr = htonl(0xffffff00),
		.vhost.s_addr = htonl(0x0a000202), /* 10.0.2.2 */
		.vdhcp_start.s_addr = htonl(0x0a00020f), /* 10.0.2.15 */
		.vnameserver.s_addr = htonl(0x0a000203), /* 10.0.2.3 */
		.vhostname = "vireo",
		.if_mtu = 1500,
		.if_mru = 1500,
		.restricted = spec->restrict_out,
	};
	int ret;

	if (!sb)
		return -ENOMEM;
	sb->be.ops = &slirp_backend_ops;
	sb->host_loopback = spec->host_loopback;
	sb->be.peer = *peer;
	sb->be.loop = *loop;
	sb->ep = epoll_create1(EPOLL_CLOEXEC);
	sb->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (sb->ep < 0 || sb->timer_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "user networking: %s", strerror(-ret));
		goto err_fds;
	}
	sb->slirp = slirp_new(&cfg, &slirp_callbacks, sb);
	if (!sb->slirp) {
		ret = -ENOMEM;
		snprintf(err, errlen, "user networking: libslirp could not start");
		goto err_fds;
	}
	for (unsigned int i = 0; i < spec->nfwd; i++) {
		const struct net_hostfwd *f = &spec->fwd[i];

		errno = 0;
		if (slirp_add_hostfwd(sb->slirp, f->udp, f->host_addr, f->host_port, f->guest_addr,
				      f->guest_port) < 0) {
			char ha[INET_ADDRSTRLEN];

			inet_ntop(AF_INET, &f->host_addr, ha, sizeof(ha));
			/* slirp leaves errno from the bind or listen that failed. */
			ret = errno ? -errno : -EADDRINUSE;
			snprintf(err, errlen, "hostfwd %s %s:%u: cannot listen on the host: %s",
				 f->udp ? "udp" : "tcp", ha, f->host_port, strerror(-ret));
			goto err_slirp;
		}
	}
	if (loop->watch_fd) {
		ret = loop->watch_fd(loop->opaque, sb->ep, slirp_event, sb);
		if (!ret)
			ret = loop->watch_fd(loop->opaque, sb->timer_fd, slirp_event, sb);
		if (ret) {
			snprintf(err, errlen, "user networking: cannot watch its fds: %s",
				 strerror(-ret));
			goto err_watch;
		}
	}
	slirp_sync(sb);
	*out = &sb->be;
	return 0;

err_watch:
	if (loop->unwatch_fd)
		loop->unwatch_fd(loop->opaque, sb->ep);
err_slirp:
	slirp_cleanup(sb->slirp);
err_fds:
	if (sb->ep >= 0)
		close(sb->ep);
	if (sb->timer_fd >= 0)
		close(sb->timer_fd);
	free(sb->pfds);
	free(sb->regs);
	free(sb);
	return ret;
}

void net_slirp_close(struct net_backend *be)
{
	struct slirp_backend *sb = (struct slirp_backend *)be;

	slirp_cleanup(sb->slirp); /* frees its timers through cb_timer_free */
	close(sb->ep);
	close(sb->timer_fd);
	free(sb->pfds);
	free(sb->regs);
	free(sb);
}
