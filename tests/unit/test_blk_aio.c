// SPDX-License-Identifier: MIT
/* Unit tests for src/block/aio.c: requests on raw and qcow2 images through io_uring and through
 * the thread pool (VIREO_AIO=threads), completions reaped from an epoll loop on the eventfd,
 * draining, and the overlay switch between batches. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "block/block.h"
#include "common/util.h"

#define NREQ 64
#define REQ_LEN 16384

static char dir[64];

struct io {
	struct blk_req req;
	struct iovec iov[2];
	uint8_t *buf;
	int completed, ret;
};

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vireo-aio-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void on_done(struct blk_req *req, int ret)
{
	struct io *io = req->opaque;

	io->completed++;
	io->ret = ret;
}

/* Runs the loop until every io has completed, the way a device's event loop would. */
static void loop_until_done(struct blk *b, struct io *ios, int n)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), fd = blk_aio_fd(b), left;
	struct epoll_event ev = { .events = EPOLLIN };

	assert_true(ep >= 0 && fd >= 0);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	do {
		struct epoll_event out;

		int r = epoll_wait(ep, &out, 1, 5000);

		/* Signals (the sanitizers use some) interrupt the wait like in any event loop. */
		if (r < 0 && errno == EINTR)
			continue;
		assert_int_equal(r, 1);
		assert_true(blk_aio_complete(b) >= 0);
		left = 0;
		for (int i = 0; i < n; i++)
			left += !ios[i].completed;
	} while (left);
	close(ep);
}

static void submit_rw(struct blk *b, struct io *ios, int n, enum blk_op op, int seed)
{
	for (int i = 0; i < n; i++) {
		struct io *io = &ios[i];

		if (!io->buf)
			io->buf = malloc(REQ_LEN);
		if (op == BLK_OP_WRITE)
			memset(io->buf, seed + i, REQ_LEN);
		else
			memset(io->buf, 0xee, REQ_LEN);
		/* Two iovecs per request, to exercise vectored I/O. */
		io->iov[0] = (struct iovec){ io->buf, 5000 };
		io->iov[1] = (struct iovec){ io->buf + 5000, REQ_LEN - 5000 };
		io->req = (struct blk_req){ .op = op,
					    .offset = (uint64_t)i * 3 * REQ_LEN + 512,
					    .iov = io->iov,
					    .iovcnt = 2,
					    .done = on_done,
					    .opaque = io };
		io->completed = 0;
		io->ret = -1;
		assert_int_equal(blk_submit(b, &io->req), 0);
	}
}

static void verify(struct io *ios, int n, int seed)
{
	for (int i = 0; i < n; i++) {
		assert_int_equal(ios[i].completed, 1);
		assert_int_equal(ios[i].ret, 0);
		for (int k = 0; k < REQ_LEN; k++)
			if (ios[i].buf[k] != (uint8_t)(seed + i))
				fail_msg("request %d byte %d: 0x%02x", i, k, ios[i].buf[k]);
	}
}

static void one_op(struct blk *b, enum blk_op op, uint64_t off, uint64_t len)
{
	struct io io = { 0 };

	io.req = (struct blk_req){
		.op = op, .offset = off, .len = len, .done = on_done, .opaque = &io
	};
	assert_int_equal(blk_submit(b, &io.req), 0);
	loop_until_done(b, &io, 1);
	assert_int_equal(io.ret, 0);
}

static void run_engine(enum blk_format fmt, const char *mode)
{
	struct blk_create_opts o = { .format = fmt, .size = 8 * MIB };
	struct io *ios = calloc(NREQ, sizeof(*ios));
	char path[128], ov[160];
	struct blk *b;
	uint8_t buf[4096];

	if (mode)
		setenv("VIREO_AIO", mode, 1);
	else
		unsetenv("VIREO_AIO");
	snprintf(path, sizeof(path), "%s/%s-%s.img", dir, blk_format_name(fmt),
		 mode ? mode : "auto");
	snprintf(ov, sizeof(ov), "%s.overlay", path);
	assert_int_equal(blk_create(path, &o), 0);
	assert_int_equal(blk_open(path, fmt, BLK_OPEN_RDWR, &b), 0);
	assert_string_equal(blk_aio_engine_name(b), "none");
	assert_true(blk_aio_fd(b) >= 0);
	if (mode)
		assert_string_equal(blk_aio_engine_name(b), "threads");
	else
		print_message("engine without VIREO_AIO: %s\n", blk_aio_engine_name(b));

	submit_rw(b, ios, NREQ, BLK_OP_WRITE, 7);
	loop_until_done(b, ios, NREQ);
	one_op(b, BLK_OP_FLUSH, 0, 0);
	submit_rw(b, ios, NREQ, BLK_OP_READ, 0);
	loop_until_done(b, ios, NREQ);
	verify(ios, NREQ, 7);

	/* Discard and write-zeroes; the synchronous path sees the result. */
	one_op(b, BLK_OP_WRITE_ZEROES, 512, 4096);
	assert_int_equal(blk_pread(b, buf, sizeof(buf), 512), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0);
	one_op(b, BLK_OP_DISCARD, 4 * MIB, MIB);

	/* Out of range and unknown requests are refused at submission. */
	struct blk_req bad = { .op = BLK_OP_DISCARD, .offset = 8 * MIB, .len = 1, .done = on_done };

	assert_int_equal(blk_submit(b, &bad), -EINVAL);

	/* Requests in flight, then drain and switch to an overlay, then more requests. */
	submit_rw(b, ios, NREQ, BLK_OP_WRITE, 40);
	blk_drain(b);
	for (int i = 0; i < NREQ; i++)
		assert_int_equal(ios[i].completed, 1);
	assert_int_equal(blk_switch_to_overlay(b, ov), 0);
	submit_rw(b, ios, NREQ / 2, BLK_OP_WRITE, 90);
	loop_until_done(b, ios, NREQ / 2);
	submit_rw(b, ios, NREQ, BLK_OP_READ, 0);
	loop_until_done(b, ios, NREQ);
	verify(ios, NREQ / 2, 90);
	verify(ios + NREQ / 2, NREQ / 2, 40 + NREQ / 2);
	assert_int_equal(blk_close(b), 0);
	for (int i = 0; i < NREQ; i++)
		free(ios[i].buf);
	free(ios);
}

static void test_raw_uring(void **state)
{
	(void)state;
	run_engine(BLK_FORMAT_RAW, NULL);
}

static void test_raw_threads(void **state)
{
	(void)state;
	run_engine(BLK_FORMAT_RAW, "threads");
}

static void test_qcow2_uring(void **state)
{
	(void)state;
	run_engine(BLK_FORMAT_QCOW2, NULL);
}

static void test_qcow2_threads(void **state)
{
	(void)state;
	run_engine(BLK_FORMAT_QCOW2, "threads");
}

static void test_close_with_requests_in_flight(void **state)
{
	struct blk_create_opts o = { .format = BLK_FORMAT_QCOW2, .size = 8 * MIB };
	struct io *ios = calloc(NREQ, sizeof(*ios));
	char path[128];
	struct blk *b;

	(void)state;
	unsetenv("VIREO_AIO");
	snprintf(path, sizeof(path), "%s/close.qcow2", dir);
	assert_int_equal(blk_create(path, &o), 0);
	assert_int_equal(blk_open(path, BLK_FORMAT_QCOW2, BLK_OPEN_RDWR, &b), 0);
	submit_rw(b, ios, NREQ, BLK_OP_WRITE, 3);
	/* blk_close drains: every callback runs before it returns. */
	assert_int_equal(blk_close(b), 0);
	for (int i = 0; i < NREQ; i++) {
		assert_int_equal(ios[i].completed, 1);
		free(ios[i].buf);
	}
	free(ios);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw_uring),
		cmocka_unit_test(test_raw_threads),
		cmocka_unit_test(test_qcow2_uring),
		cmocka_unit_test(test_qcow2_threads),
		cmocka_unit_test(test_close_with_requests_in_flight),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
