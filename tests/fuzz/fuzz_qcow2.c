// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the qcow2 driver: the input is an image file. It is opened read-write
 * (without its backing file), read in a few places, written, discarded, zeroed and checked. The
 * file lives in a memfd, so writes never touch the disk.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/block.h"
#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(struct blk *b, const uint8_t *data, size_t size)
{
	static uint8_t buf[65536];
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
		blk_pwrite(b, buf, len < 3000 ? len : 3000, offs[i]);
		blk_write_zeroes(b, offs[i], len);
		blk_discard(b, offs[i], len);
		blk_pread(b, buf, len, offs[i]);
	}
	blk_check(b, 0, &r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct blk *b;
	int fd;

	log_max_level = LOG_ERROR;
	fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (!blk_open(path, BLK_FORMAT_QCOW2, BLK_OPEN_RDWR | BLK_OPEN_NO_BACKING, &b)) {
			exercise(b, data, size);
			blk_close(b);
		}
	}
	close(fd);
	return 0;
}
