// SPDX-License-Identifier: MIT
/*
 * Unit tests for the untrusted-header rules of blk_open() (docs/images.md, "Probing and backing
 * files"): a guest of a raw image plants a qcow2 header naming a host file, through the same
 * asynchronous write path virtio-blk uses; the image is reopened without a format and the host
 * file must never be read. Backing files that escape the image's directory tree, and probed
 * images with a backing file but no backing format, are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "common/util.h"

static char dir[64], outside[64];
static const char secret[] = "HOST-SECRET-0123456789-do-not-leak";

static const char *in(const char *d, const char *name)
{
	static char buf[4][192];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", d, name);
	return buf[i];
}

static void write_file(const char *p, const void *data, size_t len)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static size_t slurp(const char *p, uint8_t *buf, size_t max)
{
	int fd = open(p, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, max);
	close(fd);
	assert_true(n > 0);
	return (size_t)n;
}

static int setup(void **state)
{
	uint8_t page[4096] = { 0 };

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vireo-probe-XXXXXX");
	snprintf(outside, sizeof(outside), "/tmp/vireo-probe-host-XXXXXX");
	if (!mkdtemp(dir) || !mkdtemp(outside))
		return -1;
	/* The "host file": a file outside the image directory the attacker wants to read. */
	memcpy(page, secret, sizeof(secret));
	write_file(in(outside, "secret"), page, sizeof(page));
	return 0;
}

static int teardown(void **state)
{
	char cmd[192];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, outside);
	return system(cmd);
}

struct guest_req {
	struct blk_req r;
	struct iovec iov;
	int ret;
	bool done;
};

static void guest_done(struct blk_req *r, int ret)
{
	struct guest_req *g = (struct guest_req *)r;

	g->ret = ret;
	g->done = true;
}

/* A write as virtio-blk issues it: blk_submit() on the asynchronous engine. */
static int guest_write(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	struct guest_req g = { 0 };

	assert_true(blk_aio_fd(b) >= 0);
	g.iov = (struct iovec){ (void *)buf, len };
	g.r = (struct blk_req){
		.op = BLK_OP_WRITE, .offset = off, .iov = &g.iov, .iovcnt = 1, .done = guest_done
	};
	assert_int_equal(blk_submit(b, &g.r), 0);
	blk_drain(b);
	assert_true(g.done);
	return g.ret;
}

/* The header a hostile guest writes: a real qcow2 image (512-byte clusters, so it fits in the
 * first sectors of the disk) whose backing file is `backing`, optionally with its format. */
static size_t hostile_header(const char *backing, enum blk_format bfmt, uint8_t *buf, size_t max)
{
	struct blk_create_opts o = { .format = BLK_FORMAT_QCOW2,
				     .size = 1 * MIB,
				     .cluster_size = 512,
				     .backing = backing,
				     .backing_format =
					     bfmt == BLK_FORMAT_AUTO ? BLK_FORMAT_RAW : bfmt };
	const char *p = in(dir, "hdr.tmp");
	size_t n;

	unlink(p);
	assert_int_equal(blk_create(p, &o), 0);
	n = slurp(p, buf, max);
	unlink(p);
	if (bfmt == BLK_FORMAT_AUTO) {
		/* Rename the backing-format extension to an unknown (ignored) type. */
		for (size_t i = 0; i + 4 <= 512; i += 8)
			if (!memcmp(buf + i, "\xe2\x79\x2a\xca", 4))
				memcpy(buf + i, "\x11\x22\x33\x44", 4);
	}
	return n;
}

static void make_raw(const char *p, uint64_t size)
{
	struct blk_create_opts o = { .format = BLK_FORMAT_RAW, .size = size };

	unlink(p);
	assert_int_equal(blk_create(p, &o), 0);
}

/* Sector 0 of the disk as a VM opening it without format= would see it. */
static int read_sector0(const char *p, unsigned int flags, uint8_t *out)
{
	struct blk *b;
	int ret = blk_open(p, BLK_FORMAT_AUTO, flags, &b);

	if (ret)
		return ret;
	ret = blk_pread(b, out, 512, 0);
	blk_close(b);
	return ret;
}

/*
 * The attack of issue 14 finding 2: the image is raw (format=raw given, so the guest may write
 * anything), the guest writes a qcow2 header naming a host file, and the disk is later opened
 * without a format. Both header variants are refused at open; nothing reads the host file.
 */
static void test_planted_header_explicit_raw(void **state)
{
	char disk[192];
	uint8_t hdr[8192], s0[512];
	struct blk *b;
	size_t n;

	(void)state;
	snprintf(disk, sizeof(disk), "%s", in(dir, "guest.raw"));
	for (int with_fmt = 0; with_fmt < 2; with_fmt++) {
		make_raw(disk, 1 * MIB);
		n = hostile_header(in(outside, "secret"),
				   with_fmt ? BLK_FORMAT_RAW : BLK_FORMAT_AUTO, hdr, sizeof(hdr));
		assert_int_equal(blk_open(disk, BLK_FORMAT_RAW, BLK_OPEN_RDWR, &b), 0);
		assert_int_equal(guest_write(b, hdr, n, 0), 0);
		assert_int_equal(blk_close(b), 0);

		/* The attack works when the caller vouches for the header: the test can fail. */
		memset(s0, 0, sizeof(s0));
		assert_int_equal(read_sector0(disk, BLK_OPEN_ANY_BACKING, s0),
				 with_fmt ? 0 : -EPERM);
		if (with_fmt)
			assert_memory_equal(s0, secret, sizeof(secret));

		/* Without format: refused, read-only and read-write alike. */
		memset(s0, 0, sizeof(s0));
		assert_int_equal(read_sector0(disk, 0, s0), -EPERM);
		assert_int_equal(read_sector0(disk, BLK_OPEN_RDWR, s0), -EPERM);
		assert_null(memmem(s0, sizeof(s0), secret, sizeof(secret) - 1));
		assert_non_null(strstr(blk_last_error(), with_fmt ? "outside" : "backing format"));

		/* With format=raw it is what the guest wrote, nothing else. */
		assert_int_equal(blk_open(disk, BLK_FORMAT_RAW, 0, &b), 0);
		assert_int_equal(blk_pread(b, s0, sizeof(s0), 0), 0);
		assert_memory_equal(s0, hdr, sizeof(s0));
		blk_close(b);
	}
}

/*
 * The same guest on a disk opened without format (probed raw): the planted magic is refused at
 * the write, whole or assembled from two writes, so the disk stays raw. Other writes to sector 0
 * (a partition table) go through.
 */
static void test_planted_header_probed_raw(void **state)
{
	char disk[192];
	uint8_t hdr[8192], s0[512], mbr[512];
	struct blk *b;
	size_t n;

	(void)state;
	snprintf(disk, sizeof(disk), "%s", in(dir, "probed.raw"));
	make_raw(disk, 1 * MIB);
	n = hostile_header(in(outside, "secret"), BLK_FORMAT_RAW, hdr, sizeof(hdr));
	assert_int_equal(blk_open(disk, BLK_FORMAT_AUTO, BLK_OPEN_RDWR, &b), 0);
	assert_int_equal(blk_format(b), BLK_FORMAT_RAW);
	assert_int_equal(guest_write(b, hdr, n, 0), -EPERM);
	assert_int_equal(blk_pwrite(b, hdr, 512, 0), -EPERM);
	/* "I\xfb" first, then "QF" in front of it. */
	assert_int_equal(guest_write(b, hdr + 2, 510, 2), 0);
	assert_int_equal(guest_write(b, hdr, 2, 0), -EPERM);
	assert_int_equal(guest_write(b, hdr, 1, 0), 0);
	assert_int_equal(guest_write(b, "X", 1, 1), 0);
	/* The rest of the header, past the magic, is just data. */
	assert_int_equal(guest_write(b, hdr + 4, n - 4, 4), 0);
	memset(mbr, 0, sizeof(mbr));
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	assert_int_equal(guest_write(b, mbr, 512, 512), 0);
	assert_int_equal(blk_close(b), 0);

	assert_int_equal(read_sector0(disk, 0, s0), 0);
	assert_memory_equal(s0, "QX", 2);
	assert_null(memmem(s0, sizeof(s0), secret, sizeof(secret) - 1));
	assert_int_equal(blk_open(disk, BLK_FORMAT_AUTO, 0, &b), 0);
	assert_int_equal(blk_format(b), BLK_FORMAT_RAW);
	blk_close(b);

	/* Explicit raw lifts the guard: a guest may legitimately store a qcow2 image. */
	assert_int_equal(blk_open(disk, BLK_FORMAT_RAW, BLK_OPEN_RDWR, &b), 0);
	assert_int_equal(guest_write(b, hdr, 512, 0), 0);
	blk_close(b);
}

static void qcow2_with_backing(const char *p, const char *backing, enum blk_format bfmt)
{
	struct blk_create_opts o = { .format = BLK_FORMAT_QCOW2,
				     .size = 1 * MIB,
				     .backing = backing,
				     .backing_format = bfmt };

	unlink(p);
	assert_int_equal(blk_create(p, &o), 0);
}

/* Turns the image's backing format extension into an unknown (ignored) one: an image written by
 * an old qemu-img without -F. */
static void strip_backing_format(const char *p)
{
	uint8_t c0[4096];
	int fd = open(p, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, c0, sizeof(c0), 0), (ssize_t)sizeof(c0));
	for (size_t i = 112; i + 4 <= sizeof(c0); i += 8)
		if (!memcmp(c0 + i, "\xe2\x79\x2a\xca", 4))
			memcpy(c0 + i, "\x11\x22\x33\x44", 4);
	assert_int_equal(pwrite(fd, c0, sizeof(c0), 0), (ssize_t)sizeof(c0));
	close(fd);
}

/* Backing names that leave the top image's directory tree: relative with "..", absolute, and
 * through a symlink. Names inside the tree work. */
static void test_backing_escape_refused(void **state)
{
	uint8_t buf[512];
	struct blk *b;

	(void)state;
	assert_int_equal(mkdir(in(dir, "sub"), 0755), 0);
	assert_int_equal(mkdir(in(dir, "sub/deeper"), 0755), 0);
	make_raw(in(dir, "sub/deeper/base.raw"), 1 * MIB);
	make_raw(in(dir, "base.raw"), 1 * MIB);

	char rel[128];

	snprintf(rel, sizeof(rel), "../../..%s/secret", outside);
	qcow2_with_backing(in(dir, "sub/rel.qcow2"), rel, BLK_FORMAT_RAW);
	assert_int_equal(blk_open(in(dir, "sub/rel.qcow2"), BLK_FORMAT_QCOW2, 0, &b), -EPERM);
	assert_non_null(strstr(blk_last_error(), "outside"));

	qcow2_with_backing(in(dir, "sub/abs.qcow2"), in(outside, "secret"), BLK_FORMAT_RAW);
	assert_int_equal(blk_open(in(dir, "sub/abs.qcow2"), BLK_FORMAT_QCOW2, 0, &b), -EPERM);
	assert_int_equal(blk_open(in(dir, "sub/abs.qcow2"), BLK_FORMAT_QCOW2, BLK_OPEN_RDWR, &b),
			 -EPERM);

	/* The directory above the top image's is outside its tree too. */
	qcow2_with_backing(in(dir, "sub/up.qcow2"), "../base.raw", BLK_FORMAT_RAW);
	assert_int_equal(blk_open(in(dir, "sub/up.qcow2"), BLK_FORMAT_QCOW2, 0, &b), -EPERM);

	assert_int_equal(symlink(in(outside, "secret"), in(dir, "sub/link.raw")), 0);
	qcow2_with_backing(in(dir, "sub/sym.qcow2"), "link.raw", BLK_FORMAT_RAW);
	assert_int_equal(blk_open(in(dir, "sub/sym.qcow2"), BLK_FORMAT_QCOW2, 0, &b), -EPERM);

	/* Inside the tree: a relative name, a subdirectory, an absolute path. */
	qcow2_with_backing(in(dir, "sub/ok.qcow2"), "deeper/base.raw", BLK_FORMAT_RAW);
	assert_int_equal(blk_open(in(dir, "sub/ok.qcow2"), BLK_FORMAT_QCOW2, 0, &b), 0);
	assert_int_equal(blk_chain_length(b), 2);
	blk_close(b);
	qcow2_with_backing(in(dir, "sub/ok2.qcow2"), in(dir, "sub/deeper/base.raw"),
			   BLK_FORMAT_RAW);
	assert_int_equal(blk_open(in(dir, "sub/ok2.qcow2"), BLK_FORMAT_AUTO, BLK_OPEN_RDWR, &b), 0);
	blk_close(b);

	/* A chain is held to the top image's tree at every level. */
	qcow2_with_backing(in(dir, "sub/deeper/mid.qcow2"), in(outside, "secret"), BLK_FORMAT_RAW);
	qcow2_with_backing(in(dir, "sub/chain.qcow2"), "deeper/mid.qcow2", BLK_FORMAT_QCOW2);
	assert_int_equal(blk_open(in(dir, "sub/chain.qcow2"), BLK_FORMAT_QCOW2, 0, &b), -EPERM);

	/* The caller may vouch for the image, or allow a directory (--backing-dir). Last: the
	 * allowed directories stay for the rest of the process. */
	assert_int_equal(
		blk_open(in(dir, "sub/abs.qcow2"), BLK_FORMAT_QCOW2, BLK_OPEN_ANY_BACKING, &b), 0);
	blk_close(b);
	assert_int_equal(blk_allow_backing_dir(in(dir, "missing")), -ENOENT);
	assert_int_equal(blk_allow_backing_dir(outside), 0);
	assert_int_equal(blk_open(in(dir, "sub/abs.qcow2"), BLK_FORMAT_QCOW2, 0, &b), 0);
	assert_int_equal(blk_pread(b, buf, sizeof(buf), 0), 0);
	assert_memory_equal(buf, secret, sizeof(secret));
	blk_close(b);
}

/* A probed qcow2 image (top or backing) that names a backing file without its format is
 * refused; given format=qcow2 (the user vouches for the header) it opens. */
static void test_probe_needs_backing_format(void **state)
{
	struct blk *b;

	(void)state;
	make_raw(in(dir, "nf-base.raw"), 1 * MIB);
	qcow2_with_backing(in(dir, "nf.qcow2"), "nf-base.raw", BLK_FORMAT_RAW);
	strip_backing_format(in(dir, "nf.qcow2"));

	assert_int_equal(blk_open(in(dir, "nf.qcow2"), BLK_FORMAT_AUTO, 0, &b), -EPERM);
	assert_non_null(strstr(blk_last_error(), "backing format"));
	assert_int_equal(blk_open(in(dir, "nf.qcow2"), BLK_FORMAT_AUTO, BLK_OPEN_RDWR, &b), -EPERM);
	assert_int_equal(blk_open(in(dir, "nf.qcow2"), BLK_FORMAT_QCOW2, BLK_OPEN_RDWR, &b), 0);
	assert_int_equal(blk_chain_length(b), 2);
	blk_close(b);

	/* Probed as a backing file: top records no format for it, and it is such an image. */
	qcow2_with_backing(in(dir, "nf-top.qcow2"), "nf.qcow2", BLK_FORMAT_QCOW2);
	strip_backing_format(in(dir, "nf-top.qcow2"));
	assert_int_equal(blk_open(in(dir, "nf-top.qcow2"), BLK_FORMAT_QCOW2, 0, &b), -EPERM);

	/* Images written with a recorded backing format (vireo img create -F, qemu-img -F) open
	 * without format= as before. */
	qcow2_with_backing(in(dir, "f-top.qcow2"), "nf-base.raw", BLK_FORMAT_RAW);
	assert_int_equal(blk_open(in(dir, "f-top.qcow2"), BLK_FORMAT_AUTO, BLK_OPEN_RDWR, &b), 0);
	assert_int_equal(blk_format(b), BLK_FORMAT_QCOW2);
	blk_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_planted_header_explicit_raw),
		cmocka_unit_test(test_planted_header_probed_raw),
		cmocka_unit_test(test_probe_needs_backing_format),
		cmocka_unit_test(test_backing_escape_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
