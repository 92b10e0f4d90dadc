// SPDX-License-Identifier: MIT
/*
 * The VM's disks across snapshots, restores and migrations (docs/snapshots.md): which image each
 * virtio-blk device opens, the qcow2 overlays vireo creates, and their names.
 *
 *   snapshot DIR:    each writable disk's top image is frozen and the VM goes on in a new overlay
 *                    <overlay dir>/<name>.<basename of DIR>.qcow2 (-2, -3... when taken)
 *   --restore DIR:   each writable disk gets a private overlay on its frozen image,
 *                    <overlay dir>/<name>.<basename of DIR>.r<N>.qcow2, N the first free number
 *   migration:       the source closes its images at stop-copy; the destination opens the same
 *                    paths when the state arrives (shared storage)
 *
 * The overlay dir is --overlay-dir, or else the directory of the image the overlay sits on.
 * <name> is the first image's file name without its extension (struct vm_disk).
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "../virtio/devices.h"
#include "vmdisk.h"
#include "vm.h"
#include "vmstate.h"

_Static_assert(VM_MAX_DISKS <= SNAPSHOT_MAX_DISKS, "snapshot results hold every disk");

/* The directory new overlays on image go to. */
static void overlay_dir(const struct vm *vm, const char *image, char *out, size_t len)
{
	char *copy;

	if (vm->cfg->overlay_dir) {
		snprintf(out, len, "%s", vm->cfg->overlay_dir);
		return;
	}
	copy = strdup(image);
	snprintf(out, len, "%s", copy ? dirname(copy) : ".");
	free(copy);
}

/* The last component of a directory path, trailing slashes ignored. */
static void dir_tag(const char *dir, char *out, size_t len)
{
	char *copy = strdup(dir);
	size_t n;

	if (!copy) {
		snprintf(out, len, "snapshot");
		return;
	}
	n = strlen(copy);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = '\0';
	snprintf(out, len, "%s", basename(copy));
	free(copy);
}

/*
 * Makes a new file with make(path, arg) under the first free name: dir/name.tag.qcow2,
 * dir/name.tag-2.qcow2, ... or, numbered, dir/name.tag1.qcow2, dir/name.tag2.qcow2, ... make
 * returns -EEXIST when the name is taken (blk_create and the overlay switch use O_EXCL, so two
 * VMs never get the same file).
 */
static int create_unique(char *out, size_t len, const char *dir, const char *name, const char *tag,
			 bool numbered, int (*make)(const char *path, void *arg), void *arg)
{
	int ret = -EEXIST;

	for (int n = 1; n < 1000 && ret == -EEXIST; n++) {
		int w;

		if (numbered)
			w = snprintf(out, len, "%s/%s.%s%d.qcow2", dir, name, tag, n);
		else if (n == 1)
			w = snprintf(out, len, "%s/%s.%s.qcow2", dir, name, tag);
		else
			w = snprintf(out, len, "%s/%s.%s-%d.qcow2", dir, name, tag, n);
		if (w < 0 || (size_t)w >= len)
			return -ENAMETOOLONG;
		ret = make(out, arg);
	}
	return ret;
}

static int make_restore_overlay(const char *path, void *arg)
{
	return blk_create(path, arg);
}

int vm_disk_prepare(struct vm *vm, unsigned int i, struct virtio_blk_opts *opts, char *buf,
		    size_t len)
{
	const struct vm_config *cfg = vm->cfg;
	const struct vm_disk *d = &cfg->disks[i];
	struct blk_create_opts co = { 0 };
	char dir[4096], tag[256], rtag[300];
	int ret;

	*opts = (struct virtio_blk_opts){
		.path = d->path,
		.format = d->format,
		.read_only = d->read_only,
		.serial = d->serial[0] ? d->serial : NULL,
		.name = d->name,
		.deferred = cfg->incoming != NULL,
	};
	/* The chain of a restored or incoming disk may span the image and overlay directories of
	 * earlier runs; the snapshot or the source vouches for it, so its directories are allowed
	 * (docs/images.md, "Probing and backing files"). */
	if ((cfg->restore || cfg->incoming) && access(d->path, R_OK) == 0) {
		ret = blk_allow_chain_dirs(d->path, d->format);
		if (ret) {
			pr_err("disk %u: %s: %s", i, d->path, blk_last_error());
			return ret;
		}
	}
	if (!cfg->restore || d->read_only)
		return 0;
	/* A restored VM never writes to the snapshot's frozen image: it gets its own overlay, so
	 * every restore of one snapshot is independent. */
	if (access(d->path, R_OK) < 0) {
		ret = -errno;
		pr_err("--restore %s: disk %u: its frozen image %s: %s", cfg->restore, i, d->path,
		       strerror(errno));
		return ret;
	}
	co.format = BLK_FORMAT_QCOW2;
	co.backing = d->path;
	co.backing_format = d->format;
	co.mode = 0600; /* the restored guest's writes: for the VM's user only */
	overlay_dir(vm, d->path, dir, sizeof(dir));
	dir_tag(cfg->restore, tag, sizeof(tag));
	snprintf(rtag, sizeof(rtag), "%s.r", tag);
	ret = create_unique(buf, len, dir, d->name, rtag, true, make_restore_overlay, &co);
	if (ret) {
		pr_err("--restore %s: disk %u: cannot create an overlay on %s in %s: %s%s",
		       cfg->restore, i, d->path, dir, strerror(-ret),
		       cfg->overlay_dir ? "" : " (--overlay-dir DIR puts it elsewhere)");
		return ret;
	}
	pr_info("disk %u: the restored VM writes to %s (backing file %s)", i, buf, d->path);
	opts->path = buf;
	opts->format = BLK_FORMAT_QCOW2;
	return 0;
}

static int make_switch(const char *path, void *arg)
{
	return virtio_blk_switch_overlay(arg, path);
}

int vm_snapshot_disks(struct vm *vm, const char *snapdir, struct snapshot_result *res, char *err,
		      size_t errlen)
{
	struct virtio_blk_info *info = malloc(sizeof(*info));
	char dir[4096], tag[256];
	int ret = 0;

	if (!info) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	dir_tag(snapdir, tag, sizeof(tag));
	for (unsigned int i = 0; i < vm->ndisks; i++) {
		struct snapshot_disk *sd = &res->disks[i];

		virtio_blk_describe(vm->virtio_blk[i], info);
		snprintf(sd->frozen, sizeof(sd->frozen), "%s", info->path);
		snprintf(sd->active, sizeof(sd->active), "%s", info->path);
		res->ndisks = i + 1;
		if (info->read_only)
			continue;
		overlay_dir(vm, info->path, dir, sizeof(dir));
		ret = create_unique(sd->active, sizeof(sd->active), dir, info->name, tag, false,
				    make_switch, vm->virtio_blk[i]);
		if (ret) {
			snprintf(
				err, errlen,
				"disk %u (%s): cannot create the overlay the VM goes on in, in %s: "
				"%s",
				i, info->path, dir, strerror(-ret));
			snprintf(sd->active, sizeof(sd->active), "%s", info->path);
			break;
		}
		pr_info("snapshot: disk %u frozen at %s; the VM goes on in %s", i, sd->frozen,
			sd->active);
	}
	free(info);
	return ret;
}

void vm_snapshot_disks_done(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->ndisks; i++)
		virtio_blk_end_snapshot(vm->virtio_blk[i]);
}

int vm_disks_release(struct vm *vm)
{
	int ret = 0;

	for (unsigned int i = 0; i < vm->ndisks && !ret; i++)
		ret = virtio_blk_release(vm->virtio_blk[i]);
	if (ret)
		vm_disks_reacquire(vm);
	return ret;
}

void vm_disks_reacquire(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->ndisks; i++) {
		int ret = virtio_blk_reacquire(vm->virtio_blk[i]);

		/* Not fatal to the VMM: the guest sees I/O errors on this disk. */
		if (ret)
			pr_err("disk %u: cannot reopen its image after the migration failed: %s; "
			       "the guest gets I/O errors",
			       i, strerror(-ret));
	}
}

void vm_disks_close(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->ndisks; i++)
		if (vm->virtio_blk[i])
			virtio_blk_close(vm->virtio_blk[i]);
}
