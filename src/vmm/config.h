/* SPDX-License-Identifier: MIT */
/* `vireo run` configuration: the options a user gives, parsed and checked before KVM is touched. */
#ifndef VIREO_VMM_CONFIG_H
#define VIREO_VMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../block/block.h"
#include "../net/net.h"
#include "cpuid.h"
#include "sandbox.h"

enum pvm_mode {
	PVM_AUTO,
	PVM_ON,
	PVM_OFF
};
enum console_kind {
	CONSOLE_STDIO,
	CONSOLE_FILE,
	CONSOLE_SOCKET,
	CONSOLE_NONE
};
enum reboot_action {
	REBOOT_EXIT,
	REBOOT_RESTART
};
enum boot_protocol {
	BOOT_AUTO,
	BOOT_PVH,
	BOOT_LINUX64
};

#define VM_MAX_CPUS_DEFAULT 254 /* APIC IDs fit in 8 bits (xAPIC, MP table, MADT type 0) */
#define VM_MAX_DISKS 16 /* configuration tags 0x20..0x2f, one per disk */
#define VM_DISK_SERIAL_MAX 20 /* VIRTIO_BLK_ID_BYTES */
#define VM_DISK_NAME_MAX 64

/* One --disk. */
struct vm_disk {
	const char *path;
	enum blk_format format; /* AUTO: probe */
	bool read_only;
	char serial[VM_DISK_SERIAL_MAX + 1]; /* "" when none */
	/* Stem of the overlay files vireo creates for this disk (docs/snapshots.md): the first
	 * image's file name without its extension. Kept across snapshots and restores. */
	char name[VM_DISK_NAME_MAX];
};

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline; /* NULL: default command line */
	const char *payload; /* freestanding test payload instead of a kernel */
	uint64_t mem_size;
	unsigned int ncpus;
	bool hugepages;
	struct cpu_feature_change cpu_changes[CPUID_MAX_CHANGES];
	size_t ncpu_changes;
	enum pvm_mode pvm;
	enum console_kind console;
	const char *console_path;
	enum reboot_action on_reboot;
	enum boot_protocol boot;
	unsigned int timeout_s; /* 0: none */
	const char *profile; /* guest RIP histogram output file */
	const char *api_sock; /* control socket path */
	int verbosity; /* -1 quiet, 0 normal, 1+ verbose */
	const char *restore; /* snapshot directory to resume from */
	bool force; /* --force: restore despite a different CPUID fingerprint */
	const char *incoming; /* tcp:HOST:PORT to receive a migrating VM on */
	const char *migration_tls; /* --migration-tls psk=FILE|x509=DIR */
	bool insecure_migration; /* --insecure-migration: plain TCP with --incoming */
	bool virtio_rng; /* --rng */
	const char *virtio_console; /* --virtio-console socket:PATH|file:PATH */
	bool balloon; /* --balloon */
	uint32_t balloon_flags; /* BALLOON_* of virtio/devices.h */
	const char *vsock; /* --vsock cid=N[,uds=PATH], as given */
	uint32_t vsock_cid; /* parsed from vsock */
	char vsock_uds[108];
	struct vm_disk disks[VM_MAX_DISKS]; /* --disk, in order: vda, vdb, ... */
	unsigned int ndisks;
	const char *overlay_dir; /* --overlay-dir: where new qcow2 overlays go */
	const char *net[NET_MAX_NICS]; /* --net, one per NIC, checked by net_parse_spec */
	unsigned int nnet;
	struct sandbox_opts sandbox; /* --seccomp, --user, --group, --cgroup (docs/security.md) */
	const char *jail; /* --jail DIR: run in new namespaces with DIR as the root */
	/* Set by vireo itself, not options: RAM comes from ram_fd (snapshot memory file) and the
	 * guest's state will be loaded, so nothing is booted. */
	bool ram_from_fd;
	int ram_fd;
	bool no_boot;
	uint32_t saved_tsc_khz; /* the saved guest's TSC frequency (restore, incoming) */
};

#define VM_DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=-1"

/* Parses `vireo run` arguments (argv[0] is "run"). Returns 0, 1 when help was asked for (the
 * usage text is then in *help_out), or -EINVAL with a one-line message in err. Checks values
 * that need no host access (sizes, counts, names); files are checked when loaded. */
int config_parse_run(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen);

/* Parses a --vsock value "cid=N[,uds=PATH]": N in 3 .. 0xfffffffe, PATH shorter than a unix
 * socket path. Returns 0 or -EINVAL with a message in err. */
int config_parse_vsock(const char *spec, uint32_t *cid, char *uds, size_t udslen, char *err,
		       size_t errlen);
/* The overlay name stem of an image: its file name without the extension. */
void config_disk_name(const char *path, char *name, size_t len);

/* The `vireo run --help` text. */
const char *config_run_usage(void);

#endif
