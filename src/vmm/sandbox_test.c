// SPDX-License-Identifier: MIT
/*
 * Test builds only (meson -Dtest_hooks, never in a release build): the control command
 * {"cmd": "test-forbidden-syscall", "thread": "main"|"vcpu"} makes the named thread issue a system
 * call none of the allow-lists has, the way code an attacker took over would. With the sandbox
 * on, the VMM dies of SIGSYS naming the call; with --seccomp=log or off the call runs (it is
 * harmless: mount(2) with no arguments fails with EFAULT) and the command answers.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common/log.h"
#include "sandbox.h"

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

bool sandbox_test_control(const char *cmd, void *reqv, char *out, size_t outlen)
{
	json_object *req = reqv, *arg;
	const char *thread = "main";
	long r;

	if (strcmp(cmd, "test-forbidden-syscall"))
		return false;
	if (json_object_object_get_ex(req, "thread", &arg))
		thread = json_object_get_string(arg);
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
