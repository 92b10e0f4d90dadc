/* SPDX-License-Identifier: MIT */
/* Disks across snapshots, restores and migrations (docs/snapshots.md). */
#ifndef VIREO_VMM_VMDISK_H
#define VIREO_VMM_VMDISK_H

#include <stddef.h>

struct vm;

struct virtio_blk_opts;
struct snapshot_result;
/* The options disk i is created with; on --restore, creates its private overlay (path in
 * buf). Returns 0 or -errno after printing why. */
int vm_disk_prepare(struct vm *vm, unsigned int i, struct virtio_blk_opts *opts, char *buf,
		    size_t len);
/* Snapshot (VM paused): each writable disk goes on in a new overlay; fills res->disks. Returns 0
 * or -errno with the reason in err. vm_snapshot_disks_done after the state is saved. */
int vm_snapshot_disks(struct vm *vm, const char *snapdir, struct snapshot_result *res, char *err,
		      size_t errlen);
void vm_snapshot_disks_done(struct vm *vm);
/* Migration source at stop-copy: flush and close every image for the destination; on failure
 * of the migration, open them again. */
int vm_disks_release(struct vm *vm);
void vm_disks_reacquire(struct vm *vm);
/* At exit: flush and close. */
void vm_disks_close(struct vm *vm);

#endif
