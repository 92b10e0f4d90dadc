// SPDX-License-Identifier: MIT
/* virtio-balloon (device ID 5): the host sets a target (num_pages), the driver inflates by
 * handing over guest pages, which go back to the host, and deflates by taking pages back.
 * Offered: STATS_VQ (memory statistics on request), REPORTING (free page reporting: free guest
 * ranges are given back to the host as the driver reports them), and DEFLATE_ON_OOM when asked.
 *
 * Queues are numbered as the driver enables them: inflate 0, deflate 1, then the stats queue if
 * STATS_VQ was negotiated, then the reporting queue if REPORTING was; queues for features the
 * driver declined do not exist (virtio 1.2 section 5.5.2).
 *
 * Everything runs under the device lock: notifications on the main loop's thread, config
 * accesses on vCPU threads, target and statistics requests from the control socket. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/log.h"
#include "../common/tlv.h"
#include "../common/util.h"
#include "../mem/memory.h"
#include "devices.h"

#define BALLOON_QUEUE_SIZE 128 /* >= 32: Linux needs that many for page reporting */
#define BALLOON_CONFIG_SIZE 16 /* num_pages, actual, free_page_hint_cmd_id, poison_val */
#define BALLOON_PFN_SHIFT 12
#define PFNS_PER_READ 256 /* what Linux sends per request */
#define STAT_LEN 10 /* le16 tag, le64 value */

#define F_STATS_VQ 1
#define F_DEFLATE_ON_OOM 2
#define F_REPORTING 5

enum balloon_queue_role {
	ROLE_INFLATE,
	ROLE_DEFLATE,
	ROLE_STATS,
	ROLE_REPORTING,
	ROLE_NONE
};

enum {
	T_NUM_PAGES = VIRTIO_TAG_DEVICE,
	T_ACTUAL,
	T_POISON,
	T_STATS_HEAD, /* u16: the stats buffer the device holds (absent: none held) */
	T_STATS, /* u32 mask of valid tags, then BALLOON_NR_STATS le64 values */
};

struct virtio_balloon {
	struct virtio_pci vp;
	struct guest_mem *mem;
	uint32_t num_pages; /* the host's target, in 4 KiB pages */
	uint32_t actual; /* written by the driver: pages it holds in the balloon */
	uint32_t poison_val;
	/* The driver's statistics buffer, kept until the host wants fresh values: giving it
	 * back is the request (virtio 1.2 section 5.5.6.3). */
	bool stats_held;
	uint16_t stats_head;
	uint64_t stats[BALLOON_NR_STATS];
	uint32_t stats_mask;
	uint64_t stats_updates;
	int64_t stats_when_ms;
	uint64_t inflated_pages, deflated_pages, discarded_bytes, reported_bytes;
	uint64_t bad_pfns;
	bool bad_pfn_logged, huge_logged, err_logged;
	uint32_t pfns[PFNS_PER_READ];
	struct virtq_chain chain;
};

static enum balloon_queue_role queue_role(const struct virtio_dev *vdev, unsigned int q)
{
	unsigned int next = 2;

	if (q < 2)
		return q == 0 ? ROLE_INFLATE : ROLE_DEFLATE;
	if (virtio_has_feature(vdev, F_STATS_VQ) && q == next++)
		return ROLE_STATS;
	if (virtio_has_feature(vdev, F_REPORTING) && q == next)
		return ROLE_REPORTING;
	return ROLE_NONE;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void discard(struct virtio_balloon *b, uint64_t gpa, uint64_t len, uint64_t *counter)
{
	int64_t n = memory_discard(b->mem, gpa, len);

	if (n < 0 && !b->err_logged) {
		b->err_logged = true;
		pr_warn("virtio-balloon: cannot return guest range 0x%llx+0x%llx to the host: %s "
			"(further failures not logged)",
			(unsigned long long)gpa, (unsigned long long)len, strerror((int)-n));
	}
	if (n == 0 && len && b->mem->hugepages && !b->huge_logged) {
		b->huge_logged = true;
		pr_info("virtio-balloon: with --hugepages only whole 2 MiB pages go back to the "
			"host; 4 KiB balloon pages stay allocated");
	}
	if (n > 0)
		*counter += (uint64_t)n;
}

/* Gives the pages of n PFNs back to the host, in runs of consecutive pages. PFNs outside RAM
 * are skipped and counted: the driver is wrong, but the rest of the request can be honoured. */
static void discard_pfns(struct virtio_balloon *b, uint32_t *pfns, size_t n)
{
	qsort(pfns, n, sizeof(*pfns), cmp_u32);
	for (size_t i = 0; i < n;) {
		uint64_t gpa = (uint64_t)pfns[i] << BALLOON_PFN_SHIFT;
		size_t j = i + 1;

		if (!memory_gpa_ptr(b->mem, gpa, 4096)) {
			if (!b->bad_pfn_logged) {
				b->bad_pfn_logged = true;
				pr_warn("virtio-balloon: driver gave page 0x%x outside RAM; "
					"ignored "
					"(further ones counted, not logged)",
					pfns[i]);
			}
			b->bad_pfns++;
			i++;
			continue;
		}
		while (j < n && (pfns[j] == pfns[j - 1] || pfns[j] == pfns[j - 1] + 1) &&
		       memory_gpa_ptr(b->mem, (uint64_t)pfns[j] << BALLOON_PFN_SHIFT, 4096))
			j++;
		discard(b, gpa, ((uint64_t)pfns[j - 1] << BALLOON_PFN_SHIFT) + 4096 - gpa,
			&b->discarded_bytes);
		i = j;
	}
}

static int pfn_process(struct virtio_balloon *b, struct virtq *vq, bool inflate)
{
	int ret;

	while ((ret = virtq_pop(vq, &b->chain)) == 1) {
		if (b->chain.nwrite || b->chain.read_len % 4)
			return -EINVAL;
		for (size_t off = 0; off < b->chain.read_len;) {
			size_t got = virtq_chain_read(&b->chain, off, b->pfns, sizeof(b->pfns));
			size_t n = got / 4;

			if (!got)
				break;
			off += got;
			if (inflate) {
				discard_pfns(b, b->pfns, n);
				b->inflated_pages += n;
			} else {
				/* Without MUST_TELL_HOST the driver already uses these pages; the
				 * host has nothing to do but count. */
				b->deflated_pages += n;
			}
		}
		virtq_push(vq, &b->chain, 0);
		virtio_queue_interrupt(&b->vp.vdev, (unsigned int)(vq - b->vp.vdev.vqs));
	}
	return ret;
}

static int report_process(struct virtio_balloon *b, struct virtq *vq)
{
	int ret;

	while ((ret = virtq_pop(vq, &b->chain)) == 1) {
		/* Linux offers the free ranges as device-writable buffers; nothing is written. */
		for (unsigned int i = 0; i < b->chain.nread + b->chain.nwrite; i++)
			discard(b, b->chain.bufs[i].gpa, b->chain.bufs[i].len, &b->reported_bytes);
		virtq_push(vq, &b->chain, 0);
		virtio_queue_interrupt(&b->vp.vdev, (unsigned int)(vq - b->vp.vdev.vqs));
	}
	return ret;
}

static int stats_process(struct virtio_balloon *b, unsigned int q)
{
	struct virtq *vq = &b->vp.vdev.vqs[q];
	uint8_t e[STAT_LEN];
	int ret;

	while ((ret = virtq_pop(vq, &b->chain)) == 1) {
		if (b->chain.nwrite)
			return -EINVAL;
		for (size_t off = 0; virtq_chain_read(&b->chain, off, e, STAT_LEN) == STAT_LEN;
		     off += STAT_LEN) {
			uint16_t tag = get_le16(e);

			/* Tags this device does not know are skipped, as the spec asks. */
			if (tag < BALLOON_NR_STATS) {
				b->stats[tag] = get_le64(e + 2);
				b->stats_mask |= 1u << tag;
			}
		}
		b->stats_updates++;
		b->stats_when_ms = (clock_ns(CLOCK_MONOTONIC) / 1000000);
		/* A driver should have one buffer out; if it offers another, the older one is
		 * returned at once. */
		if (b->stats_held) {
			uint16_t head = b->chain.head;

			b->chain.head = b->stats_head;
			b->chain.nwrite = 0;
			virtq_push(vq, &b->chain, 0);
			b->chain.head = head;
			virtio_queue_interrupt(&b->vp.vdev, q);
		}
		b->stats_held = true;
		b->stats_head = b->chain.head;
	}
	return ret;
}

static int balloon_notify(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_balloon *b = vdev->priv;

	switch (queue_role(vdev, q)) {
	case ROLE_INFLATE:
		return pfn_process(b, &vdev->vqs[q], true);
	case ROLE_DEFLATE:
		return pfn_process(b, &vdev->vqs[q], false);
	case ROLE_STATS:
		return stats_process(b, q);
	case ROLE_REPORTING:
		return report_process(b, &vdev->vqs[q]);
	default:
		return -EINVAL; /* a queue that does not exist with these features */
	}
}

static void balloon_config_read(struct virtio_dev *vdev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_balloon *b = vdev->priv;
	uint8_t cfg[BALLOON_CONFIG_SIZE];

	put_le32(cfg, b->num_pages);
	put_le32(cfg + 4, b->actual);
	put_le32(cfg + 8, 0); /* free_page_hint_cmd_id: FREE_PAGE_HINT is not offered */
	put_le32(cfg + 12, b->poison_val);
	memcpy(data, cfg + off, len);
}

static void balloon_config_write(struct virtio_dev *vdev, uint32_t off, const uint8_t *data,
				 uint32_t len)
{
	struct virtio_balloon *b = vdev->priv;
	uint8_t cfg[BALLOON_CONFIG_SIZE];

	put_le32(cfg + 4, b->actual);
	put_le32(cfg + 12, b->poison_val);
	/* Only actual and poison_val belong to the driver; other bytes are dropped. */
	for (uint32_t i = 0; i < len; i++)
		if ((off + i >= 4 && off + i < 8) || off + i >= 12)
			cfg[off + i] = data[i];
	b->actual = get_le32(cfg + 4);
	b->poison_val = get_le32(cfg + 12);
}

static void balloon_reset(struct virtio_dev *vdev)
{
	struct virtio_balloon *b = vdev->priv;

	/* The driver starts over with an empty balloon; the host's target stays. */
	b->actual = 0;
	b->poison_val = 0;
	b->stats_held = false;
}

static int balloon_save(struct virtio_dev *vdev, struct tlv_writer *w)
{
	struct virtio_balloon *b = vdev->priv;
	uint8_t st[4 + 8 * BALLOON_NR_STATS];

	tlv_put_u32(w, T_NUM_PAGES, b->num_pages);
	tlv_put_u32(w, T_ACTUAL, b->actual);
	tlv_put_u32(w, T_POISON, b->poison_val);
	if (b->stats_held)
		tlv_put_u16(w, T_STATS_HEAD, b->stats_head);
	put_le32(st, b->stats_mask);
	for (unsigned int i = 0; i < BALLOON_NR_STATS; i++)
		put_le64(st + 4 + 8 * i, b->stats[i]);
	tlv_put(w, T_STATS, st, sizeof(st));
	return w->err;
}

static int balloon_load(struct virtio_dev *vdev, const struct tlv_section *s)
{
	struct virtio_balloon *b = vdev->priv;
	struct tlv_field f;
	uint16_t head = 0;

	if (tlv_get_u32(s, T_NUM_PAGES, &b->num_pages) || tlv_get_u32(s, T_ACTUAL, &b->actual) ||
	    tlv_get_u32(s, T_POISON, &b->poison_val) || tlv_get_u16(s, T_STATS_HEAD, &head))
		return -EINVAL;
	/* A head the saved driver never gave would only confuse that driver when it comes back:
	 * the used ring is written in bounds whatever the value. */
	b->stats_held = tlv_find(s, T_STATS_HEAD, &f);
	b->stats_head = head;
	if (tlv_find(s, T_STATS, &f)) {
		if (f.len != 4 + 8 * BALLOON_NR_STATS)
			return -EINVAL;
		b->stats_mask = get_le32(f.data) & ((1u << BALLOON_NR_STATS) - 1);
		for (unsigned int i = 0; i < BALLOON_NR_STATS; i++)
			b->stats[i] = get_le64(f.data + 4 + 8 * i);
	}
	return 0;
}

#define BALLOON_OPS(features_)                                                            \
	{                                                                                 \
		.name = "virtio-balloon", .device_id = 5, /* memory controller, other */  \
			.pci_class = 0x05, .pci_subclass = 0x80, .features = (features_), \
		.num_queues = 4, .queue_size = BALLOON_QUEUE_SIZE,                        \
		.config_size = BALLOON_CONFIG_SIZE, .config_read = balloon_config_read,   \
		.config_write = balloon_config_write, .notify = balloon_notify,           \
		.reset = balloon_reset, .save = balloon_save, .load = balloon_load,       \
	}
#define BALLOON_BASE_FEATURES ((1ULL << F_STATS_VQ) | (1ULL << F_REPORTING))

/* The offered features depend on the options: one set of ops each. */
static const struct virtio_device_ops balloon_ops = BALLOON_OPS(BALLOON_BASE_FEATURES);
static const struct virtio_device_ops balloon_oom_ops =
	BALLOON_OPS(BALLOON_BASE_FEATURES | (1ULL << F_DEFLATE_ON_OOM));

static struct virtio_balloon *to_balloon(struct virtio_pci *vp)
{
	return vp->vdev.priv;
}

int virtio_balloon_set_target(struct virtio_pci *vp, uint64_t bytes)
{
	struct virtio_balloon *b = to_balloon(vp);

	if (bytes > b->mem->ram_size)
		return -ERANGE;
	virtio_lock(&vp->vdev);
	b->num_pages = (uint32_t)(bytes >> BALLOON_PFN_SHIFT);
	virtio_config_changed(&vp->vdev);
	virtio_unlock(&vp->vdev);
	return 0;
}

int virtio_balloon_request_stats(struct virtio_pci *vp)
{
	struct virtio_balloon *b = to_balloon(vp);
	struct virtio_dev *vdev = &vp->vdev;
	int ret = -EAGAIN;

	virtio_lock(vdev);
	if (!virtio_live(vdev) || !virtio_has_feature(vdev, F_STATS_VQ)) {
		ret = -ENOTSUP;
	} else if (b->stats_held) {
		unsigned int q = 2;

		b->chain.head = b->stats_head;
		b->chain.nread = b->chain.nwrite = 0;
		b->chain.read_len = b->chain.write_len = 0;
		virtq_push(&vdev->vqs[q], &b->chain, 0);
		virtio_queue_interrupt(vdev, q);
		b->stats_held = false;
		ret = 0;
	}
	virtio_unlock(vdev);
	return ret;
}

void virtio_balloon_get_status(struct virtio_pci *vp, struct balloon_status *st)
{
	struct virtio_balloon *b = to_balloon(vp);

	virtio_lock(&vp->vdev);
	st->target_bytes = (uint64_t)b->num_pages << BALLOON_PFN_SHIFT;
	st->actual_bytes = (uint64_t)b->actual << BALLOON_PFN_SHIFT;
	st->inflated_pages = b->inflated_pages;
	st->deflated_pages = b->deflated_pages;
	st->discarded_bytes = b->discarded_bytes;
	st->reported_bytes = b->reported_bytes;
	st->bad_pfns = b->bad_pfns;
	st->stats_mask = b->stats_mask;
	memcpy(st->stats, b->stats, sizeof(st->stats));
	st->stats_updates = b->stats_updates;
	st->stats_age_ms =
		b->stats_updates ? (clock_ns(CLOCK_MONOTONIC) / 1000000) - b->stats_when_ms : -1;
	st->driver_ok = virtio_live(&vp->vdev);
	st->features = vp->vdev.driver_features;
	virtio_unlock(&vp->vdev);
}

const char *const virtio_balloon_stat_names[BALLOON_NR_STATS] = {
	"swap_in",	    "swap_out",	   "major_faults",
	"minor_faults",	    "free_memory", "total_memory",
	"available_memory", "disk_caches", "hugetlb_allocations",
	"hugetlb_failures",
};

int virtio_balloon_create(struct virtio_pci **out, const struct virtio_pci_host *host,
			  struct guest_mem *mem, struct pci_bus *pci, struct bus *mmio,
			  uint32_t intx_irq, uint32_t flags)
{
	struct virtio_balloon *b = calloc(1, sizeof(*b));
	int ret;

	if (!b)
		return -ENOMEM;
	b->mem = mem;
	ret = virtio_pci_create(&b->vp,
				flags & BALLOON_DEFLATE_ON_OOM ? &balloon_oom_ops : &balloon_ops, b,
				host, pci, mmio, intx_irq);
	if (ret)
		return ret; /* the machine is being torn down: left allocated */
	*out = &b->vp;
	return 0;
}

const struct device_ops virtio_balloon_device_ops =
	VIRTIO_PCI_DEVICE_OPS("virtio-balloon", SECTION_VIRTIO_BALLOON);
