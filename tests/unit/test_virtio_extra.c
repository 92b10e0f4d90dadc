// SPDX-License-Identifier: MIT
/* Unit tests without KVM for memory_discard (anonymous and file-backed RAM), virtio-balloon and
 * virtio-vsock, driven through the virtio-pci transport by a small fake driver. RAM is an
 * anonymous mapping (discards need real pages, and ASan still sees stray host accesses). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/tlv.h"
#include "common/util.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "virtio/devices.h"
#include "virtio/pci.h"
#include "vmm/memory.h"

#include "virtio_driver.h"

/* ---- memory_discard ---- */

static void test_discard_anonymous(void **state)
{
	struct guest_mem mem;
	uint8_t *p;

	(void)state;
	assert_int_equal(memory_alloc(&mem, 16 * MIB, false), 0);
	p = memory_gpa_ptr(&mem, 0, 16 * MIB);
	memset(p, 0xaa, 5 * 4096);
	/* Only whole pages inside the range: 0x800..0x3800 discards pages 1 and 2. */
	assert_int_equal(memory_discard(&mem, 0x800, 0x3000), 2 * 4096);
	assert_int_equal(p[0x7ff], 0xaa);
	assert_int_equal(p[0x1000], 0);
	assert_int_equal(p[0x2fff], 0);
	assert_int_equal(p[0x3000], 0xaa);
	assert_int_equal(memory_discard(&mem, 0x100, 0x200), 0);
	assert_int_equal(memory_discard(&mem, 16 * MIB - 4096, 8192), -EINVAL);
	assert_int_equal(memory_discard(&mem, UINT64_MAX - 4095, 8192), -EINVAL);
	memory_free(&mem);
}

/* After --restore RAM is a private file mapping: a discarded page must read as zero, not as
 * the snapshot's content, and its neighbours keep theirs. */
static void test_discard_file_backed(void **state)
{
	char path[] = "/tmp/vireo-discard-XXXXXX";
	int fd = mkstemp(path);
	static uint8_t page[4096];
	struct guest_mem mem;
	uint8_t *p;

	(void)state;
	assert_true(fd >= 0);
	memset(page, 0x5a, sizeof(page));
	for (int i = 0; i < 16 * 256; i++)
		assert_int_equal(write(fd, page, sizeof(page)), sizeof(page));
	assert_int_equal(memory_map_fd(&mem, fd, 16 * MIB), 0);
	assert_true(mem.file_backed);
	p = memory_gpa_ptr(&mem, 0, 16 * MIB);
	p[0x2000] = 1; /* a private copy of page 2 */
	assert_int_equal(memory_discard(&mem, 0x1000, 0x2000), 0x2000);
	assert_int_equal(p[0x1000], 0);
	assert_int_equal(p[0x2000], 0);
	assert_int_equal(p[0x2fff], 0);
	assert_int_equal(p[0x0fff], 0x5a);
	assert_int_equal(p[0x3000], 0x5a);
	/* The fresh pages are ordinary private memory. */
	p[0x1000] = 7;
	assert_int_equal(p[0x1000], 7);
	memory_free(&mem);
	close(fd);
	unlink(path);
}

/* Discards show up in the migration's dirty bitmap (the destination must see them too). */
static void test_discard_marks_dirty(void **state)
{
	struct guest_mem mem;
	uint64_t bits[64];

	(void)state;
	assert_int_equal(memory_alloc(&mem, 16 * MIB, false), 0);
	assert_int_equal(memory_dirty_start(&mem), 0);
	assert_int_equal(memory_discard(&mem, 0x41000, 0x2000), 0x2000);
	memory_dirty_take(&mem, 0, 64 * 64, bits);
	assert_int_equal(bits[1], 3ULL << 1); /* pages 0x41 and 0x42 */
	memory_dirty_stop(&mem);
	memory_free(&mem);
}

/* ---- virtio-balloon ---- */

#define B_STATS_VQ 1
#define B_DEFLATE_ON_OOM 2
#define B_REPORTING 5

static int balloon_setup(void **state)
{
	struct drv *d = drv_new();

	assert_int_equal(virtio_balloon_create(&d->vp, &d->host, &d->mem, &d->pci, &d->mmio, 10,
					       BALLOON_DEFLATE_ON_OOM),
			 0);
	drv_attach(d);
	*state = d;
	return 0;
}

static void test_balloon_features_config(void **state)
{
	struct drv *d = *state;
	uint32_t offered;

	drv_bar_write(d, 0x00, 0, 4);
	offered = (uint32_t)drv_bar_read(d, 0x04, 4);
	assert_int_equal(offered & 0xff,
			 (1u << B_STATS_VQ) | (1u << B_DEFLATE_ON_OOM) | (1u << B_REPORTING));
	assert_int_equal(drv_bar_read(d, 0x12, 2), 4); /* num_queues */
	assert_int_equal(virtio_balloon_set_target(d->vp, 2 * MIB), 0);
	assert_int_equal(drv_cfg_read(d, 0, 4), 2 * MIB / 4096);
	assert_int_equal(virtio_balloon_set_target(d->vp, DRV_RAM_SIZE + 4096), -ERANGE);
	/* The driver writes actual; num_pages is the device's. */
	drv_cfg_write(d, 4, 100, 4);
	drv_cfg_write(d, 0, 5, 4);
	assert_int_equal(drv_cfg_read(d, 4, 4), 100);
	assert_int_equal(drv_cfg_read(d, 0, 4), 2 * MIB / 4096);
	drv_cfg_write(d, 5, 1, 1); /* byte-wise, as some drivers do */
	assert_int_equal(drv_cfg_read(d, 4, 4), 100 + 256);
}

static void test_balloon_inflate(void **state)
{
	struct drv *d = *state;
	struct balloon_status st;
	uint8_t *pfns = d->ram + DRV_BUF_GPA;
	const uint32_t list[] = { 0x103, 0x101, 0x102, 0x7fffff, 0x180 };

	drv_start(d, (1ULL << B_STATS_VQ) | (1ULL << B_REPORTING), 4);
	memset(d->ram + 0x100000, 0xcc, 0x100000);
	for (unsigned int i = 0; i < ARRAY_SIZE(list); i++)
		put_le32(pfns + 4 * i, list[i]);
	drv_add1(d, 0, DRV_BUF_GPA, sizeof(list), false);
	drv_kick(d, 0);
	assert_int_equal(drv_used_idx(d, 0), 1);
	assert_false(drv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	/* Pages 0x101..0x103 and 0x180 are zero now; 0x100 and 0x104 kept their bytes; the
	 * page outside RAM was skipped and counted. */
	assert_int_equal(d->ram[0x100fff], 0xcc);
	assert_int_equal(d->ram[0x101000], 0);
	assert_int_equal(d->ram[0x103fff], 0);
	assert_int_equal(d->ram[0x104000], 0xcc);
	assert_int_equal(d->ram[0x180000], 0);
	virtio_balloon_get_status(d->vp, &st);
	assert_int_equal(st.inflated_pages, 5);
	assert_int_equal(st.discarded_bytes, 4 * 4096);
	assert_int_equal(st.bad_pfns, 1);
	/* Deflate is only counted. */
	drv_add1(d, 1, DRV_BUF_GPA, 8, false);
	drv_kick(d, 1);
	assert_int_equal(drv_used_idx(d, 1), 1);
	virtio_balloon_get_status(d->vp, &st);
	assert_int_equal(st.deflated_pages, 2);
}

static void test_balloon_bad_chains(void **state)
{
	struct drv *d = *state;

	drv_start(d, 0, 2);
	/* A PFN list of 6 bytes is not a list of le32. */
	drv_add1(d, 0, DRV_BUF_GPA, 6, false);
	drv_kick(d, 0);
	assert_true(drv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	drv_reset(d);
	drv_start(d, 0, 2);
	/* A writable PFN buffer is the wrong shape. */
	drv_add1(d, 1, DRV_BUF_GPA, 8, true);
	drv_kick(d, 1);
	assert_true(drv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	/* The stats queue does not exist without STATS_VQ: a notification for it is ignored
	 * by the transport (the queue was never enabled). */
}

static void put_stat(uint8_t *p, uint16_t tag, uint64_t v)
{
	put_le16(p, tag);
	put_le64(p + 2, v);
}

static void test_balloon_stats_and_reporting(void **state)
{
	struct drv *d = *state;
	struct balloon_status st;
	uint8_t *s = d->ram + DRV_BUF_GPA;

	/* Without STATS_VQ the reporting queue is queue 2. */
	drv_start(d, 1ULL << B_REPORTING, 3);
	assert_int_equal(virtio_balloon_request_stats(d->vp), -ENOTSUP);
	memset(d->ram + 0x140000, 0xee, 0x40000);
	drv_add1(d, 2, 0x140000, 0x40000, true);
	drv_kick(d, 2);
	assert_int_equal(drv_used_idx(d, 2), 1);
	assert_int_equal(d->ram[0x140000], 0);
	assert_int_equal(d->ram[0x17ffff], 0);
	virtio_balloon_get_status(d->vp, &st);
	assert_int_equal(st.reported_bytes, 0x40000);

	drv_reset(d);
	drv_start(d, (1ULL << B_STATS_VQ) | (1ULL << B_REPORTING), 4);
	assert_int_equal(virtio_balloon_request_stats(d->vp), -EAGAIN); /* no buffer yet */
	put_stat(s, 4, 1000); /* free */
	put_stat(s + 10, 5, 2000); /* total */
	put_stat(s + 20, 99, 7); /* unknown: skipped */
	drv_add1(d, 2, DRV_BUF_GPA, 30, false);
	drv_kick(d, 2);
	/* Held, not used, until the host asks. */
	assert_int_equal(drv_used_idx(d, 2), 0);
	virtio_balloon_get_status(d->vp, &st);
	assert_int_equal(st.stats_mask, (1u << 4) | (1u << 5));
	assert_int_equal(st.stats[4], 1000);
	assert_int_equal(st.stats[5], 2000);
	assert_int_equal(st.stats_updates, 1);
	assert_int_equal(virtio_balloon_request_stats(d->vp), 0);
	assert_int_equal(drv_used_idx(d, 2), 1);
	assert_int_equal(virtio_balloon_request_stats(d->vp), -EAGAIN);
	/* Reporting moved to queue 3 with STATS_VQ. */
	drv_add1(d, 3, 0x140000, 0x1000, true);
	drv_kick(d, 3);
	assert_int_equal(drv_used_idx(d, 3), 1);
}

static void test_balloon_save_load(void **state)
{
	struct drv *d = *state, *e;
	struct balloon_status st;
	struct tlv_writer w;
	struct tlv_section s;
	size_t pos = 0, start;
	uint8_t *b = d->ram + DRV_BUF_GPA;

	drv_start(d, 1ULL << B_STATS_VQ, 3);
	assert_int_equal(virtio_balloon_set_target(d->vp, 4 * MIB), 0);
	drv_cfg_write(d, 4, 512, 4);
	put_stat(b, 6, 12345);
	drv_add1(d, 2, DRV_BUF_GPA, 10, false);
	drv_kick(d, 2);

	tlv_writer_init(&w);
	start = tlv_section_begin(&w, virtio_balloon_device_ops.section_id, 0, 1, 1);
	assert_int_equal(virtio_balloon_device_ops.save(d->vp, &w), 0);
	tlv_section_end(&w, start);
	assert_int_equal(tlv_next_section(w.buf, w.len, &pos, &s), 1);

	e = drv_new_sharing(d);
	assert_int_equal(virtio_balloon_create(&e->vp, &e->host, &e->mem, &e->pci, &e->mmio, 10, 0),
			 0);
	drv_attach(e);
	assert_int_equal(virtio_balloon_device_ops.load(e->vp, &s), 0);
	virtio_balloon_get_status(e->vp, &st);
	assert_int_equal(st.target_bytes, 4 * MIB);
	assert_int_equal(st.actual_bytes, 2 * MIB);
	assert_int_equal(st.stats[6], 12345);
	/* The held stats buffer survives: asking gives it back to the driver. */
	assert_int_equal(virtio_balloon_request_stats(e->vp), 0);
	assert_int_equal(drv_used_idx(d, 2), 1);
	drv_free(e);
	tlv_writer_free(&w);
}

#define T(name, setup) cmocka_unit_test_setup_teardown(name, setup, drv_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discard_anonymous),
		cmocka_unit_test(test_discard_file_backed),
		cmocka_unit_test(test_discard_marks_dirty),
		T(test_balloon_features_config, balloon_setup),
		T(test_balloon_inflate, balloon_setup),
		T(test_balloon_bad_chains, balloon_setup),
		T(test_balloon_stats_and_reporting, balloon_setup),
		T(test_balloon_save_load, balloon_setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
