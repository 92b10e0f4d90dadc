// SPDX-License-Identifier: MIT
/* virtio-rng: one request queue of device-writable buffers, each filled with random bytes. */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "devices.h"

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_PER_REQUEST 4096 /* a request larger than this gets this much */

struct virtio_rng {
	struct virtio_pci vp;
	struct virtq_chain chain;
};

static int rng_fill(const struct virtq_chain *c, uint32_t *written)
{
	uint8_t buf[RNG_MAX_PER_REQUEST];
	size_t want = c->write_len < sizeof(buf) ? (size_t)c->write_len : sizeof(buf);
	ssize_t n = getrandom(buf, want, GRND_NONBLOCK);

	/* No entropy yet (a freshly booted host): complete the request empty; the driver asks
	 * again. */
	if (n < 0)
		n = 0;
	*written = (uint32_t)virtq_chain_write(c, 0, buf, (size_t)n);
	return 0;
}

static int rng_notify(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_rng *rng = vdev->priv;
	struct virtq *vq = &vdev->vqs[q];
	bool pushed = false;
	uint32_t written;
	int ret;

	while ((ret = virtq_pop(vq, &rng->chain)) == 1) {
		/* The driver only ever offers buffers for us to fill. */
		if (rng->chain.nread || !rng->chain.nwrite)
			return -EINVAL;
		rng_fill(&rng->chain, &written);
		virtq_push(vq, &rng->chain, written);
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(vdev, q);
	return ret;
}

static const struct virtio_device_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = 4,
	.pci_class = 0xff,
	.num_queues = 1,
	.queue_size = RNG_QUEUE_SIZE,
	.notify = rng_notify,
};

int virtio_rng_create(struct virtio_pci **out, const struct virtio_pci_host *host,
		      struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq)
{
	struct virtio_rng *rng = calloc(1, sizeof(*rng));
	int ret;

	if (!rng)
		return -ENOMEM;
	ret = virtio_pci_create(&rng->vp, &rng_ops, rng, host, pci, mmio, intx_irq);
	if (ret) {
		free(rng); /* a failed create leaves nothing pointing at it */
		return ret;
	}
	*out = &rng->vp;
	return 0;
}

const struct device_ops virtio_rng_device_ops =
	VIRTIO_PCI_DEVICE_OPS("virtio-rng", SECTION_VIRTIO_RNG);
