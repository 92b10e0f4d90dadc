// SPDX-License-Identifier: MIT
/* Generic block layer: format probing, backing chains, request dispatch, the overlay switch. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk_int.h"
#include "../common/log.h"
#include "../common/util.h"

static const uint8_t qcow2_magic[4] = { 'Q', 'F', 'I', 0xfb };

static __thread char last_error[512];

void blk_set_error(const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	n = strlen(last_error);
	while (n && last_error[n - 1] == '\n')
		last_error[--n] = '\0';
	pr_err("%s\n", last_error);
}

const char *blk_last_error(void)
{
	return last_error;
}

const char *blk_format_name(enum blk_format fmt)
{
	switch (fmt) {
	case BLK_FORMAT_RAW:
		return "raw";
	case BLK_FORMAT_QCOW2:
		return "qcow2";
	default:
		return "auto";
	}
}

int blk_parse_format(const char *name, enum blk_format *fmt)
{
	if (!strcmp(name, "raw"))
		*fmt = BLK_FORMAT_RAW;
	else if (!strcmp(name, "qcow2"))
		*fmt = BLK_FORMAT_QCOW2;
	else
		return -EINVAL;
	return 0;
}

size_t iov_size(const struct iovec *iov, int iovcnt)
{
	size_t n = 0;

	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	return n;
}

int iov_slice(const struct iovec *iov, int iovcnt, size_t off, size_t len, struct iovec *dst)
{
	int n = 0;

	for (int i = 0; i < iovcnt && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t l = MIN(iov[i].iov_len - off, len);

		dst[n].iov_base = (char *)iov[i].iov_base + off;
		dst[n].iov_len = l;
		n++;
		len -= l;
		off = 0;
	}
	return n;
}

void iov_memset(const struct iovec *iov, int iovcnt, int c)
{
	for (int i = 0; i < iovcnt; i++)
		memset(iov[i].iov_base, c, iov[i].iov_len);
}

bool buf_is_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	/* Compare the buffer with itself shifted by one byte after checking the first byte. */
	return len == 0 || (p[0] == 0 && !memcmp(p, p + 1, len - 1));
}

int blk_full_pread(int fd, void *buf, size_t len, uint64_t off, bool zero_past_eof)
{
	struct iovec iov = { buf, len };

	return blk_full_preadv(fd, &iov, 1, off, zero_past_eof);
}

int blk_full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { (void *)buf, len };

	return blk_full_pwritev(fd, &iov, 1, off);
}

/* Advances an iovec array in place by n bytes. */
static void iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
	while (n && *iovcnt) {
		if (n < (*iov)->iov_len) {
			(*iov)->iov_base = (char *)(*iov)->iov_base + n;
			(*iov)->iov_len -= n;
			return;
		}
		n -= (*iov)->iov_len;
		(*iov)++;
		(*iovcnt)--;
	}
}

static int full_rw(int fd, const struct iovec *iov0, int iovcnt0, uint64_t off, bool write,
		   bool zero_past_eof)
{
	struct iovec stack[16], *copy = stack, *iov;
	int iovcnt = iovcnt0, ret = 0;

	if (iovcnt > 16) {
		copy = malloc(sizeof(*copy) * (size_t)iovcnt);
		if (!copy)
			return -ENOMEM;
	}
	memcpy(copy, iov0, sizeof(*copy) * (size_t)iovcnt);
	iov = copy;
	while (iovcnt) {
		int cnt = iovcnt > IOV_MAX ? IOV_MAX : iovcnt;
		ssize_t n = write ? pwritev(fd, iov, cnt, (off_t)off)
				  : preadv(fd, iov, cnt, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (n == 0) {
			if (write || !zero_past_eof) {
				ret = -EIO;
				break;
			}
			iov_memset(iov, iovcnt, 0);
			break;
		}
		off += (uint64_t)n;
		iov_advance(&iov, &iovcnt, (size_t)n);
		while (iovcnt && iov->iov_len == 0) {
			iov++;
			iovcnt--;
		}
	}
	if (copy != stack)
		free(copy);
	return ret;
}

int blk_full_preadv(int fd, const struct iovec *iov, int iovcnt, uint64_t off, bool zero_past_eof)
{
	return full_rw(fd, iov, iovcnt, off, false, zero_past_eof);
}

int blk_full_pwritev(int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return full_rw(fd, iov, iovcnt, off, true, false);
}

int blk_image_read(struct blk_image *img, const struct iovec *iov, int iovcnt, uint64_t off)
{
	size_t len = iov_size(iov, iovcnt);
	struct iovec stack[8], *part = stack;
	int n, ret;

	if (!img || off >= img->size) {
		iov_memset(iov, iovcnt, 0);
		return 0;
	}
	if (off + len <= img->size)
		return img->drv->preadv(img, iov, iovcnt, off);

	/* The backing file is shorter than the overlay: read what it has, zero the rest. */
	if (iovcnt > 8) {
		part = malloc(sizeof(*part) * (size_t)iovcnt);
		if (!part)
			return -ENOMEM;
	}
	n = iov_slice(iov, iovcnt, 0, img->size - off, part);
	ret = img->drv->preadv(img, part, n, off);
	if (!ret) {
		n = iov_slice(iov, iovcnt, img->size - off, len - (img->size - off), part);
		iov_memset(part, n, 0);
	}
	if (part != stack)
		free(part);
	return ret;
}

void blk_image_close(struct blk_image *img)
{
	while (img) {
		struct blk_image *next = img->backing;

		if (img->drv)
			img->drv->close(img);
		if (img->fd >= 0)
			close(img->fd);
		free(img->path);
		free(img->backing_name);
		free(img);
		img = next;
	}
}

static int probe_format(int fd, enum blk_format *fmt)
{
	uint8_t magic[4];
	ssize_t n = pread(fd, magic, sizeof(magic), 0);

	if (n < 0)
		return -errno;
	*fmt = (n == 4 && !memcmp(magic, qcow2_magic, 4)) ? BLK_FORMAT_QCOW2 : BLK_FORMAT_RAW;
	return 0;
}

/* What probing may produce. Whoever can write a raw image's first sector (its guest) chooses
 * what it probes as, so a probed header is not allowed to name host files on its own. */
static int probe_policy(struct blk_image *img)
{
	if (img->drv->format == BLK_FORMAT_QCOW2 && img->backing_name &&
	    img->backing_format == BLK_FORMAT_AUTO) {
		blk_set_error("%s: format probed as qcow2 and it names backing file '%s' without a "
			      "backing format: refused, as a guest of a raw image can write such a "
			      "header. Give the format explicitly (format=qcow2, -f qcow2) if this "
			      "image is trusted\n",
			      img->path, img->backing_name);
		return -EPERM;
	}
	if (img->drv->format == BLK_FORMAT_RAW && !img->read_only) {
		pr_warn("%s: no format given, probed as raw: writes that would make it look like a "
			"qcow2 image are refused. Give format=raw (-f raw) to lift this\n",
			img->path);
		img->guard_magic = true;
	}
	return 0;
}

/* Opens one file (not its backing file). */
static int image_open_one(const char *path, enum blk_format fmt, bool rw, struct blk_image **out)
{
	bool probed = fmt == BLK_FORMAT_AUTO;
	struct blk_image *img;
	struct stat st;
	int ret;

	img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->fd = -1;
	img->read_only = !rw;
	img->path = strdup(path);
	if (!img->path) {
		ret = -ENOMEM;
		goto err;
	}
	img->fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (img->fd < 0) {
		ret = -errno;
		blk_set_error("%s: %s: %s\n", __func__, path, strerror(errno));
		goto err;
	}
	if (fstat(img->fd, &st) < 0) {
		ret = -errno;
		goto err;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		blk_set_error("%s: %s: not a regular file or block device\n", __func__, path);
		ret = -EINVAL;
		goto err;
	}
	if (probed) {
		ret = probe_format(img->fd, &fmt);
		if (ret)
			goto err;
	}
	img->drv = fmt == BLK_FORMAT_QCOW2 ? &blk_qcow2_driver : &blk_raw_driver;
	ret = img->drv->open(img);
	if (ret) {
		img->drv = NULL;
		goto err;
	}
	if (probed) {
		ret = probe_policy(img);
		if (ret)
			goto err;
	}
	*out = img;
	return 0;
err:
	blk_image_close(img);
	return ret;
}

/* A relative backing name is relative to the directory of the image that names it. */
static char *backing_path(const char *overlay, const char *name)
{
	char *dir, *copy, *res = NULL;

	if (name[0] == '/')
		return strdup(name);
	copy = strdup(overlay);
	if (!copy)
		return NULL;
	dir = dirname(copy);
	if (asprintf(&res, "%s/%s", dir, name) < 0)
		res = NULL;
	free(copy);
	return res;
}

/* Directories (real paths) whose trees may hold backing files, for every open. */
#define ALLOWED_DIRS_MAX 32
static pthread_mutex_t allowed_lock = PTHREAD_MUTEX_INITIALIZER;
static char *allowed_dirs[ALLOWED_DIRS_MAX];
static int nallowed;

int blk_allow_backing_dir(const char *dir)
{
	char *real = realpath(dir, NULL);
	struct stat st;
	int ret = 0;

	if (!real || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
		ret = real ? -ENOTDIR : -errno;
		blk_set_error("backing directory %s: %s\n", dir, strerror(-ret));
		free(real);
		return ret;
	}
	pthread_mutex_lock(&allowed_lock);
	for (int i = 0; i < nallowed; i++)
		if (!strcmp(allowed_dirs[i], real))
			goto out;
	if (nallowed == ALLOWED_DIRS_MAX) {
		ret = -ENOSPC;
		goto out;
	}
	allowed_dirs[nallowed++] = real;
	real = NULL;
out:
	pthread_mutex_unlock(&allowed_lock);
	free(real);
	return ret;
}

/* Whether real path p lies in the tree of real directory dir. */
static bool path_under(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	if (!strcmp(dir, "/"))
		return true;
	return !strncmp(p, dir, n) && p[n] == '/';
}

/* The rule of blk_open(): real path of the backing file inside the top image's directory tree
 * (root) or an allowed one. Returns the real path to open, or NULL with *err set. */
static char *backing_check(const char *root, const char *path, const char *named_by, int *err)
{
	char *real = realpath(path, NULL);
	bool ok;

	if (!real) {
		*err = -errno;
		blk_set_error("%s: cannot open backing file %s: %s\n", named_by, path,
			      strerror(errno));
		return NULL;
	}
	ok = root && path_under(real, root);
	pthread_mutex_lock(&allowed_lock);
	for (int i = 0; i < nallowed && !ok; i++)
		ok = path_under(real, allowed_dirs[i]);
	pthread_mutex_unlock(&allowed_lock);
	if (ok)
		return real;
	blk_set_error(
		"%s: backing file %s (%s) is outside %s and every allowed directory: "
		"refused. Allow its directory with --backing-dir DIR if the image is trusted\n",
		named_by, path, real, root ? root : "the top image's directory");
	free(real);
	*err = -EPERM;
	return NULL;
}

/* Real path of the directory of the top image as the caller named it. */
static char *top_root(const char *path)
{
	char *copy = strdup(path), *real = NULL;

	if (copy)
		real = realpath(dirname(copy), NULL);
	free(copy);
	return real;
}

static int open_chain(struct blk_image *top, bool any)
{
	struct stat seen[BLK_MAX_CHAIN];
	struct blk_image *img = top;
	char *root = top_root(top->path);
	int depth = 0, ret = 0;

	for (;;) {
		struct stat st;

		if (fstat(img->fd, &st) < 0) {
			ret = -errno;
			break;
		}
		for (int i = 0; i < depth && !ret; i++) {
			if (seen[i].st_dev == st.st_dev && seen[i].st_ino == st.st_ino) {
				blk_set_error("%s: %s: backing chain loops back to an image "
					      "already in it\n",
					      __func__, top->path);
				ret = -ELOOP;
			}
		}
		seen[depth++] = st;
		if (ret || !img->backing_name)
			break;
		if (depth >= BLK_MAX_CHAIN) {
			blk_set_error("%s: %s: backing chain longer than %d images\n", __func__,
				      top->path, BLK_MAX_CHAIN);
			ret = -ELOOP;
			break;
		}
		char *path = backing_path(img->path, img->backing_name), *real = NULL;

		if (!path) {
			ret = -ENOMEM;
			break;
		}
		if (!any)
			real = backing_check(root, path, img->path, &ret);
		if (!ret)
			ret = image_open_one(real ? real : path, img->backing_format, false,
					     &img->backing);
		if (!ret && real) {
			/* Keep the name as composed, for messages and relative names below. */
			free(img->backing->path);
			img->backing->path = path;
			path = NULL;
		}
		if (ret && (any || real)) {
			char why[sizeof(last_error)];

			snprintf(why, sizeof(why), "%s", last_error);
			blk_set_error("%s: %s: cannot open backing file %s: %s\n", __func__,
				      img->path, path ? path : real, why);
		}
		free(path);
		free(real);
		if (ret)
			break;
		img = img->backing;
	}
	free(root);
	return ret;
}

int blk_open(const char *path, enum blk_format fmt, unsigned int flags, struct blk **out)
{
	struct blk *b;
	int ret;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	pthread_rwlock_init(&b->lock, NULL);
	pthread_mutex_init(&b->aio_init_lock, NULL);
	pthread_mutex_init(&b->guard_lock, NULL);
	ret = image_open_one(path, fmt, flags & BLK_OPEN_RDWR, &b->top);
	if (ret)
		goto err;
	if (!(flags & BLK_OPEN_NO_BACKING)) {
		ret = open_chain(b->top, flags & BLK_OPEN_ANY_BACKING);
		if (ret)
			goto err;
	}
	*out = b;
	return 0;
err:
	blk_image_close(b->top);
	pthread_rwlock_destroy(&b->lock);
	pthread_mutex_destroy(&b->aio_init_lock);
	pthread_mutex_destroy(&b->guard_lock);
	free(b);
	return ret;
}

int blk_allow_chain_dirs(const char *path, enum blk_format fmt)
{
	struct blk *b;
	int ret = blk_open(path, fmt, BLK_OPEN_ANY_BACKING, &b);

	if (ret)
		return ret;
	for (struct blk_image *img = b->top; img && !ret; img = img->backing) {
		char *dir = top_root(img->path);

		ret = dir ? blk_allow_backing_dir(dir) : -ENOENT;
		free(dir);
	}
	blk_close(b);
	return ret;
}

int blk_close(struct blk *b)
{
	int ret = 0;

	if (!b)
		return 0;
	blk_drain(b);
	blk_aio_destroy(b);
	if (!b->top->read_only)
		ret = blk_flush(b);
	blk_image_close(b->top);
	pthread_rwlock_destroy(&b->lock);
	pthread_mutex_destroy(&b->aio_init_lock);
	pthread_mutex_destroy(&b->guard_lock);
	free(b);
	return ret;
}

uint64_t blk_size(struct blk *b)
{
	uint64_t s;

	pthread_rwlock_rdlock(&b->lock);
	s = b->top->size;
	pthread_rwlock_unlock(&b->lock);
	return s;
}

bool blk_is_read_only(struct blk *b)
{
	return b->top->read_only;
}

enum blk_format blk_format(struct blk *b)
{
	return b->top->drv->format;
}

static int check_range(struct blk_image *img, uint64_t off, uint64_t len, bool write)
{
	if (write && img->read_only)
		return -EROFS;
	if (off > img->size || len > img->size - off)
		return -EINVAL;
	return 0;
}

int blk_preadv(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t offset)
{
	int ret;

	pthread_rwlock_rdlock(&b->lock);
	ret = check_range(b->top, offset, iov_size(iov, iovcnt), false);
	if (!ret)
		ret = b->top->drv->preadv(b->top, iov, iovcnt, offset);
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

/* A write to the first bytes of a probed raw image (blk_write_guarded()): refused when the image
 * would then start with the qcow2 magic. The lock keeps two writes from building it together. */
static int guarded_pwritev(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t offset)
{
	uint8_t head[4] = { 0 };
	struct iovec part[4];
	size_t len = iov_size(iov, iovcnt);
	int n, ret;

	pthread_mutex_lock(&b->guard_lock);
	ret = blk_full_pread(b->top->fd, head, sizeof(head), 0, true);
	if (ret)
		goto out;
	n = iov_slice(iov, iovcnt, 0, MIN(len, sizeof(head) - offset), part);
	for (int i = 0, o = (int)offset; i < n; o += (int)part[i].iov_len, i++)
		memcpy(head + o, part[i].iov_base, part[i].iov_len);
	if (!memcmp(head, qcow2_magic, sizeof(head)) && b->top->size >= sizeof(head)) {
		if (!b->guard_warned)
			pr_warn("%s: write of a qcow2 header to offset 0 refused: the format was "
				"probed (give format=raw to allow it)\n",
				b->top->path);
		b->guard_warned = true;
		ret = -EPERM;
		goto out;
	}
	ret = b->top->drv->pwritev(b->top, iov, iovcnt, offset);
out:
	pthread_mutex_unlock(&b->guard_lock);
	return ret;
}

int blk_pwritev(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t offset)
{
	int ret;

	pthread_rwlock_rdlock(&b->lock);
	ret = check_range(b->top, offset, iov_size(iov, iovcnt), true);
	if (!ret && blk_write_guarded(b, offset))
		ret = guarded_pwritev(b, iov, iovcnt, offset);
	else if (!ret)
		ret = b->top->drv->pwritev(b->top, iov, iovcnt, offset);
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int blk_pread(struct blk *b, void *buf, size_t len, uint64_t offset)
{
	struct iovec iov = { buf, len };

	return blk_preadv(b, &iov, 1, offset);
}

int blk_pwrite(struct blk *b, const void *buf, size_t len, uint64_t offset)
{
	struct iovec iov = { (void *)buf, len };

	return blk_pwritev(b, &iov, 1, offset);
}

int blk_flush(struct blk *b)
{
	int ret = 0;

	pthread_rwlock_rdlock(&b->lock);
	if (!b->top->read_only)
		ret = b->top->drv->flush(b->top);
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int blk_discard(struct blk *b, uint64_t offset, uint64_t len)
{
	int ret;

	pthread_rwlock_rdlock(&b->lock);
	ret = check_range(b->top, offset, len, true);
	if (!ret && b->top->drv->discard)
		ret = b->top->drv->discard(b->top, offset, len);
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int blk_write_zeroes(struct blk *b, uint64_t offset, uint64_t len)
{
	int ret;

	pthread_rwlock_rdlock(&b->lock);
	ret = check_range(b->top, offset, len, true);
	if (!ret)
		ret = b->top->drv->write_zeroes(b->top, offset, len);
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int blk_block_status(struct blk *b, uint64_t offset, uint64_t len, uint64_t *pnum)
{
	int ret;

	pthread_rwlock_rdlock(&b->lock);
	ret = check_range(b->top, offset, len, false);
	if (!ret && !len)
		ret = -EINVAL;
	if (!ret)
		ret = b->top->drv->block_status(b->top, offset, len, pnum);
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int blk_execute(struct blk *b, struct blk_req *req)
{
	switch (req->op) {
	case BLK_OP_READ:
		return blk_preadv(b, req->iov, req->iovcnt, req->offset);
	case BLK_OP_WRITE:
		return blk_pwritev(b, req->iov, req->iovcnt, req->offset);
	case BLK_OP_FLUSH:
		return blk_flush(b);
	case BLK_OP_DISCARD:
		return blk_discard(b, req->offset, req->len);
	case BLK_OP_WRITE_ZEROES:
		return blk_write_zeroes(b, req->offset, req->len);
	}
	return -EINVAL;
}

int blk_create(const char *path, const struct blk_create_opts *opts)
{
	int fd, ret = 0;

	if (opts->format == BLK_FORMAT_QCOW2)
		return qcow2_create(path, opts);
	if (opts->format != BLK_FORMAT_RAW || opts->backing) {
		blk_set_error("%s: raw images have no backing file\n", __func__);
		return -EINVAL;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, opts->mode ? opts->mode : 0644);
	if (fd < 0) {
		ret = -errno;
		blk_set_error("%s: %s: %s\n", __func__, path, strerror(errno));
		return ret;
	}
	if (ftruncate(fd, (off_t)opts->size) < 0)
		ret = -errno;
	close(fd);
	if (ret)
		unlink(path);
	return ret;
}

int blk_switch_to_overlay(struct blk *b, const char *new_path)
{
	struct blk_create_opts opts = { 0 };
	struct blk_image *ov = NULL, *old = b->top;
	char *abs;
	int ret;

	if (old->read_only)
		return -EROFS;
	abs = realpath(old->path, NULL);
	if (!abs)
		return -errno;
	opts.format = BLK_FORMAT_QCOW2;
	opts.size = old->size;
	opts.backing = abs;
	opts.backing_format = old->drv->format;
	opts.mode = 0600; /* the guest's writes from now on: for the VM's user only */

	blk_drain(b);
	pthread_rwlock_wrlock(&b->lock);
	ret = old->drv->flush(old);
	if (ret)
		goto err_unlock;
	ret = qcow2_create(new_path, &opts);
	if (ret)
		goto err_unlock;
	ret = image_open_one(new_path, BLK_FORMAT_QCOW2, true, &ov);
	if (ret)
		goto err_unlink;
	/* The old top keeps its fd and caches: it becomes the backing file as it is. */
	if (old->drv->make_read_only) {
		ret = old->drv->make_read_only(old);
		if (ret)
			goto err_close;
	}
	old->read_only = true;
	ov->backing = old;
	b->top = ov;
	pthread_rwlock_unlock(&b->lock);
	free(abs);
	return 0;
err_close:
	blk_image_close(ov);
err_unlink:
	unlink(new_path);
err_unlock:
	pthread_rwlock_unlock(&b->lock);
	free(abs);
	return ret;
}

int blk_chain_length(struct blk *b)
{
	int n = 0;

	for (struct blk_image *img = b->top; img; img = img->backing)
		n++;
	return n;
}

int blk_get_info(struct blk *b, int depth, struct blk_image_info *info)
{
	struct blk_image *img = b->top;
	struct stat st;

	for (int i = 0; i < depth && img; i++)
		img = img->backing;
	if (!img)
		return -ENOENT;
	memset(info, 0, sizeof(*info));
	snprintf(info->path, sizeof(info->path), "%s", img->path);
	info->format = img->drv->format;
	info->virtual_size = img->size;
	info->read_only = img->read_only;
	if (fstat(img->fd, &st) == 0) {
		info->disk_size = (uint64_t)st.st_blocks * 512;
		info->file_size = (uint64_t)st.st_size;
	}
	if (img->backing_name)
		snprintf(info->backing, sizeof(info->backing), "%s", img->backing_name);
	info->backing_format = img->backing_format;
	if (img->drv->info)
		img->drv->info(img, info);
	return 0;
}

int blk_check(struct blk *b, unsigned int flags, struct blk_check_result *res)
{
	memset(res, 0, sizeof(*res));
	if (!b->top->drv->check)
		return 0;
	if ((flags & BLK_CHECK_REPAIR_LEAKS) && b->top->read_only)
		return -EROFS;
	return b->top->drv->check(b->top, flags, res);
}
