// SPDX-License-Identifier: MIT
/* Unit tests for the split virtqueue: well-formed chains (direct, indirect), notification
 * suppression, 16-bit index wraparound, and every kind of malformed chain the driver could
 * write, which must fail without touching memory outside guest RAM (the RAM here is a heap
 * buffer of exactly RAM_SIZE bytes, so ASan sees any stray access). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/tlv.h"
#include "common/util.h"
#include "virtio/queue.h"
#include "mem/memory.h"

#define RAM_SIZE 0x10000
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define BUF_GPA 0x8000
#define QSIZE 8

struct fixture {
	uint8_t *ram;
	struct guest_mem mem;
	struct virtq vq;
	struct virtq_chain *c;
	uint64_t dirty_bytes;
	unsigned int dirty_calls;
};

static void count_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
	struct fixture *f = opaque;

	assert_true(gpa + len <= RAM_SIZE);
	f->dirty_bytes += len;
	f->dirty_calls++;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct virtq_mem m;

	f->ram = calloc(1, RAM_SIZE);
	f->c = malloc(sizeof(*f->c));
	memory_attach(&f->mem, f->ram, RAM_SIZE);
	m = (struct virtq_mem){ &f->mem, count_dirty, f };
	virtq_reset(&f->vq, &m, QSIZE);
	f->vq.desc_gpa = DESC_GPA;
	f->vq.avail_gpa = AVAIL_GPA;
	f->vq.used_gpa = USED_GPA;
	f->vq.ready = true;
	assert_int_equal(virtq_enable(&f->vq), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->ram);
	free(f->c);
	free(f);
	return 0;
}

static void set_desc(uint8_t *table, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *d = table + 16 * i;

	put_le64(d, addr);
	put_le32(d + 8, len);
	put_le16(d + 12, flags);
	put_le16(d + 14, next);
}

static void desc(struct fixture *f, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	set_desc(f->ram + DESC_GPA, i, addr, len, flags, next);
}

/* Makes head available as the driver would: ring entry, then idx. */
static void make_avail(struct fixture *f, uint16_t head)
{
	uint16_t idx = get_le16(f->ram + AVAIL_GPA + 2);

	put_le16(f->ram + AVAIL_GPA + 4 + 2 * (idx % QSIZE), head);
	put_le16(f->ram + AVAIL_GPA + 2, (uint16_t)(idx + 1));
}

static uint16_t used_idx(struct fixture *f)
{
	return get_le16(f->ram + USED_GPA + 2);
}

static void test_empty(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(virtq_pop(&f->vq, f->c), 0);
	assert_false(virtq_has_avail(&f->vq));
}

static void test_simple_chain(void **state)
{
	struct fixture *f = *state;
	char buf[16] = { 0 };

	memcpy(f->ram + BUF_GPA, "hello ", 6);
	memcpy(f->ram + BUF_GPA + 0x100, "world", 5);
	desc(f, 0, BUF_GPA, 6, VIRTQ_DESC_F_NEXT, 3);
	desc(f, 3, BUF_GPA + 0x100, 5, VIRTQ_DESC_F_NEXT, 5);
	desc(f, 5, BUF_GPA + 0x200, 32, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 6);
	desc(f, 6, BUF_GPA + 0x300, 32, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0);
	assert_true(virtq_has_avail(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, f->c), 1);
	assert_int_equal(f->c->head, 0);
	assert_int_equal(f->c->nread, 2);
	assert_int_equal(f->c->nwrite, 2);
	assert_int_equal(f->c->read_len, 11);
	assert_int_equal(f->c->write_len, 64);
	assert_int_equal(virtq_chain_read(f->c, 0, buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "hello world", 11);
	assert_int_equal(virtq_chain_read(f->c, 4, buf, 4), 4);
	assert_memory_equal(buf, "o wo", 4);
	/* A write spanning both writable buffers. */
	{
		uint8_t data[40];

		memset(data, 0xab, sizeof(data));
		assert_int_equal(virtq_chain_write(f->c, 0, data, sizeof(data)), 40);
		assert_int_equal(f->ram[BUF_GPA + 0x200 + 31], 0xab);
		assert_int_equal(f->ram[BUF_GPA + 0x300 + 7], 0xab);
		assert_int_equal(f->ram[BUF_GPA + 0x300 + 8], 0);
	}
	f->dirty_bytes = 0;
	virtq_push(&f->vq, f->c, 40);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(get_le32(f->ram + USED_GPA + 4), 0);
	assert_int_equal(get_le32(f->ram + USED_GPA + 8), 40);
	/* 40 buffer bytes, the 8-byte element and the 2-byte index. */
	assert_int_equal(f->dirty_bytes, 40 + 8 + 2);
	assert_int_equal(virtq_pop(&f->vq, f->c), 0);
	assert_true(virtq_need_notify(&f->vq));
}

static void test_push_clamps_written(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, f->c), 1);
	virtq_push(&f->vq, f->c, 1000);
	assert_int_equal(get_le32(f->ram + USED_GPA + 8), 16);
}

static void test_zero_length_desc_skipped(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, BUF_GPA, 0, VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, BUF_GPA, 8, 0, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, f->c), 1);
	assert_int_equal(f->c->nread, 1);
	assert_int_equal(f->c->read_len, 8);
}

static void test_indirect(void **state)
{
	struct fixture *f = *state;
	uint8_t *table = f->ram + 0x5000;

	f->vq.indirect = true;
	set_desc(table, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 2);
	set_desc(table, 2, BUF_GPA + 0x10, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc(table, 1, BUF_GPA + 0x20, 100, VIRTQ_DESC_F_WRITE, 0);
	desc(f, 4, 0x5000, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	make_avail(f, 4);
	assert_int_equal(virtq_pop(&f->vq, f->c), 1);
	assert_int_equal(f->c->head, 4);
	assert_int_equal(f->c->nread, 2);
	assert_int_equal(f->c->nwrite, 1);
	assert_int_equal(f->c->write_len, 100);
	virtq_push(&f->vq, f->c, 10);
	assert_int_equal(get_le32(f->ram + USED_GPA + 4), 4);
}

/* Sets up one malformed chain at head 0 and expects virtq_pop to refuse it. */
static void expect_pop_error(struct fixture *f, int err)
{
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, f->c), err);
	/* Nothing was consumed or published. */
	assert_int_equal(f->vq.last_avail, 0);
	assert_int_equal(used_idx(f), 0);
}

static void test_indirect_not_negotiated(void **state)
{
	struct fixture *f = *state;

	set_desc(f->ram + 0x5000, 0, BUF_GPA, 4, 0, 0);
	desc(f, 0, 0x5000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_nested_indirect(void **state)
{
	struct fixture *f = *state;

	f->vq.indirect = true;
	set_desc(f->ram + 0x5000, 0, 0x5000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(f, 0, 0x5000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_indirect_zero_length(void **state)
{
	struct fixture *f = *state;

	f->vq.indirect = true;
	desc(f, 0, 0x5000, 0, VIRTQ_DESC_F_INDIRECT, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_indirect_bad_length(void **state)
{
	struct fixture *f = *state;

	f->vq.indirect = true;
	desc(f, 0, 0x5000, 24, VIRTQ_DESC_F_INDIRECT, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_indirect_with_next(void **state)
{
	struct fixture *f = *state;

	f->vq.indirect = true;
	set_desc(f->ram + 0x5000, 0, BUF_GPA, 4, 0, 0);
	desc(f, 0, 0x5000, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, BUF_GPA, 4, 0, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_indirect_table_outside_ram(void **state)
{
	struct fixture *f = *state;

	f->vq.indirect = true;
	desc(f, 0, RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_pop_error(f, -EFAULT);
}

static void test_indirect_table_too_large(void **state)
{
	struct fixture *f = *state;

	f->vq.indirect = true;
	desc(f, 0, 0, (VIRTQ_MAX_CHAIN + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_indirect_loop(void **state)
{
	struct fixture *f = *state;
	uint8_t *table = f->ram + 0x5000;

	f->vq.indirect = true;
	set_desc(table, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc(table, 1, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 0);
	desc(f, 0, 0x5000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_indirect_next_out_of_range(void **state)
{
	struct fixture *f = *state;

	f->vq.indirect = true;
	set_desc(f->ram + 0x5000, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 2);
	desc(f, 0, 0x5000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_loop(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 2);
	desc(f, 2, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_self_loop_zero_length(void **state)
{
	struct fixture *f = *state;

	/* Zero-length descriptors add no buffer but still count towards the limit. */
	desc(f, 0, BUF_GPA, 0, VIRTQ_DESC_F_NEXT, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_chain_longer_than_queue(void **state)
{
	struct fixture *f = *state;

	for (unsigned int i = 0; i < QSIZE; i++)
		desc(f, i, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, (uint16_t)((i + 1) % QSIZE));
	expect_pop_error(f, -EINVAL);
}

static void test_addr_outside_ram(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, RAM_SIZE, 4, 0, 0);
	expect_pop_error(f, -EFAULT);
}

static void test_addr_straddles_end(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, RAM_SIZE - 2, 4, 0, 0);
	expect_pop_error(f, -EFAULT);
}

static void test_addr_wraps(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, UINT64_MAX - 1, 0x10, 0, 0);
	expect_pop_error(f, -EFAULT);
}

static void test_write_before_read(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, BUF_GPA, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, BUF_GPA + 8, 4, 0, 0);
	expect_pop_error(f, -EINVAL);
}

static void test_head_out_of_range(void **state)
{
	struct fixture *f = *state;

	make_avail(f, QSIZE);
	assert_int_equal(virtq_pop(&f->vq, f->c), -EINVAL);
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, QSIZE);
	expect_pop_error(f, -EINVAL);
}

static void test_avail_idx_too_far(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, BUF_GPA, 4, 0, 0);
	put_le16(f->ram + AVAIL_GPA + 2, QSIZE + 1);
	assert_int_equal(virtq_pop(&f->vq, f->c), -EINVAL);
}

static void test_enable_checks(void **state)
{
	struct fixture *f = *state;

	f->vq.size = 6; /* not a power of two */
	assert_int_equal(virtq_enable(&f->vq), -EINVAL);
	f->vq.size = 2 * QSIZE; /* above the device's maximum */
	assert_int_equal(virtq_enable(&f->vq), -EINVAL);
	f->vq.size = QSIZE;
	f->vq.desc_gpa = DESC_GPA + 8; /* misaligned */
	assert_int_equal(virtq_enable(&f->vq), -EINVAL);
	f->vq.desc_gpa = RAM_SIZE - 16; /* table runs past RAM */
	assert_int_equal(virtq_enable(&f->vq), -EFAULT);
	/* A disabled queue pops nothing, even with entries available. */
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, f->c), 0);
	f->vq.desc_gpa = DESC_GPA;
	f->vq.used_gpa = RAM_SIZE - 8;
	assert_int_equal(virtq_enable(&f->vq), -EFAULT);
	f->vq.used_gpa = USED_GPA;
	assert_int_equal(virtq_enable(&f->vq), 0);
}

static void test_no_interrupt_flag(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, BUF_GPA, 4, 0, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, f->c), 1);
	virtq_push(&f->vq, f->c, 0);
	put_le16(f->ram + AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_false(virtq_need_notify(&f->vq));
	put_le16(f->ram + AVAIL_GPA, 0);
	assert_true(virtq_need_notify(&f->vq));
}

static void test_event_idx(void **state)
{
	struct fixture *f = *state;
	uint8_t *used_event = f->ram + AVAIL_GPA + 4 + 2 * QSIZE;
	uint8_t *avail_event = f->ram + USED_GPA + 4 + 8 * QSIZE;

	f->vq.event_idx = true;
	desc(f, 0, BUF_GPA, 4, 0, 0);
	/* Empty queue: the device asks to be notified at entry 0. */
	put_le16(avail_event, 0xffff);
	assert_int_equal(virtq_pop(&f->vq, f->c), 0);
	assert_int_equal(get_le16(avail_event), 0);

	for (int i = 0; i < 3; i++)
		make_avail(f, 0);
	/* The driver wants an interrupt only once used->idx passes 2 (used_event = 2). */
	put_le16(used_event, 2);
	assert_int_equal(virtq_pop(&f->vq, f->c), 1);
	assert_int_equal(get_le16(avail_event), 1);
	virtq_push(&f->vq, f->c, 0);
	/* The first decision after reset always notifies. */
	assert_true(virtq_need_notify(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, f->c), 1);
	virtq_push(&f->vq, f->c, 0); /* used->idx 2: not past used_event yet */
	assert_false(virtq_need_notify(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, f->c), 1);
	virtq_push(&f->vq, f->c, 0); /* used->idx 3: entry 2 was used, notify */
	assert_true(virtq_need_notify(&f->vq));
	assert_int_equal(get_le16(avail_event), 3);
	/* Nothing new pushed: no interrupt. */
	assert_false(virtq_need_notify(&f->vq));
}

static void test_wraparound(void **state)
{
	struct fixture *f = *state;

	f->vq.event_idx = true;
	f->vq.last_avail = 0xfffe;
	f->vq.used_idx = 0xfffe;
	f->vq.signalled_used = 0xfffe;
	f->vq.signalled_valid = true;
	put_le16(f->ram + AVAIL_GPA + 2, 0xfffe);
	put_le16(f->ram + USED_GPA + 2, 0xfffe);
	put_le16(f->ram + AVAIL_GPA + 4 + 2 * QSIZE, 0xffff); /* used_event */
	desc(f, 0, BUF_GPA, 4, 0, 0);
	desc(f, 1, BUF_GPA, 4, 0, 0);
	desc(f, 2, BUF_GPA, 4, 0, 0);
	for (uint16_t h = 0; h < 3; h++)
		make_avail(f, h);
	assert_int_equal(get_le16(f->ram + AVAIL_GPA + 2), 1);
	for (uint16_t h = 0; h < 3; h++) {
		assert_int_equal(virtq_pop(&f->vq, f->c), 1);
		assert_int_equal(f->c->head, h);
		virtq_push(&f->vq, f->c, 4);
	}
	assert_int_equal(virtq_pop(&f->vq, f->c), 0);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(f->vq.last_avail, 1);
	/* Entries 0xfffe, 0xffff, 0 used; used_event 0xffff was passed. */
	assert_true(virtq_need_notify(&f->vq));
	/* Entry 0xffff in a ring of 8 is slot 7, entry 0 slot 0. */
	assert_int_equal(get_le32(f->ram + USED_GPA + 4 + 8 * 7), 1);
	assert_int_equal(get_le32(f->ram + USED_GPA + 4), 2);
}

static void test_state_roundtrip(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[VIRTQ_STATE_LEN];
	struct virtq q;

	f->vq.event_idx = true;
	f->vq.last_avail = 1234;
	f->vq.used_idx = 1230;
	f->vq.signalled_used = 1229;
	f->vq.signalled_valid = true;
	virtq_encode(&f->vq, buf);
	virtq_reset(&q, &f->vq.m, QSIZE);
	assert_int_equal(virtq_decode(&q, buf, sizeof(buf), QSIZE), 0);
	assert_int_equal(virtq_enable(&q), 0);
	assert_int_equal(q.desc_gpa, DESC_GPA);
	assert_int_equal(q.avail_gpa, AVAIL_GPA);
	assert_int_equal(q.used_gpa, USED_GPA);
	assert_true(q.ready && q.event_idx && !q.indirect && q.signalled_valid);
	assert_int_equal(q.last_avail, 1234);
	assert_int_equal(q.used_idx, 1230);
	assert_int_equal(q.signalled_used, 1229);
	assert_int_equal(virtq_decode(&q, buf, sizeof(buf) - 1, QSIZE), -EINVAL);
	assert_int_equal(virtq_decode(&q, buf, sizeof(buf), QSIZE / 2), -EINVAL);
	/* A disabled queue's size is the driver's register, loaded as is and checked when the
	 * queue is enabled: above the device's maximum, enabling fails. */
	buf[2] = 0;
	assert_int_equal(virtq_decode(&q, buf, sizeof(buf), QSIZE / 2), 0);
	assert_int_equal(q.size, QSIZE);
	assert_int_equal(virtq_enable(&q), -EINVAL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_empty),
		T(test_simple_chain),
		T(test_push_clamps_written),
		T(test_zero_length_desc_skipped),
		T(test_indirect),
		T(test_indirect_not_negotiated),
		T(test_nested_indirect),
		T(test_indirect_zero_length),
		T(test_indirect_bad_length),
		T(test_indirect_with_next),
		T(test_indirect_table_outside_ram),
		T(test_indirect_table_too_large),
		T(test_indirect_loop),
		T(test_indirect_next_out_of_range),
		T(test_loop),
		T(test_self_loop_zero_length),
		T(test_chain_longer_than_queue),
		T(test_addr_outside_ram),
		T(test_addr_straddles_end),
		T(test_addr_wraps),
		T(test_write_before_read),
		T(test_head_out_of_range),
		T(test_next_out_of_range),
		T(test_avail_idx_too_far),
		T(test_enable_checks),
		T(test_no_interrupt_flag),
		T(test_event_idx),
		T(test_wraparound),
		T(test_state_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
