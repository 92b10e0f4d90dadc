// SPDX-License-Identifier: MIT
/*
 * Stress test of qcow2 concurrency (issue 14, finding 7): reads and in-place writes move data
 * outside the image's metadata lock while other threads discard the same clusters and allocate
 * new ones (data clusters and L2 tables), which reuse freed host clusters at once. A data
 * transfer that lands in a cluster freed and reused meanwhile corrupts another guest cluster or
 * an L2 table. Afterwards the image must pass `qemu-img check` and every cluster must hold what
 * the model allows: for clusters written and discarded concurrently, zeros or a complete
 * pattern of that cluster; for clusters only ever written once, exactly that pattern.
 *
 * The threads use the synchronous calls; the asynchronous engine's pool threads run the same
 * code (blk_execute()). Runs for STRESS_SECONDS (default 4) and stops at the first error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "common/util.h"

#define CS 4096ULL /* small clusters: 512 L2 entries, so new L2 tables come often */
#define RACY_CLUSTERS 512 /* guest clusters [0, 512): written and discarded concurrently */
#define NWRITERS 2
#define FRESH_BASE (4 * MIB) /* from here: clusters written once each by the allocator thread */
#define FRESH_L2_SPAN (CS / 8 * CS) /* guest bytes one L2 table maps */
#define DISK_SIZE (2048 * FRESH_L2_SPAN)
#define MAX_RUN 16
#define FRESH_WINDOW 8192 /* fresh clusters live at once: older ones are discarded */

static char dir[64], img[128];
static atomic_bool stop;
static atomic_int failures;
static _Atomic uint64_t fresh_done; /* fresh clusters written so far, in order */
static _Atomic uint64_t fresh_gone; /* of those, discarded again (the oldest) */
static double seconds = 4;

struct stats {
	uint64_t writes, discards, reads, fresh;
};

static void report(const char *what, uint64_t c, const uint64_t *buf)
{
	if (atomic_fetch_add(&failures, 1) < 5)
		fprintf(stderr, "stress: %s, guest cluster %llu holds 0x%016llx\n", what,
			(unsigned long long)c, buf ? (unsigned long long)buf[0] : 0ULL);
	atomic_store(&stop, true);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(uint64_t *buf, uint64_t c, uint32_t seq)
{
	for (size_t i = 0; i < CS / 8; i++)
		buf[i] = c << 32 | seq;
}

/* A cluster is zeros, or a whole pattern of itself (any sequence number unless exact). */
static bool valid(const uint64_t *buf, uint64_t c, uint64_t exact)
{
	uint64_t w = buf[0];

	for (size_t i = 1; i < CS / 8; i++)
		if (buf[i] != w)
			return false;
	if (exact)
		return w == exact;
	return w == 0 || (w >> 32 == c && (uint32_t)w != 0);
}

static bool all_zero(const uint64_t *buf)
{
	for (size_t i = 0; i < CS / 8; i++)
		if (buf[i])
			return false;
	return true;
}

/* What a read racing with writes and discards of the cluster may see: a mix of zeros and
 * patterns of this cluster (page copies are not atomic), nothing else. */
static bool valid_torn(const uint64_t *buf, uint64_t c)
{
	for (size_t i = 0; i < CS / 8; i++)
		if (buf[i] && (buf[i] >> 32 != c || !(uint32_t)buf[i]))
			return false;
	return true;
}

static uint64_t fresh_cluster(uint64_t i)
{
	/* The first cluster of a new L2 table each time, then the second of each, ... */
	uint64_t tables = (DISK_SIZE - FRESH_BASE) / FRESH_L2_SPAN;

	return (FRESH_BASE + (i % tables) * FRESH_L2_SPAN) / CS + i / tables;
}

struct thread {
	struct blk *b;
	int id;
	struct stats st;
};

/* Writes runs of clusters in its own part of the racy area: in place once allocated. */
static void *writer(void *arg)
{
	struct thread *t = arg;
	uint64_t *buf = malloc(CS * MAX_RUN), s = 0x9e3779b97f4a7c15ULL * (t->id + 1);
	uint64_t lo = RACY_CLUSTERS / NWRITERS * t->id, span = RACY_CLUSTERS / NWRITERS;
	uint32_t seq = 0;

	while (buf && !atomic_load(&stop)) {
		uint64_t n = 1 + rnd(&s) % MAX_RUN, c = lo + rnd(&s) % (span - n + 1);

		seq++;
		for (uint64_t i = 0; i < n; i++)
			fill(buf + i * CS / 8, c + i, seq);
		if (blk_pwrite(t->b, buf, n * CS, c * CS))
			report("write error", c, NULL);
		t->st.writes++;
	}
	free(buf);
	return NULL;
}

/* Discards runs anywhere in the racy area. */
static void *discarder(void *arg)
{
	struct thread *t = arg;
	uint64_t s = 0x2545f4914f6cdd1dULL;

	while (!atomic_load(&stop)) {
		uint64_t n = 1 + rnd(&s) % MAX_RUN, c = rnd(&s) % (RACY_CLUSTERS - n + 1);

		if (blk_discard(t->b, c * CS, n * CS))
			report("discard error", c, NULL);
		t->st.discards++;
		/* Mostly allocated clusters, so that most writes are in place. */
		if (t->st.discards % 4 == 0)
			sched_yield();
	}
	return NULL;
}

/* Writes fresh clusters, each once, and discards the oldest ones again, so the file stays small:
 * new L2 tables and data clusters take the lowest free host clusters, i.e. the ones discards
 * just freed, all the time. */
static void *allocator(void *arg)
{
	struct thread *t = arg;
	uint64_t *buf = malloc(CS), limit = (DISK_SIZE - FRESH_BASE) / CS;

	for (uint64_t i = 0; buf && !atomic_load(&stop) && i < limit; i++) {
		uint64_t c = fresh_cluster(i);

		fill(buf, c, 1);
		if (blk_pwrite(t->b, buf, CS, c * CS))
			report("fresh write error", c, NULL);
		atomic_store(&fresh_done, i + 1);
		if (i >= FRESH_WINDOW) {
			c = fresh_cluster(i - FRESH_WINDOW);
			atomic_store(&fresh_gone, i - FRESH_WINDOW + 1);
			if (blk_discard(t->b, c * CS, CS))
				report("fresh discard error", c, NULL);
		}
		t->st.fresh++;
	}
	free(buf);
	return NULL;
}

/* Reads racy clusters and fresh ones already written, and checks them. */
static void *reader(void *arg)
{
	struct thread *t = arg;
	uint64_t *buf = malloc(CS * MAX_RUN), s = 0xdeadbeefcafef00dULL;

	while (buf && !atomic_load(&stop)) {
		uint64_t n = 1 + rnd(&s) % MAX_RUN, c = rnd(&s) % (RACY_CLUSTERS - n + 1);
		uint64_t done = atomic_load(&fresh_done);

		if (blk_pread(t->b, buf, n * CS, c * CS))
			report("read error", c, NULL);
		for (uint64_t i = 0; i < n; i++)
			if (!valid_torn(buf + i * CS / 8, c + i))
				report("racy cluster read back foreign data", c + i,
				       buf + i * CS / 8);
		if (done) {
			uint64_t gone = atomic_load(&fresh_gone),
				 j = gone + rnd(&s) % (done - gone);
			uint64_t f = fresh_cluster(j);

			/* Its data, or zeros once the allocator discarded it. */
			if (blk_pread(t->b, buf, CS, f * CS))
				report("read error", f, NULL);
			else if (!valid(buf, f, f << 32 | 1) &&
				 !(j < atomic_load(&fresh_gone) && all_zero(buf)))
				report("fresh cluster read back wrong data", f, buf);
		}
		t->st.reads++;
	}
	free(buf);
	return NULL;
}

static int setup(void **state)
{
	const char *env = getenv("STRESS_SECONDS");

	(void)state;
	if (env)
		seconds = atof(env);
	snprintf(dir, sizeof(dir), "/tmp/vireo-stress-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(img, sizeof(img), "%s/stress.qcow2", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static int qemu_img_check(const char *p)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "qemu-img check -q -f qcow2 %s", p);
	return system(cmd);
}

/* Every cluster after the run, through a fresh open. */
static void verify(void)
{
	uint64_t *buf = malloc(CS), done = atomic_load(&fresh_done),
		 gone = atomic_load(&fresh_gone);
	struct blk *b;

	assert_non_null(buf);
	assert_int_equal(blk_open(img, BLK_FORMAT_QCOW2, 0, &b), 0);
	for (uint64_t c = 0; c < RACY_CLUSTERS; c++) {
		assert_int_equal(blk_pread(b, buf, CS, c * CS), 0);
		if (!valid(buf, c, 0))
			report("racy cluster holds foreign data after the run", c, buf);
	}
	for (uint64_t i = 0; i < done; i++) {
		uint64_t f = fresh_cluster(i);

		assert_int_equal(blk_pread(b, buf, CS, f * CS), 0);
		if (i < gone ? !all_zero(buf) : !valid(buf, f, f << 32 | 1))
			report("fresh cluster holds wrong data after the run", f, buf);
	}
	blk_close(b);
	free(buf);
}

static void test_discard_write_read_race(void **state)
{
	struct blk_create_opts o = { .format = BLK_FORMAT_QCOW2,
				     .size = DISK_SIZE,
				     .cluster_size = CS };
	struct thread th[NWRITERS + 3];
	pthread_t tid[NWRITERS + 3];
	void *(*fn[NWRITERS + 3])(void *);
	struct timespec t0, t1;
	struct stats sum = { 0 };
	struct blk *b;
	int n = 0;

	(void)state;
	assert_int_equal(blk_create(img, &o), 0);
	assert_int_equal(blk_open(img, BLK_FORMAT_QCOW2, BLK_OPEN_RDWR, &b), 0);
	for (int i = 0; i < NWRITERS; i++)
		fn[n++] = writer;
	fn[n++] = discarder;
	fn[n++] = allocator;
	fn[n++] = reader;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		th[i] = (struct thread){ .b = b, .id = i };
		assert_int_equal(pthread_create(&tid[i], NULL, fn[i], &th[i]), 0);
	}
	do {
		usleep(20000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (!atomic_load(&stop) &&
		 (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
	atomic_store(&stop, true);
	for (int i = 0; i < n; i++) {
		pthread_join(tid[i], NULL);
		sum.writes += th[i].st.writes;
		sum.discards += th[i].st.discards;
		sum.reads += th[i].st.reads;
		sum.fresh += th[i].st.fresh;
	}
	assert_int_equal(blk_close(b), 0);
	printf("stress: %llu writes, %llu discards, %llu reads, %llu fresh clusters\n",
	       (unsigned long long)sum.writes, (unsigned long long)sum.discards,
	       (unsigned long long)sum.reads, (unsigned long long)sum.fresh);
	/* The run did race: plenty of each kind. */
	assert_true(sum.writes > 100 && sum.discards > 100 && sum.reads > 100 && sum.fresh > 100);
	assert_int_equal(qemu_img_check(img), 0);
	verify();
	assert_int_equal(atomic_load(&failures), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discard_write_read_race),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
