// SPDX-License-Identifier: MIT
/* Unit tests for virtio-blk without KVM: the device on the virtio-pci transport with a heap block
 * as guest RAM, raw and qcow2 images in a temporary directory, and a small stand-in for the main
 * loop (the fds the device watches are polled here). Requests good and bad: reads and writes over
 * many segments, several in flight, flush, GET_ID, discard and write-zeroes, read-only disks,
 * short headers, out-of-range sectors, odd lengths, too many segments, unknown types, a chain
 * without a status byte (NEEDS_RESET), quiesce draining what is in flight, reset, save/load. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "common/tlv.h"
#include "common/util.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "virtio/devices.h"
#include "virtio/pci.h"
#include "mem/memory.h"

#define RAM_SIZE 0x100000
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x3000
#define USED_GPA 0x4000
#define INDIRECT_GPA 0x8000
#define HDR_GPA 0x10000 /* request headers, 16 bytes each */
#define STATUS_GPA 0x11000 /* status bytes, one per request */
#define DATA_GPA 0x20000
#define QSIZE 128
#define DISK_SIZE (1024 * 1024)

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define NO_STATUS 0xee

struct watch {
	int fd;
	void (*cb)(void *arg);
	void *arg;
};

struct fixture {
	uint8_t *ram;
	struct guest_mem mem;
	struct pci_bus pci;
	struct bus mmio;
	struct virtio_pci_host host;
	struct virtio_pci *vp;
	struct watch watches[16];
	char dir[64], raw[96], qcow[96];
	uint16_t next_desc;
	unsigned int dirty_bytes;
	bool qcow2; /* the disk starts empty; the raw one holds a pattern */
};

static int fake_watch(void *opaque, int fd, void (*cb)(void *arg), void *arg)
{
	struct fixture *f = opaque;

	for (unsigned int i = 0; i < 16; i++)
		if (!f->watches[i].cb) {
			f->watches[i] = (struct watch){ fd, cb, arg };
			return 0;
		}
	return -ENOSPC;
}

static int fake_unwatch(void *opaque, int fd)
{
	struct fixture *f = opaque;

	for (unsigned int i = 0; i < 16; i++)
		if (f->watches[i].cb && f->watches[i].fd == fd)
			f->watches[i].cb = NULL;
	return 0;
}

static void fake_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
	struct fixture *f = opaque;

	assert_true(gpa + len <= RAM_SIZE);
	f->dirty_bytes += (unsigned int)len;
}

static uint16_t used_idx(struct fixture *f)
{
	return get_le16(f->ram + USED_GPA + 2);
}

/* The main loop: runs watched fds' callbacks until the used index reaches want. */
static void run_until(struct fixture *f, uint16_t want)
{
	for (int round = 0; round < 500 && used_idx(f) != want; round++) {
		struct pollfd p[16];
		unsigned int n = 0;

		for (unsigned int i = 0; i < 16; i++)
			if (f->watches[i].cb)
				p[n++] =
					(struct pollfd){ .fd = f->watches[i].fd, .events = POLLIN };
		assert_true(poll(p, n, 20) >= 0);
		for (unsigned int i = 0, k = 0; i < 16; i++) {
			if (!f->watches[i].cb)
				continue;
			if (p[k++].revents & POLLIN)
				f->watches[i].cb(f->watches[i].arg);
		}
	}
	assert_int_equal(used_idx(f), want);
}

static void bar_write(struct fixture *f, uint32_t off, uint64_t v, uint32_t len)
{
	uint8_t b[8];

	put_le64(b, v);
	assert_true(bus_access(&f->mmio, f->vp->bar_addr + off, b, len, true));
}

static uint64_t bar_read(struct fixture *f, uint32_t off, uint32_t len)
{
	uint8_t b[8] = { 0 };

	assert_true(bus_access(&f->mmio, f->vp->bar_addr + off, b, len, false));
	return get_le64(b);
}

static uint8_t dev_status(struct fixture *f)
{
	return (uint8_t)bar_read(f, 0x14, 1);
}

static uint64_t offered_features(struct fixture *f)
{
	bar_write(f, 0x00, 0, 4);
	uint64_t lo = bar_read(f, 0x04, 4);

	bar_write(f, 0x00, 1, 4);
	return lo | bar_read(f, 0x04, 4) << 32;
}

static void start_device(struct fixture *f)
{
	uint64_t feat = offered_features(f);

	bar_write(f, 0x14, 3, 1);
	bar_write(f, 0x08, 0, 4);
	bar_write(f, 0x0c, (uint32_t)feat, 4);
	bar_write(f, 0x08, 1, 4);
	bar_write(f, 0x0c, (uint32_t)(feat >> 32), 4);
	bar_write(f, 0x14, 0xb, 1);
	bar_write(f, 0x16, 0, 2);
	assert_int_equal(bar_read(f, 0x18, 2), QSIZE);
	bar_write(f, 0x20, DESC_GPA, 8);
	bar_write(f, 0x28, AVAIL_GPA, 8);
	bar_write(f, 0x30, USED_GPA, 8);
	bar_write(f, 0x1c, 1, 2);
	bar_write(f, 0x14, 0xf, 1);
	assert_int_equal(dev_status(f), 0xf);
}

static void create_disk(struct fixture *f, const struct virtio_blk_opts *opts)
{
	pci_bus_init(&f->pci);
	bus_init(&f->mmio, "mmio");
	assert_int_equal(virtio_blk_create(&f->vp, &f->host, &f->pci, &f->mmio, 10, opts), 0);
	/* Memory decoding on. */
	for (int slot = 0; slot < PCI_SLOTS; slot++)
		if (f->pci.slots[slot] == &f->vp->pci) {
			uint8_t b[2] = { 2, 0 };

			pci_config_access(&f->pci, (unsigned int)slot << 3, 4, b, 2, true);
		}
	start_device(f);
}

static int setup_common(void **state, bool qcow2, bool read_only)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct blk_create_opts co = { .format = BLK_FORMAT_QCOW2, .size = DISK_SIZE };
	struct virtio_blk_opts opts = { .serial = "unit-serial-0123", .name = "d" };
	FILE *fp;

	assert_non_null(f);
	f->ram = calloc(1, RAM_SIZE);
	memory_attach(&f->mem, f->ram, RAM_SIZE);
	f->host = (struct virtio_pci_host){ .opaque = f,
					    .mem = &f->mem,
					    .mark_dirty = fake_dirty,
					    .watch_fd = fake_watch,
					    .unwatch_fd = fake_unwatch };
	snprintf(f->dir, sizeof(f->dir), "/tmp/vireo-blk-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->raw, sizeof(f->raw), "%s/d.raw", f->dir);
	snprintf(f->qcow, sizeof(f->qcow), "%s/d.qcow2", f->dir);
	fp = fopen(f->raw, "w");
	assert_non_null(fp);
	/* Sector n starts with the byte n & 0xff. */
	for (unsigned int s = 0; s < DISK_SIZE / 512; s++) {
		uint8_t sec[512];

		memset(sec, (int)(s & 0xff), sizeof(sec));
		assert_int_equal(fwrite(sec, 1, sizeof(sec), fp), sizeof(sec));
	}
	fclose(fp);
	assert_int_equal(blk_create(f->qcow, &co), 0);
	opts.path = qcow2 ? f->qcow : f->raw;
	f->qcow2 = qcow2;
	opts.read_only = read_only;
	create_disk(f, &opts);
	*state = f;
	return 0;
}

static int setup_raw(void **state)
{
	return setup_common(state, false, false);
}

static int setup_qcow2(void **state)
{
	return setup_common(state, true, false);
}

static int setup_ro(void **state)
{
	return setup_common(state, false, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	virtio_blk_destroy(f->vp);
	free(f->ram);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void put_desc(struct fixture *f, uint64_t table, unsigned int i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *d = f->ram + table + 16 * i;

	put_le64(d, addr);
	put_le32(d + 8, len);
	put_le16(d + 12, flags);
	put_le16(d + 14, next);
}

static void make_avail(struct fixture *f, uint16_t head)
{
	uint16_t idx = get_le16(f->ram + AVAIL_GPA + 2);

	put_le16(f->ram + AVAIL_GPA + 4 + 2 * (idx % QSIZE), head);
	put_le16(f->ram + AVAIL_GPA + 2, (uint16_t)(idx + 1));
}

static void notify(struct fixture *f)
{
	bar_write(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
}

/* A request in slot k: header, nseg data buffers of seglen bytes at data (writable when
 * data_in), one status byte. Returns the head; the chain is made available. */
static uint16_t queue_req(struct fixture *f, unsigned int k, uint32_t type, uint64_t sector,
			  uint64_t data, unsigned int nseg, uint32_t seglen, bool data_in)
{
	uint16_t head = f->next_desc, d = head;
	uint8_t *hdr = f->ram + HDR_GPA + 16 * k;

	put_le32(hdr, type);
	put_le32(hdr + 4, 0);
	put_le64(hdr + 8, sector);
	f->ram[STATUS_GPA + k] = NO_STATUS;
	put_desc(f, DESC_GPA, d, HDR_GPA + 16 * k, 16, VIRTQ_DESC_F_NEXT, (d + 1) % QSIZE);
	d = (d + 1) % QSIZE;
	for (unsigned int i = 0; i < nseg; i++) {
		put_desc(f, DESC_GPA, d, data + (uint64_t)i * seglen, seglen,
			 VIRTQ_DESC_F_NEXT | (data_in ? VIRTQ_DESC_F_WRITE : 0), (d + 1) % QSIZE);
		d = (d + 1) % QSIZE;
	}
	put_desc(f, DESC_GPA, d, STATUS_GPA + k, 1, VIRTQ_DESC_F_WRITE, 0);
	f->next_desc = (d + 1) % QSIZE;
	make_avail(f, head);
	return head;
}

/* One request, run to completion; returns its status byte. */
static uint8_t do_req(struct fixture *f, uint32_t type, uint64_t sector, unsigned int nseg,
		      uint32_t seglen, bool data_in)
{
	uint16_t want = (uint16_t)(used_idx(f) + 1);

	queue_req(f, 0, type, sector, DATA_GPA, nseg, seglen, data_in);
	notify(f);
	run_until(f, want);
	return f->ram[STATUS_GPA];
}

/* What the main loop does for a queue notification, without running completions. */
static void kick(struct fixture *f)
{
	virtio_lock(&f->vp->vdev);
	virtio_dev_process(&f->vp->vdev, 0);
	virtio_unlock(&f->vp->vdev);
}

static uint64_t config64(struct fixture *f, uint32_t off)
{
	return bar_read(f, VIRTIO_PCI_DEVICE_OFF + off, 8);
}

static uint32_t config32(struct fixture *f, uint32_t off)
{
	return (uint32_t)bar_read(f, VIRTIO_PCI_DEVICE_OFF + off, 4);
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	uint64_t feat = offered_features(f);

	assert_int_equal(config64(f, 0), DISK_SIZE / 512);
	assert_int_equal(config32(f, 12), QSIZE - 2); /* seg_max */
	assert_int_equal(config32(f, 20), 512); /* blk_size */
	assert_true(feat & (1ULL << 9)); /* FLUSH */
	assert_true(feat & (1ULL << 13)); /* DISCARD */
	assert_true(feat & (1ULL << 14)); /* WRITE_ZEROES */
	assert_false(feat & (1ULL << 5)); /* RO */
	assert_int_equal(config32(f, 40), 1); /* max_discard_seg */
}

static void test_read_write_segments(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = f->ram + DATA_GPA;

	/* Read sectors 3..10 in 16 pieces of 256 bytes. */
	memset(data, 0x5a, 4096);
	f->dirty_bytes = 0;
	assert_int_equal(do_req(f, T_IN, 3, 16, 256, true), S_OK);
	for (unsigned int s = 0; s < 8; s++)
		assert_int_equal(data[s * 512 + 7], f->qcow2 ? 0 : 3 + s);
	/* The VMM's writes into guest RAM are reported: data, status, used ring. */
	assert_true(f->dirty_bytes >= 4096 + 1);
	assert_int_equal(get_le32(f->ram + USED_GPA + 4 + 4), 4097); /* used len */
	/* Write 4 sectors at 100 from 8 buffers, read them back. */
	for (unsigned int i = 0; i < 2048; i++)
		data[i] = (uint8_t)(i * 7);
	assert_int_equal(do_req(f, T_OUT, 100, 8, 256, false), S_OK);
	assert_int_equal(do_req(f, T_FLUSH, 0, 0, 0, false), S_OK);
	memset(data + 8192, 0, 2048);
	queue_req(f, 1, T_IN, 100, DATA_GPA + 8192, 1, 2048, true);
	notify(f);
	run_until(f, (uint16_t)(used_idx(f) + 1));
	assert_int_equal(f->ram[STATUS_GPA + 1], S_OK);
	assert_memory_equal(data, data + 8192, 2048);
}

static void test_many_in_flight(void **state)
{
	struct fixture *f = *state;
	uint16_t start = used_idx(f);

	/* 20 reads of 4 KiB in one notification: several are in flight at once. */
	for (unsigned int k = 0; k < 20; k++)
		queue_req(f, k, T_IN, 8 * k, DATA_GPA + 4096 * k, 1, 4096, true);
	notify(f);
	run_until(f, (uint16_t)(start + 20));
	for (unsigned int k = 0; k < 20; k++) {
		assert_int_equal(f->ram[STATUS_GPA + k], S_OK);
		assert_int_equal(f->ram[DATA_GPA + 4096 * k], (8 * k) & 0xff);
	}
}

static void test_get_id(void **state)
{
	struct fixture *f = *state;

	memset(f->ram + DATA_GPA, 0xff, 20);
	assert_int_equal(do_req(f, T_GET_ID, 0, 1, 20, true), S_OK);
	assert_memory_equal(f->ram + DATA_GPA, "unit-serial-0123\0\0\0\0", 20);
}

static void test_bad_requests(void **state)
{
	struct fixture *f = *state;
	uint16_t want;

	/* Beyond the end, ending beyond the end, a huge sector that would wrap. */
	assert_int_equal(do_req(f, T_IN, DISK_SIZE / 512, 1, 512, true), S_IOERR);
	assert_int_equal(do_req(f, T_OUT, DISK_SIZE / 512 - 1, 1, 1024, false), S_IOERR);
	assert_int_equal(do_req(f, T_IN, ~0ULL - 1, 1, 1024, true), S_IOERR);
	/* Not a multiple of 512. */
	assert_int_equal(do_req(f, T_IN, 0, 1, 100, true), S_IOERR);
	/* Unknown type. */
	assert_int_equal(do_req(f, 77, 0, 0, 0, false), S_UNSUPP);
	/* A header of 8 bytes. */
	want = (uint16_t)(used_idx(f) + 1);
	put_desc(f, DESC_GPA, 0, HDR_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f, DESC_GPA, 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	f->ram[STATUS_GPA] = NO_STATUS;
	make_avail(f, 0);
	notify(f);
	run_until(f, want);
	assert_int_equal(f->ram[STATUS_GPA], S_IOERR);
	/* 200 data segments through an indirect table: more than seg_max. */
	want = (uint16_t)(used_idx(f) + 1);
	put_desc(f, INDIRECT_GPA, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	for (unsigned int i = 1; i <= 200; i++)
		put_desc(f, INDIRECT_GPA, i, DATA_GPA + 512 * i, 512,
			 VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, (uint16_t)(i + 1));
	put_desc(f, INDIRECT_GPA, 201, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	put_le32(f->ram + HDR_GPA, T_IN);
	put_le64(f->ram + HDR_GPA + 8, 0);
	f->ram[STATUS_GPA] = NO_STATUS;
	put_desc(f, DESC_GPA, 0, INDIRECT_GPA, 202 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	make_avail(f, 0);
	notify(f);
	run_until(f, want);
	assert_int_equal(f->ram[STATUS_GPA], S_IOERR);
	/* Discard with flags, write-zeroes with two segments. */
	put_le64(f->ram + DATA_GPA, 0);
	put_le32(f->ram + DATA_GPA + 8, 8);
	put_le32(f->ram + DATA_GPA + 12, 1);
	assert_int_equal(do_req(f, T_DISCARD, 0, 1, 16, false), S_UNSUPP);
	assert_int_equal(do_req(f, T_WRITE_ZEROES, 0, 1, 32, false), S_IOERR);
	/* The device still works, and nothing so far needed a reset. */
	assert_int_equal(dev_status(f), 0xf);
	assert_int_equal(do_req(f, T_IN, 1, 1, 512, true), S_OK);
	assert_int_equal(f->ram[DATA_GPA], 1);
}

static void test_no_status_byte_needs_reset(void **state)
{
	struct fixture *f = *state;

	/* Only readable buffers: nowhere to report anything. */
	put_le32(f->ram + HDR_GPA, T_IN);
	put_desc(f, DESC_GPA, 0, HDR_GPA, 16, 0, 0);
	make_avail(f, 0);
	kick(f);
	assert_true(dev_status(f) & VIRTIO_STATUS_NEEDS_RESET);
	/* A reset brings it back. */
	bar_write(f, 0x14, 0, 1);
	memset(f->ram + AVAIL_GPA, 0, 0x2000);
	f->next_desc = 0;
	start_device(f);
	assert_int_equal(do_req(f, T_IN, 2, 1, 512, true), S_OK);
	assert_int_equal(f->ram[DATA_GPA], 2);
}

static void test_discard_write_zeroes_qcow2(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = f->ram + DATA_GPA;
	static const uint8_t zero[4096];

	/* 128 KiB of data at sector 256 (two 64 KiB clusters), then zero the first 4 KiB and
	 * discard the second cluster. */
	memset(data, 0xab, 131072);
	assert_int_equal(do_req(f, T_OUT, 256, 32, 4096, false), S_OK);
	put_le64(data, 256);
	put_le32(data + 8, 8);
	put_le32(data + 12, 0);
	assert_int_equal(do_req(f, T_WRITE_ZEROES, 0, 1, 16, false), S_OK);
	put_le64(data, 384);
	put_le32(data + 8, 128);
	assert_int_equal(do_req(f, T_DISCARD, 0, 1, 16, false), S_OK);
	memset(data, 0x11, 131072);
	assert_int_equal(do_req(f, T_IN, 256, 32, 4096, true), S_OK);
	assert_memory_equal(data, zero, 4096);
	assert_int_equal(data[4096], 0xab);
	assert_int_equal(data[65535], 0xab);
	assert_memory_equal(data + 65536, zero, 4096);
	assert_int_equal(config32(f, 44), 128); /* discard alignment: the cluster */
}

static void test_read_only(void **state)
{
	struct fixture *f = *state;
	uint64_t feat = offered_features(f);
	uint8_t sec[512];
	FILE *fp;

	assert_true(feat & (1ULL << 5));
	assert_false(feat & (1ULL << 13));
	memset(f->ram + DATA_GPA, 0x77, 512);
	assert_int_equal(do_req(f, T_OUT, 5, 1, 512, false), S_IOERR);
	assert_int_equal(do_req(f, T_DISCARD, 0, 1, 16, false), S_UNSUPP);
	assert_int_equal(do_req(f, T_FLUSH, 0, 0, 0, false), S_OK);
	fp = fopen(f->raw, "r");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 5 * 512, SEEK_SET), 0);
	assert_int_equal(fread(sec, 1, 512, fp), 512);
	fclose(fp);
	assert_int_equal(sec[0], 5);
	assert_int_equal(sec[511], 5);
}

static void test_quiesce_drains(void **state)
{
	struct fixture *f = *state;
	uint16_t start = used_idx(f);

	for (unsigned int k = 0; k < 10; k++)
		queue_req(f, k, T_IN, 8 * k, DATA_GPA + 4096 * k, 1, 4096, true);
	kick(f);
	/* No completion ran yet: quiesce alone completes everything that was submitted. */
	virtio_blk_device_ops.quiesce(f->vp);
	assert_int_equal(used_idx(f), (uint16_t)(start + 10));
	/* While quiesced, new buffers wait; resume takes them. */
	queue_req(f, 10, T_IN, 0, DATA_GPA, 1, 512, true);
	kick(f);
	assert_int_equal(used_idx(f), (uint16_t)(start + 10));
	virtio_blk_device_ops.resume(f->vp);
	run_until(f, (uint16_t)(start + 11));
}

static void test_save_load(void **state)
{
	struct fixture *f = *state;
	struct fixture g = { 0 };
	struct virtio_blk_opts opts = { .path = f->raw, .name = "d" };
	struct tlv_writer w;
	struct tlv_section s;
	size_t pos = 0, start;

	assert_int_equal(do_req(f, T_IN, 1, 1, 512, true), S_OK);
	tlv_writer_init(&w);
	start = tlv_section_begin(&w, SECTION_VIRTIO_BLK, 0, 1, 1);
	assert_int_equal(virtio_blk_device_ops.save(f->vp, &w), 0);
	tlv_section_end(&w, start);
	assert_int_equal(tlv_next_section(w.buf, w.len, &pos, &s), 1);

	/* Into a second device on the same image: queues and features carry over. */
	g.ram = f->ram;
	memory_attach(&g.mem, g.ram, RAM_SIZE);
	g.host = f->host;
	g.host.opaque = &g;
	g.host.mem = &g.mem;
	pci_bus_init(&g.pci);
	bus_init(&g.mmio, "mmio");
	assert_int_equal(virtio_blk_create(&g.vp, &g.host, &g.pci, &g.mmio, 10, &opts), 0);
	assert_int_equal(virtio_blk_device_ops.load(g.vp, &s), 0);
	assert_int_equal(g.vp->vdev.status, 0xf);
	g.next_desc = f->next_desc;
	assert_int_equal(do_req(&g, T_IN, 9, 1, 512, true), S_OK);
	assert_int_equal(g.ram[DATA_GPA], 9);
	virtio_blk_destroy(g.vp);
	tlv_writer_free(&w);
}

static void test_capacity_mismatch_refused(void **state)
{
	struct fixture *f = *state;
	struct fixture g = { 0 };
	struct blk_create_opts co = { .format = BLK_FORMAT_QCOW2, .size = 2 * DISK_SIZE };
	struct virtio_blk_opts opts = { .path = f->qcow, .name = "d" };
	struct tlv_writer w;
	struct tlv_section s;
	size_t pos = 0, start;

	tlv_writer_init(&w);
	start = tlv_section_begin(&w, SECTION_VIRTIO_BLK, 0, 1, 1);
	assert_int_equal(virtio_blk_device_ops.save(f->vp, &w), 0);
	tlv_section_end(&w, start);
	assert_int_equal(tlv_next_section(w.buf, w.len, &pos, &s), 1);
	unlink(f->qcow);
	assert_int_equal(blk_create(f->qcow, &co), 0);
	g.ram = f->ram;
	memory_attach(&g.mem, g.ram, RAM_SIZE);
	g.host = f->host;
	g.host.opaque = &g;
	pci_bus_init(&g.pci);
	bus_init(&g.mmio, "mmio");
	/* Deferred, as for an incoming migration: the image is opened by load. */
	opts.deferred = true;
	assert_int_equal(virtio_blk_create(&g.vp, &g.host, &g.pci, &g.mmio, 10, &opts), 0);
	assert_int_equal(virtio_blk_device_ops.load(g.vp, &s), -EINVAL);
	virtio_blk_destroy(g.vp);
	tlv_writer_free(&w);
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

static int count_watches(const struct fixture *f)
{
	int n = 0;

	for (unsigned int i = 0; i < 16; i++)
		n += f->watches[i].cb != NULL;
	return n;
}

/* virtio_blk_create fails after opening the image: with the PCI bus full (-ENOSPC), and with
 * its MMIO range taken (-EEXIST, after it got a slot). Each time the image, its eventfds and
 * watches are released, the slot is free again, and the ASan build's leak check finds nothing
 * (the device used to be left allocated with its image open). */
static void test_create_failure_releases(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_opts opts = { .path = f->raw, .name = "d" };
	static struct pci_device dummy;
	struct pci_bus pci;
	struct bus mmio;
	struct virtio_pci *vp = NULL;
	uint64_t bar;
	int fds = count_fds(), watches = count_watches(f);

	pci_bus_init(&pci);
	bus_init(&mmio, "mmio");
	for (int slot = 1; slot < PCI_SLOTS; slot++)
		pci.slots[slot] = &dummy;
	assert_int_equal(virtio_blk_create(&vp, &f->host, &pci, &mmio, 10, &opts), -ENOSPC);
	assert_null(vp);
	assert_int_equal(count_fds(), fds);
	assert_int_equal(count_watches(f), watches);

	/* The next BAR the bus hands out is already someone's MMIO range. */
	pci_bus_init(&pci);
	assert_int_equal(pci_bus_alloc_mmio(&pci, VIRTIO_PCI_BAR_SIZE, &bar), 0);
	pci_bus_init(&pci);
	assert_int_equal(bus_register(&mmio, bar, 0x1000, NULL, NULL, "squatter"), 0);
	assert_int_equal(virtio_blk_create(&vp, &f->host, &pci, &mmio, 10, &opts), -EEXIST);
	assert_null(vp);
	for (int slot = 1; slot < PCI_SLOTS; slot++) /* 0 is the host bridge */
		assert_null(pci.slots[slot]);
	assert_int_equal(count_fds(), fds);
	assert_int_equal(count_watches(f), watches);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_read_write_segments, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_read_write_segments, setup_qcow2, teardown),
		cmocka_unit_test_setup_teardown(test_many_in_flight, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_get_id, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_no_status_byte_needs_reset, setup_raw,
						teardown),
		cmocka_unit_test_setup_teardown(test_discard_write_zeroes_qcow2, setup_qcow2,
						teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_quiesce_drains, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_create_failure_releases, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_capacity_mismatch_refused, setup_qcow2,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
