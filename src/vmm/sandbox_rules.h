/* SPDX-License-Identifier: MIT */
/* The allow-lists of sandbox.c, one per thread kind (private to the sandbox module). */
#ifndef VIREO_VMM_SANDBOX_RULES_H
#define VIREO_VMM_SANDBOX_RULES_H

#include <seccomp.h>
#include <stdbool.h>
#include <sys/types.h>

#include "sandbox.h"

struct sandbox_ruleset {
	scmp_filter_ctx ctx;
	pid_t pid; /* signals may only go to this process */
	bool allow_exec; /* --on-reboot restart: execve and what a fresh start needs */
	unsigned int count; /* rules added */
	/* Already allowed without conditions (so the main list can merge the others). */
	unsigned char plain[64];
	unsigned long ioctls[128];
	unsigned int nioctls;
	bool sockets_added;
};

/* Adds kind's allow-list to rs->ctx. Returns 0 or a negative libseccomp error. */
int sandbox_rules_add(struct sandbox_ruleset *rs, enum sandbox_thread kind);

#endif
