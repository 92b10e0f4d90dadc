/* SPDX-License-Identifier: MIT */
/*
 * `vireo run --jail DIR`: the VMM in new mount, PID, IPC and UTS namespaces (and network, when
 * the VM has no network back end and receives no migration), its root a tmpfs on DIR holding
 * only the files this VM names, bind-mounted at their own paths. docs/security.md describes the
 * interface vireod uses.
 */
#ifndef VIREO_VMM_JAIL_H
#define VIREO_VMM_JAIL_H

#include "config.h"

/* Enters the jail. The calling process stays outside as a waiter that forwards SIGINT, SIGTERM
 * and SIGHUP and ends as the VMM ends (same exit status, or the same signal); the VMM, PID 1 of
 * the new PID namespace, returns 0 from here with the jail as its root. Paths in cfg are made
 * absolute. Nothing is done in a VMM a restart executed inside its jail. Returns -errno (logged)
 * when the jail cannot be built. */
int jail_enter(struct vm_config *cfg);

/* --on-reboot restart: executes vireo again with argv, from inside the jail too (where /proc is
 * not mounted). Returns only on failure. */
void jail_exec_self(char **argv);

#endif
