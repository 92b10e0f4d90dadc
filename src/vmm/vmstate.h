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

/* Tags of the configuration section (SECTION_CONFIG), written by vmstate_save_config and read
 * by vmstate_read_config (docs/state-format.md). */
enum {
	CFG_T_MEM_SIZE = 1,
	CFG_T_NCPUS,
	CFG_T_CPU_FEATURES, /* the --cpu-features list, "+name,-name" */
	CFG_T_PVM_PROFILE,
	CFG_T_PAYLOAD, /* path of the payload, when the guest is one */
	CFG_T_KERNEL, /* informational */
	CFG_T_TSC_KHZ,
	CFG_T_VIRTIO_RNG, /* u8: the machine has virtio-rng */
	CFG_T_VIRTIO_CONSOLE, /* the --virtio-console backend: the machine has virtio-console */
	/* 0x40..0x4f: virtio-balloon and virtio-vsock (other devices have their own ranges). */
	CFG_T_BALLOON = 0x40, /* u32 BALLOON_* flags: the machine has virtio-balloon */
	CFG_T_VSOCK = 0x41, /* the --vsock value: the machine has virtio-vsock */
	/* 0x20 + disk index (virtio-blk, vda first): u8 format (0 probe, 1 raw, 2 qcow2), u8 flags
	 * (bit 0 read-only), u8 n + n bytes serial, u8 m + m bytes overlay name stem, then the
	 * absolute image path (the rest). The image is the one the saved state goes with: a
	 * snapshot's frozen image, or the source's top image for a migration. */
	CFG_T_DISK = 0x20,
	CFG_T_DISK_LAST = 0x2f,
	/* The --net options, one per NIC in order, joined by newlines. Tags 0x20.. belong to
	 * block devices, 0x40.. to balloon and vsock. */
	CFG_T_NET = 0x30,
};

#define CFG_DISK_FLAG_READ_ONLY 1

/* What the configuration section holds beyond struct vm_config. Strings are malloc'd and live as
 * long as the process (the config points at them). */
struct vmstate_config {
	char *payload;
	char *kernel;
	uint32_t tsc_khz;
};

/*
 * Takes the saved machine's shape (RAM, vCPUs, CPU features, PVM profile, payload, the device
 * list) from the configuration section in body into cfg, and checks that the host resources cfg
 * already holds from the local command line fit it: one --disk per saved disk (same read-only
 * flag; format and serial, when given, the same), one --net per saved NIC (same MAC when given),
 * --virtio-console and --vsock exactly when the machine has those devices. The section comes
 * from a migration peer or a snapshot file: no path, socket, port or backend in it is ever
 * used. Returns 0 or -errno with the reason in err (a mismatch is -EINVAL).
 */
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
