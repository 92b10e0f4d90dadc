// SPDX-License-Identifier: MIT
/*
 * One VMM seen from vireod (vmm.h): the shim that spawns and outlives it, /proc checks that
 * defeat pid reuse, and the JSON-lines control socket.
 */
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"

/* ---- /proc ------------------------------------------------------------------------------- */

/* Fields of /proc/PID/stat after the command name: out[0] is field 3 (state). */
static int read_stat(pid_t pid, char *buf, size_t len, char **fields, int nfields)
{
	char path[64];
	ssize_t n;
	int fd, i = 0;
	char *p, *save = NULL;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ESRCH;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	for (char *tok = strtok_r(p + 1, " ", &save); tok && i < nfields;
	     tok = strtok_r(NULL, " ", &save))
		fields[i++] = tok;
	return i == nfields ? 0 : -EIO;
}

int vmm_starttime(pid_t pid, uint64_t *out)
{
	char buf[1024], *f[20];
	int ret = read_stat(pid, buf, sizeof(buf), f, 20);

	if (ret)
		return ret;
	*out = strtoull(f[19], NULL, 10); /* field 22 */
	return 0;
}

bool vmm_alive(pid_t pid, uint64_t starttime)
{
	char buf[1024], *f[20];

	if (pid <= 0 || read_stat(pid, buf, sizeof(buf), f, 20))
		return false;
	if (f[0][0] == 'Z' || f[0][0] == 'X')
		return false;
	return strtoull(f[19], NULL, 10) == starttime;
}

int vmm_pidfd(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : fd;
}

int vmm_proc_stats(pid_t pid, double *cpu_seconds, uint64_t *rss_bytes)
{
	char buf[1024], *f[13], path[64];
	unsigned long long size = 0, resident = 0;
	FILE *fp;
	int ret = read_stat(pid, buf, sizeof(buf), f, 13);

	if (ret)
		return ret;
	/* utime and stime, fields 14 and 15. */
	*cpu_seconds = (double)(strtoull(f[11], NULL, 10) + strtoull(f[12], NULL, 10)) /
		       (double)sysconf(_SC_CLK_TCK);
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return -ESRCH;
	if (fscanf(fp, "%llu %llu", &size, &resident) != 2)
		ret = -EIO;
	fclose(fp);
	*rss_bytes = resident * (uint64_t)sysconf(_SC_PAGESIZE);
	return ret;
}

/* ---- exit status --------------------------------------------------------------------------- */

int vmm_read_exit_status(const char *vmdir, int *status)
{
	char path[PATH_MAX];
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "%s/exit-status", vmdir);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	ret = fscanf(f, "%d", status) == 1 ? 0 : -EIO;
	fclose(f);
	return ret;
}

void vmm_status_text(int status, char *buf, size_t len)
{
	if (WIFEXITED(status)) {
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		const char *abbr = sigabbrev_np(WTERMSIG(status));
		snprintf(buf, len, "killed by signal %d (SIG%s)", WTERMSIG(status),
			 abbr ? abbr : "?");
	} else {
		snprintf(buf, len, "wait status 0x%x", (unsigned)status);
	}
}

/* ---- spawning ----------------------------------------------------------------------------- */

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	if (n != (ssize_t)strlen(text) || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return -EIO;
	}
	close(fd);
	return rename(tmp, path) == 0 ? 0 : -errno;
}

/* Reads "SHIM_PID VMM_PID\n" from the shim's report pipe within timeout_ms. */
static int read_report(int fd, int timeout_ms, pid_t *shim, pid_t *vmm)
{
	char buf[64] = "";
	size_t got = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
		if (poll(&p, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE; /* the shim failed before it could fork the VMM */
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (sscanf(buf, "%d %d", shim, vmm) != 2 || *shim <= 0 || *vmm <= 0)
		return -EPROTO;
	return 0;
}

int vmm_spawn(const char *self, const char *vmdir, char *const argv[], struct vmm_proc *out)
{
	int pfd[2], argc = 0, status, ret;
	char fdstr[16], path[PATH_MAX];
	char **sargv;
	pid_t child;
	sigset_t empty;

	while (argv[argc])
		argc++;
	sargv = calloc((size_t)argc + 6, sizeof(char *));
	if (!sargv)
		return -ENOMEM;
	if (pipe2(pfd, O_CLOEXEC)) {
		free(sargv);
		return -errno;
	}
	snprintf(fdstr, sizeof(fdstr), "%d", pfd[1]);
	sargv[0] = (char *)self;
	sargv[1] = (char *)"--shim";
	sargv[2] = (char *)vmdir;
	sargv[3] = fdstr;
	sargv[4] = (char *)"--";
	for (int i = 0; i < argc; i++)
		sargv[5 + i] = argv[i];
	snprintf(path, sizeof(path), "%s/exit-status", vmdir);
	unlink(path);
	sigemptyset(&empty);

	/* Only async-signal-safe calls between fork and exec: vireod has threads. */
	child = fork();
	if (child == 0) {
		setsid();
		if (fork() != 0)
			_exit(0);
		sigprocmask(SIG_SETMASK, &empty, NULL);
		fcntl(pfd[1], F_SETFD, 0);
		execv(self, sargv);
		_exit(127);
	}
	close(pfd[1]);
	free(sargv);
	if (child < 0) {
		ret = -errno;
		close(pfd[0]);
		return ret;
	}
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	ret = read_report(pfd[0], 10000, &out->shim_pid, &out->vmm_pid);
	close(pfd[0]);
	if (ret) {
		pr_err("vmm: the shim for %s did not report a VMM (%s); see %s/vmm.log", vmdir,
		       strerror(-ret), vmdir);
		return ret;
	}
	/* The VMM may already be gone (a bad option): its start time is then unknown, and the
	 * caller finds the exit status. */
	if (vmm_starttime(out->vmm_pid, &out->starttime))
		out->starttime = 0;
	return 0;
}

/* ---- the shim ------------------------------------------------------------------------------ */

static void shim_close_fds(int keep)
{
	if (keep > 3)
		syscall(SYS_close_range, 3, keep - 1, 0);
	syscall(SYS_close_range, keep + 1, ~0U, 0);
}

static void shim_stdio(const char *vmdir)
{
	char path[PATH_MAX];
	int null = open("/dev/null", O_RDWR), log;

	snprintf(path, sizeof(path), "%s/vmm.log", vmdir);
	log = open(path, O_WRONLY | O_CREAT | O_APPEND, 0640);
	if (null >= 0)
		dup2(null, 0);
	if (log >= 0) {
		dup2(log, 1);
		dup2(log, 2);
	}
	if (null > 2)
		close(null);
	if (log > 2)
		close(log);
}

int vmm_shim_main(int argc, char **argv)
{
	char text[64];
	const char *vmdir;
	int report, status = 0;
	pid_t vmm;

	if (argc < 4 || strcmp(argv[2], "--")) {
		fprintf(stderr, "usage: vireod --shim VMDIR REPORT_FD -- VMM ARGS...\n");
		return 1;
	}
	vmdir = argv[0];
	report = atoi(argv[1]);
	prctl(PR_SET_NAME, "vireo-shim");
	shim_close_fds(report);
	shim_stdio(vmdir);
	/* The shim must outlive everything but SIGKILL: it holds the VMM's exit status. */
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	vmm = fork();
	if (vmm == 0) {
		close(report);
		signal(SIGHUP, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[3], argv + 3);
		fprintf(stderr, "vireo-shim: cannot run %s: %s\n", argv[3], strerror(errno));
		_exit(127);
	}
	if (vmm < 0) {
		fprintf(stderr, "vireo-shim: fork: %s\n", strerror(errno));
		return 1;
	}
	snprintf(text, sizeof(text), "%d %d\n", (int)getpid(), (int)vmm);
	if (write(report, text, strlen(text)) < 0)
		fprintf(stderr, "vireo-shim: report: %s\n", strerror(errno));
	close(report);
	snprintf(text, sizeof(text), "%d\n", (int)getpid());
	write_file(vmdir, "shim.pid", text);
	snprintf(text, sizeof(text), "%d\n", (int)vmm);
	write_file(vmdir, "vmm.pid", text);
	while (waitpid(vmm, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "vireo-shim: waitpid: %s\n", strerror(errno));
			return 1;
		}
	}
	snprintf(text, sizeof(text), "%d\n", status);
	if (write_file(vmdir, "exit-status", text))
		fprintf(stderr, "vireo-shim: cannot write %s/exit-status\n", vmdir);
	_exit(0);
}

/* ---- control socket -------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sock_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Waits for fd to be ready for events until deadline (monotonic ms). */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left = deadline - now_ms();
	int n;

	if (left <= 0)
		return -ETIMEDOUT;
	n = poll(&p, 1, (int)left);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

int vmm_request(const char *sock, json_object *req, int timeout_ms, json_object **reply)
{
	const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	int64_t deadline = now_ms() + timeout_ms;
	size_t len = strlen(text), off = 0, got = 0, cap = 4096;
	char *buf, *nl = NULL;
	int fd, ret = 0;

	fd = sock_connect(sock);
	if (fd < 0)
		return fd;
	fcntl(fd, F_SETFL, O_NONBLOCK);
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (!ret && off <= len) {
		/* The request and its newline. */
		const char *p = off < len ? text + off : "\n";
		ssize_t n = send(fd, p, off < len ? len - off : 1, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && (errno == EAGAIN || errno == EINTR))
			ret = wait_fd(fd, POLLOUT, deadline);
		else
			ret = -EPIPE;
	}
	while (!ret && !nl) {
		if (got + 1 >= cap) {
			char *nb = cap < (1 << 20) ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				ret = -EMSGSIZE;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
		if (n > 0) {
			got += (size_t)n;
			buf[got] = '\0';
			nl = strchr(buf, '\n');
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			ret = wait_fd(fd, POLLIN, deadline);
		} else {
			ret = -ECONNRESET;
		}
	}
	close(fd);
	if (!ret) {
		*nl = '\0';
		*reply = json_tokener_parse(buf);
		if (!*reply || !json_object_is_type(*reply, json_type_object)) {
			json_object_put(*reply);
			*reply = NULL;
			ret = -EPROTO;
		}
	}
	free(buf);
	return ret;
}

int vmm_command(const char *sock, const char *cmd, int timeout_ms, json_object **reply)
{
	json_object *req = json_object_new_object();
	int ret;

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	ret = vmm_request(sock, req, timeout_ms, reply);
	json_object_put(req);
	return ret;
}
