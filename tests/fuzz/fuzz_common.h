/* SPDX-License-Identifier: MIT */
/* Helpers shared by the libFuzzer targets: a cursor that takes bytes from the fuzzer's input
 * (zeros once it runs out, so every input is a complete program), splitting an input into parts
 * at a separator, and quiet logging. */
#ifndef VIREO_TESTS_FUZZ_COMMON_H
#define VIREO_TESTS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	const uint8_t *p;
	size_t n, off;
};

static inline struct fz fz_init(const uint8_t *p, size_t n)
{
	return (struct fz){ p, n, 0 };
}

static inline size_t fz_left(const struct fz *f)
{
	return f->n - f->off;
}

static inline void fz_bytes(struct fz *f, void *dst, size_t len)
{
	size_t k = fz_left(f) < len ? fz_left(f) : len;

	memcpy(dst, f->p + f->off, k);
	memset((uint8_t *)dst + k, 0, len - k);
	f->off += k;
}

static inline uint8_t fz_u8(struct fz *f)
{
	uint8_t v;

	fz_bytes(f, &v, 1);
	return v;
}

static inline uint16_t fz_u16(struct fz *f)
{
	uint8_t b[2];

	fz_bytes(f, b, 2);
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t fz_u32(struct fz *f)
{
	return fz_u16(f) | (uint32_t)fz_u16(f) << 16;
}

static inline uint64_t fz_u64(struct fz *f)
{
	return fz_u32(f) | (uint64_t)fz_u32(f) << 32;
}

/* Parts of an input separated by FZ_SEP (seeds are made with the same separator). Returns the
 * number of parts (at most max); part i is [start[i], start[i] + len[i]). */
#define FZ_SEP "\xf0VIREO-FUZZ-SEP\x0f"
#define FZ_SEP_LEN (sizeof(FZ_SEP) - 1)

static inline unsigned int fz_split(const uint8_t *data, size_t size, unsigned int max,
				    const uint8_t **start, size_t *len)
{
	unsigned int n = 0;
	const uint8_t *p = data, *end = data + size;

	while (n < max) {
		const uint8_t *s =
			n + 1 < max ? memmem(p, (size_t)(end - p), FZ_SEP, FZ_SEP_LEN) : NULL;

		start[n] = p;
		len[n++] = s ? (size_t)(s - p) : (size_t)(end - p);
		if (!s)
			break;
		p = s + FZ_SEP_LEN;
	}
	return n;
}

/* Errors only (FUZZ_VERBOSE=1: everything, to see what an input does); run.sh passes
 * -close_fd_mask=2, which also hides those but keeps libFuzzer's and the sanitizers' reports. */
static inline void fz_quiet(void)
{
	log_max_level = getenv("FUZZ_VERBOSE") ? LOG_DEBUG : LOG_ERROR;
}

#endif
