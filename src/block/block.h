/* SPDX-License-Identifier: MIT */
/*
 * Disk images: raw and qcow2 (v2 read/write, v3 read/write), backing chains, and an asynchronous
 * request engine for devices.
 *
 * Concurrency: every synchronous call below may be made from any thread at the same time as any
 * other, except blk_close() and blk_switch_to_overlay(), which the owner calls once nothing else
 * uses the handle (after blk_drain()). qcow2 metadata (L1/L2/refcounts) is guarded by one mutex per
 * image file; guest data is read and written outside that mutex, except for writes that allocate
 * clusters, which hold it until their L2 entries are written. Host clusters being read or written
 * outside the mutex are not freed (by a concurrent discard) until that transfer ends. See
 * docs/images.md.
 *
 * All functions return 0 (or a count where stated) or -errno.
 */
#ifndef VIREO_BLOCK_BLOCK_H
#define VIREO_BLOCK_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct blk;

enum blk_format {
	BLK_FORMAT_AUTO = 0, /* probe: qcow2 magic, else raw (with the limits of blk_open()) */
	BLK_FORMAT_RAW,
	BLK_FORMAT_QCOW2,
};

/* blk_open() flags. */
#define BLK_OPEN_RDWR (1u << 0)
/* Do not open backing files; unallocated clusters of the top image then read as zeros. For
 * `vireo img info` on a broken chain and for the fuzzer. */
#define BLK_OPEN_NO_BACKING (1u << 1)
/* Backing files may be anywhere: the caller vouches for every header of the chain (see
 * blk_allow_backing_dir()). */
#define BLK_OPEN_ANY_BACKING (1u << 2)

/* Longest backing chain blk_open() follows, the top image included. */
#define BLK_MAX_CHAIN 64

/*
 * Opens path as fmt; the backing chain is opened read-only. On error a message saying what is
 * wrong has been logged with pr_err. Image headers are not trusted (docs/images.md, "Probing and
 * backing files"):
 * - fmt AUTO probes. A probed qcow2 image (top or backing) that names a backing file without
 *   recording its format is refused (-EPERM). A probed raw image opened read-write works, with a
 *   warning, but refuses (-EPERM) writes that would put a qcow2 magic at offset 0, so a guest
 *   cannot turn it into a qcow2 image for the next probing open.
 * - Backing files are resolved relative to the image naming them, then (symlinks resolved) must
 *   lie in the directory tree of the top image (path as given) or of a directory passed to
 *   blk_allow_backing_dir(); anything else is refused (-EPERM) unless BLK_OPEN_ANY_BACKING.
 */
int blk_open(const char *path, enum blk_format fmt, unsigned int flags, struct blk **out);
/* Allows backing files in the tree of dir (which must exist) for every later blk_open() of this
 * process. "/" allows every path. At most 32 directories. */
int blk_allow_backing_dir(const char *dir);
/* Allows the directories of every image of path's backing chain (opened with
 * BLK_OPEN_ANY_BACKING): for an image the caller vouches for, e.g. a snapshot's frozen image. */
int blk_allow_chain_dirs(const char *path, enum blk_format fmt);
/* The message of the last error blk_open(), blk_create() or blk_check() logged on this thread. */
const char *blk_last_error(void);
/* Drains asynchronous requests, flushes a writable image (clearing the qcow2 dirty bit), closes
 * every file of the chain and frees b. Returns the first error met while flushing. */
int blk_close(struct blk *b);

/* Virtual disk size in bytes. */
uint64_t blk_size(struct blk *b);
bool blk_is_read_only(struct blk *b);
/* Format of the top image of the chain. */
enum blk_format blk_format(struct blk *b);
const char *blk_format_name(enum blk_format fmt);
int blk_parse_format(const char *name, enum blk_format *fmt);

/* Synchronous I/O. The range must lie inside the disk (-EINVAL otherwise). Short transfers do
 * not happen: 0 means every byte was moved. */
int blk_preadv(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t offset);
int blk_pwritev(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t offset);
int blk_pread(struct blk *b, void *buf, size_t len, uint64_t offset);
int blk_pwrite(struct blk *b, const void *buf, size_t len, uint64_t offset);
/* Makes every completed write durable (fdatasync of the top image). */
int blk_flush(struct blk *b);
/* Hints that the range is unused. Whole qcow2 clusters are deallocated (reading zeros
 * afterwards, even over a backing file); partial clusters are left alone. Raw files get a hole. */
int blk_discard(struct blk *b, uint64_t offset, uint64_t len);
/* Makes the range read as zeros: zero flags on whole qcow2 v3 clusters, real zeros elsewhere. */
int blk_write_zeroes(struct blk *b, uint64_t offset, uint64_t len);

/* Allocation status of the top image for [offset, offset + len): returns one of these and sets
 * *pnum to the number of bytes (>= 1 sector, <= len) that share it. */
enum blk_status {
	BLK_STATUS_DATA = 1, /* allocated in this image */
	BLK_STATUS_ZERO, /* reads as zeros without reading data */
	BLK_STATUS_BACKING, /* comes from the backing file */
};
int blk_block_status(struct blk *b, uint64_t offset, uint64_t len, uint64_t *pnum);

/*
 * Snapshot support: creates a qcow2 image at new_path whose backing file is the current top
 * image (its absolute path, format recorded), marks the current top read-only and sends every
 * later write to the new overlay. The caller pauses the guest and the handle must be idle: this
 * call drains asynchronous requests itself, and must be made from the thread that calls
 * blk_aio_complete(). On error nothing changed (new_path is removed).
 */
int blk_switch_to_overlay(struct blk *b, const char *new_path);

/* Image creation. */
struct blk_create_opts {
	enum blk_format format; /* RAW or QCOW2 */
	uint64_t size; /* 0 with a backing file: the backing file's size */
	uint32_t cluster_size; /* qcow2: power of two, 512..2M; 0: 64 KiB */
	uint32_t refcount_bits; /* qcow2: 1..64, power of two; 0: 16 */
	const char *backing; /* qcow2: backing file name as stored, or NULL */
	enum blk_format backing_format; /* AUTO: probe the backing file and record the result */
	unsigned int mode; /* of the new file (before the umask); 0: 0644. Overlays: 0600 */
};
/* Fails with -EEXIST if path exists. */
int blk_create(const char *path, const struct blk_create_opts *opts);

/* Facts about one image file of a chain (index 0 is the top). */
struct blk_image_info {
	char path[4096];
	enum blk_format format;
	uint64_t virtual_size;
	uint64_t disk_size; /* bytes the file occupies on disk (st_blocks) */
	uint64_t file_size;
	uint32_t cluster_size; /* qcow2 only */
	uint32_t refcount_bits; /* qcow2 only */
	int qcow2_version;
	bool dirty, corrupt, read_only;
	char backing[1024]; /* as stored in the image, "" if none */
	enum blk_format backing_format; /* AUTO when not recorded */
};
/* Number of images in the chain of b (1 without backing file). */
int blk_chain_length(struct blk *b);
int blk_get_info(struct blk *b, int depth, struct blk_image_info *info);

/* Consistency check of the top image (qcow2: refcounts rebuilt from L1/L2/refcount tables). */
struct blk_check_result {
	uint64_t corruptions, leaks; /* after repair when repair was asked */
	uint64_t leaks_fixed, corruptions_fixed;
	uint64_t allocated_clusters, total_clusters;
	uint64_t image_end_offset;
};
#define BLK_CHECK_REPAIR_LEAKS (1u << 0)
int blk_check(struct blk *b, unsigned int flags, struct blk_check_result *res);

/*
 * Asynchronous requests. The engine of a handle is created on first use of blk_aio_fd() or
 * blk_submit(): io_uring for raw images when the kernel allows it, a small thread pool otherwise
 * (and for qcow2, whose requests run whole in the pool). VIREO_AIO=threads in the environment
 * forces the pool. Completions are signalled on an eventfd; the event loop polls it and calls
 * blk_aio_complete(), which runs the done callbacks on the calling thread.
 */
enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_DISCARD,
	BLK_OP_WRITE_ZEROES,
};

/* Owned by the caller until done() is called. iov and the buffers must stay valid until then. */
struct blk_req {
	enum blk_op op;
	uint64_t offset;
	uint64_t len; /* DISCARD and WRITE_ZEROES; READ/WRITE use iov */
	const struct iovec *iov;
	int iovcnt;
	/* Called from blk_aio_complete() with 0 or -errno. */
	void (*done)(struct blk_req *req, int ret);
	void *opaque;
	/* Engine-private. */
	struct blk_req *next;
	int ret;
};

/* eventfd (non-blocking) that becomes readable when completions are ready, or -errno. */
int blk_aio_fd(struct blk *b);
/* Queues req. Returns 0, or -errno when it could not be queued (done() will not be called). */
int blk_submit(struct blk *b, struct blk_req *req);
/* Runs done() for every finished request. Returns how many ran. */
int blk_aio_complete(struct blk *b);
/* Waits for every submitted request and runs its done(). Call from the blk_aio_complete()
 * thread. */
void blk_drain(struct blk *b);
/* "io_uring", "threads", or "none" before the engine exists. */
const char *blk_aio_engine_name(struct blk *b);

#endif
