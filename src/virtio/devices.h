/* SPDX-License-Identifier: MIT */
/* The virtio devices the machine can have, each on the virtio-pci transport. create() builds the
 * device and its PCI function (see virtio_pci_create); the returned pointer is what the
 * registry's device_ops take. Devices live as long as the machine and are never freed. */
#ifndef VIREO_VIRTIO_DEVICES_H
#define VIREO_VIRTIO_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "../block/block.h"
#include "../devices/device.h"
#include "../net/net.h"
#include "pci.h"

/* virtio-rng (entropy, device ID 4): requests are filled from getrandom(). */
int virtio_rng_create(struct virtio_pci **out, const struct virtio_pci_host *host,
		      struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq);
extern const struct device_ops virtio_rng_device_ops;

/* virtio-console (device ID 3): one port (hvc0 in a Linux guest), backed by a unix socket the
 * VMM listens on (one client at a time) or by a file that receives the output. spec is
 * "socket:PATH" or "file:PATH". */
int virtio_console_create(struct virtio_pci **out, const struct virtio_pci_host *host,
			  struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq,
			  const char *spec);
extern const struct device_ops virtio_console_device_ops;

/* virtio-balloon (device ID 5): the control socket sets a target, the guest's driver inflates
 * (the pages go back to the host) or deflates towards it; memory statistics on request; free
 * page reporting. mem is the RAM that inflated and reported pages are discarded from. */
#define BALLOON_DEFLATE_ON_OOM 1u /* flags: offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
#define BALLOON_NR_STATS 10 /* VIRTIO_BALLOON_S_SWAP_IN .. S_HTLB_PGFAIL */
struct guest_mem;
struct balloon_status {
	uint64_t target_bytes, actual_bytes;
	uint64_t inflated_pages, deflated_pages; /* requests the driver made, in 4 KiB pages */
	uint64_t discarded_bytes; /* given back to the host on inflation */
	uint64_t reported_bytes; /* given back through free page reporting */
	uint64_t bad_pfns; /* pages outside RAM the driver named (ignored) */
	uint64_t stats[BALLOON_NR_STATS];
	uint32_t stats_mask; /* which stats the driver reported */
	uint64_t stats_updates;
	int64_t stats_age_ms; /* since the last update, -1: never */
	bool driver_ok;
	uint64_t features; /* negotiated */
};
extern const char *const virtio_balloon_stat_names[BALLOON_NR_STATS];
int virtio_balloon_create(struct virtio_pci **out, const struct virtio_pci_host *host,
			  struct guest_mem *mem, struct pci_bus *pci, struct bus *mmio,
			  uint32_t intx_irq, uint32_t flags);
/* Sets the target size of the balloon (<= RAM, else -ERANGE) and tells the driver. */
int virtio_balloon_set_target(struct virtio_pci *vp, uint64_t bytes);
/* Asks the driver for fresh statistics (they arrive asynchronously): 0, -EAGAIN when a request
 * is already out, -ENOTSUP when the driver does not use the statistics queue. */
int virtio_balloon_request_stats(struct virtio_pci *vp);
void virtio_balloon_get_status(struct virtio_pci *vp, struct balloon_status *st);
extern const struct device_ops virtio_balloon_device_ops;

/* virtio-vsock (device ID 19) for guest CID cid, in userspace: host programs reach guest ports
 * through the unix socket uds ("CONNECT <port>\n", answered "OK <host port>\n"), and guest
 * connections to CID 2 port P go to the unix socket uds_P (see vsock.c). uds may be NULL: no
 * host side, every connection is refused. */
int virtio_vsock_create(struct virtio_pci **out, const struct virtio_pci_host *host,
			struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq, uint32_t cid,
			const char *uds);
/* What the main loop does when the device's sockets are ready (tests call it directly). */
void virtio_vsock_poll(struct virtio_pci *vp);
/* Closes the device's sockets and frees it (tests; machines keep their devices). */
void virtio_vsock_destroy(struct virtio_pci *vp);
extern const struct device_ops virtio_vsock_device_ops;
/* virtio-blk (device ID 2): one disk image (qcow2 or raw, block/block.h). */
#define VIRTIO_BLK_ID_BYTES 20
struct virtio_blk_opts {
	const char *path;
	enum blk_format format; /* AUTO: probe */
	bool read_only;
	const char *serial; /* GET_ID answer, up to 20 bytes; NULL: none */
	const char *name; /* stem for overlay file names, kept for virtio_blk_describe */
	/* Incoming migration: the source still writes the image; it is opened when the device's
	 * state is loaded. */
	bool deferred;
};
int virtio_blk_create(struct virtio_pci **out, const struct virtio_pci_host *host,
		      struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq,
		      const struct virtio_blk_opts *opts);
extern const struct device_ops virtio_blk_device_ops;

/* What the machine configuration records for a disk: the image its saved state goes with (the
 * frozen image during a snapshot, else the top image), by absolute path. */
struct virtio_blk_info {
	char path[4096];
	enum blk_format format;
	bool read_only;
	char serial[VIRTIO_BLK_ID_BYTES + 1];
	char name[64];
};
void virtio_blk_describe(struct virtio_pci *vp, struct virtio_blk_info *info);
/* Snapshot (device quiesced): later writes go to a new qcow2 overlay at new_path whose backing
 * file is the current top, which stays frozen; describe reports the frozen image until
 * virtio_blk_end_snapshot. -EEXIST when new_path exists; on error nothing changed. */
int virtio_blk_switch_overlay(struct virtio_pci *vp, const char *new_path);
void virtio_blk_end_snapshot(struct virtio_pci *vp);
/* Migration source: flush and close the image so the destination may open it (release), or
 * open it again when the migration failed (reacquire). Requests meanwhile fail with IOERR. */
int virtio_blk_release(struct virtio_pci *vp);
int virtio_blk_reacquire(struct virtio_pci *vp);
/* At exit: drain, flush, close (the qcow2 dirty bit is cleared). Returns the flush result. */
int virtio_blk_close(struct virtio_pci *vp);
/* Closes and frees the device (tests; a machine's devices live as long as the process). */
void virtio_blk_destroy(struct virtio_pci *vp);
/* virtio-net (device ID 1) with the backend spec describes (a `--net` option: "user,..." or
 * "tap=NAME,..."); index is the NIC's number (default MAC address, log lines). Prints why and
 * returns -errno when the backend cannot be opened. */
int virtio_net_create(struct virtio_pci **out, const struct virtio_pci_host *host,
		      struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq, unsigned int index,
		      const char *spec);
extern const struct device_ops virtio_net_device_ops;

struct virtio_net_info {
	uint8_t mac[6];
	bool link_up;
	const char *backend; /* "user" or "tap" */
	unsigned long rx_frames, tx_frames, rx_dropped, tx_dropped;
};
/* Sets the link status the guest sees (a configuration change interrupt tells it); frames are
 * dropped both ways while the link is down. Any thread. */
int virtio_net_set_link(struct virtio_pci *vp, bool up);
void virtio_net_get_info(struct virtio_pci *vp, struct virtio_net_info *info);

#endif
