/* SPDX-License-Identifier: MIT */
/* The snapshot state file: a fixed header and a body of TLV sections (common/tlv.h). The format
 * is specified in docs/state-format.md; this module builds and checks the container only and
 * knows nothing about KVM, so it can be unit-tested and fuzzed.
 *
 * A snapshot is a directory holding STATE_FILE_NAME and MEMORY_FILE_NAME (guest RAM as a sparse
 * file, byte for byte, low RAM first then RAM above 4 GiB). */
#ifndef VIREO_STATE_SNAPSHOT_H
#define VIREO_STATE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define STATE_FILE_NAME "state.vireo"
#define MEMORY_FILE_NAME "memory.raw"

#define STATE_MAGIC "VIREOSTA"
#define STATE_FORMAT_VERSION 1u
#define STATE_HEADER_SIZE 64u
#define STATE_ARCH_X86_64 62 /* ELF e_machine EM_X86_64 */
#define STATE_MAX_SIZE (64u << 20)

struct state_header {
	uint32_t format_version;
	uint32_t arch;
	uint32_t flags;
	uint64_t created_ns; /* CLOCK_REALTIME */
	uint64_t cpuid_fingerprint; /* of the CPUID the guest saw */
	uint64_t ram_size;
	uint64_t body_len;
};

/* Header (with its CRC) in front of body: a malloc'd buffer the caller frees. */
int state_file_build(const struct state_header *h, const uint8_t *body, size_t body_len,
		     uint8_t **out, size_t *out_len);
/* Checks magic, version, arch, length, CRC and that every section is well-formed. On success
 * fills *h and points *body into buf. Returns 0, or -EINVAL/-EPROTONOSUPPORT with the reason
 * in err. */
int state_file_parse(const uint8_t *buf, size_t len, struct state_header *h, const uint8_t **body,
		     char *err, size_t errlen);

/* Writes len bytes to fd at offset 0.. as a sparse file: runs of zero pages become holes. The
 * file is truncated to len first. Returns 0 or -errno; *written gets the bytes of data
 * actually written. */
int state_write_sparse(int fd, const uint8_t *data, size_t len, uint64_t *written);
/* The same for base[off, off+len) at file offset off, without truncating. */
int state_write_sparse_range(int fd, const uint8_t *base, size_t off, size_t len,
			     uint64_t *written);

#endif
