/* SPDX-License-Identifier: MIT */
/* An output file with a size cap, for console logs a guest writes at will (docs/virtio.md). When
 * a write would take the file past the cap, the file is closed with a note, renamed to PATH.1
 * (replacing an older one) and PATH starts afresh with a note, so at most twice the cap is kept
 * and the newest output is always in PATH. If that rotation fails, writing stops (with a note
 * in the file and the log) rather than growing the file. Only regular files are capped: a FIFO
 * or a device takes everything. Not thread-safe: callers hold their own output lock. */
#ifndef VIREO_COMMON_CAPFILE_H
#define VIREO_COMMON_CAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAPFILE_DEFAULT_MAX (16ULL << 20)

struct capfile {
	int fd; /* -1: closed, or writing stopped */
	const char *path; /* borrowed: lives as long as the configuration */
	uint64_t max; /* 0: no cap */
	uint64_t size; /* bytes in the current file */
	bool regular;
	unsigned long rotations;
};

/* Opens path for writing, created with mode 0600: appended to when append is set, else
 * truncated. max is the cap in bytes (0: none). Returns 0 or -errno. */
int capfile_open(struct capfile *f, const char *path, uint64_t max, bool append);
/* Writes len bytes, rotating the file when it is full. Returns the bytes written (less than len
 * only when writing stopped), or -errno when none could be (the caller then drops output as
 * for a closed terminal; f->fd is -1 once writing stopped). */
long capfile_write(struct capfile *f, const uint8_t *buf, size_t len);
void capfile_close(struct capfile *f);

/* Splits an optional ",max-size=SIZE" off the end of a "PATH[,max-size=SIZE]" option value:
 * *path_len gets the length of PATH and *max the cap (CAPFILE_DEFAULT_MAX when not given; 0
 * means none). Returns 0 or -EINVAL for a malformed size. */
int capfile_parse_spec(const char *spec, size_t *path_len, uint64_t *max);

#endif
