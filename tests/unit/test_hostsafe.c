// SPDX-License-Identifier: MIT
/* Unit tests (no KVM) for the VMM's host files and sockets: unix sockets are made 0600, never
 * take over a live listener nor remove what is not a stale socket of ours; clients of another
 * user are refused; console files are 0600 and capped. The attacks run for real: as root, a
 * child process drops to uid/gid 65534 (nobody) and tries to connect. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block/block.h"
#include "common/capfile.h"
#include "common/tlv.h"
#include "common/util.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "virtio/devices.h"
#include "virtio/pci.h"
#include "vmm/config.h"
#include "vmm/console.h"
#include "vmm/control.h"
#include "mem/memory.h"

#include "virtio_driver.h"

#define NOBODY 65534

struct fix {
	char dir[64];
	char path[128];
};

static int fix_setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/vireo-hostsafe-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/s", f->dir);
	*state = f;
	return 0;
}

static int fix_teardown(void **state)
{
	struct fix *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	return fd;
}

static bool wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* In a child running as nobody: connects to path and reads what the server says into reply (a
 * shared page). Returns 0 when connected, else -errno of the connect. */
static int nobody_connect(const char *path, char *reply, size_t len)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd;
		ssize_t n;

		if (setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
			_exit(100);
		fd = connect_to(path);
		if (fd < 0)
			_exit(-fd);
		/* A server that says nothing (or is not accepting yet) is left after 2 s. */
		n = wait_readable(fd, 2000) ? read(fd, reply, len - 1) : 0;
		reply[n > 0 ? n : 0] = 0;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_not_equal(WEXITSTATUS(status), 100);
	return -WEXITSTATUS(status);
}

/* Lets nobody reach the socket at f->path: search on the directory, the socket world-writable.
 * That is the mistake (or the hostile chmod) the peer check is there for. */
static void open_up(struct fix *f)
{
	assert_int_equal(chmod(f->dir, 0711), 0);
	assert_int_equal(chmod(f->path, 0666), 0);
}

static void test_socket_mode(void **state)
{
	struct fix *f = *state;
	mode_t old = umask(0);
	struct stat st;
	int fd = unix_listen(f->path, 1);

	umask(old);
	assert_true(fd >= 0);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	/* Even with umask 0: no one else may connect. */
	assert_int_equal(st.st_mode & 07777, 0600);
	close(fd);
}

/* A second VM given the same path must not steal a running VM's socket. */
static void test_socket_live_not_taken(void **state)
{
	struct fix *f = *state;
	struct stat before, after;
	int fd = unix_listen(f->path, 4), c, a;

	assert_true(fd >= 0);
	assert_int_equal(lstat(f->path, &before), 0);
	assert_int_equal(unix_listen(f->path, 4), -EADDRINUSE);
	assert_non_null(strstr(unix_listen_strerror(-EADDRINUSE), "in use"));
	assert_int_equal(lstat(f->path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	/* The first listener still gets its clients (the probe's connection is harmless). */
	c = connect_to(f->path);
	assert_true(c >= 0);
	assert_true(wait_readable(fd, 1000));
	a = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(a >= 0);
	close(a);
	close(c);
	close(fd);
	/* Once its owner is gone the socket is stale: replaced. */
	fd = unix_listen(f->path, 4);
	assert_true(fd >= 0);
	close(fd);
}

static void test_socket_other_files_kept(void **state)
{
	struct fix *f = *state;
	char target[160], buf[16] = { 0 };
	int fd;

	/* A regular file (say, a disk image given by mistake) keeps its contents. */
	fd = open(f->path, O_CREAT | O_WRONLY | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious", 8), 8);
	close(fd);
	assert_int_equal(unix_listen(f->path, 1), -EEXIST);
	fd = open(f->path, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 8);
	close(fd);
	assert_string_equal(buf, "precious");
	unlink(f->path);
	/* A directory, and a symlink to a stale socket: neither is a socket of ours. */
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(unix_listen(f->path, 1), -EEXIST);
	assert_int_equal(rmdir(f->path), 0);
	snprintf(target, sizeof(target), "%s/target", f->dir);
	fd = unix_listen(target, 1);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlink(target, f->path), 0);
	assert_int_equal(unix_listen(f->path, 1), -EEXIST);
	assert_int_equal(access(target, F_OK), 0);
}

static void test_socket_foreign_kept(void **state)
{
	struct fix *f = *state;
	struct stat st;
	int fd;

	if (geteuid() != 0)
		skip();
	/* A stale socket of another user: not ours to remove, even for root. */
	fd = unix_listen(f->path, 1);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(lchown(f->path, NOBODY, NOBODY), 0);
	assert_int_equal(unix_listen(f->path, 1), -EPERM);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_int_equal(st.st_uid, NOBODY);
}

static void test_peer_check(void **state)
{
	struct fix *f = *state;
	char *reply = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uid_t uid;
	pid_t pid;
	int fd, c, a;

	assert_true(reply != MAP_FAILED);
	fd = unix_listen(f->path, 4);
	assert_true(fd >= 0);
	c = connect_to(f->path);
	a = accept4(fd, NULL, NULL, 0);
	assert_true(c >= 0 && a >= 0);
	assert_int_equal(unix_peer_check(a, &uid, &pid), 0);
	assert_int_equal(uid, geteuid());
	assert_int_equal(pid, getpid());
	close(a);
	close(c);
	if (geteuid() != 0) {
		close(fd);
		munmap(reply, 4096);
		skip();
	}
	/* The socket's mode is the first wall: nobody cannot connect at all. */
	assert_int_equal(chmod(f->dir, 0711), 0);
	assert_int_equal(nobody_connect(f->path, reply, 4096), -EACCES);
	/* Past it, the kernel's word on the peer is the second. */
	open_up(f);
	assert_int_equal(nobody_connect(f->path, reply, 4096), 0);
	assert_true(wait_readable(fd, 1000));
	a = accept4(fd, NULL, NULL, 0);
	assert_true(a >= 0);
	assert_int_equal(unix_peer_check(a, &uid, &pid), -EACCES);
	assert_int_equal(uid, NOBODY);
	close(a);
	close(fd);
	munmap(reply, 4096);
}

static void test_console_socket_refuses_stranger(void **state)
{
	struct fix *f = *state;
	char *reply = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct console *con = calloc(1, sizeof(*con));
	pid_t pid;
	int status;

	if (geteuid() != 0)
		skip();
	assert_true(reply != MAP_FAILED);
	assert_int_equal(console_open(con, CONSOLE_SOCKET, f->path), 0);
	open_up(f);
	/* The child waits for the console's answer: accept while it does. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(-nobody_connect(f->path, reply, 4096));
	assert_true(wait_readable(con->listen_fd, 5000));
	console_accept(con);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_non_null(strstr(reply, "permission denied"));
	assert_int_equal(con->in_fd, -1);
	assert_int_equal(con->refused, 1);
	/* The VM's own user is let in. */
	int c = connect_to(f->path);
	assert_true(c >= 0);
	assert_true(wait_readable(con->listen_fd, 1000));
	console_accept(con);
	assert_true(con->in_fd >= 0);
	close(c);
	console_close(con);
	/* console_close removed the socket it made. */
	assert_int_equal(access(f->path, F_OK), -1);
	free(con);
	munmap(reply, 4096);
}

/* The control socket: 0600, a live one is not taken over, another user is refused. */
static void test_control_socket(void **state)
{
	struct fix *f = *state;
	char *reply = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct control *c = calloc(1, sizeof(*c)), *second = calloc(1, sizeof(*second));
	struct stat st;
	pid_t pid;
	int status, fd;

	assert_true(reply != MAP_FAILED);
	assert_int_equal(control_open(c, f->path), 0);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* A second VM started with the same --api-sock fails and leaves the first one's socket. */
	assert_int_equal(control_open(second, f->path), -EADDRINUSE);
	control_close(second);
	assert_int_equal(access(f->path, F_OK), 0);
	assert_true(wait_readable(c->listen_fd, 1000));
	close(accept(c->listen_fd, NULL, NULL)); /* the probe's connection */
	if (geteuid() == 0) {
		open_up(f);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(-nobody_connect(f->path, reply, 4096));
		assert_true(wait_readable(c->listen_fd, 5000));
		assert_int_equal(control_accept(c), -1);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_int_equal(WEXITSTATUS(status), 0);
		assert_non_null(strstr(reply, "\"ok\":false"));
		assert_non_null(strstr(reply, "permission denied"));
		assert_int_equal(c->refused, 1);
		for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
			assert_int_equal(c->clients[i].fd, -1);
	}
	/* The VM's user gets a slot. */
	fd = connect_to(f->path);
	assert_true(fd >= 0);
	assert_true(wait_readable(c->listen_fd, 1000));
	assert_int_equal(control_accept(c), 0);
	close(fd);
	control_close(c);
	assert_int_equal(access(f->path, F_OK), -1);
	free(c);
	free(second);
	munmap(reply, 4096);
}

static void test_console_socket_in_use(void **state)
{
	struct fix *f = *state;
	struct console *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

	assert_int_equal(console_open(a, CONSOLE_SOCKET, f->path), 0);
	assert_int_equal(console_open(b, CONSOLE_SOCKET, f->path), -EADDRINUSE);
	console_close(b);
	assert_int_equal(access(f->path, F_OK), 0); /* b's failure removed nothing */
	console_close(a);
	free(a);
	free(b);
}

static size_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (size_t)st.st_size : (size_t)-1;
}

static char *slurp(const char *path)
{
	uint8_t *data;
	size_t size;
	char *s;

	assert_int_equal(read_file(path, 1 << 20, &data, &size), 0);
	s = realloc(data, size + 1);
	s[size] = 0;
	return s;
}

static void test_capfile_parse(void **state)
{
	size_t len;
	uint64_t max;

	(void)state;
	assert_int_equal(capfile_parse_spec("/x/log", &len, &max), 0);
	assert_int_equal(len, 6);
	assert_int_equal(max, CAPFILE_DEFAULT_MAX);
	assert_int_equal(capfile_parse_spec("/x/log,max-size=1M", &len, &max), 0);
	assert_int_equal(len, 6);
	assert_int_equal(max, MIB);
	assert_int_equal(capfile_parse_spec("/x/log,max-size=0", &len, &max), 0);
	assert_int_equal(max, 0);
	assert_int_equal(capfile_parse_spec("/a,max-size=b,max-size=8K", &len, &max), 0);
	assert_int_equal(len, 13);
	assert_int_equal(max, 8 * KIB);
	assert_int_equal(capfile_parse_spec("/x,max-size=100", &len, &max), -EINVAL);
	assert_int_equal(capfile_parse_spec("/x,max-size=lots", &len, &max), -EINVAL);
	assert_int_equal(capfile_parse_spec("/x,max-size=", &len, &max), -EINVAL);
}

/* A guest that prints without end fills at most twice the cap; the newest output stays. */
static void test_capfile_rotates(void **state)
{
	struct fix *f = *state;
	char old[160], line[100];
	struct capfile cf;
	struct stat st;
	char *s;

	snprintf(old, sizeof(old), "%s.1", f->path);
	assert_int_equal(capfile_open(&cf, f->path, 4096, false), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(line, sizeof(line), "line %04d %s\n", i,
			 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		assert_int_equal(capfile_write(&cf, (uint8_t *)line, strlen(line)),
				 (long)strlen(line));
	}
	assert_true(cf.rotations >= 2);
	assert_true(file_size(f->path) <= 4096);
	/* The full file plus its closing note. */
	assert_true(file_size(old) <= 4096 + 300);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(old, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	s = slurp(f->path);
	assert_non_null(strstr(s, "older console output is in"));
	assert_non_null(strstr(s, "line 0199"));
	free(s);
	s = slurp(old);
	assert_non_null(strstr(s, "reached max-size 4096 bytes"));
	assert_null(strstr(s, "line 0000"));
	free(s);
	capfile_close(&cf);
}

/* When PATH.1 cannot be made, writing stops with a note: the file never grows past the cap. */
static void test_capfile_stops(void **state)
{
	struct fix *f = *state;
	char old[160], inner[170], buf[1000];
	struct capfile cf;
	long n = 0;
	char *s;

	snprintf(old, sizeof(old), "%s.1", f->path);
	snprintf(inner, sizeof(inner), "%s/keep", old);
	assert_int_equal(mkdir(old, 0700), 0);
	assert_int_equal(close(open(inner, O_CREAT | O_WRONLY, 0600)), 0);
	memset(buf, 'y', sizeof(buf));
	assert_int_equal(capfile_open(&cf, f->path, 4096, false), 0);
	for (int i = 0; i < 10; i++)
		n = capfile_write(&cf, (uint8_t *)buf, sizeof(buf));
	assert_true(n < 0);
	assert_int_equal(cf.fd, -1);
	assert_true(file_size(f->path) <= 4096 + 300);
	s = slurp(f->path);
	assert_non_null(strstr(s, "reached max-size"));
	free(s);
	assert_int_equal(access(inner, F_OK), 0);
}

/* An append (virtio-console, kept across --restore) counts what the file already holds. */
static void test_capfile_append_counts(void **state)
{
	struct fix *f = *state;
	char buf[3000];
	struct capfile cf;
	int fd = open(f->path, O_CREAT | O_WRONLY, 0644);

	memset(buf, 'z', sizeof(buf));
	assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(fd);
	assert_int_equal(capfile_open(&cf, f->path, 4096, true), 0);
	assert_int_equal(cf.size, 3000);
	assert_int_equal(capfile_write(&cf, (uint8_t *)buf, 2000), 2000);
	assert_int_equal(cf.rotations, 1);
	assert_true(file_size(f->path) < 4096);
	capfile_close(&cf);
}

static void test_serial_console_file(void **state)
{
	struct fix *f = *state;
	struct console *con = calloc(1, sizeof(*con));
	char spec[160], old[160], buf[1000];
	struct stat st;

	snprintf(spec, sizeof(spec), "%s,max-size=4096", f->path);
	snprintf(old, sizeof(old), "%s.1", f->path);
	assert_int_equal(console_open(con, CONSOLE_FILE, spec), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	memset(buf, 'c', sizeof(buf));
	for (int i = 0; i < 10; i++)
		console_write(con, (uint8_t *)buf, sizeof(buf));
	assert_true(con->out_fd >= 0);
	assert_true(file_size(f->path) <= 4096);
	assert_true(file_size(old) <= 4096 + 300);
	console_close(con);
	free(con);
}

static void test_config_max_size(void **state)
{
	char *ok[] = { "run",
		       "--kernel",
		       "k",
		       "--console",
		       "file:/tmp/a,max-size=1M",
		       "--virtio-console",
		       "file:/tmp/b,max-size=0",
		       NULL };
	char *bad[] = {
		"run", "--kernel", "k", "--virtio-console", "file:/tmp/b,max-size=12", NULL
	};
	struct vm_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(config_parse_run(7, ok, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.console_path, "/tmp/a,max-size=1M");
	assert_int_equal(config_parse_run(5, bad, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "max-size"));
}

/* virtio-console file: created 0600, capped, rotated, fed by the guest's transmit queue. */
static void test_virtio_console_file(void **state)
{
	struct fix *f = *state;
	struct drv *d = drv_new();
	char spec[160], old[160];
	struct stat st;

	snprintf(spec, sizeof(spec), "file:%s,max-size=4096", f->path);
	snprintf(old, sizeof(old), "%s.1", f->path);
	assert_int_equal(virtio_console_create(&d->vp, &d->host, &d->pci, &d->mmio, 10, spec), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	drv_attach(d);
	drv_start(d, 0, 2);
	memset(d->ram + DRV_BUF_GPA, 'g', 1500);
	for (int i = 0; i < 8; i++) {
		drv_add1(d, 1, DRV_BUF_GPA, 1500, false);
		drv_kick(d, 1);
	}
	assert_int_equal(drv_used_idx(d, 1), 8);
	assert_true(file_size(f->path) <= 4096);
	assert_true(file_size(old) >= 4096 && file_size(old) <= 4096 + 300);
	drv_free(d);
}

static void test_virtio_console_socket_in_use(void **state)
{
	struct fix *f = *state;
	struct drv *d = drv_new();
	char spec[160];
	int fd = unix_listen(f->path, 1);

	assert_true(fd >= 0);
	snprintf(spec, sizeof(spec), "socket:%s", f->path);
	assert_int_equal(virtio_console_create(&d->vp, &d->host, &d->pci, &d->mmio, 10, spec),
			 -EADDRINUSE);
	assert_int_equal(access(f->path, F_OK), 0);
	close(fd);
	drv_free(d);
}

static void test_vsock_uds_kept(void **state)
{
	struct fix *f = *state;
	struct drv *d = drv_new();
	int fd = open(f->path, O_CREAT | O_WRONLY, 0600);

	close(fd);
	assert_int_equal(virtio_vsock_create(&d->vp, &d->host, &d->pci, &d->mmio, 10, 3, f->path),
			 -EEXIST);
	assert_int_equal(access(f->path, F_OK), 0);
	drv_free(d);
}

/* The overlay a snapshot switches a running disk to holds the guest's writes: 0600, even with
 * a permissive umask. `vireo img create` keeps the usual 0644. */
static void test_overlay_mode(void **state)
{
	struct fix *f = *state;
	struct blk_create_opts o = { .format = BLK_FORMAT_RAW, .size = MIB };
	char img[160], ov[160];
	mode_t old = umask(0);
	struct blk *b;
	struct stat st;

	snprintf(img, sizeof(img), "%s/disk.raw", f->dir);
	snprintf(ov, sizeof(ov), "%s/disk.snap.qcow2", f->dir);
	assert_int_equal(blk_create(img, &o), 0);
	assert_int_equal(stat(img, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(blk_open(img, BLK_FORMAT_RAW, BLK_OPEN_RDWR, &b), 0);
	assert_int_equal(blk_switch_to_overlay(b, ov), 0);
	umask(old);
	assert_int_equal(stat(ov, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(blk_close(b), 0);
}

/* main.c's control is a static { .listen_fd = -1 } that is never opened without --api-sock;
 * closing it must leave fd 0 (the console's input) alone. */
static void test_control_close_unopened(void **state)
{
	static struct control c = { .listen_fd = -1 };
	int saved = dup(0);
	int pipefd[2];

	(void)state;
	assert_true(saved >= 0);
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(dup2(pipefd[0], 0), 0);
	control_close(&c);
	assert_true(fcntl(0, F_GETFD) >= 0);
	dup2(saved, 0);
	close(saved);
	close(pipefd[0]);
	close(pipefd[1]);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_socket_mode),
		T(test_socket_live_not_taken),
		T(test_socket_other_files_kept),
		T(test_socket_foreign_kept),
		T(test_peer_check),
		T(test_console_socket_refuses_stranger),
		T(test_console_socket_in_use),
		T(test_control_socket),
		cmocka_unit_test(test_control_close_unopened),
		cmocka_unit_test(test_capfile_parse),
		T(test_capfile_rotates),
		T(test_capfile_stops),
		T(test_capfile_append_counts),
		T(test_serial_console_file),
		cmocka_unit_test(test_config_max_size),
		T(test_virtio_console_file),
		T(test_virtio_console_socket_in_use),
		T(test_vsock_uds_kept),
		T(test_overlay_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
