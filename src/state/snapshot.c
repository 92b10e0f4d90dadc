// SPDX-License-Identifier: MIT
#include "snapshot.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../common/tlv.h"
#include "../common/util.h"

/* Header layout (little-endian):
 *   0 magic[8]  8 format_version  12 header_size  16 arch  20 flags  24 created_ns
 *  32 cpuid_fingerprint  40 ram_size  48 body_len  56 crc32  60 reserved
 * The CRC-32 covers the header (with the crc field zero) and the body. */
#define OFF_CRC 56

static uint32_t state_crc(const uint8_t *hdr, const uint8_t *body, size_t body_len)
{
	uint8_t h[STATE_HEADER_SIZE];
	uLong crc = crc32(0L, Z_NULL, 0);

	memcpy(h, hdr, sizeof(h));
	put_le32(h + OFF_CRC, 0);
	crc = crc32(crc, h, sizeof(h));
	while (body_len) {
		uInt n = body_len > (1u << 30) ? (1u << 30) : (uInt)body_len;

		crc = crc32(crc, body, n);
		body += n;
		body_len -= n;
	}
	return (uint32_t)crc;
}

int state_file_build(const struct state_header *h, const uint8_t *body, size_t body_len,
		     uint8_t **out, size_t *out_len)
{
	uint8_t *b = malloc(STATE_HEADER_SIZE + body_len);

	if (!b)
		return -ENOMEM;
	memset(b, 0, STATE_HEADER_SIZE);
	memcpy(b, STATE_MAGIC, 8);
	put_le32(b + 8, h->format_version);
	put_le32(b + 12, STATE_HEADER_SIZE);
	put_le32(b + 16, h->arch);
	put_le32(b + 20, h->flags);
	put_le64(b + 24, h->created_ns);
	put_le64(b + 32, h->cpuid_fingerprint);
	put_le64(b + 40, h->ram_size);
	put_le64(b + 48, body_len);
	if (body_len)
		memcpy(b + STATE_HEADER_SIZE, body, body_len);
	put_le32(b + OFF_CRC, state_crc(b, b + STATE_HEADER_SIZE, body_len));
	*out = b;
	*out_len = STATE_HEADER_SIZE + body_len;
	return 0;
}

int state_file_parse(const uint8_t *buf, size_t len, struct state_header *h, const uint8_t **body,
		     char *err, size_t errlen)
{
	struct tlv_section s;
	uint32_t hsize;
	size_t pos = 0;
	int r, n = 0;

	if (len < STATE_HEADER_SIZE || memcmp(buf, STATE_MAGIC, 8)) {
		snprintf(err, errlen, "not a vireo state file (%s)",
			 len < STATE_HEADER_SIZE ? "too short" : "bad magic");
		return -EINVAL;
	}
	h->format_version = get_le32(buf + 8);
	hsize = get_le32(buf + 12);
	h->arch = get_le32(buf + 16);
	h->flags = get_le32(buf + 20);
	h->created_ns = get_le64(buf + 24);
	h->cpuid_fingerprint = get_le64(buf + 32);
	h->ram_size = get_le64(buf + 40);
	h->body_len = get_le64(buf + 48);
	if (h->format_version > STATE_FORMAT_VERSION || h->format_version == 0) {
		snprintf(err, errlen,
			 "state format version %u; this vireo reads versions 1 to %u (a newer "
			 "vireo wrote it?)",
			 h->format_version, STATE_FORMAT_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (hsize != STATE_HEADER_SIZE) {
		snprintf(err, errlen, "header size %u, expected %u", hsize, STATE_HEADER_SIZE);
		return -EINVAL;
	}
	if (h->arch != STATE_ARCH_X86_64) {
		snprintf(err, errlen, "saved on architecture %u, this is x86-64", h->arch);
		return -EINVAL;
	}
	if (h->body_len != len - STATE_HEADER_SIZE) {
		snprintf(err, errlen,
			 "the file is %zu bytes but its header says %llu: truncated or extended",
			 len, (unsigned long long)(h->body_len + STATE_HEADER_SIZE));
		return -EINVAL;
	}
	if (get_le32(buf + OFF_CRC) != state_crc(buf, buf + STATE_HEADER_SIZE, h->body_len)) {
		snprintf(err, errlen, "CRC mismatch: the file is corrupt");
		return -EINVAL;
	}
	while ((r = tlv_next_section(buf + STATE_HEADER_SIZE, h->body_len, &pos, &s)) == 1)
		n++;
	if (r < 0) {
		snprintf(err, errlen, "section %d is malformed (at byte %zu)", n + 1,
			 STATE_HEADER_SIZE + pos);
		return -EINVAL;
	}
	*body = buf + STATE_HEADER_SIZE;
	return 0;
}

static bool page_is_zero(const uint8_t *p, size_t len)
{
	static const uint8_t zero[4096];

	for (size_t off = 0; off < len; off += sizeof(zero)) {
		size_t n = MIN(sizeof(zero), len - off);

		if (memcmp(p + off, zero, n))
			return false;
	}
	return true;
}

int state_write_sparse_range(int fd, const uint8_t *base, size_t off, size_t len, uint64_t *written)
{
	const size_t chunk = 64 * 1024;
	size_t end = off + len;
	uint64_t total = 0;

	while (off < end) {
		size_t start = off;

		/* Collect a run of non-zero chunks and write it in one go. */
		while (off < end && !page_is_zero(base + off, MIN(chunk, end - off)))
			off += MIN(chunk, end - off);
		for (size_t p = start; p < off;) {
			ssize_t w = pwrite(fd, base + p, off - p, (off_t)p);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			p += (size_t)w;
			total += (uint64_t)w;
		}
		if (off == start)
			off += MIN(chunk, end - off);
	}
	if (written)
		*written = total;
	return 0;
}

int state_write_sparse(int fd, const uint8_t *data, size_t len, uint64_t *written)
{
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)len) < 0)
		return -errno;
	return state_write_sparse_range(fd, data, 0, len, written);
}
