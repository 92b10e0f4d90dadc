/* SPDX-License-Identifier: MIT */
/* Network backends behind virtio-net (docs/network.md): user-mode networking through libslirp
 * (slirp.c) and host tap devices (tap.c), plus the parsing of `--net` options (netopt.c).
 *
 * A backend moves Ethernet frames (no virtio header) between the device and the host. It runs
 * on the main loop's thread: its fds are watched with the loop hooks it is given, and frames
 * for the guest go to its peer (the device) with the peer's lock held. */
#ifndef VIREO_NET_NET_H
#define VIREO_NET_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_MAX_NICS 8
#define NET_MAX_HOSTFWD 16
#define NET_IFNAME_MAX 15 /* IFNAMSIZ - 1 */
#define NET_MAX_FRAME 65536 /* largest frame either way, a GSO-less jumbo bound */

enum net_kind {
	NET_USER,
	NET_TAP
};

/* hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT */
struct net_hostfwd {
	bool udp;
	struct in_addr host_addr; /* default 127.0.0.1 */
	uint16_t host_port;
	struct in_addr guest_addr; /* default 10.0.2.15 */
	uint16_t guest_port;
};

/* One `--net` option, parsed. */
struct net_spec {
	enum net_kind kind;
	char ifname[NET_IFNAME_MAX + 1]; /* tap */
	bool mac_set;
	uint8_t mac[6];
	struct net_hostfwd fwd[NET_MAX_HOSTFWD];
	unsigned int nfwd;
	/* user: the guest may reach the host's own services on 127.0.0.1 through 10.0.2.2
	 * (host-loopback=on; default off). */
	bool host_loopback;
	/* user: restrict=on, no connection out of the guest at all (hostfwd still works). */
	bool restrict_out;
};

/* Parses "user[,hostfwd=RULE...][,host-loopback=on|off][,restrict=on|off][,mac=MAC]" or
 * "tap=NAME[,mac=MAC]". Returns 0 or -EINVAL with a one-line reason in err. */
int net_parse_spec(const char *s, struct net_spec *spec, char *err, size_t errlen);
/* "52:54:00:12:34:56" (also with '-'); a multicast address is refused. Returns 0 or -EINVAL. */
int net_parse_mac(const char *s, uint8_t mac[6]);
/* One hostfwd rule (the part after "hostfwd="). Returns 0 or -EINVAL with the reason in err. */
int net_parse_hostfwd(const char *s, struct net_hostfwd *f, char *err, size_t errlen);
/* The MAC address NIC number index gets without mac=: 52:54:00:12:34:56, :57, ... */
void net_default_mac(unsigned int index, uint8_t mac[6]);
/* "52:54:00:12:34:56" into buf (at least 18 bytes). */
void net_format_mac(const uint8_t mac[6], char *buf);

/* The device side of a backend. receive() takes one frame for the guest; it is called on the
 * main loop's thread with the peer's lock held (a backend acting on its own events calls
 * lock() first, and a frame sent by the device may be answered from inside send()).
 * can_receive() says whether the peer has room now; a backend that can hold frames back (tap)
 * stops reading until rx_resume() is called. */
struct net_peer {
	void *opaque;
	void (*receive)(void *opaque, const uint8_t *frame, size_t len);
	bool (*can_receive)(void *opaque);
	void (*lock)(void *opaque);
	void (*unlock)(void *opaque);
};

/* How a backend reaches the main loop. watch_fd calls cb(arg) while fd is readable. */
struct net_loop {
	void *opaque;
	int (*watch_fd)(void *opaque, int fd, void (*cb)(void *arg), void *arg);
	int (*unwatch_fd)(void *opaque, int fd);
};

struct net_backend;

struct net_backend_ops {
	const char *kind;
	/* Whether frames from this backend carry correct checksums by construction (slirp makes
	 * them itself), so the guest may skip checking them. */
	bool checksums_valid;
	/* One frame from the guest. Returns 0, or -errno when it was dropped. */
	int (*send)(struct net_backend *be, const uint8_t *frame, size_t len);
	/* The peer has room again after can_receive() said no. Optional. */
	void (*rx_resume)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
	struct net_peer peer;
	struct net_loop loop;
	unsigned long tx_dropped; /* frames the host side could not take */
};

/* Open the backend of each kind. Return 0 or -errno with a message for the user in err. The
 * backend lives as long as the machine; it may call peer->receive from here on. */
int net_slirp_open(struct net_backend **out, const struct net_spec *spec,
		   const struct net_peer *peer, const struct net_loop *loop, char *err,
		   size_t errlen);
/* Frees a user-mode backend whose loop hooks were NULL (tests; a VMM's backends live as long as
 * the process). */
void net_slirp_close(struct net_backend *be);
int net_tap_open(struct net_backend **out, const struct net_spec *spec, const struct net_peer *peer,
		 const struct net_loop *loop, char *err, size_t errlen);

#endif
