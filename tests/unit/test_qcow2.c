// SPDX-License-Identifier: MIT
/* Unit tests for src/block: qcow2 allocation, refcounts, backing chains, copy-on-write, zero
 * clusters, discard, header validation (one test per kind of corruption), the overlay switch,
 * raw images and the consistency check. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "common/util.h"

static char dir[64];

static const char *path(const char *name)
{
	static char buf[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vireo-qcow2-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void create(const char *name, uint64_t size, uint32_t cluster, const char *backing)
{
	struct blk_create_opts o = { .format = BLK_FORMAT_QCOW2,
				     .size = size,
				     .cluster_size = cluster,
				     .backing = backing,
				     .backing_format =
					     backing ? BLK_FORMAT_QCOW2 : BLK_FORMAT_AUTO };

	unlink(path(name));
	assert_int_equal(blk_create(path(name), &o), 0);
}

static struct blk *open_rw(const char *name)
{
	struct blk *b = NULL;

	assert_int_equal(blk_open(path(name), BLK_FORMAT_AUTO, BLK_OPEN_RDWR, &b), 0);
	return b;
}

static void fill(struct blk *b, uint64_t off, size_t len, int c)
{
	uint8_t *buf = malloc(len);

	memset(buf, c, len);
	assert_int_equal(blk_pwrite(b, buf, len, off), 0);
	free(buf);
}

static void expect(struct blk *b, uint64_t off, size_t len, int c)
{
	uint8_t *buf = malloc(len);

	memset(buf, ~c, len);
	assert_int_equal(blk_pread(b, buf, len, off), 0);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != (uint8_t)c)
			fail_msg("byte %zu at %llu is 0x%02x, want 0x%02x", i,
				 (unsigned long long)off, buf[i], (uint8_t)c);
	free(buf);
}

static void check_clean(struct blk *b, struct blk_check_result *r)
{
	struct blk_check_result tmp;

	if (!r)
		r = &tmp;
	assert_int_equal(blk_check(b, 0, r), 0);
	assert_true(r->corruptions == 0);
	assert_true(r->leaks == 0);
}

static off_t file_size(const char *name)
{
	struct stat st;

	assert_int_equal(stat(path(name), &st), 0);
	return st.st_size;
}

static void test_create_and_info(void **state)
{
	struct blk_image_info info;
	struct blk *b;

	(void)state;
	create("a.qcow2", 5 * GIB, 0, NULL);
	b = open_rw("a.qcow2");
	assert_true(blk_size(b) == 5 * GIB);
	assert_int_equal(blk_format(b), BLK_FORMAT_QCOW2);
	assert_int_equal(blk_get_info(b, 0, &info), 0);
	assert_int_equal(info.cluster_size, 65536);
	assert_int_equal(info.refcount_bits, 16);
	assert_int_equal(info.qcow2_version, 3);
	assert_false(info.dirty);
	assert_int_equal(blk_chain_length(b), 1);
	expect(b, 4 * GIB + 123, 4096, 0);
	check_clean(b, NULL);
	assert_int_equal(blk_close(b), 0);
}

static void test_allocation_and_refcounts(void **state)
{
	struct blk_check_result r1, r2;
	struct blk *b;
	off_t sz;

	(void)state;
	create("alloc.qcow2", 64 * MIB, 0, NULL);
	b = open_rw("alloc.qcow2");
	check_clean(b, &r1);
	fill(b, 0, 3 * 65536, 0x11);
	check_clean(b, &r2);
	/* Three data clusters and one L2 table. */
	assert_true(r2.allocated_clusters == r1.allocated_clusters + 4);
	sz = file_size("alloc.qcow2");
	/* Rewriting allocated clusters goes in place. */
	fill(b, 100, 65536, 0x22);
	assert_true(file_size("alloc.qcow2") == sz);
	expect(b, 0, 100, 0x11);
	expect(b, 100, 65536, 0x22);
	expect(b, 65636, 2 * 65536 - 100, 0x11);
	/* A write far away needs a second L2 table (512 MiB per table at 64 KiB clusters). */
	blk_close(b);
	create("alloc2.qcow2", 2 * GIB, 0, NULL);
	b = open_rw("alloc2.qcow2");
	fill(b, GIB + 5, 10, 0x33);
	expect(b, GIB + 5, 10, 0x33);
	expect(b, GIB, 5, 0);
	check_clean(b, NULL);
	assert_int_equal(blk_close(b), 0);
}

static void test_backing_reads(void **state)
{
	struct blk *b;
	uint64_t pnum;

	(void)state;
	create("base.qcow2", 8 * MIB, 0, NULL);
	b = open_rw("base.qcow2");
	fill(b, 0, 8 * MIB, 0x5a);
	blk_close(b);
	create("mid.qcow2", 0, 0, "base.qcow2");
	b = open_rw("mid.qcow2");
	assert_true(blk_size(b) == 8 * MIB);
	fill(b, MIB, MIB, 0x6b);
	blk_close(b);
	create("top.qcow2", 16 * MIB, 0, "mid.qcow2");
	b = open_rw("top.qcow2");
	assert_int_equal(blk_chain_length(b), 3);
	expect(b, 0, MIB, 0x5a);
	expect(b, MIB, MIB, 0x6b);
	expect(b, 2 * MIB, 6 * MIB, 0x5a);
	/* Past the end of a shorter backing file: zeros. */
	expect(b, 8 * MIB, 8 * MIB, 0);
	assert_int_equal(blk_block_status(b, 0, MIB, &pnum), BLK_STATUS_BACKING);
	blk_close(b);
}

static void test_cow_partial_writes(void **state)
{
	struct blk *b;
	uint64_t pnum;

	(void)state;
	create("cbase.qcow2", 4 * MIB, 0, NULL);
	b = open_rw("cbase.qcow2");
	fill(b, 0, 4 * MIB, 0x77);
	blk_close(b);
	create("cow.qcow2", 0, 0, "cbase.qcow2");
	b = open_rw("cow.qcow2");
	/* Inside one cluster, across a cluster boundary, and spanning three clusters. */
	fill(b, 1000, 10, 0x01);
	fill(b, 65536 * 3 - 5, 10, 0x02);
	fill(b, 65536 * 5 + 7, 65536 * 2, 0x03);
	expect(b, 0, 1000, 0x77);
	expect(b, 1000, 10, 0x01);
	expect(b, 1010, 65536 * 3 - 5 - 1010, 0x77);
	expect(b, 65536 * 3 - 5, 10, 0x02);
	expect(b, 65536 * 3 + 5, 65536 * 2 + 2, 0x77);
	expect(b, 65536 * 5 + 7, 65536 * 2, 0x03);
	expect(b, 65536 * 7 + 7, 4 * MIB - 65536 * 7 - 7, 0x77);
	assert_int_equal(blk_block_status(b, 0, 65536, &pnum), BLK_STATUS_DATA);
	check_clean(b, NULL);
	blk_close(b);
}

static void test_zero_clusters(void **state)
{
	struct blk_check_result r1, r2;
	struct blk *b;
	uint64_t pnum;

	(void)state;
	create("zbase.qcow2", 4 * MIB, 0, NULL);
	b = open_rw("zbase.qcow2");
	fill(b, 0, 4 * MIB, 0x44);
	blk_close(b);
	create("zero.qcow2", 0, 0, "zbase.qcow2");
	b = open_rw("zero.qcow2");
	fill(b, 0, MIB, 0x55);
	check_clean(b, &r1);
	/* Whole clusters get the zero flag (over a backing file too) and give back their space;
	 * the partial head and tail get real zeros. */
	assert_int_equal(blk_write_zeroes(b, 100, 3 * 65536), 0);
	expect(b, 0, 100, 0x55);
	expect(b, 100, 3 * 65536, 0);
	expect(b, 100 + 3 * 65536, MIB - 100 - 3 * 65536, 0x55);
	assert_int_equal(blk_write_zeroes(b, 2 * MIB, MIB), 0);
	expect(b, 2 * MIB, MIB, 0);
	expect(b, 3 * MIB, MIB, 0x44);
	assert_int_equal(blk_block_status(b, 2 * MIB, MIB, &pnum), BLK_STATUS_ZERO);
	assert_true(pnum == MIB);
	check_clean(b, &r2);
	assert_true(r2.allocated_clusters < r1.allocated_clusters + 16);
	blk_close(b);
}

static void test_discard(void **state)
{
	struct blk_check_result r1, r2;
	struct blk *b;
	off_t sz;

	(void)state;
	create("disc.qcow2", 16 * MIB, 0, NULL);
	b = open_rw("disc.qcow2");
	fill(b, 0, 4 * MIB, 0x66);
	check_clean(b, &r1);
	sz = file_size("disc.qcow2");
	assert_int_equal(blk_discard(b, MIB, 2 * MIB), 0);
	/* Partial clusters are left alone. */
	assert_int_equal(blk_discard(b, 10, 100), 0);
	expect(b, 0, MIB, 0x66);
	expect(b, MIB, 2 * MIB, 0);
	expect(b, 3 * MIB, MIB, 0x66);
	check_clean(b, &r2);
	assert_true(r2.allocated_clusters == r1.allocated_clusters - 32);
	/* Freed clusters are reused before the file grows. */
	fill(b, 8 * MIB, 2 * MIB, 0x67);
	assert_true(file_size("disc.qcow2") == sz);
	check_clean(b, NULL);
	blk_close(b);
}

static void test_refcount_table_growth(void **state)
{
	struct blk *b;

	(void)state;
	/* 512-byte clusters, 16-bit refcounts: a refcount block covers 128 KiB and the first
	 * refcount table cluster 8 MiB, so 12 MiB of data needs many blocks and a bigger table. */
	create("grow.qcow2", 64 * MIB, 512, NULL);
	b = open_rw("grow.qcow2");
	for (int i = 0; i < 12; i++)
		fill(b, (uint64_t)i * 5 * MIB, MIB, 0x30 + i);
	for (int i = 0; i < 12; i++)
		expect(b, (uint64_t)i * 5 * MIB, MIB, 0x30 + i);
	check_clean(b, NULL);
	assert_int_equal(blk_close(b), 0);
	b = open_rw("grow.qcow2");
	expect(b, 55 * MIB, MIB, 0x3b);
	check_clean(b, NULL);
	blk_close(b);
}

static void test_refcount_widths(void **state)
{
	static const uint32_t widths[] = { 1, 2, 4, 8, 32, 64 };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(widths); i++) {
		struct blk_create_opts o = { .format = BLK_FORMAT_QCOW2,
					     .size = 8 * MIB,
					     .refcount_bits = widths[i] };
		struct blk_image_info info;
		struct blk *b;

		unlink(path("w.qcow2"));
		assert_int_equal(blk_create(path("w.qcow2"), &o), 0);
		b = open_rw("w.qcow2");
		blk_get_info(b, 0, &info);
		assert_int_equal(info.refcount_bits, widths[i]);
		fill(b, 0, 2 * MIB, 0x12);
		assert_int_equal(blk_discard(b, 0, MIB), 0);
		fill(b, 4 * MIB, MIB, 0x13);
		expect(b, MIB, MIB, 0x12);
		check_clean(b, NULL);
		blk_close(b);
	}
}

static void test_backing_loop_and_depth(void **state)
{
	struct blk *b = NULL;
	char name[32], back[32];

	(void)state;
	create("self.qcow2", MIB, 0, "self.qcow2");
	assert_int_equal(blk_open(path("self.qcow2"), BLK_FORMAT_AUTO, 0, &b), -ELOOP);
	assert_non_null(strstr(blk_last_error(), "loops"));
	create("x.qcow2", MIB, 0, "y.qcow2");
	create("y.qcow2", MIB, 0, "x.qcow2");
	assert_int_equal(blk_open(path("x.qcow2"), BLK_FORMAT_AUTO, 0, &b), -ELOOP);
	/* Without following the chain the image itself opens. */
	assert_int_equal(blk_open(path("x.qcow2"), BLK_FORMAT_AUTO, BLK_OPEN_NO_BACKING, &b), 0);
	blk_close(b);

	create("d0.qcow2", MIB, 0, NULL);
	for (int i = 1; i <= BLK_MAX_CHAIN; i++) {
		snprintf(name, sizeof(name), "d%d.qcow2", i);
		snprintf(back, sizeof(back), "d%d.qcow2", i - 1);
		create(name, MIB, 0, back);
	}
	assert_int_equal(blk_open(path("d63.qcow2"), BLK_FORMAT_AUTO, 0, &b), 0);
	assert_int_equal(blk_chain_length(b), BLK_MAX_CHAIN);
	blk_close(b);
	assert_int_equal(blk_open(path(name), BLK_FORMAT_AUTO, 0, &b), -ELOOP);
	assert_non_null(strstr(blk_last_error(), "longer than"));
}

/* Creates a good image, patches len bytes at off, and expects the open to fail naming the
 * problem. */
static void refused_flags(const void *bytes, size_t len, off_t off, const char *needle,
			  unsigned int flags)
{
	struct blk *b = NULL;
	int fd;

	create("bad.qcow2", 8 * MIB, 0, NULL);
	fd = open(path("bad.qcow2"), O_WRONLY);
	assert_true(fd >= 0);
	assert_true(pwrite(fd, bytes, len, off) == (ssize_t)len);
	close(fd);
	assert_true(blk_open(path("bad.qcow2"), BLK_FORMAT_QCOW2, flags, &b) < 0);
	if (!strstr(blk_last_error(), needle))
		fail_msg("error '%s' does not say '%s'", blk_last_error(), needle);
}

static void refused(const void *bytes, size_t len, off_t off, const char *needle)
{
	refused_flags(bytes, len, off, needle, 0);
}

static void test_refuse_bad_magic(void **state)
{
	(void)state;
	refused("QFI\0", 4, 0, "bad magic");
}

static void test_refuse_version(void **state)
{
	(void)state;
	refused("\0\0\0\4", 4, 4, "unsupported qcow2 version 4");
}

static void test_refuse_cluster_bits(void **state)
{
	(void)state;
	refused("\0\0\0\x08", 4, 20, "cluster_bits 8 out of range");
	refused("\0\0\0\x16", 4, 20, "cluster_bits 22 out of range");
}

static void test_refuse_l1_beyond_eof(void **state)
{
	(void)state;
	/* L1 offset 1 GiB in a file of a few clusters. */
	refused("\0\0\0\0\x40\0\0\0", 8, 40, "beyond file end");
}

static void test_refuse_l1_too_small(void **state)
{
	(void)state;
	/* 8 MiB needs one L1 entry; claim a 1 TiB disk. */
	refused("\0\0\1\0\0\0\0\0", 8, 24, "too small for virtual size");
}

static void test_refuse_overlapping_tables(void **state)
{
	(void)state;
	/* L1 moved onto the refcount table (cluster 1). */
	refused("\0\0\0\0\0\1\0\0", 8, 40, "overlap");
}

static void test_refuse_reftable_beyond_eof(void **state)
{
	(void)state;
	refused("\0\0\0\0\x40\0\0\0", 8, 48, "refcount table");
}

static void test_refuse_unknown_incompat(void **state)
{
	(void)state;
	refused("\0\0\0\0\0\0\1\0", 8, 72, "unknown incompatible feature bit 8");
}

static void test_refuse_external_data_file(void **state)
{
	(void)state;
	refused("\0\0\0\0\0\0\0\4", 8, 72, "external data file");
}

static void test_refuse_encrypted(void **state)
{
	(void)state;
	refused("\0\0\0\2", 4, 32, "encrypted");
}

static void test_refuse_compression_type(void **state)
{
	(void)state;
	refused("\1", 1, 104, "compression type 1 (zstd) is not supported");
}

static void test_refuse_refcount_order(void **state)
{
	(void)state;
	refused("\0\0\0\7", 4, 96, "refcount_order 7 unsupported");
}

static void test_refuse_header_length(void **state)
{
	(void)state;
	refused("\0\0\0\x10", 4, 100, "header_length 16 invalid");
}

static void test_refuse_backing_name_outside(void **state)
{
	(void)state;
	/* Backing name at 0xfff0, 100 bytes long: past the 64 KiB header cluster. */
	refused("\0\0\0\0\0\0\xff\xf0\0\0\0\x64", 12, 8, "outside the header cluster");
}

static void test_refuse_corrupt_bit_rw(void **state)
{
	struct blk *b = NULL;

	(void)state;
	refused_flags("\0\0\0\0\0\0\0\2", 8, 72, "marked corrupt", BLK_OPEN_RDWR);
	/* Read-only stays possible, to rescue data. */
	assert_int_equal(blk_open(path("bad.qcow2"), BLK_FORMAT_QCOW2, 0, &b), 0);
	blk_close(b);
}

static void test_overlay_switch(void **state)
{
	struct blk *b, *old;
	struct blk_image_info info;

	(void)state;
	create("vm.qcow2", 4 * MIB, 0, NULL);
	unlink(path("snap.qcow2"));
	b = open_rw("vm.qcow2");
	fill(b, 0, 2 * MIB, 0x21);
	assert_int_equal(blk_switch_to_overlay(b, path("snap.qcow2")), 0);
	assert_int_equal(blk_chain_length(b), 2);
	fill(b, MIB, 100, 0x22);
	expect(b, 0, MIB, 0x21);
	expect(b, MIB, 100, 0x22);
	expect(b, MIB + 100, MIB - 100, 0x21);
	blk_get_info(b, 1, &info);
	assert_true(info.read_only);
	assert_false(info.dirty);
	/* The old image is frozen: it still has the old data and is clean. */
	assert_int_equal(blk_open(path("vm.qcow2"), BLK_FORMAT_AUTO, 0, &old), 0);
	expect(old, MIB, 100, 0x21);
	check_clean(old, NULL);
	blk_close(old);
	/* Switching to an existing file fails and changes nothing. */
	assert_true(blk_switch_to_overlay(b, path("vm.qcow2")) < 0);
	assert_int_equal(blk_chain_length(b), 2);
	check_clean(b, NULL);
	assert_int_equal(blk_close(b), 0);
	b = open_rw("snap.qcow2");
	expect(b, MIB, 100, 0x22);
	blk_close(b);
}

static void test_dirty_bit(void **state)
{
	struct blk_image_info info;
	struct blk *b;

	(void)state;
	create("dirty.qcow2", 4 * MIB, 0, NULL);
	b = open_rw("dirty.qcow2");
	blk_get_info(b, 0, &info);
	assert_false(info.dirty);
	fill(b, 0, 4096, 1);
	blk_get_info(b, 0, &info);
	assert_true(info.dirty);
	assert_int_equal(blk_close(b), 0);
	assert_int_equal(blk_open(path("dirty.qcow2"), BLK_FORMAT_AUTO, 0, &b), 0);
	blk_get_info(b, 0, &info);
	assert_false(info.dirty);
	blk_close(b);
}

static void test_errors(void **state)
{
	struct blk *b;
	uint8_t buf[16] = { 0 };

	(void)state;
	create("ro.qcow2", MIB, 0, NULL);
	assert_int_equal(blk_open(path("ro.qcow2"), BLK_FORMAT_AUTO, 0, &b), 0);
	assert_int_equal(blk_pwrite(b, buf, 16, 0), -EROFS);
	assert_int_equal(blk_discard(b, 0, 65536), -EROFS);
	assert_int_equal(blk_pread(b, buf, 16, MIB - 8), -EINVAL);
	assert_int_equal(blk_switch_to_overlay(b, path("ro2.qcow2")), -EROFS);
	blk_close(b);
	assert_true(blk_open(path("missing.qcow2"), BLK_FORMAT_AUTO, 0, &b) < 0);
	assert_true(
		blk_create(path("ro.qcow2"), &(struct blk_create_opts){ .format = BLK_FORMAT_QCOW2,
									.size = MIB }) == -EEXIST);
	assert_true(blk_create(path("cs.qcow2"),
			       &(struct blk_create_opts){ .format = BLK_FORMAT_QCOW2,
							  .size = MIB,
							  .cluster_size = 3000 }) < 0);
}

static void test_leak_repair(void **state)
{
	struct blk_check_result r;
	struct blk *b;
	uint8_t be[2] = { 0, 1 };
	off_t end;
	int fd;

	(void)state;
	create("leak.qcow2", 4 * MIB, 0, NULL);
	b = open_rw("leak.qcow2");
	fill(b, 0, MIB, 9);
	blk_close(b);
	/* Refcount block at cluster 2 (layout of blk_create): count a cluster nobody uses. */
	end = file_size("leak.qcow2") / 65536;
	fd = open(path("leak.qcow2"), O_WRONLY);
	assert_true(pwrite(fd, be, 2, 2 * 65536 + end * 2) == 2);
	close(fd);
	assert_int_equal(blk_open(path("leak.qcow2"), BLK_FORMAT_AUTO, 0, &b), 0);
	assert_int_equal(blk_check(b, 0, &r), 0);
	assert_true(r.leaks == 1 && r.corruptions == 0);
	blk_close(b);
	b = open_rw("leak.qcow2");
	assert_int_equal(blk_check(b, BLK_CHECK_REPAIR_LEAKS, &r), 0);
	assert_true(r.leaks_fixed == 1 && r.leaks == 0);
	check_clean(b, NULL);
	expect(b, 0, MIB, 9);
	blk_close(b);
}

static void test_raw(void **state)
{
	struct blk_create_opts o = { .format = BLK_FORMAT_RAW, .size = 8 * MIB };
	struct blk *b;
	uint64_t pnum;

	(void)state;
	unlink(path("r.raw"));
	assert_int_equal(blk_create(path("r.raw"), &o), 0);
	b = open_rw("r.raw");
	assert_int_equal(blk_format(b), BLK_FORMAT_RAW);
	assert_true(blk_size(b) == 8 * MIB);
	fill(b, MIB, MIB, 0x99);
	assert_int_equal(blk_flush(b), 0);
	expect(b, MIB, MIB, 0x99);
	assert_int_equal(blk_write_zeroes(b, MIB, 4096), 0);
	expect(b, MIB, 4096, 0);
	assert_int_equal(blk_discard(b, MIB + 65536, 65536), 0);
	expect(b, MIB + 65536, 65536, 0);
	assert_int_equal(blk_block_status(b, 4 * MIB, 4096, &pnum), BLK_STATUS_ZERO);
	blk_close(b);
	/* A raw base under a qcow2 overlay. */
	struct blk_create_opts q = { .format = BLK_FORMAT_QCOW2,
				     .backing = "r.raw",
				     .backing_format = BLK_FORMAT_RAW };

	unlink(path("rq.qcow2"));
	assert_int_equal(blk_create(path("rq.qcow2"), &q), 0);
	b = open_rw("rq.qcow2");
	assert_true(blk_size(b) == 8 * MIB);
	expect(b, MIB + 2 * 65536, 65536, 0x99);
	blk_close(b);
}

struct worker {
	struct blk *b;
	int id;
};

static void *write_worker(void *arg)
{
	struct worker *w = arg;
	uint8_t buf[8192];

	/* Interleaved allocating writes from several threads. */
	for (int i = 0; i < 64; i++) {
		memset(buf, w->id * 64 + i, sizeof(buf));
		if (blk_pwrite(w->b, buf, sizeof(buf), ((uint64_t)i * 4 + w->id) * 40000))
			return (void *)1;
	}
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	struct worker w[4];
	pthread_t t[4];
	struct blk *b;

	(void)state;
	create("conc.qcow2", 16 * MIB, 0, NULL);
	b = open_rw("conc.qcow2");
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ b, i };
		pthread_create(&t[i], NULL, write_worker, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		void *ret;

		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	for (int i = 0; i < 64; i++)
		for (int id = 0; id < 4; id++)
			expect(b, ((uint64_t)i * 4 + id) * 40000, 8192, id * 64 + i);
	check_clean(b, NULL);
	blk_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_and_info),
		cmocka_unit_test(test_allocation_and_refcounts),
		cmocka_unit_test(test_backing_reads),
		cmocka_unit_test(test_cow_partial_writes),
		cmocka_unit_test(test_zero_clusters),
		cmocka_unit_test(test_discard),
		cmocka_unit_test(test_refcount_table_growth),
		cmocka_unit_test(test_refcount_widths),
		cmocka_unit_test(test_backing_loop_and_depth),
		cmocka_unit_test(test_refuse_bad_magic),
		cmocka_unit_test(test_refuse_version),
		cmocka_unit_test(test_refuse_cluster_bits),
		cmocka_unit_test(test_refuse_l1_beyond_eof),
		cmocka_unit_test(test_refuse_l1_too_small),
		cmocka_unit_test(test_refuse_overlapping_tables),
		cmocka_unit_test(test_refuse_reftable_beyond_eof),
		cmocka_unit_test(test_refuse_unknown_incompat),
		cmocka_unit_test(test_refuse_external_data_file),
		cmocka_unit_test(test_refuse_encrypted),
		cmocka_unit_test(test_refuse_compression_type),
		cmocka_unit_test(test_refuse_refcount_order),
		cmocka_unit_test(test_refuse_header_length),
		cmocka_unit_test(test_refuse_backing_name_outside),
		cmocka_unit_test(test_refuse_corrupt_bit_rw),
		cmocka_unit_test(test_overlay_switch),
		cmocka_unit_test(test_dirty_bit),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_leak_repair),
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_concurrent_writers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
