// SPDX-License-Identifier: MIT
/* Raw images: the file is the disk. Holes are made with fallocate where the filesystem can. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk_int.h"
#include "../common/util.h"

static int raw_open(struct blk_image *img)
{
	struct stat st;

	if (fstat(img->fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		uint64_t size;

		if (ioctl(img->fd, BLKGETSIZE64, &size) < 0)
			return -errno;
		img->size = size;
	} else {
		img->size = (uint64_t)st.st_size;
	}
	return 0;
}

static void raw_close(struct blk_image *img)
{
	(void)img;
}

static int raw_preadv(struct blk_image *img, const struct iovec *iov, int iovcnt, uint64_t off)
{
	/* The file may have been truncated behind our back: past its end reads zeros. */
	return blk_full_preadv(img->fd, iov, iovcnt, off, true);
}

static int raw_pwritev(struct blk_image *img, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return blk_full_pwritev(img->fd, iov, iovcnt, off);
}

static int raw_flush(struct blk_image *img)
{
	return fdatasync(img->fd) < 0 ? -errno : 0;
}

static int raw_discard(struct blk_image *img, uint64_t off, uint64_t len)
{
	if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) <
		    0 &&
	    errno != EOPNOTSUPP)
		return -errno;
	return 0;
}

static int raw_write_zeroes(struct blk_image *img, uint64_t off, uint64_t len)
{
	static const uint8_t zero[64 * 1024];

	if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return 0;
	if (fallocate(img->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return 0;
	while (len) {
		size_t n = MIN(len, sizeof(zero));
		int ret = blk_full_pwrite(img->fd, zero, n, off);

		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

/* SEEK_DATA/SEEK_HOLE tell holes (zeros) from data; without them everything is data. */
static int raw_block_status(struct blk_image *img, uint64_t off, uint64_t len, uint64_t *pnum)
{
	off_t data = lseek(img->fd, (off_t)off, SEEK_DATA);

	if (data < 0 && errno == ENXIO) {
		*pnum = len;
		return BLK_STATUS_ZERO;
	}
	if (data < 0) {
		*pnum = len;
		return BLK_STATUS_DATA;
	}
	if ((uint64_t)data > off) {
		*pnum = MIN((uint64_t)data - off, len);
		return BLK_STATUS_ZERO;
	}
	off_t hole = lseek(img->fd, (off_t)off, SEEK_HOLE);

	if (hole < 0 || (uint64_t)hole <= off)
		*pnum = len;
	else
		*pnum = MIN((uint64_t)hole - off, len);
	return BLK_STATUS_DATA;
}

static int raw_make_read_only(struct blk_image *img)
{
	return raw_flush(img);
}

const struct blk_driver blk_raw_driver = {
	.name = "raw",
	.format = BLK_FORMAT_RAW,
	.open = raw_open,
	.close = raw_close,
	.preadv = raw_preadv,
	.pwritev = raw_pwritev,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.block_status = raw_block_status,
	.make_read_only = raw_make_read_only,
};
