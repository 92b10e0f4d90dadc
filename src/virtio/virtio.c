// SPDX-License-Identifier: MIT
/* The transport-independent part of a virtio device: feature negotiation, the status state
 * machine, and the error path for drivers that break the rules. */
#include "virtio.h"

#include <stdio.h>
#include <string.h>

#include "../common/log.h"

#define MAX_ERRORS_LOGGED 4

static const uint64_t transport_features = (1ULL << VIRTIO_F_VERSION_1) |
					   (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
					   (1ULL << VIRTIO_RING_F_EVENT_IDX);

void virtio_dev_init(struct virtio_dev *vdev, const struct virtio_device_ops *ops, void *priv,
		     const struct virtio_transport_ops *transport, const struct virtq_mem *mem)
{
	memset(vdev, 0, sizeof(*vdev));
	vdev->ops = ops;
	vdev->priv = priv;
	vdev->transport = transport;
	pthread_mutex_init(&vdev->lock, NULL);
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		virtq_reset(&vdev->vqs[i], mem, ops->queue_size);
	virtio_dev_reset(vdev);
}

uint64_t virtio_dev_features(const struct virtio_dev *vdev)
{
	return vdev->ops->features | transport_features;
}

void virtio_dev_reset(struct virtio_dev *vdev)
{
	vdev->driver_features = 0;
	vdev->status = 0;
	vdev->config_vector = VIRTIO_NO_VECTOR;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		struct virtq_mem m = vdev->vqs[i].m;

		virtq_reset(&vdev->vqs[i], &m,
			    i < vdev->ops->num_queues ? vdev->ops->queue_size : 0);
		vdev->queue_vector[i] = VIRTIO_NO_VECTOR;
	}
	if (vdev->ops->reset)
		vdev->ops->reset(vdev);
}

bool virtio_live(const struct virtio_dev *vdev)
{
	return (vdev->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET)) ==
	       VIRTIO_STATUS_DRIVER_OK;
}

void virtio_dev_set_status(struct virtio_dev *vdev, uint8_t status)
{
	uint8_t old = vdev->status;

	if (!status) {
		virtio_dev_reset(vdev);
		return;
	}
	/* NEEDS_RESET is the device's to set and stays until a reset. */
	status = (uint8_t)((status & ~VIRTIO_STATUS_NEEDS_RESET) |
			   (old & VIRTIO_STATUS_NEEDS_RESET));
	if ((status & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		uint64_t f = vdev->driver_features;

		/* Only what was offered, and never without VERSION_1: a legacy-only driver
		 * reads FEATURES_OK back as clear and gives up, as the spec intends. */
		if ((f & ~virtio_dev_features(vdev)) || !(f & (1ULL << VIRTIO_F_VERSION_1))) {
			status &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
		} else {
			for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
				vdev->vqs[i].indirect =
					virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC);
				vdev->vqs[i].event_idx =
					virtio_has_feature(vdev, VIRTIO_RING_F_EVENT_IDX);
			}
		}
	}
	/* DRIVER_OK needs FEATURES_OK first. */
	if ((status & VIRTIO_STATUS_DRIVER_OK) && !(status & VIRTIO_STATUS_FEATURES_OK))
		status &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	vdev->status = status;
	if ((status & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
		if (vdev->ops->activate)
			vdev->ops->activate(vdev);
		/* Buffers made available before DRIVER_OK are processed now. */
		for (unsigned int q = 0; q < vdev->ops->num_queues; q++)
			if (virtq_has_avail(&vdev->vqs[q]))
				virtio_dev_process(vdev, q);
	}
}

bool virtio_dev_process_budget(struct virtio_dev *vdev, unsigned int q, unsigned int budget)
{
	struct virtq *vq;
	bool more;
	int ret;

	if (q >= vdev->ops->num_queues || !virtio_live(vdev) || !vdev->vqs[q].ready ||
	    !vdev->ops->notify || vdev->quiesced)
		return false;
	vq = &vdev->vqs[q];
	virtq_set_budget(vq, budget);
	ret = vdev->ops->notify(vdev, q);
	more = virtq_over_budget(vq);
	virtq_set_budget(vq, 0);
	if (ret < 0) {
		char why[48];

		snprintf(why, sizeof(why), "bad request on queue %u", q);
		virtio_set_needs_reset(vdev, why, ret);
		return false;
	}
	return more && virtio_live(vdev) && virtq_has_avail(vq);
}

void virtio_dev_process(struct virtio_dev *vdev, unsigned int q)
{
	virtio_dev_process_budget(vdev, q, 0);
}

void virtio_dev_quiesce(struct virtio_dev *vdev)
{
	if (vdev->quiesced)
		return;
	vdev->quiesced = true;
	if (vdev->ops->quiesce)
		vdev->ops->quiesce(vdev);
}

void virtio_dev_resume(struct virtio_dev *vdev)
{
	if (!vdev->quiesced)
		return;
	vdev->quiesced = false;
	if (vdev->ops->resume)
		vdev->ops->resume(vdev);
	/* Notifications that arrived meanwhile were dropped: look at every queue once. */
	for (unsigned int q = 0; q < vdev->ops->num_queues; q++)
		if (virtq_has_avail(&vdev->vqs[q]))
			virtio_dev_process(vdev, q);
}

void virtio_queue_interrupt(struct virtio_dev *vdev, unsigned int q)
{
	if (virtq_need_notify(&vdev->vqs[q]) && vdev->transport)
		vdev->transport->signal_queue(vdev, q);
}

void virtio_config_changed(struct virtio_dev *vdev)
{
	vdev->config_generation++;
	if (vdev->transport)
		vdev->transport->signal_config(vdev);
}

void virtio_set_needs_reset(struct virtio_dev *vdev, const char *why, int err)
{
	if (vdev->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	vdev->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (vdev->errors_logged < MAX_ERRORS_LOGGED) {
		vdev->errors_logged++;
		pr_warn("%s: %s (%s): device needs reset%s", vdev->ops->name, why, strerror(-err),
			vdev->errors_logged == MAX_ERRORS_LOGGED ? "; further reports suppressed"
								 : "");
	}
	if (vdev->transport)
		vdev->transport->signal_config(vdev);
}

void virtio_lock(struct virtio_dev *vdev)
{
	pthread_mutex_lock(&vdev->lock);
}

void virtio_unlock(struct virtio_dev *vdev)
{
	pthread_mutex_unlock(&vdev->lock);
}
