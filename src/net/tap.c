// SPDX-License-Identifier: MIT
/* A host tap device (/dev/net/tun, IFF_TAP | IFF_NO_PI): each read is one frame from the host's
 * side of the link, each write one frame from the guest. No virtio-net offloads are offered, so
 * no IFF_VNET_HDR: frames carry full checksums both ways.
 *
 * Back-pressure: while the device has no room for frames (the guest posted no receive buffers
 * and its small holding queue is full) the tap is not read, and the kernel's queue for the tap
 * fills and drops instead of us. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../common/log.h"
#include "net.h"

/* Frames read per wakeup, so one busy tap cannot starve the main loop. */
#define TAP_FRAMES_PER_EVENT 64

struct tap_backend {
	struct net_backend be;
	int fd;
	bool watched;
	char ifname[NET_IFNAME_MAX + 1];
	uint8_t buf[NET_MAX_FRAME];
};

static void tap_readable(void *arg);

static void tap_watch(struct tap_backend *tb, bool on)
{
	const struct net_loop *l = &tb->be.loop;

	if (on == tb->watched || !l->watch_fd || !l->unwatch_fd)
		return;
	if (on)
		tb->watched = l->watch_fd(l->opaque, tb->fd, tap_readable, tb) == 0;
	else
		tb->watched = l->unwatch_fd(l->opaque, tb->fd) != 0;
}

static void tap_readable(void *arg)
{
	struct tap_backend *tb = arg;
	struct net_peer *peer = &tb->be.peer;

	peer->lock(peer->opaque);
	for (int i = 0; i < TAP_FRAMES_PER_EVENT; i++) {
		ssize_t n;

		if (!peer->can_receive(peer->opaque)) {
			tap_watch(tb, false);
			break;
		}
		n = read(tb->fd, tb->buf, sizeof(tb->buf));
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				pr_debug("tap %s: read: %s", tb->ifname, strerror(errno));
			break;
		}
		if (n > 0)
			peer->receive(peer->opaque, tb->buf, (size_t)n);
	}
	peer->unlock(peer->opaque);
}

static int tap_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
	struct tap_backend *tb = (struct tap_backend *)be;
	ssize_t n = write(tb->fd, frame, len);

	/* The tap's queue is full (or the link is down on the host side): drop, as a wire
	 * would. */
	if (n != (ssize_t)len) {
		be->tx_dropped++;
		return n < 0 ? -errno : -EIO;
	}
	return 0;
}

static void tap_rx_resume(struct net_backend *be)
{
	tap_watch((struct tap_backend *)be, true);
}

static const struct net_backend_ops tap_backend_ops = {
	.kind = "tap",
	.send = tap_send,
	.rx_resume = tap_rx_resume,
};

int net_tap_open(struct net_backend **out, const struct net_spec *spec, const struct net_peer *peer,
		 const struct net_loop *loop, char *err, size_t errlen)
{
	struct tap_backend *tb = calloc(1, sizeof(*tb));
	struct ifreq ifr;
	int ret;

	if (!tb)
		return -ENOMEM;
	tb->be.ops = &tap_backend_ops;
	tb->be.peer = *peer;
	tb->be.loop = *loop;
	snprintf(tb->ifname, sizeof(tb->ifname), "%s", spec->ifname);
	tb->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tb->fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			snprintf(err, errlen,
				 "tap %s: /dev/net/tun does not exist (load the tun module: "
				 "modprobe tun)",
				 spec->ifname);
		else
			snprintf(err, errlen, "tap %s: cannot open /dev/net/tun: %s", spec->ifname,
				 strerror(-ret));
		goto err_free;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", spec->ifname);
	if (ioctl(tb->fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		if (ret == -EPERM)
			snprintf(err, errlen,
				 "tap %s: permission denied: attaching to a tap needs "
				 "CAP_NET_ADMIN, or a tap created for this user beforehand "
				 "(as root: ip tuntap add dev %s mode tap user $USER; "
				 "ip link set %s up)",
				 spec->ifname, spec->ifname, spec->ifname);
		else if (ret == -EBUSY)
			snprintf(err, errlen,
				 "tap %s: busy: another process (another VM?) has it open",
				 spec->ifname);
		else if (ret == -EINVAL)
			snprintf(err, errlen,
				 "tap %s: the interface exists but is not a tap device, or was "
				 "created with other flags (multi_queue, vnet_hdr)",
				 spec->ifname);
		else
			snprintf(err, errlen, "tap %s: TUNSETIFF: %s", spec->ifname,
				 strerror(-ret));
		goto err_close;
	}
	tap_watch(tb, true);
	if (loop->watch_fd && !tb->watched) {
		ret = -ENOSPC;
		snprintf(err, errlen, "tap %s: cannot watch its fd", spec->ifname);
		goto err_close;
	}
	*out = &tb->be;
	return 0;

err_close:
	close(tb->fd);
err_free:
	free(tb);
	return ret;
}
