/* SPDX-License-Identifier: MIT */
/* Tag-length-value state encoding, shared by snapshots and migration (see docs/state-format.md).
 *
 * A section is {u32 id, u32 instance, u16 version, u16 min_version, u32 len} followed by len
 * bytes of fields; a field is {u16 tag, u32 len} followed by len bytes. All integers are
 * little-endian. Readers skip tags they do not know and keep their default for tags that are
 * missing, so a device can add fields without a new section version. A section whose
 * min_version is above what the reader implements cannot be loaded. */
#ifndef VIREO_COMMON_TLV_H
#define VIREO_COMMON_TLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLV_SECTION_HDR 16
#define TLV_FIELD_HDR 6

/* A growable output buffer. Allocation failures are sticky in err, so writers can put a series
 * of fields and check once at the end. The buffer is owned by the writer (tlv_writer_free). */
struct tlv_writer {
	uint8_t *buf;
	size_t len, cap;
	int err;
};

void tlv_writer_init(struct tlv_writer *w);
void tlv_writer_free(struct tlv_writer *w);
void tlv_put_raw(struct tlv_writer *w, const void *data, size_t len);
void tlv_put(struct tlv_writer *w, uint16_t tag, const void *data, uint32_t len);
void tlv_put_u8(struct tlv_writer *w, uint16_t tag, uint8_t v);
void tlv_put_u16(struct tlv_writer *w, uint16_t tag, uint16_t v);
void tlv_put_u32(struct tlv_writer *w, uint16_t tag, uint32_t v);
void tlv_put_u64(struct tlv_writer *w, uint16_t tag, uint64_t v);
/* Starts a section and returns the offset tlv_section_end needs to fill in its length. */
size_t tlv_section_begin(struct tlv_writer *w, uint32_t id, uint32_t instance, uint16_t version,
			 uint16_t min_version);
void tlv_section_end(struct tlv_writer *w, size_t start);

struct tlv_section {
	uint32_t id, instance;
	uint16_t version, min_version;
	const uint8_t *data;
	uint32_t len;
};

struct tlv_field {
	uint16_t tag;
	uint32_t len;
	const uint8_t *data;
};

/* Reads the section at *pos and advances *pos. Returns 1, 0 at the end of buf, or -EINVAL when
 * the section or one of its fields runs past the end. */
int tlv_next_section(const uint8_t *buf, size_t len, size_t *pos, struct tlv_section *s);
/* Iterates the fields of a (validated) section: 1 with *f filled, 0 at the end. */
int tlv_next_field(const struct tlv_section *s, size_t *pos, struct tlv_field *f);
/* First field with this tag: true if found. */
bool tlv_find(const struct tlv_section *s, uint16_t tag, struct tlv_field *f);

/* Typed getters: a missing tag leaves *v unchanged and returns 0 (the default stays); a field of
 * the wrong size returns -EINVAL. */
int tlv_get_u8(const struct tlv_section *s, uint16_t tag, uint8_t *v);
int tlv_get_u16(const struct tlv_section *s, uint16_t tag, uint16_t *v);
int tlv_get_u32(const struct tlv_section *s, uint16_t tag, uint32_t *v);
int tlv_get_u64(const struct tlv_section *s, uint16_t tag, uint64_t *v);
int tlv_get_bool(const struct tlv_section *s, uint16_t tag, bool *v);
/* Exactly len bytes. */
int tlv_get_bytes(const struct tlv_section *s, uint16_t tag, void *dst, uint32_t len);

/* Little-endian stores, the counterpart of util.h's get_le*. */
void put_le16(uint8_t *p, uint16_t v);
void put_le32(uint8_t *p, uint32_t v);
void put_le64(uint8_t *p, uint64_t v);

#endif
