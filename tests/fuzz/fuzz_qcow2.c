// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the block layer's image parsing: qcow2 (and raw, through probing) with
 * backing chains. The input is a flags byte followed by up to three image files separated by
 * FZ_SEP, written to the files "a", "b" and "c" of a private directory in /dev/shm (tmpfs, so
 * nothing touches a disk), where a relative backing file name "b" resolves. Flags: bit 0 probes
 * the top image's format (else qcow2), bit 1 follows the backing chain (else NO_BACKING), bit 2
 * opens read-only. The image is then read, written, zeroed and discarded in a few places
 * (one offset steered by the input) and checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "fuzz_common.h"

#define MAX_IMAGES 3
#define IO_MAX 16384

static char dir[64];

static void exercise(struct blk *b, const uint8_t *data, size_t size, bool rw)
{
	static uint8_t buf[IO_MAX];
	uint64_t disk = blk_size(b), offs[4] = { 0, disk / 2, disk > 4096 ? disk - 4096 : 0, 0 };
	struct blk_check_result r;
	uint64_t pnum;

	/* An offset steered by the input, so deep L1/L2 entries get used. */
	if (size >= 8 && disk) {
		memcpy(&offs[3], data + size - 8, 8);
		offs[3] = (offs[3] % disk) & ~511ULL;
	}
	for (int i = 0; i < 4; i++) {
		uint64_t len = disk - offs[i] < sizeof(buf) ? disk - offs[i] : sizeof(buf);

		if (!len)
			continue;
		blk_pread(b, buf, len, offs[i]);
		blk_block_status(b, offs[i], len, &pnum);
		if (!rw)
			continue;
		blk_pwrite(b, buf, len < 3000 ? len : 3000, offs[i]);
		blk_write_zeroes(b, offs[i], len);
		blk_discard(b, offs[i], len);
		blk_pread(b, buf, len, offs[i]);
	}
	for (int depth = 0; depth < blk_chain_length(b); depth++) {
		static struct blk_image_info info;

		blk_get_info(b, depth, &info);
	}
	blk_check(b, 0, &r);
}

static int put_file(const char *name, const uint8_t *p, size_t len)
{
	char path[96];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, p, len) != (ssize_t)len)
		ret = -EIO;
	close(fd);
	return ret;
}

static const char *const names[MAX_IMAGES] = { "a", "b", "c" };

static void cleanup(void)
{
	char path[96];

	for (unsigned int i = 0; i < MAX_IMAGES; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *part[MAX_IMAGES];
	size_t len[MAX_IMAGES];
	unsigned int n, flags;
	char path[96];
	struct blk *b;

	if (!dir[0]) {
		fz_quiet();
		snprintf(dir, sizeof(dir), "/dev/shm/vireo-fuzz-qcow2-XXXXXX");
		if (!mkdtemp(dir))
			abort();
		atexit(cleanup);
	}
	if (size < 1)
		return 0;
	flags = data[0];
	n = fz_split(data + 1, size - 1, MAX_IMAGES, part, len);
	for (unsigned int i = 0; i < MAX_IMAGES; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
		if (i < n && put_file(names[i], part[i], len[i]))
			return 0;
	}
	snprintf(path, sizeof(path), "%s/a", dir);
	if (!blk_open(path, flags & 1 ? BLK_FORMAT_AUTO : BLK_FORMAT_QCOW2,
		      (flags & 4 ? 0 : BLK_OPEN_RDWR) | (flags & 2 ? 0 : BLK_OPEN_NO_BACKING),
		      &b)) {
		exercise(b, data, size, !(flags & 4));
		blk_close(b);
	}
	return 0;
}
