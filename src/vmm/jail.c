// SPDX-License-Identifier: MIT
/*
 * The jail of `vireo run --jail DIR` (jail.h, docs/security.md). Like Firecracker's jailer, but
 * in the VMM itself so that `vireo run` alone can use it: the files the VM names are collected
 * from its configuration, made absolute, and bind-mounted at those same paths into a tmpfs that
 * becomes the root. The tmpfs exists only in the VMM's mount namespace, so nothing of the jail is
 * ever written into DIR on the host and a crashed VMM leaves nothing to clean up.
 */
#include "jail.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"

#define JAIL_MAX_BINDS 48
/* The restarted image of a jailed VMM finds the jail built and vireo's binary on this fd. */
#define JAIL_EXE_ENV "VIREO_JAIL_EXE_FD"

struct jail_bind {
	char *path; /* absolute, symlinks resolved: where it is outside and inside */
	bool dir;
	bool ro;
};

struct jail {
	struct jail_bind binds[JAIL_MAX_BINDS];
	unsigned int nbinds;
	bool tap;
};

static pid_t vmm_pid;

static int add_bind(struct jail *j, const char *path, bool dir, bool ro)
{
	for (unsigned int i = 0; i < j->nbinds; i++) {
		if (!strcmp(j->binds[i].path, path)) {
			j->binds[i].ro &= ro;
			return 0;
		}
	}
	if (j->nbinds >= JAIL_MAX_BINDS) {
		pr_err("--jail: more than %d files and directories to bind", JAIL_MAX_BINDS);
		return -E2BIG;
	}
	j->binds[j->nbinds].path = strdup(path);
	if (!j->binds[j->nbinds].path)
		return -ENOMEM;
	j->binds[j->nbinds].dir = dir;
	j->binds[j->nbinds].ro = ro;
	j->nbinds++;
	return 0;
}

/* A file (bound read-only when ro) or a directory (bound writable) the VM uses where it is:
 * *path becomes its absolute real path. */
static int bind_real(struct jail *j, const char **path, bool dir, bool ro)
{
	char *real;

	if (!*path)
		return 0;
	real = realpath(*path, NULL);
	if (!real) {
		pr_err("--jail: %s: %s", *path, strerror(errno));
		return -errno;
	}
	*path = real; /* owned by the configuration for the life of the process */
	return add_bind(j, real, dir, ro);
}

/* A path the VM creates or that sits next to files it creates (sockets, console files,
 * overlays): its directory is bound writable and *path made absolute. */
static int bind_parent(struct jail *j, const char **path)
{
	char *copy, *slash, *dir, *abs;
	const char *base;
	int ret;

	if (!*path)
		return 0;
	copy = strdup(*path);
	if (!copy)
		return -ENOMEM;
	slash = strrchr(copy, '/');
	if (slash == copy) {
		pr_err("--jail: %s: a file directly in / cannot be given to a jailed VM", *path);
		free(copy);
		return -EINVAL;
	}
	if (slash)
		*slash = '\0';
	base = slash ? slash + 1 : copy;
	dir = realpath(slash ? copy : ".", NULL);
	if (!dir) {
		pr_err("--jail: %s: %s", *path, strerror(errno));
		free(copy);
		return -errno;
	}
	ret = add_bind(j, dir, true, false);
	if (!ret && asprintf(&abs, "%s/%s", dir, base) > 0)
		*path = abs;
	free(dir);
	free(copy);
	return ret;
}

/* What the VM described by cfg opens, from its options. */
static int collect(struct jail *j, struct vm_config *cfg)
{
	int ret = 0;

	ret = ret ? ret : bind_real(j, &cfg->kernel, false, true);
	ret = ret ? ret : bind_real(j, &cfg->initrd, false, true);
	ret = ret ? ret : bind_real(j, &cfg->payload, false, true);
	/* Disks: their directories, where overlays are made and backing files are found. */
	for (unsigned int i = 0; !ret && i < cfg->ndisks; i++)
		ret = bind_parent(j, &cfg->disks[i].path);
	ret = ret ? ret : bind_real(j, &cfg->overlay_dir, true, false);
	ret = ret ? ret : bind_real(j, &cfg->restore, true, false);
	if (!ret && (cfg->console == CONSOLE_FILE || cfg->console == CONSOLE_SOCKET))
		ret = bind_parent(j, &cfg->console_path);
	ret = ret ? ret : bind_parent(j, &cfg->api_sock);
	ret = ret ? ret : bind_parent(j, &cfg->profile);
	if (!ret && cfg->virtio_console) {
		const char *colon = strchr(cfg->virtio_console, ':');
		const char *p = colon + 1;
		char *spec;

		ret = bind_parent(j, &p);
		if (!ret && asprintf(&spec, "%.*s%s", (int)(colon + 1 - cfg->virtio_console),
				     cfg->virtio_console, p) > 0)
			cfg->virtio_console = spec;
	}
	if (!ret && cfg->vsock && cfg->vsock_uds[0]) {
		const char *p = cfg->vsock_uds;

		ret = bind_parent(j, &p);
		if (!ret && strlen(p) >= sizeof(cfg->vsock_uds)) {
			pr_err("--jail: vsock socket path %s is too long", p);
			ret = -ENAMETOOLONG;
		}
		if (!ret)
			strcpy(cfg->vsock_uds, p);
	}
	for (unsigned int i = 0; i < cfg->nnet; i++)
		j->tap |= !strncmp(cfg->net[i], "tap", 3);
	ret = ret ? ret : add_bind(j, "/dev/kvm", false, false);
	ret = ret ? ret : add_bind(j, "/dev/urandom", false, true);
	if (!ret && j->tap)
		ret = add_bind(j, "/dev/net/tun", false, false);
	return ret;
}

/* mkdir -p of path's directories below root (a path inside the new tmpfs). */
static int make_parents(const char *root, const char *path)
{
	char buf[PATH_MAX];
	int n = snprintf(buf, sizeof(buf), "%s%s", root, path);

	if (n < 0 || n >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static int mount_bind(const char *root, const struct jail_bind *b)
{
	char target[PATH_MAX];
	unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC;
	struct stat st;
	int ret;

	snprintf(target, sizeof(target), "%s%s", root, b->path);
	ret = make_parents(root, b->path);
	if (ret)
		return ret;
	if (b->dir) {
		if (mkdir(target, 0755) < 0 && errno != EEXIST)
			return -errno;
	} else if (lstat(target, &st) < 0) {
		int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

		if (fd < 0)
			return -errno;
		close(fd);
	}
	if (mount(b->path, target, NULL, MS_BIND, NULL) < 0)
		return -errno;
	if (stat(b->path, &st) == 0 && !S_ISCHR(st.st_mode))
		flags |= MS_NODEV;
	if (b->ro)
		flags |= MS_RDONLY;
	return mount(NULL, target, NULL, flags, NULL) < 0 ? -errno : 0;
}

static int cmp_bind(const void *a, const void *b)
{
	return (int)strlen(((const struct jail_bind *)a)->path) -
	       (int)strlen(((const struct jail_bind *)b)->path);
}

/* In the new mount namespace: the tmpfs on dir, the binds (shorter paths first, so a file bound
 * inside a bound directory stays visible), pivot_root, and the root made read-only. */
static int build_root(struct jail *j, const char *dir)
{
	char cwd[PATH_MAX], old[PATH_MAX];
	bool have_cwd = getcwd(cwd, sizeof(cwd)) != NULL;
	int ret;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	if (mount("vireo-jail", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=1m") < 0)
		return -errno;
	qsort(j->binds, j->nbinds, sizeof(j->binds[0]), cmp_bind);
	for (unsigned int i = 0; i < j->nbinds; i++) {
		ret = mount_bind(dir, &j->binds[i]);
		if (ret) {
			pr_err("--jail: cannot bind %s: %s", j->binds[i].path, strerror(-ret));
			return ret;
		}
	}
	/* The working directory, so relative paths in argv still resolve after a restart. */
	if (have_cwd && strcmp(cwd, "/") && make_parents(dir, cwd) == 0) {
		snprintf(old, sizeof(old), "%s%s", dir, cwd);
		if (mkdir(old, 0755) < 0 && errno != EEXIST)
			have_cwd = false;
	}
	snprintf(old, sizeof(old), "%s/.old-root", dir);
	if (mkdir(old, 0700) < 0 || syscall(SYS_pivot_root, dir, old) < 0 || chdir("/") < 0 ||
	    umount2("/.old-root", MNT_DETACH) < 0 || rmdir("/.old-root") < 0)
		return -errno;
	if (mount(NULL, "/", NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -errno;
	if (have_cwd && chdir(cwd) < 0)
		return -errno;
	return 0;
}

static void forward_signal(int sig)
{
	if (vmm_pid > 0)
		kill(vmm_pid, sig);
}

/* The process that stays outside: it ends the way the VMM ended. */
static void wait_for_vmm(pid_t pid)
{
	struct sigaction sa = { .sa_handler = forward_signal };
	struct rlimit no_core = { 0, 0 };
	int status;

	vmm_pid = pid;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			_exit(1);
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	/* Die of the same signal (SIGSYS from the sandbox, say), without a core of this waiter. */
	setrlimit(RLIMIT_CORE, &no_core);
	signal(WTERMSIG(status), SIG_DFL);
	kill(getpid(), WTERMSIG(status));
	_exit(128 + WTERMSIG(status));
}

int jail_enter(struct vm_config *cfg)
{
	struct jail j = { .nbinds = 0 };
	int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
	struct stat st;
	int exe, ret;
	pid_t pid;
	char fdstr[16];

	if (getenv(JAIL_EXE_ENV))
		return 0;
	ret = collect(&j, cfg);
	if (ret)
		goto out;
	if (mkdir(cfg->jail, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		pr_err("--jail %s: %s", cfg->jail, strerror(errno));
		goto out;
	}
	if (stat(cfg->jail, &st) < 0 || !S_ISDIR(st.st_mode)) {
		ret = -ENOTDIR;
		pr_err("--jail %s: not a directory", cfg->jail);
		goto out;
	}
	/* The network stays the host's for a back end (tap, user networking) or an incoming
	 * migration; an outgoing migration from a VM jailed without network cannot connect. */
	if (!cfg->nnet && !cfg->incoming)
		flags |= CLONE_NEWNET;
	exe = open("/proc/self/exe", O_PATH);
	if (exe < 0 || unshare(flags) < 0) {
		ret = -errno;
		pr_err("--jail: cannot create the namespaces: %s%s", strerror(errno),
		       errno == EPERM ? " (the jail needs root)" : "");
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		pr_err("--jail: fork: %s", strerror(errno));
		goto out;
	}
	if (pid > 0)
		wait_for_vmm(pid);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	ret = build_root(&j, cfg->jail);
	if (ret) {
		pr_err("--jail %s: cannot build the jail: %s", cfg->jail, strerror(-ret));
		goto out;
	}
	if (sethostname("vireo", 5) < 0)
		pr_debug("--jail: sethostname: %s", strerror(errno));
	snprintf(fdstr, sizeof(fdstr), "%d", exe);
	setenv(JAIL_EXE_ENV, fdstr, 1);
	pr_debug("--jail %s: %u files and directories bound", cfg->jail, j.nbinds);
out:
	for (unsigned int i = 0; i < j.nbinds; i++)
		free(j.binds[i].path);
	return ret;
}

void jail_exec_self(char **argv)
{
	extern char **environ;
	const char *fd = getenv(JAIL_EXE_ENV);

	if (fd)
		syscall(SYS_execveat, atoi(fd), "", argv, environ, AT_EMPTY_PATH);
	else
		execv("/proc/self/exe", argv);
}
