/* SPDX-License-Identifier: MIT */
/* Small helpers shared by every module: sizes, alignment, number parsing, file reading. */
#ifndef VIREO_COMMON_UTIL_H
#define VIREO_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define KIB (1024ULL)
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a)-1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Parses "256M", "1G", "4096K", "1048576" (bytes, binary suffixes K/M/G/T, optional "iB"/"B").
 * A bare number without suffix is taken in units of default_unit. Returns 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t default_unit, uint64_t *out);
/* Parses a decimal or 0x-prefixed unsigned integer that must fill the whole string. */
int parse_u64(const char *s, uint64_t *out);
/* The value of one hexadecimal digit (either case), or -1. */
int hex_digit(char c);

/* Opens a regular file for reading and returns its size. Returns the fd or -errno: -EISDIR for a
 * directory, -EINVAL for another non-regular file, -EFBIG when larger than max_size. */
int open_regular(const char *path, size_t max_size, size_t *size);

/* Listens on a unix stream socket at path (non-blocking, close-on-exec), created with mode 0600.
 * A stale socket left by an earlier run of this user (nobody listens on it) is replaced; nothing
 * else is removed: -EEXIST for a file that is not a socket, -EPERM for another user's socket,
 * -EADDRINUSE when a program listens there. Returns the fd or -errno (-ENAMETOOLONG for a path
 * that does not fit). unix_listen_strerror() words those errors for the user. */
int unix_listen(const char *path, int backlog);
const char *unix_listen_strerror(int err);
/* Who is at the other end of a connected unix socket. Returns 0 when it may use this process's
 * sockets (the same user or root), -EACCES when not, or -errno. */
int unix_peer_check(int fd, uid_t *uid, pid_t *pid);

/* Reads a whole file into a malloc'd buffer the caller frees. Returns 0 or -errno; files larger
 * than max_size give -EFBIG. */
int read_file(const char *path, size_t max_size, uint8_t **data, size_t *size);

/* Maps a whole regular file read-only (MAP_PRIVATE); only the pages used are read. Returns 0 or
 * -errno (-EFBIG above max_size, -EISDIR for a directory). An empty file gives *data == NULL. */
int map_file(const char *path, size_t max_size, const uint8_t **data, size_t *size);
void unmap_file(const uint8_t *data, size_t size);

/* 8-bit checksum byte that makes the bytes of a table sum to zero (ACPI, MP table). */
uint8_t checksum8(const void *data, size_t len);

/* Clock id (CLOCK_MONOTONIC, CLOCK_REALTIME) in nanoseconds, and the monotonic clock in ms. */
static inline int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline double mono_ms(void)
{
	return (double)clock_ns(CLOCK_MONOTONIC) / 1e6;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

#endif
