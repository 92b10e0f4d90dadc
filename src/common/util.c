// SPDX-License-Identifier: MIT
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == s || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t default_unit, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t unit = default_unit;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == s)
		return -EINVAL;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'B':
			unit = 1;
			break;
		case 'K':
			unit = KIB;
			break;
		case 'M':
			unit = MIB;
			break;
		case 'G':
			unit = GIB;
			break;
		case 'T':
			unit = 1024 * GIB;
			break;
		default:
			return -EINVAL;
		}
		end++;
		if (unit != 1 && (!strcasecmp(end, "iB") || !strcasecmp(end, "B")))
			end += strlen(end);
		if (*end)
			return -EINVAL;
	}
	if (v && unit > UINT64_MAX / v)
		return -ERANGE;
	*out = v * unit;
	return 0;
}

int open_regular(const char *path, size_t max_size, size_t *size)
{
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto err_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto err_close;
	}
	if ((uint64_t)st.st_size > max_size) {
		ret = -EFBIG;
		goto err_close;
	}
	*size = (size_t)st.st_size;
	return fd;
err_close:
	close(fd);
	return ret;
}

int read_file(const char *path, size_t max_size, uint8_t **data, size_t *size)
{
	size_t total, done = 0;
	uint8_t *buf;
	int fd;

	fd = open_regular(path, max_size, &total);
	if (fd < 0)
		return fd;
	buf = malloc(total ? total : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (done < total) {
		ssize_t n = read(fd, buf + done, total - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int ret = n < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			return ret;
		}
		done += (size_t)n;
	}
	close(fd);
	*data = buf;
	*size = done;
	return 0;
}

uint8_t checksum8(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += p[i];
	return (uint8_t)(0 - sum);
}

int map_file(const char *path, size_t max_size, const uint8_t **data, size_t *size)
{
	size_t total;
	void *p = NULL;
	int fd;

	fd = open_regular(path, max_size, &total);
	if (fd < 0)
		return fd;
	if (total) {
		p = mmap(NULL, total, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			int ret = -errno;
			close(fd);
			return ret;
		}
	}
	close(fd);
	*data = p;
	*size = total;
	return 0;
}

/* Whether a program listens on the socket at sa: a connection that is accepted or only waits
 * for a full backlog means a live listener; "refused" means the socket file is stale. */
static bool unix_live(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	bool live;

	if (fd < 0)
		return true; /* cannot tell: never take the path over */
	live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno != ECONNREFUSED;
	close(fd);
	return live;
}

int unix_listen(const char *path, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old_mask;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		/* Only a socket file we made and nobody listens on any more is ours to remove. */
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (st.st_uid != geteuid())
			return -EPERM;
		if (unix_live(&sa))
			return -EADDRINUSE;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* bind() creates the file with the umask's mode: make it 0600 from the start, so there is
	 * no moment where another user may connect. The umask is process-wide; another thread
	 * creating a file meanwhile gets a stricter mode at worst. */
	old_mask = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (ret < 0 || listen(fd, backlog) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

const char *unix_listen_strerror(int err)
{
	switch (err) {
	case -EEXIST:
		return "a file that is not a socket is in the way (not removed)";
	case -EPERM:
		return "a socket owned by another user is in the way (not removed)";
	case -EADDRINUSE:
		return "in use: a running program listens there (another VM?)";
	case -ENAMETOOLONG:
		return "path too long for a unix socket";
	default:
		return strerror(-err);
	}
}

int unix_peer_check(int fd, uid_t *uid, pid_t *pid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	*uid = cred.uid;
	*pid = cred.pid;
	return cred.uid == geteuid() || cred.uid == 0 ? 0 : -EACCES;
}

void unmap_file(const uint8_t *data, size_t size)
{
	if (data && size)
		munmap((void *)data, size);
}

int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
