// SPDX-License-Identifier: MIT
#include "capfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define CAPFILE_ROTATIONS_LOGGED 4

int capfile_open(struct capfile *f, const char *path, uint64_t max, bool append)
{
	struct stat st;
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);

	memset(f, 0, sizeof(*f));
	f->path = path;
	f->max = max;
	f->fd = open(path, flags, 0600);
	if (f->fd < 0)
		return -errno;
	if (fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode)) {
		f->regular = true;
		f->size = (uint64_t)st.st_size;
	}
	return 0;
}

void capfile_close(struct capfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void note(int fd, const char *msg)
{
	if (write_all(fd, (const uint8_t *)msg, strlen(msg)))
		pr_debug("%s: could not write a note", __func__);
}

/* The current file is full: it becomes PATH.1 and a new PATH is made. O_EXCL | O_NOFOLLOW: if
 * anything appeared at PATH after the rename, it is not ours, and writing stops. */
static void rotate(struct capfile *f)
{
	char old[4096], msg[4200 + 64];
	int fd;

	snprintf(msg, sizeof(msg),
		 "\n[vireo: console output reached max-size %llu bytes; continued in %s]\n",
		 (unsigned long long)f->max, f->path);
	note(f->fd, msg);
	close(f->fd);
	f->fd = -1;
	if (snprintf(old, sizeof(old), "%s.1", f->path) >= (int)sizeof(old) ||
	    rename(f->path, old) < 0) {
		pr_warn("console file %s reached max-size %llu bytes; cannot rotate it (%s): "
			"output stops here",
			f->path, (unsigned long long)f->max, strerror(errno));
		return;
	}
	fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		pr_warn("console file %s: cannot start it afresh after rotation (%s): output "
			"stops here",
			f->path, strerror(errno));
		return;
	}
	f->fd = fd;
	f->size = 0;
	f->rotations++;
	if (f->rotations <= CAPFILE_ROTATIONS_LOGGED)
		pr_warn("console file %s reached max-size %llu bytes: older output moved to %s",
			f->path, (unsigned long long)f->max, old);
	snprintf(msg, sizeof(msg), "[vireo: older console output is in %s (max-size %llu bytes)]\n",
		 old, (unsigned long long)f->max);
	note(f->fd, msg);
	f->size = strlen(msg);
}

long capfile_write(struct capfile *f, const uint8_t *buf, size_t len)
{
	size_t done = 0;
	int rotations = 0, ret;

	while (done < len) {
		size_t n = len - done;

		if (f->fd < 0)
			return done ? (long)done : -EBADF;
		if (f->regular && f->max) {
			if (f->size >= f->max) {
				/* Two rotations in one call: the notes alone fill the file. */
				if (rotations++ == 2) {
					capfile_close(f);
					continue;
				}
				rotate(f);
				continue;
			}
			n = (size_t)MIN((uint64_t)n, f->max - f->size);
		}
		ret = write_all(f->fd, buf + done, n);
		if (ret)
			return done ? (long)done : ret;
		f->size += n;
		done += n;
	}
	return (long)done;
}

int capfile_parse_spec(const char *spec, size_t *path_len, uint64_t *max)
{
	const char *opt = strstr(spec, ",max-size=");
	const char *next;

	*max = CAPFILE_DEFAULT_MAX;
	*path_len = strlen(spec);
	if (!opt)
		return 0;
	/* The last occurrence: a path may itself contain the text. */
	while ((next = strstr(opt + 1, ",max-size=")))
		opt = next;
	*path_len = (size_t)(opt - spec);
	if (!strcmp(opt + 10, "0") || !strcmp(opt + 10, "none")) {
		*max = 0;
		return 0;
	}
	if (parse_size(opt + 10, 1, max) || *max < 4096)
		return -EINVAL;
	return 0;
}
