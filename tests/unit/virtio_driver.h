/* SPDX-License-Identifier: MIT */
/* A tiny virtio driver for unit tests: one PCI function on a private bus, RAM as an anonymous
 * mapping, up to 8 split queues of DRV_QSIZE at fixed guest addresses, buffers added one chain
 * at a time. Everything goes through the BAR and config space as a guest's accesses would. */
#ifndef VIREO_TESTS_VIRTIO_DRIVER_H
#define VIREO_TESTS_VIRTIO_DRIVER_H

#define DRV_RAM_SIZE (4 * MIB)
#define DRV_QSIZE 16
#define DRV_DESC(q) (0x10000 + 0x4000 * (uint64_t)(q))
#define DRV_AVAIL(q) (DRV_DESC(q) + 0x1000)
#define DRV_USED(q) (DRV_DESC(q) + 0x2000)
#define DRV_BUF_GPA 0x80000

struct drv {
	uint8_t *ram;
	bool shared_ram;
	struct guest_mem mem;
	struct pci_bus pci;
	struct bus mmio;
	struct virtio_pci_host host;
	struct virtio_pci *vp;
	unsigned int devfn;
	uint16_t next_desc[8], avail_idx[8];
	int intx_level;
};

static void drv_intx(void *opaque, uint32_t irq, int level)
{
	struct drv *d = opaque;

	(void)irq;
	d->intx_level = level;
}

static inline struct drv *drv_new_ram(uint8_t *ram)
{
	struct drv *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	d->shared_ram = ram != NULL;
	if (!ram) {
		ram = mmap(NULL, DRV_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
		assert_true(ram != MAP_FAILED);
	}
	d->ram = ram;
	memory_attach(&d->mem, ram, DRV_RAM_SIZE);
	pci_bus_init(&d->pci);
	bus_init(&d->mmio, "mmio");
	d->host = (struct virtio_pci_host){ .opaque = d, .mem = &d->mem, .set_intx = drv_intx };
	return d;
}

static inline struct drv *drv_new(void)
{
	return drv_new_ram(NULL);
}

/* A second machine on the same RAM (save/load tests). */
static inline struct drv *drv_new_sharing(struct drv *d)
{
	return drv_new_ram(d->ram);
}

static inline uint32_t drv_pci_read(struct drv *d, uint32_t off, uint32_t len)
{
	uint8_t b[4] = { 0 };

	pci_config_access(&d->pci, d->devfn, off, b, len, false);
	return get_le32(b);
}

static inline void drv_pci_write(struct drv *d, uint32_t off, uint32_t v, uint32_t len)
{
	uint8_t b[4];

	put_le32(b, v);
	pci_config_access(&d->pci, d->devfn, off, b, len, true);
}

/* After the device is created into d->vp: finds its slot and turns memory decoding on. */
static inline void drv_attach(struct drv *d)
{
	int slot;

	for (slot = 1; slot < PCI_SLOTS && d->pci.slots[slot] != &d->vp->pci; slot++)
		;
	assert_true(slot < PCI_SLOTS);
	d->devfn = (unsigned int)slot << 3;
	drv_pci_write(d, 0x04, 0x0002, 2);
}

static inline uint64_t drv_bar_read(struct drv *d, uint32_t off, uint32_t len)
{
	uint8_t b[8] = { 0 };

	assert_true(bus_access(&d->mmio, d->vp->bar_addr + off, b, len, false));
	return get_le64(b);
}

static inline void drv_bar_write(struct drv *d, uint32_t off, uint64_t v, uint32_t len)
{
	uint8_t b[8];

	put_le64(b, v);
	assert_true(bus_access(&d->mmio, d->vp->bar_addr + off, b, len, true));
}

static inline uint8_t drv_status(struct drv *d)
{
	return (uint8_t)drv_bar_read(d, 0x14, 1);
}

static inline uint64_t drv_cfg_read(struct drv *d, uint32_t off, uint32_t len)
{
	return drv_bar_read(d, VIRTIO_PCI_DEVICE_OFF + off, len);
}

static inline void drv_cfg_write(struct drv *d, uint32_t off, uint64_t v, uint32_t len)
{
	drv_bar_write(d, VIRTIO_PCI_DEVICE_OFF + off, v, len);
}

static inline void drv_reset(struct drv *d)
{
	drv_bar_write(d, 0x14, 0, 1);
	assert_int_equal(drv_status(d), 0);
}

/* Writes the driver's features and sets FEATURES_OK (the device may refuse them). */
static inline void drv_set_features(struct drv *d, uint64_t features)
{
	drv_bar_write(d, 0x08, 0, 4);
	drv_bar_write(d, 0x0c, (uint32_t)features, 4);
	drv_bar_write(d, 0x08, 1, 4);
	drv_bar_write(d, 0x0c, (uint32_t)(features >> 32), 4);
	drv_bar_write(d, 0x14,
		      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK,
		      1);
}

/* Enables queues 0..nq-1 (emptied, at their fixed addresses) and sets DRIVER_OK. */
static inline void drv_enable_queues(struct drv *d, unsigned int nq)
{
	for (unsigned int q = 0; q < nq; q++) {
		memset(d->ram + DRV_DESC(q), 0, 0x3000);
		d->next_desc[q] = d->avail_idx[q] = 0;
		drv_bar_write(d, 0x16, q, 2);
		drv_bar_write(d, 0x18, DRV_QSIZE, 2);
		drv_bar_write(d, 0x20, DRV_DESC(q), 8);
		drv_bar_write(d, 0x28, DRV_AVAIL(q), 8);
		drv_bar_write(d, 0x30, DRV_USED(q), 8);
		drv_bar_write(d, 0x1c, 1, 2);
	}
	drv_bar_write(d, 0x14, drv_status(d) | VIRTIO_STATUS_DRIVER_OK, 1);
}

/* Negotiates features (VERSION_1 added), enables queues 0..nq-1 and sets DRIVER_OK. */
static inline void drv_start(struct drv *d, uint64_t features, unsigned int nq)
{
	features |= 1ULL << VIRTIO_F_VERSION_1;
	drv_bar_write(d, 0x14, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	drv_set_features(d, features);
	assert_true(drv_status(d) & VIRTIO_STATUS_FEATURES_OK);
	drv_enable_queues(d, nq);
	assert_true(drv_status(d) & VIRTIO_STATUS_DRIVER_OK);
}

struct drv_buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* Makes one chain available on queue q (readable buffers must come first); returns its head. */
static inline uint16_t drv_add(struct drv *d, unsigned int q, const struct drv_buf *b,
			       unsigned int n)
{
	uint16_t head = d->next_desc[q] % DRV_QSIZE;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = d->next_desc[q]++ % DRV_QSIZE;
		uint8_t *desc = d->ram + DRV_DESC(q) + 16 * idx;
		uint16_t flags = (uint16_t)((b[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));

		put_le64(desc, b[i].gpa);
		put_le32(desc + 8, b[i].len);
		put_le16(desc + 12, flags);
		put_le16(desc + 14, (uint16_t)(d->next_desc[q] % DRV_QSIZE));
	}
	put_le16(d->ram + DRV_AVAIL(q) + 4 + 2 * (d->avail_idx[q] % DRV_QSIZE), head);
	d->avail_idx[q]++;
	put_le16(d->ram + DRV_AVAIL(q) + 2, d->avail_idx[q]);
	return head;
}

static inline uint16_t drv_add1(struct drv *d, unsigned int q, uint64_t gpa, uint32_t len,
				bool write)
{
	struct drv_buf b = { gpa, len, write };

	return drv_add(d, q, &b, 1);
}

static inline void drv_kick(struct drv *d, unsigned int q)
{
	drv_bar_write(d, VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q, q, 2);
}

static inline uint16_t drv_used_idx(struct drv *d, unsigned int q)
{
	return get_le16(d->ram + DRV_USED(q) + 2);
}

/* The i-th used element (in order of use): id and written length. */
static inline uint32_t drv_used_id(struct drv *d, unsigned int q, unsigned int i)
{
	return get_le32(d->ram + DRV_USED(q) + 4 + 8 * (i % DRV_QSIZE));
}

static inline uint32_t drv_used_len(struct drv *d, unsigned int q, unsigned int i)
{
	return get_le32(d->ram + DRV_USED(q) + 8 + 8 * (i % DRV_QSIZE));
}

/* Frees the device too (its struct virtio_pci is the first member of the device's state). */
static inline void drv_free(struct drv *d)
{
	free(d->vp);
	if (!d->shared_ram)
		munmap(d->ram, DRV_RAM_SIZE);
	free(d);
}

static inline int drv_teardown(void **state)
{
	drv_free(*state);
	return 0;
}

#endif
