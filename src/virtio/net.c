// SPDX-License-Identifier: MIT
/* virtio-net (device ID 1): one receive queue (0) and one transmit queue (1), a MAC address, a
 * link status and an MTU; no control queue, no offloads except telling the guest that frames
 * from a backend that builds them itself (slirp) need no checksum check. The frames go to and
 * come from a backend in src/net/ (user networking or tap).
 *
 * Every buffer starts with the 12-byte virtio 1.x header (struct virtio_net_hdr_v1). Without
 * VIRTIO_NET_F_MRG_RXBUF each receive chain must hold a whole frame: Linux posts buffers for the
 * MTU plus headers, which is what the MTU feature says.
 *
 * Everything runs under the device lock: notifications on the main loop's thread, frames from
 * the backend there too (the backend takes the lock through its peer hooks). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/tlv.h"
#include "../common/util.h"
#include "devices.h"

#define NET_QUEUE_SIZE 256
#define RX_QUEUE 0
#define TX_QUEUE 1
#define NET_HDR_LEN 12
#define NET_MTU 1500

#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2

/* Config space: mac[6], le16 status, le16 max_virtqueue_pairs, le16 mtu. */
#define NET_CONFIG_SIZE 12

/* Frames held while the guest has no receive buffers: a short burst is absorbed, more is
 * dropped and counted (TCP retransmits; the guest is just slower than the host). */
#define RX_PENDING_MAX 64

#define NET_T_MAC (VIRTIO_TAG_DEVICE + 0) /* 6 bytes */
#define NET_T_LINK_UP (VIRTIO_TAG_DEVICE + 1) /* u8 */

struct net_frame {
	uint8_t *data;
	size_t len;
};

struct virtio_net {
	struct virtio_pci vp;
	struct net_backend *be;
	unsigned int index;
	uint8_t mac[6];
	bool link_up;

	struct net_frame pending[RX_PENDING_MAX]; /* a ring, oldest at pending_head */
	unsigned int pending_head, npending;
	bool rx_blocked; /* can_receive said no to the backend: resume it when room comes */

	unsigned long rx_frames, tx_frames, rx_dropped, tx_dropped;
	/* Chains popped on each path: a frame sent may be answered (slirp's ARP, DHCP) while
	 * the transmit chain is still in use. */
	struct virtq_chain rx_chain, tx_chain;
	uint8_t txbuf[NET_HDR_LEN + NET_MAX_FRAME];
};

static void pending_drop_all(struct virtio_net *n)
{
	while (n->npending) {
		free(n->pending[n->pending_head].data);
		n->pending_head = (n->pending_head + 1) % RX_PENDING_MAX;
		n->npending--;
	}
	/* The backend may read again: nothing else would tell it if the guest already posted
	 * all its buffers. */
	if (n->rx_blocked) {
		n->rx_blocked = false;
		if (n->be->ops->rx_resume)
			n->be->ops->rx_resume(n->be);
	}
}

/* Puts one frame into the next receive chain. Returns 1 when it went (or was dropped because
 * the chain was too small), 0 when the guest has no buffer, -errno when the ring is broken. */
static int rx_put(struct virtio_net *n, const uint8_t *frame, size_t len)
{
	struct virtio_dev *vdev = &n->vp.vdev;
	struct virtq *vq = &vdev->vqs[RX_QUEUE];
	uint8_t hdr[NET_HDR_LEN] = { 0 };
	int ret;

	if (!vq->ready)
		return 0;
	ret = virtq_pop(vq, &n->rx_chain);
	if (ret <= 0)
		return ret;
	if (n->rx_chain.nread)
		return -EINVAL;
	if (n->rx_chain.write_len < NET_HDR_LEN + len) {
		/* A guest that ignored the MTU: it gets an empty buffer back (Linux counts a
		 * length error) and the frame is lost. */
		n->rx_dropped++;
		virtq_push(vq, &n->rx_chain, 0);
		return 1;
	}
	if (n->be->ops->checksums_valid && virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_CSUM))
		hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
	put_le16(hdr + 10, 1); /* num_buffers */
	virtq_chain_write(&n->rx_chain, 0, hdr, NET_HDR_LEN);
	virtq_chain_write(&n->rx_chain, NET_HDR_LEN, frame, len);
	virtq_push(vq, &n->rx_chain, (uint32_t)(NET_HDR_LEN + len));
	n->rx_frames++;
	return 1;
}

/* Moves held frames into receive buffers while there are any. */
static void rx_flush(struct virtio_net *n)
{
	struct virtio_dev *vdev = &n->vp.vdev;
	bool pushed = false;
	int ret = 0;

	while (n->npending && virtio_live(vdev)) {
		struct net_frame *f = &n->pending[n->pending_head];

		ret = rx_put(n, f->data, f->len);
		if (ret <= 0)
			break;
		free(f->data);
		n->pending_head = (n->pending_head + 1) % RX_PENDING_MAX;
		n->npending--;
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(vdev, RX_QUEUE);
	if (ret < 0)
		virtio_set_needs_reset(vdev, "bad receive buffer", ret);
	if (n->rx_blocked && n->npending < RX_PENDING_MAX) {
		n->rx_blocked = false;
		if (n->be->ops->rx_resume)
			n->be->ops->rx_resume(n->be);
	}
}

/* net_peer: a frame for the guest (lock held). */
static void peer_receive(void *opaque, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = opaque;
	struct virtio_dev *vdev = &n->vp.vdev;
	struct net_frame *f;
	int ret;

	if (!virtio_live(vdev) || !n->link_up) {
		n->rx_dropped++;
		return;
	}
	if (!n->npending) {
		ret = rx_put(n, frame, len);
		if (ret > 0) {
			virtio_queue_interrupt(vdev, RX_QUEUE);
			return;
		}
		if (ret < 0) {
			virtio_set_needs_reset(vdev, "bad receive buffer", ret);
			n->rx_dropped++;
			return;
		}
	}
	if (n->npending == RX_PENDING_MAX) {
		n->rx_dropped++;
		return;
	}
	f = &n->pending[(n->pending_head + n->npending) % RX_PENDING_MAX];
	f->data = malloc(len);
	if (!f->data) {
		n->rx_dropped++;
		return;
	}
	memcpy(f->data, frame, len);
	f->len = len;
	n->npending++;
}

static bool peer_can_receive(void *opaque)
{
	struct virtio_net *n = opaque;

	if (n->npending < RX_PENDING_MAX)
		return true;
	n->rx_blocked = true;
	return false;
}

static void peer_lock(void *opaque)
{
	virtio_lock(&((struct virtio_net *)opaque)->vp.vdev);
}

static void peer_unlock(void *opaque)
{
	virtio_unlock(&((struct virtio_net *)opaque)->vp.vdev);
}

static int tx_process(struct virtio_net *n)
{
	struct virtio_dev *vdev = &n->vp.vdev;
	struct virtq *vq = &vdev->vqs[TX_QUEUE];
	bool pushed = false;
	int ret;

	while ((ret = virtq_pop(vq, &n->tx_chain)) == 1) {
		size_t len;

		/* Transmit chains are the header and the frame, all readable. */
		if (n->tx_chain.nwrite || n->tx_chain.read_len < NET_HDR_LEN)
			return -EINVAL;
		len = n->tx_chain.read_len <= sizeof(n->txbuf) ? (size_t)n->tx_chain.read_len : 0;
		if (len)
			virtq_chain_read(&n->tx_chain, 0, n->txbuf, len);
		/* The chain goes back before the frame goes out: the backend may answer at once
		 * and that answer takes a receive chain. */
		virtq_push(vq, &n->tx_chain, 0);
		pushed = true;
		/* Oversized (no GSO was offered) or link down: lost, as on a wire. */
		if (!len || len == NET_HDR_LEN || !n->link_up) {
			n->tx_dropped++;
			continue;
		}
		/* A frame the host could not take is counted by the backend. */
		if (!n->be->ops->send(n->be, n->txbuf + NET_HDR_LEN, len - NET_HDR_LEN))
			n->tx_frames++;
	}
	if (pushed)
		virtio_queue_interrupt(vdev, TX_QUEUE);
	return ret;
}

static int net_notify(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_net *n = vdev->priv;

	if (q == TX_QUEUE)
		return tx_process(n);
	/* New receive buffers: deliver what is held, and let the backend go on. */
	rx_flush(n);
	return 0;
}

static void net_config_read(struct virtio_dev *vdev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *n = vdev->priv;
	uint8_t cfg[NET_CONFIG_SIZE];

	memcpy(cfg, n->mac, 6);
	put_le16(cfg + 6, n->link_up ? VIRTIO_NET_S_LINK_UP : 0);
	put_le16(cfg + 8, 1); /* max_virtqueue_pairs: one (no VIRTIO_NET_F_MQ) */
	put_le16(cfg + 10, NET_MTU);
	memcpy(data, cfg + off, len);
}

static void net_reset(struct virtio_dev *vdev)
{
	/* Frames held for the old driver are not for the next one. */
	pending_drop_all(vdev->priv);
}

static int net_save(struct virtio_dev *vdev, struct tlv_writer *w)
{
	struct virtio_net *n = vdev->priv;

	/* Frames held for the guest are not saved: the guest's TCP resends what it lacks. */
	tlv_put(w, NET_T_MAC, n->mac, 6);
	tlv_put_u8(w, NET_T_LINK_UP, n->link_up);
	return 0;
}

static int net_load(struct virtio_dev *vdev, const struct tlv_section *s)
{
	struct virtio_net *n = vdev->priv;
	uint8_t mac[6], up = 1;
	int ret;

	pending_drop_all(n);
	/* The driver read the MAC when it probed the device: the saved one stays. */
	ret = tlv_get_bytes(s, NET_T_MAC, mac, 6);
	if (ret < 0)
		return ret;
	if (ret > 0 && memcmp(mac, n->mac, 6)) {
		char a[18], b[18];

		net_format_mac(mac, a);
		net_format_mac(n->mac, b);
		pr_info("virtio-net%u: keeping the saved MAC address %s (not %s)", n->index, a, b);
		memcpy(n->mac, mac, 6);
	}
	ret = tlv_get_u8(s, NET_T_LINK_UP, &up);
	if (ret < 0)
		return ret;
	n->link_up = up;
	return 0;
}

static const struct virtio_device_ops net_ops = {
	.name = "virtio-net",
	.device_id = 1,
	.pci_class = 0x02, /* network controller, Ethernet */
	.features = (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_MTU) |
		    (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS),
	.num_queues = 2,
	.queue_size = NET_QUEUE_SIZE,
	.config_size = NET_CONFIG_SIZE,
	.config_read = net_config_read,
	.notify = net_notify,
	.reset = net_reset,
	.save = net_save,
	.load = net_load,
};

int virtio_net_create(struct virtio_pci **out, const struct virtio_pci_host *host,
		      struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq, unsigned int index,
		      const char *spec_text)
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	struct net_spec spec;
	struct net_peer peer;
	struct net_loop loop;
	char err[512];
	int ret;

	if (!n)
		return -ENOMEM;
	ret = net_parse_spec(spec_text, &spec, err, sizeof(err));
	if (ret)
		goto err_msg;
	n->index = index;
	n->link_up = true;
	if (spec.mac_set)
		memcpy(n->mac, spec.mac, 6);
	else
		net_default_mac(index, n->mac);
	peer = (struct net_peer){ n, peer_receive, peer_can_receive, peer_lock, peer_unlock };
	loop = (struct net_loop){ host->opaque, host->watch_fd, host->unwatch_fd };
	/* The backend may call the peer hooks from the main loop only, which is not running
	 * yet, so the device can be finished after it. */
	if (spec.kind == NET_TAP)
		ret = net_tap_open(&n->be, &spec, &peer, &loop, err, sizeof(err));
	else
		ret = net_slirp_open(&n->be, &spec, &peer, &loop, err, sizeof(err));
	if (ret)
		goto err_msg;
	ret = virtio_pci_create(&n->vp, &net_ops, n, host, pci, mmio, intx_irq);
	if (ret)
		return ret; /* the machine is being torn down: left allocated */
	*out = &n->vp;
	return 0;

err_msg:
	pr_err("--net %s: %s", spec_text, err);
	free(n);
	return ret;
}

int virtio_net_set_link(struct virtio_pci *vp, bool up)
{
	struct virtio_dev *vdev = &vp->vdev;
	struct virtio_net *n = vdev->priv;

	virtio_lock(vdev);
	if (n->link_up != up) {
		n->link_up = up;
		if (!up)
			pending_drop_all(n);
		virtio_config_changed(vdev);
	}
	virtio_unlock(vdev);
	return 0;
}

void virtio_net_get_info(struct virtio_pci *vp, struct virtio_net_info *info)
{
	struct virtio_dev *vdev = &vp->vdev;
	struct virtio_net *n = vdev->priv;

	virtio_lock(vdev);
	memcpy(info->mac, n->mac, 6);
	info->link_up = n->link_up;
	info->backend = n->be->ops->kind;
	info->rx_frames = n->rx_frames;
	info->tx_frames = n->tx_frames;
	info->rx_dropped = n->rx_dropped;
	info->tx_dropped = n->tx_dropped + n->be->tx_dropped;
	virtio_unlock(vdev);
}

const struct device_ops virtio_net_device_ops =
	VIRTIO_PCI_DEVICE_OPS("virtio-net", SECTION_VIRTIO_NET);
