/* SPDX-License-Identifier: MIT */
/*
 * What `vireo run` gives up once the machine is built (docs/security.md, "What the VMM runs
 * with"): NoNewPrivs, every capability (the bounding and ambient sets too), optionally its user
 * and group, and a seccomp-bpf allow-list per thread kind. It can also place itself in a cgroup v2
 * directory its caller names.
 */
#ifndef VIREO_VMM_SANDBOX_H
#define VIREO_VMM_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* The kinds of threads, each with its own allow-list. A thread installs its list as the first
 * thing it does (sandbox_enter_thread); threads created after the main thread's filter also
 * inherit that filter, so every list but SANDBOX_IO is a subset of SANDBOX_MAIN's. */
enum sandbox_thread {
	SANDBOX_MAIN, /* the event loop: devices, control socket, snapshots, slirp */
	SANDBOX_VCPU, /* KVM_RUN and the PIO/MMIO exits it handles */
	SANDBOX_IO, /* block request workers (src/block/aio.c) */
	SANDBOX_MIGRATION, /* the outgoing migration sender */
	SANDBOX_NKINDS
};

enum sandbox_seccomp {
	SANDBOX_SECCOMP_KILL, /* a forbidden call is reported and kills the VMM (SIGSYS) */
	SANDBOX_SECCOMP_LOG, /* forbidden calls run and are logged by the kernel (audit, dmesg) */
	SANDBOX_SECCOMP_OFF,
};

#define SANDBOX_SECCOMP_DEFAULT SANDBOX_SECCOMP_KILL

struct sandbox_opts {
	enum sandbox_seccomp seccomp;
	bool seccomp_given; /* --seccomp was on the command line */
	const char *user; /* --user NAME|UID: switch to it after the machine is built */
	const char *group; /* --group NAME|GID (default: the user's primary group) */
	const char *cgroup; /* --cgroup PATH: join this cgroup v2 directory first */
	bool cgroup_create; /* --cgroup-create: mkdir PATH if it does not exist */
	bool allow_exec; /* --on-reboot restart re-executes vireo: execve stays allowed */
};

/* Parses a --seccomp value (kill|log|off; "on" means kill). Returns 0 or -EINVAL. */
int sandbox_parse_seccomp(const char *arg, enum sandbox_seccomp *out);

/* Before anything is opened or any thread started: joins the cgroup, resolves --user/--group
 * and sets NoNewPrivs (inherited by every thread and by the jail). Returns 0 or -errno with a
 * message logged. */
int sandbox_init(const struct sandbox_opts *o);

/* In the process that will be the VMM (inside its jail, if any): compiles the filters. Returns 0
 * or -errno (logged). */
int sandbox_build(void);

/* Once /dev/kvm, the images, taps and sockets are open: switches user and group, empties every
 * capability set and installs the main thread's filter. Returns 0 or -errno (logged). */
int sandbox_lockdown(void);

/* First call of every thread of the given kind: installs its filter (nothing when seccomp is off
 * or sandbox_init was not called, as in the unit tests). A thread that cannot install its filter
 * stops the VMM: it would otherwise run with more than it should. */
void sandbox_enter_thread(enum sandbox_thread kind);

/* Before `vireo run` executes itself again (--on-reboot restart): the new image finds the main
 * thread's filter already in place and does not stack a copy of it. */
void sandbox_before_exec(void);

/* How many rules (syscalls, and argument variants such as one per ioctl number) a kind's
 * allow-list holds; 0 before sandbox_init. */
unsigned int sandbox_rule_count(enum sandbox_thread kind);

/* Test builds only (-Dtest_hooks): the control command "test-forbidden-syscall" and the point in
 * each vCPU loop where a vCPU issues it on request. */
#ifdef VIREO_TEST_HOOKS
bool sandbox_test_control(const char *cmd, const char *thread, char *out, size_t outlen);
void sandbox_test_point(enum sandbox_thread kind);
#else
static inline bool sandbox_test_control(const char *cmd, const char *thread, char *out,
					size_t outlen)
{
	(void)cmd;
	(void)thread;
	(void)out;
	(void)outlen;
	return false;
}
static inline void sandbox_test_point(enum sandbox_thread kind)
{
	(void)kind;
}
#endif

#endif
