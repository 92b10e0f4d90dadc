// SPDX-License-Identifier: MIT
#include "tlv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void tlv_writer_init(struct tlv_writer *w)
{
	memset(w, 0, sizeof(*w));
}

void tlv_writer_free(struct tlv_writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static uint8_t *tlv_reserve(struct tlv_writer *w, size_t n)
{
	if (w->err)
		return NULL;
	if (n > SIZE_MAX / 2 - w->len) {
		w->err = -EOVERFLOW;
		return NULL;
	}
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		uint8_t *b;

		while (cap < w->len + n)
			cap *= 2;
		b = realloc(w->buf, cap);
		if (!b) {
			w->err = -ENOMEM;
			return NULL;
		}
		w->buf = b;
		w->cap = cap;
	}
	w->len += n;
	return w->buf + w->len - n;
}

void tlv_put_raw(struct tlv_writer *w, const void *data, size_t len)
{
	uint8_t *p = tlv_reserve(w, len);

	if (p && len)
		memcpy(p, data, len);
}

void tlv_put(struct tlv_writer *w, uint16_t tag, const void *data, uint32_t len)
{
	uint8_t *p = tlv_reserve(w, TLV_FIELD_HDR + (size_t)len);

	if (!p)
		return;
	put_le16(p, tag);
	put_le32(p + 2, len);
	if (len)
		memcpy(p + TLV_FIELD_HDR, data, len);
}

void tlv_put_u8(struct tlv_writer *w, uint16_t tag, uint8_t v)
{
	tlv_put(w, tag, &v, 1);
}

void tlv_put_u16(struct tlv_writer *w, uint16_t tag, uint16_t v)
{
	uint8_t b[2];

	put_le16(b, v);
	tlv_put(w, tag, b, sizeof(b));
}

void tlv_put_u32(struct tlv_writer *w, uint16_t tag, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	tlv_put(w, tag, b, sizeof(b));
}

void tlv_put_u64(struct tlv_writer *w, uint16_t tag, uint64_t v)
{
	uint8_t b[8];

	put_le64(b, v);
	tlv_put(w, tag, b, sizeof(b));
}

size_t tlv_section_begin(struct tlv_writer *w, uint32_t id, uint32_t instance, uint16_t version,
			 uint16_t min_version)
{
	uint8_t *p = tlv_reserve(w, TLV_SECTION_HDR);

	if (!p)
		return 0;
	put_le32(p, id);
	put_le32(p + 4, instance);
	put_le16(p + 8, version);
	put_le16(p + 10, min_version);
	put_le32(p + 12, 0);
	return w->len - TLV_SECTION_HDR;
}

void tlv_section_end(struct tlv_writer *w, size_t start)
{
	size_t body;

	if (w->err)
		return;
	body = w->len - start - TLV_SECTION_HDR;
	if (body > UINT32_MAX) {
		w->err = -EOVERFLOW;
		return;
	}
	put_le32(w->buf + start + 12, (uint32_t)body);
}

int tlv_next_section(const uint8_t *buf, size_t len, size_t *pos, struct tlv_section *s)
{
	size_t p = *pos, fp;

	if (p >= len)
		return 0;
	if (len - p < TLV_SECTION_HDR)
		return -EINVAL;
	s->id = get_le32(buf + p);
	s->instance = get_le32(buf + p + 4);
	s->version = get_le16(buf + p + 8);
	s->min_version = get_le16(buf + p + 10);
	s->len = get_le32(buf + p + 12);
	p += TLV_SECTION_HDR;
	if (s->len > len - p)
		return -EINVAL;
	s->data = buf + p;
	/* Every field must fit, so the field iterator needs no checks of its own. */
	for (fp = 0; fp < s->len;) {
		uint32_t flen;

		if (s->len - fp < TLV_FIELD_HDR)
			return -EINVAL;
		flen = get_le32(s->data + fp + 2);
		fp += TLV_FIELD_HDR;
		if (flen > s->len - fp)
			return -EINVAL;
		fp += flen;
	}
	*pos = p + s->len;
	return 1;
}

int tlv_next_field(const struct tlv_section *s, size_t *pos, struct tlv_field *f)
{
	size_t p = *pos;

	if (p + TLV_FIELD_HDR > s->len)
		return 0;
	f->tag = get_le16(s->data + p);
	f->len = get_le32(s->data + p + 2);
	f->data = s->data + p + TLV_FIELD_HDR;
	*pos = p + TLV_FIELD_HDR + f->len;
	return 1;
}

bool tlv_find(const struct tlv_section *s, uint16_t tag, struct tlv_field *f)
{
	size_t pos = 0;

	while (tlv_next_field(s, &pos, f) == 1)
		if (f->tag == tag)
			return true;
	return false;
}

static int tlv_get_exact(const struct tlv_section *s, uint16_t tag, uint32_t len,
			 const uint8_t **data)
{
	struct tlv_field f;

	*data = NULL;
	if (!tlv_find(s, tag, &f))
		return 0;
	if (f.len != len)
		return -EINVAL;
	*data = f.data;
	return 0;
}

int tlv_get_u8(const struct tlv_section *s, uint16_t tag, uint8_t *v)
{
	const uint8_t *d;
	int ret = tlv_get_exact(s, tag, 1, &d);

	if (!ret && d)
		*v = d[0];
	return ret;
}

int tlv_get_bool(const struct tlv_section *s, uint16_t tag, bool *v)
{
	uint8_t b = *v;
	int ret = tlv_get_u8(s, tag, &b);

	if (!ret && b > 1)
		return -EINVAL;
	*v = b;
	return ret;
}

int tlv_get_u16(const struct tlv_section *s, uint16_t tag, uint16_t *v)
{
	const uint8_t *d;
	int ret = tlv_get_exact(s, tag, 2, &d);

	if (!ret && d)
		*v = get_le16(d);
	return ret;
}

int tlv_get_u32(const struct tlv_section *s, uint16_t tag, uint32_t *v)
{
	const uint8_t *d;
	int ret = tlv_get_exact(s, tag, 4, &d);

	if (!ret && d)
		*v = get_le32(d);
	return ret;
}

int tlv_get_u64(const struct tlv_section *s, uint16_t tag, uint64_t *v)
{
	const uint8_t *d;
	int ret = tlv_get_exact(s, tag, 8, &d);

	if (!ret && d)
		*v = get_le64(d);
	return ret;
}

int tlv_get_bytes(const struct tlv_section *s, uint16_t tag, void *dst, uint32_t len)
{
	const uint8_t *d;
	int ret = tlv_get_exact(s, tag, len, &d);

	if (!ret && d && len)
		memcpy(dst, d, len);
	return ret;
}
