// SPDX-License-Identifier: MIT
/*
 * The VMM's own sandbox: NoNewPrivs, no capabilities, an optional user switch, a cgroup, and one
 * seccomp-bpf allow-list per thread kind (see sandbox.h and docs/security.md).
 *
 * Filters are compiled once by libseccomp in sandbox_init, while nothing runs but the main
 * thread, and exported to plain BPF programs; a thread then installs its program with the bare
 * seccomp(2) call, so no thread needs libseccomp's allocations or probing after it is filtered.
 * Filters stack: a thread created after the main thread's filter runs under both, so the vCPU
 * and migration lists are subsets of the main list by construction (main_rules adds them).
 */
#include "sandbox.h"

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "sandbox_rules.h"

#define CGROUP2_SUPER_MAGIC 0x63677270
#define MAX_SYSCALL_NR 512

static const char *const kind_names[SANDBOX_NKINDS] = { "main", "vcpu", "io", "migration" };

static struct {
	bool active; /* sandbox_init ran with seccomp on */
	enum sandbox_seccomp mode;
	uid_t uid;
	gid_t gid;
	bool switch_user;
	bool allow_exec;
	bool reexec; /* this image was executed by --on-reboot restart */
	struct sock_fprog prog[SANDBOX_NKINDS];
	unsigned int nrules[SANDBOX_NKINDS];
} sb;

/* For the SIGSYS handler, which may not allocate: syscall names resolved in advance. */
static const char *syscall_names[MAX_SYSCALL_NR];
static __thread enum sandbox_thread this_kind;

int sandbox_parse_seccomp(const char *arg, enum sandbox_seccomp *out)
{
	if (!strcmp(arg, "kill") || !strcmp(arg, "on"))
		*out = SANDBOX_SECCOMP_KILL;
	else if (!strcmp(arg, "log"))
		*out = SANDBOX_SECCOMP_LOG;
	else if (!strcmp(arg, "off"))
		*out = SANDBOX_SECCOMP_OFF;
	else
		return -EINVAL;
	return 0;
}

unsigned int sandbox_rule_count(enum sandbox_thread kind)
{
	return kind < SANDBOX_NKINDS ? sb.nrules[kind] : 0;
}

static char *put_str(char *p, char *end, const char *s)
{
	while (*s && p < end)
		*p++ = *s++;
	return p;
}

static char *put_num(char *p, char *end, long v)
{
	char tmp[24];
	int n = 0;

	if (v < 0) {
		p = put_str(p, end, "-");
		v = -v;
	}
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < (int)sizeof(tmp));
	while (n && p < end)
		*p++ = tmp[--n];
	return p;
}

static char *put_hex(char *p, char *end, unsigned long v)
{
	char tmp[16];
	int n = 0;

	p = put_str(p, end, "0x");
	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v && n < (int)sizeof(tmp));
	while (n && p < end)
		*p++ = tmp[--n];
	return p;
}

/* Kill mode: a forbidden call traps here instead of running. The message names the call; then
 * the same call is made again with SIGSYS blocked (it is, inside this handler), and the kernel
 * turns that second trap into a fatal SIGSYS for the whole process, even for the PID 1 of a jail.
 * Only write(2) and the trapped call itself are used: both work under any of the filters. */
static void sigsys_handler(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *r = uc->uc_mcontext.gregs;
	int nr = si->si_syscall;
	char msg[200], *p = msg, *end = msg + sizeof(msg);
	const char *name = nr >= 0 && nr < MAX_SYSCALL_NR ? syscall_names[nr] : NULL;

	(void)sig;
	p = put_str(p, end, "vireo: seccomp: the ");
	p = put_str(p, end, kind_names[this_kind]);
	p = put_str(p, end, " thread made the forbidden system call ");
	p = put_str(p, end, name ? name : "?");
	p = put_str(p, end, " (");
	p = put_num(p, end, nr);
	if (nr == SYS_ioctl || nr == SYS_prctl || nr == SYS_socket || nr == SYS_clone) {
		p = put_str(p, end, nr == SYS_ioctl ? ", request " : ", argument ");
		p = put_hex(p, end, (unsigned long)r[nr == SYS_ioctl ? REG_RSI : REG_RDI]);
	}
	p = put_str(p, end, "); stopping the VMM with SIGSYS\n");
	if (write(STDERR_FILENO, msg, (size_t)(p - msg)) < 0)
		p = msg;
	syscall(nr, r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10], r[REG_R8], r[REG_R9]);
	_exit(128 + SIGSYS); /* not reached: the repeated call is fatal */
}

/* Compiles one kind's rules into a BPF program owned by sb. */
static int compile(enum sandbox_thread kind, uint32_t def_action)
{
	scmp_filter_ctx ctx = seccomp_init(def_action);
	struct sandbox_ruleset rs = { .ctx = ctx, .pid = getpid(), .allow_exec = sb.allow_exec };
	char *buf = NULL;
	long len;
	int fd = -1, ret;

	if (!ctx)
		return -ENOMEM;
	/* NoNewPrivs is set once for the process, not by libseccomp per filter. */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (ret)
		goto out;
	ret = sandbox_rules_add(&rs, kind);
	if (ret)
		goto out;
	sb.nrules[kind] = rs.count;
	fd = memfd_create("vireo-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = seccomp_export_bpf(ctx, fd);
	if (ret)
		goto out;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (long)sizeof(struct sock_filter) || !(buf = malloc((size_t)len)) ||
	    pread(fd, buf, (size_t)len, 0) != len) {
		ret = -EIO;
		goto out;
	}
	sb.prog[kind].len = (unsigned short)(len / (long)sizeof(struct sock_filter));
	sb.prog[kind].filter = (struct sock_filter *)buf;
	buf = NULL;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return ret;
}

static int resolve_ids(const struct sandbox_opts *o)
{
	char *end;
	unsigned long v;

	if (!o->user && !o->group)
		return 0;
	sb.switch_user = true;
	sb.uid = getuid();
	sb.gid = getgid();
	if (o->user) {
		struct passwd *pw = getpwnam(o->user);

		v = strtoul(o->user, &end, 10);
		if (pw) {
			sb.uid = pw->pw_uid;
			sb.gid = pw->pw_gid;
		} else if (*o->user && !*end && v < UINT32_MAX) {
			sb.uid = (uid_t)v;
			sb.gid = (gid_t)v;
		} else {
			pr_err("--user %s: no such user", o->user);
			return -EINVAL;
		}
	}
	if (o->group) {
		struct group *gr = getgrnam(o->group);

		v = strtoul(o->group, &end, 10);
		if (gr) {
			sb.gid = gr->gr_gid;
		} else if (*o->group && !*end && v < UINT32_MAX) {
			sb.gid = (gid_t)v;
		} else {
			pr_err("--group %s: no such group", o->group);
			return -EINVAL;
		}
	}
	return 0;
}

/* Writes our pid into PATH/cgroup.procs: everything the VMM allocates from now on (guest RAM
 * included) is charged to that cgroup. */
static int join_cgroup(const char *path, bool create)
{
	char procs[4096];
	struct statfs fs;
	int fd, n;

	if (create && mkdir(path, 0755) < 0 && errno != EEXIST) {
		pr_err("--cgroup %s: cannot create it: %s", path, strerror(errno));
		return -errno;
	}
	if (statfs(path, &fs) < 0) {
		pr_err("--cgroup %s: %s%s", path, strerror(errno),
		       errno == ENOENT && !create ? " (add --cgroup-create to make it)" : "");
		return -errno;
	}
	if (fs.f_type != CGROUP2_SUPER_MAGIC) {
		pr_err("--cgroup %s: not in a cgroup v2 hierarchy (is cgroup2 mounted, e.g. on "
		       "/sys/fs/cgroup?)",
		       path);
		return -ENOTSUP;
	}
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		pr_err("--cgroup %s: %s", procs, strerror(errno));
		return -errno;
	}
	n = dprintf(fd, "%d\n", (int)getpid());
	if (n < 0) {
		int err = -errno;

		pr_err("--cgroup %s: cannot move vireo there: %s", path, strerror(errno));
		close(fd);
		return err;
	}
	close(fd);
	pr_debug("joined cgroup %s", path);
	return 0;
}

/* Set by sandbox_before_exec to the pid that executes vireo again (the pid does not change). */
#define REEXEC_ENV "VIREO_SANDBOX_REEXEC"

void sandbox_before_exec(void)
{
	char pid[16];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv(REEXEC_ENV, pid, 1);
}

int sandbox_init(const struct sandbox_opts *o)
{
	const char *v = getenv(REEXEC_ENV);
	char pid[16];
	int ret;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	sb.reexec = v && !strcmp(v, pid);
	unsetenv(REEXEC_ENV);
	/* A restarted image is in its cgroup and runs as its user already, with no capability
	 * left to drop (the bounding set was emptied before the exec); in a jail it could not even
	 * see the cgroup or the user database. */
	if (sb.reexec) {
		sb.mode = o->seccomp;
		sb.allow_exec = o->allow_exec;
		goto modes;
	}
	if (o->cgroup) {
		ret = join_cgroup(o->cgroup, o->cgroup_create);
		if (ret)
			return ret;
	}
	ret = resolve_ids(o);
	if (ret)
		return ret;
	/* Nothing this process or a child execs can gain privileges (setuid, file capabilities). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		pr_err("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -errno;
	}
	sb.mode = o->seccomp;
	sb.allow_exec = o->allow_exec;
modes:
#ifdef VIREO_TEST_HOOKS
	/* Test builds: a whole suite can run with the filters in another mode (e.g. log, to find
	 * the calls a new code path makes), except where a test chose one. */
	if (!o->seccomp_given && getenv("VIREO_TEST_SECCOMP") &&
	    sandbox_parse_seccomp(getenv("VIREO_TEST_SECCOMP"), &sb.mode))
		pr_warn("VIREO_TEST_SECCOMP: expected kill, log or off");
#endif
	return 0;
}

int sandbox_build(void)
{
	uint32_t def;
	int ret;

	if (sb.mode == SANDBOX_SECCOMP_OFF)
		return 0;
	/* glibc counts the CPUs (reading /sys) when a thread first needs a new malloc arena; it
	 * is told now, with the number it would compute (8 per CPU), so no thread has to later. */
	mallopt(M_ARENA_MAX, 8 * (int)MAX(sysconf(_SC_NPROCESSORS_ONLN), 1L));
	/* glibc reads /etc/localtime the first time any time conversion runs, even gmtime_r (the
	 * RTC's, on a vCPU thread): done now, while files may still be opened. */
	tzset();
	for (int nr = 0; nr < MAX_SYSCALL_NR; nr++)
		syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	def = sb.mode == SANDBOX_SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP;
	for (int k = 0; k < SANDBOX_NKINDS; k++) {
		ret = compile((enum sandbox_thread)k, def);
		if (ret) {
			pr_err("seccomp: cannot build the %s thread's filter: %s", kind_names[k],
			       strerror(-ret));
			return ret;
		}
		pr_debug("seccomp: %s threads: %u rules, %u BPF instructions", kind_names[k],
			 sb.nrules[k], sb.prog[k].len);
	}
	if (sb.mode == SANDBOX_SECCOMP_KILL) {
		struct sigaction sa = { .sa_sigaction = sigsys_handler, .sa_flags = SA_SIGINFO };

		sigaction(SIGSYS, &sa, NULL);
	}
	sb.active = true;
	return 0;
}

/* Empties every capability set, the bounding and ambient sets included, switching user and
 * group on the way when asked. */
static int drop_privileges(void)
{
	int ret;

	capng_clear(CAPNG_SELECT_ALL);
	if (sb.switch_user) {
		/* CAPNG_DROP_SUPP_GRP: no supplementary group of root's (disk, kvm...) stays. */
		ret = capng_change_id((int)sb.uid, (int)sb.gid,
				      CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING);
		if (ret) {
			pr_err("--user/--group: cannot switch to uid %u gid %u (%d): %s",
			       (unsigned int)sb.uid, (unsigned int)sb.gid, ret,
			       errno ? strerror(errno) : "not permitted");
			return -EPERM;
		}
	} else {
		ret = capng_apply(CAPNG_SELECT_ALL);
		if (ret) {
			pr_err("cannot drop capabilities (%d): %s", ret, strerror(errno));
			return -EPERM;
		}
	}
	/* capng_apply may skip the ambient set on older libcap-ng; clear it in any case. */
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE) {
		pr_err("capabilities are still held after dropping them");
		return -EPERM;
	}
	for (int c = 0; c <= CAP_LAST_CAP; c++) {
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) {
			pr_err("capability %d is still in the bounding set", c);
			return -EPERM;
		}
	}
	return 0;
}

int sandbox_lockdown(void)
{
	/* After a restart the previous image's main filter (the same list: --on-reboot restart is
	 * on the same command line) still applies to this thread; another copy is not stacked. */
	bool inherited = sb.active && sb.reexec && prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2;
	int ret;

	ret = sb.reexec ? 0 : drop_privileges();
	if (ret)
		return ret;
	if (sb.active && !inherited)
		sandbox_enter_thread(SANDBOX_MAIN);
	else if (sb.active)
		this_kind = SANDBOX_MAIN;
	pr_debug("sandbox: no capabilities, NoNewPrivs, seccomp %s",
		 sb.mode == SANDBOX_SECCOMP_OFF	  ? "off"
		 : sb.mode == SANDBOX_SECCOMP_LOG ? "log"
						  : "kill");
	return 0;
}

void sandbox_enter_thread(enum sandbox_thread kind)
{
	char name[16];

	if (!sb.active || kind >= SANDBOX_NKINDS)
		return;
	this_kind = kind;
	/* The kernel's seccomp log lines carry the thread name. */
	if (kind != SANDBOX_MAIN) {
		snprintf(name, sizeof(name), "vireo-%s", kind_names[kind]);
		prctl(PR_SET_NAME, name, 0, 0, 0);
	}
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sb.prog[kind]) < 0) {
		pr_err("seccomp: cannot filter the %s thread: %s", kind_names[kind],
		       strerror(errno));
		_exit(1);
	}
}

#ifdef VIREO_TEST_HOOKS
/*
 * Test builds only (meson -Dtest_hooks, never in a release build): the control command
 * {"cmd": "test-forbidden-syscall", "thread": "main"|"vcpu"} makes the named thread issue a system
 * call none of the allow-lists has, the way code an attacker took over would. With the sandbox
 * on, the VMM dies of SIGSYS naming the call; with --seccomp=log or off the call runs (it is
 * harmless: mount(2) with no arguments fails with EFAULT) and the command answers.
 */
static int vcpu_armed;

static long forbidden_call(void)
{
	return syscall(SYS_mount, NULL, NULL, NULL, 0, NULL);
}

void sandbox_test_point(enum sandbox_thread kind)
{
	if (kind == SANDBOX_VCPU && __atomic_exchange_n(&vcpu_armed, 0, __ATOMIC_ACQ_REL)) {
		long r = forbidden_call();

		pr_info("test-forbidden-syscall: mount from a vCPU thread returned %ld (%s)", r,
			r < 0 ? strerror(errno) : "ok");
	}
}

bool sandbox_test_control(const char *cmd, const char *thread, char *out, size_t outlen)
{
	long r;

	if (strcmp(cmd, "test-forbidden-syscall"))
		return false;
	if (!thread)
		thread = "main";
	if (!strcmp(thread, "vcpu")) {
		/* The next time a vCPU leaves KVM_RUN for a signal: vCPU threads are kicked when
		 * the VM pauses, stops or is profiled; the test pauses it. */
		__atomic_store_n(&vcpu_armed, 1, __ATOMIC_RELEASE);
		snprintf(out, outlen, "{\"ok\":true,\"armed\":\"vcpu\"}");
		return true;
	}
	if (strcmp(thread, "main")) {
		snprintf(out, outlen, "{\"ok\":false,\"error\":\"thread: main or vcpu\"}");
		return true;
	}
	r = forbidden_call();
	snprintf(out, outlen, "{\"ok\":true,\"result\":%ld,\"errno\":%d}\n", r, r < 0 ? errno : 0);
	return true;
}
#endif
