// SPDX-License-Identifier: MIT
/* Snapshots on disk: writing a snapshot directory from a paused VM, and opening one for
 * `vireo run --restore`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/tlv.h"
#include "../common/util.h"
#include "vm.h"
#include "vmdisk.h"
#include "vmstate.h"

/* A new directory, or an existing empty one. */
static int make_snapshot_dir(const char *dir, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(d);
			snprintf(err, errlen,
				 "%s exists and is not empty; snapshots never overwrite", dir);
			return -EEXIST;
		}
	closedir(d);
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Writes guest RAM sparsely. For RAM that never came from a file, pages the guest never touched
 * are not resident: mincore finds them without faulting each one in just to see zeros. */
static int write_memory(struct vm *vm, int fd, uint64_t *written)
{
	size_t len = vm->mem.ram_size, pages = (len + 4095) / 4096;
	unsigned char *vec = NULL;
	uint64_t total = 0;
	int ret;

	if (!vm->ram_from_file && !vm->mem.hugepages) {
		vec = malloc(pages);
		if (vec && mincore(vm->mem.base, len, vec) < 0) {
			free(vec);
			vec = NULL;
		}
	}
	if (!vec)
		return state_write_sparse(fd, vm->mem.base, len, written);
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)len) < 0) {
		free(vec);
		return -errno;
	}
	/* Resident runs go through the sparse writer, which still skips zero pages in them. */
	for (size_t p = 0; p < pages;) {
		size_t q = p;
		uint64_t w = 0;

		if (!(vec[p] & 1)) {
			p++;
			continue;
		}
		while (q < pages && (vec[q] & 1))
			q++;
		ret = state_write_sparse_range(fd, vm->mem.base, p * 4096,
					       MIN(q * 4096, len) - p * 4096, &w);
		if (ret) {
			free(vec);
			return ret;
		}
		total += w;
		p = q;
	}
	free(vec);
	*written = total;
	return 0;
}

int vm_snapshot(struct vm *vm, const char *dir, bool leave_paused, struct snapshot_result *res,
		char *err, size_t errlen)
{
	bool was_paused = __atomic_load_n(&vm->paused, __ATOMIC_ACQUIRE);
	double t0 = mono_ms(), t_paused;
	struct tlv_writer w;
	struct state_header h = { 0 };
	struct timespec ts;
	uint8_t *file = NULL;
	size_t file_len = 0;
	char path[4096], tmp[4096];
	int fd = -1, dfd = -1, ret;

	memset(res, 0, sizeof(*res));
	if (strlen(dir) + sizeof(STATE_FILE_NAME) + 8 > sizeof(path)) {
		snprintf(err, errlen, "snapshot path too long");
		return -ENAMETOOLONG;
	}
	ret = make_snapshot_dir(dir, err, errlen);
	if (ret)
		return ret;
	ret = vm_pause(vm);
	if (ret) {
		snprintf(err, errlen, "could not pause the VM");
		return ret;
	}
	t_paused = mono_ms();
	tlv_writer_init(&w);
	/* Paused and quiesced: the disks' images now match RAM. Freeze them, and let the VM go on
	 * in new overlays; the configuration saved next names the frozen ones. */
	ret = vm_snapshot_disks(vm, dir, res, err, errlen);
	if (ret)
		goto out;
	ret = vmstate_save(vm, &w);
	if (ret) {
		snprintf(err, errlen, "saving the machine state failed: %s", strerror(-ret));
		goto out;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	h.format_version = STATE_FORMAT_VERSION;
	h.arch = STATE_ARCH_X86_64;
	h.created_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	h.cpuid_fingerprint = vm->cpuid_fingerprint;
	h.ram_size = vm->mem.ram_size;
	ret = state_file_build(&h, w.buf, w.len, &file, &file_len);
	if (ret)
		goto out_io;

	/* Memory first, state file last and renamed into place: a directory with a state file
	 * holds a complete snapshot. */
	snprintf(path, sizeof(path), "%s/%s", dir, MEMORY_FILE_NAME);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || (ret = write_memory(vm, fd, &res->memory_bytes)) || fdatasync(fd) < 0) {
		ret = ret ? ret : -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		goto out;
	}
	close(fd);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, STATE_FILE_NAME);
	snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE_NAME);
	/* The directory may have been made by someone else: never follow or reuse what is there. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || (ret = write_all(fd, file, file_len)) || fdatasync(fd) < 0 ||
	    rename(tmp, path) < 0) {
		ret = ret ? ret : -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		goto out;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	res->state_bytes = file_len;
	res->ram_bytes = vm->mem.ram_size;
	ret = 0;
	goto out;
out_io:
	snprintf(err, errlen, "building the state file: %s", strerror(-ret));
out:
	vm_snapshot_disks_done(vm);
	if (fd >= 0)
		close(fd);
	free(file);
	tlv_writer_free(&w);
	res->pause_ms = mono_ms() - t_paused;
	if (!was_paused && !leave_paused)
		vm_resume(vm);
	res->total_ms = mono_ms() - t0;
	return ret;
}

int restore_open(struct restore_source *rs, const char *dir, struct vm_config *cfg)
{
	char path[4096], err[1024];
	size_t len;
	struct stat st;
	int ret;

	rs->dir = dir;
	rs->mem_fd = -1;
	snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE_NAME);
	ret = read_file(path, STATE_MAX_SIZE, &rs->file, &len);
	if (ret) {
		pr_err("--restore %s: %s: %s", dir, path,
		       ret == -ENOENT ? "no such file (not a snapshot directory?)"
				      : strerror(-ret));
		return ret;
	}
	rs->file_len = len;
	ret = state_file_parse(rs->file, len, &rs->hdr, &rs->body, err, sizeof(err));
	if (!ret)
		ret = vmstate_read_config(rs->body, rs->hdr.body_len, cfg, &rs->sc, err,
					  sizeof(err));
	if (ret) {
		pr_err("--restore %s: %s", path, err);
		return ret;
	}
	if (rs->hdr.ram_size != cfg->mem_size) {
		pr_err("--restore %s: header and configuration disagree on the RAM size", path);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, MEMORY_FILE_NAME);
	/* The guest reads this file as its RAM: a symbolic link in a snapshot directory from
	 * elsewhere must not make it read another file of ours. */
	rs->mem_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (rs->mem_fd < 0 || fstat(rs->mem_fd, &st) < 0) {
		pr_err("--restore %s: %s: %s", dir, path,
		       errno == ELOOP ? "a symbolic link (refused: the guest would read its target)"
				      : strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < rs->hdr.ram_size) {
		pr_err("--restore %s: %s is %lld bytes, shorter than the guest's %" PRIu64
		       " MiB of RAM",
		       dir, path, (long long)st.st_size, rs->hdr.ram_size >> 20);
		return -EINVAL;
	}
	return 0;
}

void restore_close(struct restore_source *rs)
{
	free(rs->file);
	rs->file = NULL;
	if (rs->mem_fd >= 0)
		close(rs->mem_fd);
	rs->mem_fd = -1;
}
