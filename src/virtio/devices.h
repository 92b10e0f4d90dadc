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

#endif
