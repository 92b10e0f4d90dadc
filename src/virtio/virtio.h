/* SPDX-License-Identifier: MIT */
/* Virtio 1.x devices, independent of the transport (docs/virtio.md).
 *
 * A device (rng.c, console.c, ...) fills a struct virtio_device_ops and keeps its own state in
 * priv; the transport (pci.c) owns a struct virtio_dev with what the driver negotiates: features,
 * status, queues, interrupt vectors. Every callback runs with vdev->lock held, on the thread
 * that saw the event (the main loop for queue notifications, a vCPU thread for config space).
 * A device acting on its own events (a socket became readable) takes the lock with
 * virtio_lock() first. */
#ifndef VIREO_VIRTIO_VIRTIO_H
#define VIREO_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "queue.h"

struct tlv_writer;
struct tlv_section;

#define VIRTIO_F_VERSION_1 32

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_MAX_QUEUES 8
#define VIRTIO_NO_VECTOR 0xffff

/* Device-specific state fields in the device's section use tags from here up; lower tags belong
 * to the transport. */
#define VIRTIO_TAG_DEVICE 0x100

struct virtio_dev;

struct virtio_device_ops {
	const char *name;
	uint16_t device_id; /* virtio device ID: 3 console, 4 entropy, ... */
	uint8_t pci_class, pci_subclass, pci_prog_if;
	/* Device-specific feature bits offered. The transport adds VIRTIO_F_VERSION_1,
	 * VIRTIO_RING_F_INDIRECT_DESC and VIRTIO_RING_F_EVENT_IDX, which the queue code handles. */
	uint64_t features;
	unsigned int num_queues; /* <= VIRTIO_MAX_QUEUES */
	uint16_t queue_size; /* largest size of each queue, a power of two <= VIRTQ_MAX_SIZE */
	uint32_t config_size; /* bytes of device configuration space, <= 4096 */

	/* Device configuration space; off + len <= config_size (the transport checks). Reads of
	 * a device without config space are zeros. Optional. */
	void (*config_read)(struct virtio_dev *vdev, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_dev *vdev, uint32_t off, const uint8_t *data,
			     uint32_t len);
	/* The driver made buffers available on queue q (only called while DRIVER_OK and not
	 * NEEDS_RESET, for a ready queue). Pop, process, push, then virtio_queue_interrupt().
	 * Returns 0, or -errno when the driver broke the rules (virtq_pop failed, or a chain has
	 * the wrong shape for this device): the transport then sets DEVICE_NEEDS_RESET. */
	int (*notify)(struct virtio_dev *vdev, unsigned int q);
	/* The driver set DRIVER_OK. Optional. */
	void (*activate)(struct virtio_dev *vdev);
	/* Back to the power-on state (driver wrote status 0). Queues are reset by the transport.
	 * Optional. */
	void (*reset)(struct virtio_dev *vdev);
	/* Guest-visible device-specific state as fields with tags >= VIRTIO_TAG_DEVICE, and back.
	 * Optional. load runs after the transport state is loaded. */
	int (*save)(struct virtio_dev *vdev, struct tlv_writer *w);
	int (*load)(struct virtio_dev *vdev, const struct tlv_section *s);
	/* The machine is pausing (snapshot, migration, pause command): finish what is in flight so
	 * the state saved next has nothing pending. Queues are not processed until resume.
	 * Optional. */
	void (*quiesce)(struct virtio_dev *vdev);
	/* The machine runs again. Queues with buffers waiting are processed after this. Optional.
	 */
	void (*resume)(struct virtio_dev *vdev);
};

/* How the core raises interrupts, implemented by the transport. */
struct virtio_transport_ops {
	void (*signal_queue)(struct virtio_dev *vdev, unsigned int q);
	void (*signal_config)(struct virtio_dev *vdev);
};

struct virtio_dev {
	const struct virtio_device_ops *ops;
	void *priv; /* the device's state */
	const struct virtio_transport_ops *transport;
	pthread_mutex_t lock;

	uint64_t driver_features;
	uint8_t status;
	uint8_t config_generation;
	uint16_t config_vector;
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];
	/* Malformed-ring reports logged so far (a guest must not flood the log). */
	unsigned int errors_logged;
	/* Between virtio_dev_quiesce and virtio_dev_resume: queues are left alone. */
	bool quiesced;
};

void virtio_dev_init(struct virtio_dev *vdev, const struct virtio_device_ops *ops, void *priv,
		     const struct virtio_transport_ops *transport, const struct virtq_mem *mem);
/* What the transport offers: the device's features plus the ones it implements itself. */
uint64_t virtio_dev_features(const struct virtio_dev *vdev);
/* Driver wrote status (transport, lock held): reset on 0, feature check on FEATURES_OK,
 * activation on DRIVER_OK. */
void virtio_dev_set_status(struct virtio_dev *vdev, uint8_t status);
void virtio_dev_reset(struct virtio_dev *vdev);
/* Runs the device's notify for queue q if the device is live; sets NEEDS_RESET on error. */
void virtio_dev_process(struct virtio_dev *vdev, unsigned int q);
/* The same, taking at most budget chains from the queue (0: no limit). Returns true when it
 * stopped at the budget with chains left: the caller must call again later (the main loop
 * requeues the notification, serving its other fds in between). */
bool virtio_dev_process_budget(struct virtio_dev *vdev, unsigned int q, unsigned int budget);

/* The machine pauses / runs again (lock held): see quiesce and resume in the ops. */
void virtio_dev_quiesce(struct virtio_dev *vdev);
void virtio_dev_resume(struct virtio_dev *vdev);

/* For devices. */
static inline bool virtio_has_feature(const struct virtio_dev *vdev, unsigned int bit)
{
	return vdev->driver_features & (1ULL << bit);
}
/* DRIVER_OK set and no NEEDS_RESET: queues may be used. */
bool virtio_live(const struct virtio_dev *vdev);
/* Interrupts the driver for queue q if it asked for one (after pushing used buffers). */
void virtio_queue_interrupt(struct virtio_dev *vdev, unsigned int q);
/* The device changed its configuration space. */
void virtio_config_changed(struct virtio_dev *vdev);
/* The driver broke the rules: DEVICE_NEEDS_RESET, a (rate-limited) log line and a
 * configuration-change interrupt. The device stays dead until the driver resets it. */
void virtio_set_needs_reset(struct virtio_dev *vdev, const char *why, int err);
void virtio_lock(struct virtio_dev *vdev);
void virtio_unlock(struct virtio_dev *vdev);

#endif
