// SPDX-License-Identifier: MIT
/* libFuzzer target for the split virtqueue: the input is a small header (queue size, ring
 * features, ring addresses, device indices) followed by the contents of guest RAM, which holds
 * the rings, the descriptors and the buffers. The queue is enabled on that RAM and drained as a
 * device would: pop, read the readable part, fill the writable part, push, decide on a
 * notification. RAM is a heap block of exactly its size, so AddressSanitizer reports any access
 * outside it; virtq_pop may fail, but must never crash or hang. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "virtio/queue.h"
#include "mem/memory.h"

#define HDR_SIZE 16
#define MAX_RAM (64 * 1024)
#define MAX_POPS 64

static void no_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
	const uint64_t *ram_size = opaque;

	/* Every write the VMM reports must be inside RAM. */
	if (gpa > *ram_size || len > *ram_size - gpa)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct virtq_chain chain;
	struct guest_mem mem;
	struct virtq vq;
	struct virtq_mem m;
	uint64_t ram_size;
	uint8_t *ram, scratch[512];

	if (size < HDR_SIZE + 16)
		return 0;
	ram_size = MIN(size - HDR_SIZE, (size_t)MAX_RAM);
	ram = malloc(ram_size);
	if (!ram)
		return 0;
	memcpy(ram, data + HDR_SIZE, ram_size);
	memory_attach(&mem, ram, ram_size);
	m = (struct virtq_mem){ &mem, no_dirty, &ram_size };

	virtq_reset(&vq, &m, VIRTQ_MAX_SIZE);
	vq.size = (uint16_t)(1u << (data[0] % 11)); /* 1 .. 1024 */
	vq.indirect = data[1] & 1;
	vq.event_idx = data[1] & 2;
	/* Addresses mostly inside RAM, sometimes anywhere. */
	vq.desc_gpa = (data[1] & 4) ? get_le32(data + 2) : get_le16(data + 2) % ram_size;
	vq.avail_gpa = get_le16(data + 6) % ram_size;
	vq.used_gpa = get_le16(data + 8) % ram_size;
	vq.last_avail = get_le16(data + 10);
	vq.used_idx = get_le16(data + 12);
	vq.ready = true;
	if (virtq_enable(&vq) == 0) {
		for (int i = 0; i < MAX_POPS; i++) {
			int ret = virtq_pop(&vq, &chain);

			if (ret <= 0)
				break;
			virtq_chain_read(&chain, data[14], scratch, sizeof(scratch));
			virtq_chain_write(&chain, data[15], scratch, sizeof(scratch));
			virtq_push(&vq, &chain, (uint32_t)chain.write_len);
			virtq_need_notify(&vq);
		}
	}
	free(ram);
	return 0;
}
