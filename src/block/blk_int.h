/* SPDX-License-Identifier: MIT */
/* Internal interface between the generic block layer (block.c, aio.c) and the format drivers. */
#ifndef VIREO_BLOCK_BLK_INT_H
#define VIREO_BLOCK_BLK_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block.h"

#define BLK_SECTOR 512ULL

struct blk_image;

/* Format driver. Every hook may be NULL except open, close, preadv. Offsets and lengths have been
 * checked against the virtual size by the caller. */
struct blk_driver {
	const char *name;
	enum blk_format format;
	/* Reads the header of img->fd and fills size, backing_name, backing_format. */
	int (*open)(struct blk_image *img);
	void (*close)(struct blk_image *img);
	int (*preadv)(struct blk_image *img, const struct iovec *iov, int iovcnt, uint64_t off);
	int (*pwritev)(struct blk_image *img, const struct iovec *iov, int iovcnt, uint64_t off);
	int (*flush)(struct blk_image *img);
	int (*discard)(struct blk_image *img, uint64_t off, uint64_t len);
	int (*write_zeroes)(struct blk_image *img, uint64_t off, uint64_t len);
	int (*block_status)(struct blk_image *img, uint64_t off, uint64_t len, uint64_t *pnum);
	/* Flushes and leaves the file consistent (qcow2: dirty bit cleared) before it becomes a
	 * read-only backing file. */
	int (*make_read_only)(struct blk_image *img);
	int (*check)(struct blk_image *img, unsigned int flags, struct blk_check_result *res);
	void (*info)(struct blk_image *img, struct blk_image_info *info);
};

/* One file of a chain. Owns its fd, its path and its backing image. */
struct blk_image {
	const struct blk_driver *drv;
	void *priv;
	int fd;
	char *path;
	uint64_t size;
	bool read_only;
	/* Raw by probing and writable: writes must not plant a qcow2 magic at offset 0. */
	bool guard_magic;
	/* Set by the driver's open. */
	char *backing_name;
	enum blk_format backing_format;
	struct blk_image *backing;
};

struct blk_aio;

struct blk {
	/* Read-held by every request, write-held while the top image is switched. */
	pthread_rwlock_t lock;
	struct blk_image *top;
	struct blk_aio *aio;
	pthread_mutex_t aio_init_lock;
	/* Serialises writes that touch the first bytes of a guard_magic image. */
	pthread_mutex_t guard_lock;
	bool guard_warned;
};

/* True when a write at off must go through blk_pwritev()'s magic check (not io_uring). */
static inline bool blk_write_guarded(const struct blk *b, uint64_t off)
{
	return b->top->guard_magic && off < 4;
}

extern const struct blk_driver blk_raw_driver;
extern const struct blk_driver blk_qcow2_driver;

/* Reads len bytes at off of img into iov (which holds exactly len bytes), with zeros past the
 * image's end; NULL img reads zeros. Used for backing files, whose size may differ. */
int blk_image_read(struct blk_image *img, const struct iovec *iov, int iovcnt, uint64_t off);
void blk_image_close(struct blk_image *img);

/* iovec helpers. */
size_t iov_size(const struct iovec *iov, int iovcnt);
/* Fills dst (room for iovcnt entries) with the part [off, off + len) of iov; returns its count. */
int iov_slice(const struct iovec *iov, int iovcnt, size_t off, size_t len, struct iovec *dst);
void iov_memset(const struct iovec *iov, int iovcnt, int c);
bool buf_is_zero(const void *buf, size_t len);

/* Full pread/pwrite that retry on short transfers and EINTR; 0 or -errno (-EIO on a read past
 * the end of file unless zero_past_eof). */
int blk_full_pread(int fd, void *buf, size_t len, uint64_t off, bool zero_past_eof);
int blk_full_pwrite(int fd, const void *buf, size_t len, uint64_t off);
int blk_full_preadv(int fd, const struct iovec *iov, int iovcnt, uint64_t off, bool zero_past_eof);
int blk_full_pwritev(int fd, const struct iovec *iov, int iovcnt, uint64_t off);

/* Logs an error and keeps it for blk_last_error() (per thread). */
void blk_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs one request synchronously (the thread pool and fallback paths). */
int blk_execute(struct blk *b, struct blk_req *req);
void blk_aio_destroy(struct blk *b);

/* qcow2 creation, called by blk_create() and the overlay switch. */
int qcow2_create(const char *path, const struct blk_create_opts *opts);

#endif
