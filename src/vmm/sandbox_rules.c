// SPDX-License-Identifier: MIT
/*
 * The seccomp allow-lists, one per thread kind. Each list was found by running every test suite
 * with --seccomp=log and reading the kernel's log of the calls outside it; a call is here because
 * a named path of the VMM makes it. Lists are merged upwards: the main thread's filter is also
 * inherited by the threads it creates later (vCPUs, migration), so its list contains theirs.
 */
#include "sandbox_rules.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>

#include "../common/util.h"

/* clang-format off */
/* Every thread: memory, locks, its own signals, time, logging, leaving. */
static const char *const base_calls[] = {
	"read", "write", "readv", "writev", "close", "futex", "exit", "exit_group",
	"rt_sigreturn", "rt_sigprocmask", "clock_gettime", "clock_nanosleep", "nanosleep",
	"gettid", "getpid", "sched_yield", "restart_syscall", "munmap", "brk", "madvise",
	"mremap", "gettimeofday",
};

/* vCPU threads: KVM_RUN and the exits they handle. Queues are processed on the main loop; a
 * vCPU only writes eventfds, sets up a device's eventfds when the driver starts it, writes the
 * serial console and asks for stops. */
static const char *const vcpu_calls[] = {
	"eventfd2", "epoll_ctl", "fcntl", "sendto", "sendmsg",
};

/* KVM ioctls a vCPU thread makes (on its own vCPU fd and on the VM fd). */
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN, KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS, KVM_TRANSLATE,
	KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, KVM_GET_MP_STATE, KVM_GET_LAPIC,
	KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, KVM_SIGNAL_MSI, KVM_SET_GSI_ROUTING, KVM_IRQFD,
	KVM_IOEVENTFD,
	/* exits.c: instructions KVM's emulator leaves to the VMM (PVM hosts) touch FPU state */
	KVM_GET_FPU, KVM_SET_FPU, KVM_GET_XSAVE, KVM_SET_XSAVE, KVM_CHECK_EXTENSION,
};

/* Block request workers: the image files' I/O, nothing else. */
static const char *const io_calls[] = {
	"pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "fsync",
	"fdatasync", "fallocate", "ftruncate", "lseek", "fstat", "newfstatat",
};

/* The migration sender: its socket, the dirty log, the saved state of the paused VM. */
static const char *const migration_calls[] = {
	"connect", "setsockopt", "getsockopt", "getsockname", "getpeername",
	"sendto", "sendmsg", "recvfrom", "recvmsg", "shutdown", "poll", "ppoll", "fcntl",
	"fsync", "fdatasync", "pread64", "pwrite64", "openat", "newfstatat", "fstat", "lseek",
	"mincore", /* pages never touched are sent without reading them */
	"epoll_ctl", "pwritev",
	"getrandom", "statx", /* TLS (migtls.c): the handshake's randomness, credential files */
};

/* Saving and loading the machine (snapshots, migration, restore), from the main thread or the
 * migration thread. */
static const unsigned long state_ioctls[] = {
	KVM_GET_DIRTY_LOG, KVM_SET_USER_MEMORY_REGION, KVM_GET_CLOCK, KVM_SET_CLOCK,
	KVM_GET_IRQCHIP, KVM_SET_IRQCHIP, KVM_GET_PIT2, KVM_SET_PIT2, KVM_GET_FPU, KVM_SET_FPU,
	KVM_GET_XSAVE, KVM_SET_XSAVE, KVM_GET_XCRS, KVM_SET_XCRS, KVM_GET_MSRS, KVM_SET_MSRS,
	KVM_GET_LAPIC, KVM_SET_LAPIC, KVM_SET_MP_STATE, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS,
	KVM_GET_TSC_KHZ, KVM_SET_TSC_KHZ, KVM_CHECK_EXTENSION, KVM_GET_MSR_INDEX_LIST,
};

/* The main loop: devices' back ends (files, sockets, slirp, io_uring), the control socket,
 * snapshots and their overlays, signals, timers, thread creation. */
static const char *const main_calls[] = {
	"openat", "pread64", "pwrite64", "preadv", "pwritev", "lseek", "fstat", "newfstatat",
	"statx", "fsync", "fdatasync", "ftruncate", "fallocate", "mkdirat", "mkdir", "unlinkat",
	"unlink", "renameat", "renameat2", "rename", "getdents64", "faccessat", "faccessat2",
	"access", "readlink", "readlinkat", "getcwd", "dup", "dup3", "fcntl", "pipe2", "eventfd2",
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "poll", "ppoll", "pselect6",
	"timerfd_create", "timerfd_settime", "timerfd_gettime", "signalfd4", "rt_sigaction",
	"bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
	"setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown",
	"io_uring_enter", "getrandom", "set_robust_list", "rseq", "sched_getaffinity", "getuid",
	"geteuid", "getgid", "getegid", "uname", "sysinfo", "getrusage", "clock_getres",
	"fchmod", "utimensat", "flock", "getppid", "prlimit64",
	"umask", /* unix sockets are made 0600 (util.c) */
	"mincore", /* snapshots skip RAM that was never touched */
	/* A snapshot's new top image gets its own ring (src/block/aio.c). */
	"io_uring_setup", "io_uring_register",
};

/* Terminal and block-device queries of the main loop. */
static const unsigned long main_ioctls[] = {
	TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, FIONREAD, FIONBIO, FIOCLEX,
};

/* --on-reboot restart: vireo executes itself again, and the new image builds a machine from
 * nothing under this filter. */
static const char *const exec_calls[] = {
	"execve", "execveat", "capget", "capset", "memfd_create", "arch_prctl",
	"set_tid_address", "access", "mprotect", "mmap", "pkey_alloc", "getxattr",
	"statfs", "fstatfs", "getgroups",
};
static const unsigned long exec_ioctls[] = {
	KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_CREATE_VCPU, KVM_GET_VCPU_MMAP_SIZE,
	KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2, KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR,
	KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2, TUNSETIFF,
};
/* clang-format on */

/* The comparisons of the rules (libseccomp's SCMP_Ax macros leave datum_b to the compiler,
 * which clang's -Wmissing-field-initializers refuses). */
static struct scmp_arg_cmp arg_eq(unsigned int arg, scmp_datum_t v)
{
	struct scmp_arg_cmp c = { .arg = arg, .op = SCMP_CMP_EQ, .datum_a = v, .datum_b = 0 };

	return c;
}

/* (argument & mask) == v */
static struct scmp_arg_cmp arg_masked(unsigned int arg, scmp_datum_t mask, scmp_datum_t v)
{
	struct scmp_arg_cmp c = {
		.arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = v
	};

	return c;
}

static int allow_nr(struct sandbox_ruleset *rs, int nr)
{
	int ret;

	if (nr < 0)
		return 0; /* not a call on this architecture */
	if (nr < (int)sizeof(rs->plain) * 8 && rs->plain[nr / 8] & (1u << (nr % 8)))
		return 0;
	ret = seccomp_rule_add(rs->ctx, SCMP_ACT_ALLOW, nr, 0);
	if (ret)
		return ret;
	if (nr < (int)sizeof(rs->plain) * 8)
		rs->plain[nr / 8] |= (unsigned char)(1u << (nr % 8));
	rs->count++;
	return 0;
}

static int allow_list(struct sandbox_ruleset *rs, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ret = allow_nr(rs, seccomp_syscall_resolve_name(names[i]));

		if (ret)
			return ret;
	}
	return 0;
}

/* ioctl(fd, cmd, ...) for the listed cmds only. */
static int allow_ioctls(struct sandbox_ruleset *rs, const unsigned long *cmds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		int ret;

		for (unsigned int j = 0; j < rs->nioctls; j++)
			dup |= rs->ioctls[j] == cmds[i];
		if (dup)
			continue;
		if (rs->nioctls >= ARRAY_SIZE(rs->ioctls))
			return -ENOSPC;
		ret = seccomp_rule_add(rs->ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				       arg_eq(1, cmds[i]));
		if (ret)
			return ret;
		rs->ioctls[rs->nioctls++] = cmds[i];
		rs->count++;
	}
	return 0;
}

static int add(struct sandbox_ruleset *rs, int ret)
{
	if (!ret)
		rs->count++;
	return ret;
}

/* What every thread needs, with arguments checked where that is cheap and meaningful. */
static int base_rules(struct sandbox_ruleset *rs, bool exec)
{
	scmp_filter_ctx c = rs->ctx;
	int ret = allow_list(rs, base_calls, ARRAY_SIZE(base_calls));

	/* No new executable memory (no W^X break), unless a restart must load a fresh image. */
	if (!ret && !exec)
		ret = add(rs, seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
					       arg_masked(2, PROT_EXEC, 0)));
	if (!ret && !exec)
		ret = add(rs, seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
					       arg_masked(2, PROT_EXEC, 0)));
	/* Signals only to threads of this process (vCPU kicks, abort()). */
	if (!ret)
		ret = add(rs, seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
					       arg_eq(0, (scmp_datum_t)rs->pid)));
	/* Filters may be added (a thread's own, below the one it inherited), never removed. */
	if (!ret)
		ret = add(rs, seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 1,
					       arg_eq(0, SECCOMP_SET_MODE_FILTER)));
	if (!ret)
		ret = add(rs, seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
					       arg_eq(0, PR_SET_NAME)));
	return ret;
}

static int vcpu_rules(struct sandbox_ruleset *rs)
{
	int ret = allow_list(rs, vcpu_calls, ARRAY_SIZE(vcpu_calls));

	return ret ? ret : allow_ioctls(rs, vcpu_ioctls, ARRAY_SIZE(vcpu_ioctls));
}

/* Sockets of the families the VMM uses: unix (control, consoles, vsock), IPv4 and IPv6 (slirp,
 * migration), and routing netlink, which getaddrinfo reads to order a name's addresses. No
 * packet, vsock, crypto or other netlink sockets. */
static int socket_rules(struct sandbox_ruleset *rs)
{
	static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
	int ret = 0;

	for (size_t i = 0; !ret && i < ARRAY_SIZE(families); i++)
		ret = add(rs, seccomp_rule_add(rs->ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
					       arg_eq(0, (scmp_datum_t)families[i])));
	if (!ret)
		ret = add(rs, seccomp_rule_add(rs->ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
					       arg_eq(0, AF_NETLINK), arg_eq(2, NETLINK_ROUTE)));
	return ret;
}

static int migration_rules(struct sandbox_ruleset *rs)
{
	int ret = allow_list(rs, migration_calls, ARRAY_SIZE(migration_calls));

	if (!ret && !rs->sockets_added) {
		ret = socket_rules(rs);
		rs->sockets_added = true;
	}
	if (!ret)
		ret = allow_ioctls(rs, vcpu_ioctls, ARRAY_SIZE(vcpu_ioctls));
	return ret ? ret : allow_ioctls(rs, state_ioctls, ARRAY_SIZE(state_ioctls));
}

static int main_rules(struct sandbox_ruleset *rs)
{
	scmp_filter_ctx c = rs->ctx;
	int ret = allow_list(rs, main_calls, ARRAY_SIZE(main_calls));

	if (!ret)
		ret = allow_list(rs, io_calls, ARRAY_SIZE(io_calls));
	if (!ret)
		ret = vcpu_rules(rs);
	if (!ret)
		ret = migration_rules(rs);
	if (!ret)
		ret = allow_ioctls(rs, main_ioctls, ARRAY_SIZE(main_ioctls));
	/* Threads, never processes: glibc falls back from clone3 (whose flags a filter cannot
	 * see) to clone when clone3 says ENOSYS. */
	if (!ret)
		ret = add(rs, seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0));
	if (!ret)
		ret = add(rs, seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
					       arg_masked(0, CLONE_THREAD, CLONE_THREAD)));
	if (!ret && rs->allow_exec) {
		ret = allow_list(rs, exec_calls, ARRAY_SIZE(exec_calls));
		if (!ret)
			ret = allow_ioctls(rs, exec_ioctls, ARRAY_SIZE(exec_ioctls));
		/* The new image's own start-up: NoNewPrivs, libcap-ng's and libseccomp's probes
		 * (which can only ask, or add a filter). */
		static const int prctls[] = { PR_CAPBSET_READ,	   PR_CAPBSET_DROP,
					      PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS,
					      PR_CAP_AMBIENT,	   PR_GET_SECCOMP,
					      PR_GET_SECUREBITS };
		static const int seccomp_ops[] = { SECCOMP_SET_MODE_STRICT,
						   SECCOMP_GET_ACTION_AVAIL,
						   SECCOMP_GET_NOTIF_SIZES };

		for (size_t i = 0; !ret && i < ARRAY_SIZE(prctls); i++)
			ret = add(rs, seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
						       arg_eq(0, (scmp_datum_t)prctls[i])));
		for (size_t i = 0; !ret && i < ARRAY_SIZE(seccomp_ops); i++)
			ret = add(rs, seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 1,
						       arg_eq(0, (scmp_datum_t)seccomp_ops[i])));
	}
	return ret;
}

int sandbox_rules_add(struct sandbox_ruleset *rs, enum sandbox_thread kind)
{
	/* Only the main thread executes the new image of a restart. */
	int ret = base_rules(rs, rs->allow_exec && kind == SANDBOX_MAIN);

	if (ret)
		return ret;
	switch (kind) {
	case SANDBOX_MAIN:
		return main_rules(rs);
	case SANDBOX_VCPU:
		return vcpu_rules(rs);
	case SANDBOX_IO:
		return allow_list(rs, io_calls, ARRAY_SIZE(io_calls));
	case SANDBOX_MIGRATION:
		return migration_rules(rs);
	default:
		return -EINVAL;
	}
}
