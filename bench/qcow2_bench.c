// SPDX-License-Identifier: MIT
/*
 * Host-side throughput of the block layer: the same request patterns on a raw and a qcow2 image,
 * through blk_pread/blk_pwrite (synchronous, queue depth 1, host page cache), in MB/s, with the
 * qcow2/raw ratio; the final flush is not timed. It measures the cost of the qcow2 layer, not the
 * disk. qcow2_bench [-d DIR] [-s SIZE_MB] [-n OPS_4K] Each result is also printed as "RESULT <test>
 * <format> <MB/s>" for bench/qcow2.py.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "common/util.h"

enum pattern {
	SEQ_WRITE_1M_ALLOC,
	SEQ_READ_1M,
	SEQ_WRITE_4K,
	SEQ_READ_4K,
	RAND_WRITE_4K,
	RAND_READ_4K,
	RAND_WRITE_4K_ALLOC,
	NR_PATTERNS,
};

static const char *const names[] = {
	"seq-write-1M-alloc", "seq-read-1M",  "seq-write-4K",	     "seq-read-4K",
	"rand-write-4K",      "rand-read-4K", "rand-write-4K-alloc",
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static struct blk *fresh(const char *dir, enum blk_format fmt, uint64_t size)
{
	struct blk_create_opts o = { .format = fmt, .size = size };
	char path[4200];
	struct blk *b;

	snprintf(path, sizeof(path), "%s/bench.%s", dir, blk_format_name(fmt));
	unlink(path);
	if (blk_create(path, &o) || blk_open(path, fmt, BLK_OPEN_RDWR, &b)) {
		fprintf(stderr, "qcow2_bench: cannot create %s\n", path);
		exit(1);
	}
	return b;
}

/* Runs one pattern; returns MB/s. Read and in-place patterns run on an image filled first. */
static double run(const char *dir, enum blk_format fmt, enum pattern p, uint64_t size, uint64_t ops)
{
	struct blk *b = fresh(dir, fmt, size);
	uint64_t bs = (p <= SEQ_READ_1M) ? MIB : 4096, bytes = 0, seed = 88172645463325252ULL;
	uint8_t *buf = malloc(MIB);
	bool write = p == SEQ_WRITE_1M_ALLOC || p == SEQ_WRITE_4K || p == RAND_WRITE_4K ||
		     p == RAND_WRITE_4K_ALLOC;
	int ret = 0;
	double t0;

	memset(buf, 0xa5, MIB);
	if (p != SEQ_WRITE_1M_ALLOC && p != RAND_WRITE_4K_ALLOC)
		for (uint64_t off = 0; off < size && !ret; off += MIB)
			ret = blk_pwrite(b, buf, MIB, off);
	if (!ret)
		ret = blk_flush(b);
	t0 = now();
	for (uint64_t i = 0; !ret; i++) {
		uint64_t off;

		if (bs == MIB) {
			off = i * MIB;
			if (off >= size)
				break;
		} else {
			if (i >= ops)
				break;
			if (p == SEQ_WRITE_4K || p == SEQ_READ_4K)
				off = (i * 4096) % size;
			else
				off = (rnd(&seed) % (size / 4096)) * 4096;
		}
		ret = write ? blk_pwrite(b, buf, bs, off) : blk_pread(b, buf, bs, off);
		bytes += bs;
	}
	/* Flushing is left out of the time, like qemu-img bench with cache=writeback. */
	double t = now() - t0;

	if (!ret && write)
		ret = blk_flush(b);

	if (ret) {
		fprintf(stderr, "qcow2_bench: %s on %s: %s\n", names[p], blk_format_name(fmt),
			strerror(-ret));
		exit(1);
	}
	blk_close(b);
	free(buf);
	return (double)bytes / 1e6 / t;
}

int main(int argc, char **argv)
{
	const char *dir = "/tmp";
	uint64_t size = 256 * MIB, ops = 20000;
	int c;

	while ((c = getopt(argc, argv, "d:s:n:")) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 's':
			size = strtoull(optarg, NULL, 0) * MIB;
			break;
		case 'n':
			ops = strtoull(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: qcow2_bench [-d DIR] [-s SIZE_MB] [-n OPS_4K]\n");
			return 2;
		}
	}
	if (size < MIB)
		size = MIB;
	printf("%-22s %12s %12s %8s\n", "test", "raw MB/s", "qcow2 MB/s", "ratio");
	for (int p = 0; p < NR_PATTERNS; p++) {
		double raw = run(dir, BLK_FORMAT_RAW, p, size, ops);
		double q = run(dir, BLK_FORMAT_QCOW2, p, size, ops);

		printf("%-22s %12.1f %12.1f %8.2f\n", names[p], raw, q, q / raw);
		fprintf(stderr, "RESULT %s raw %.1f\nRESULT %s qcow2 %.1f\n", names[p], raw,
			names[p], q);
	}
	for (int i = 0; i < 2; i++) {
		char path[4200];

		snprintf(path, sizeof(path), "%s/bench.%s", dir, i ? "qcow2" : "raw");
		unlink(path);
	}
	return 0;
}
