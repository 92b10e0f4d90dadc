/* SPDX-License-Identifier: MIT */
/* Saving and loading the whole machine as TLV sections (vmstate.c), and snapshots of it on disk
 * (snapshot.c). Formats: docs/state-format.md. */
#ifndef VIREO_VMM_VMSTATE_H
#define VIREO_VMM_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../state/snapshot.h"

struct vm;
struct vm_config;
struct tlv_writer;

/* What the configuration section holds beyond struct vm_config. Strings are malloc'd and live as
 * long as the process (the config points at them). */
struct vmstate_config {
	char *payload;
	char *kernel;
	char *virtio_console;
	char *vsock;
	char *net; /* the saved --net options, split in place (cfg->net points into it) */
	uint32_t tsc_khz;
};

/* Fills the machine-shaping fields of cfg (memory, vCPUs, CPU features, PVM profile, payload)
 * from the configuration section in body. Returns 0 or -errno with the reason in err. */
int vmstate_read_config(const uint8_t *body, size_t len, struct vm_config *cfg,
			struct vmstate_config *sc, char *err, size_t errlen);
/* Only the configuration section (what a migration destination needs to build the machine). */
int vmstate_save_config(struct vm *vm, struct tlv_writer *w);
/* All sections: configuration, VM, vCPUs, devices. vCPUs must be parked. */
int vmstate_save(struct vm *vm, struct tlv_writer *w);
/* Loads devices, then the VM (interrupt controllers, clock), then vCPUs, into a machine built
 * from the same configuration. advance_clock: the guest's kvmclock and TSC move on by the real
 * time since the save (migration); otherwise they continue from the saved values (restore). */
int vmstate_load(struct vm *vm, const uint8_t *body, size_t len, bool advance_clock);

/* A snapshot opened for `vireo run --restore`: the validated state file and the memory file. */
struct restore_source {
	const char *dir;
	uint8_t *file; /* the whole state file, malloc'd */
	size_t file_len;
	struct state_header hdr;
	const uint8_t *body;
	int mem_fd;
	bool force; /* restore even if the CPUID fingerprint differs */
	struct vmstate_config sc;
};

/* Reads and checks DIR/state.vireo and opens DIR/memory.raw; fills cfg from the snapshot.
 * Prints why and returns -errno on failure. */
int restore_open(struct restore_source *rs, const char *dir, struct vm_config *cfg);
void restore_close(struct restore_source *rs);

#define SNAPSHOT_MAX_DISKS 16

/* A disk in a snapshot: the image the snapshot goes with, and the one the VM writes to now
 * (the same for read-only disks). */
struct snapshot_disk {
	char frozen[4096];
	char active[4096];
};

struct snapshot_result {
	unsigned int ndisks;
	struct snapshot_disk disks[SNAPSHOT_MAX_DISKS];
	uint64_t state_bytes;
	uint64_t memory_bytes; /* data written; the rest of RAM are holes */
	uint64_t ram_bytes;
	double pause_ms; /* the guest was stopped this long */
	double total_ms;
};

/* Pauses the VM (if running), writes the snapshot directory dir (created; must not exist or be
 * empty), and resumes it unless leave_paused. Returns 0 or -errno with the reason in err. */
int vm_snapshot(struct vm *vm, const char *dir, bool leave_paused, struct snapshot_result *res,
		char *err, size_t errlen);

#endif
