/* SPDX-License-Identifier: MIT */
/* A byte writer over caller-owned storage for building guest tables (ACPI, MP): appends
 * little-endian values and, when the storage is too small, stops and remembers it in overflow
 * instead of writing past the end. */
#ifndef VIREO_COMMON_BYTEBUF_H
#define VIREO_COMMON_BYTEBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct bytebuf {
	uint8_t *data;
	size_t len;
	size_t cap;
	bool overflow;
};

/* A bytebuf writing into the array arr (not a pointer). */
#define BYTEBUF_ON(arr)                      \
	(struct bytebuf)                     \
	{                                    \
		(arr), 0, sizeof(arr), false \
	}

static inline void bytebuf_put(struct bytebuf *b, const void *p, size_t n)
{
	if (b->overflow || n > b->cap - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static inline void bytebuf_put8(struct bytebuf *b, uint8_t v)
{
	bytebuf_put(b, &v, 1);
}

static inline void bytebuf_put16(struct bytebuf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	bytebuf_put(b, x, 2);
}

static inline void bytebuf_put32(struct bytebuf *b, uint32_t v)
{
	bytebuf_put16(b, (uint16_t)v);
	bytebuf_put16(b, (uint16_t)(v >> 16));
}

static inline void bytebuf_put64(struct bytebuf *b, uint64_t v)
{
	bytebuf_put32(b, (uint32_t)v);
	bytebuf_put32(b, (uint32_t)(v >> 32));
}

#endif
