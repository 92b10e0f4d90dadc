/* SPDX-License-Identifier: MIT */
/*
 * Talking to one VMM (`vireo run`) from vireod: spawning it through a shim, finding it again,
 * and its control socket. Used by supervisor.c only.
 *
 * Process tree: vireod forks a short-lived child that setsid()s, forks the shim and exits (so
 * vireod never has to reap the shim and the shim outlives vireod); the shim is this same
 * binary re-executed as `vireod --shim VMDIR -- ARGV...` (PR_SET_NAME "vireo-shim"; all other
 * fds closed). It forks+execs the VMM with stdin /dev/null and stdout/stderr appended to
 * VMDIR/vmm.log, reports the VMM's pid back over a pipe, writes VMDIR/shim.pid and
 * VMDIR/vmm.pid, waits for the VMM, and writes its wait status to VMDIR/exit-status (temporary
 * file + rename) before it exits. So a VMM's exit status survives a vireod crash.
 */
#ifndef VIREO_DAEMON_VMM_H
#define VIREO_DAEMON_VMM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

struct vmm_proc {
	pid_t shim_pid;
	pid_t vmm_pid;
	uint64_t starttime; /* /proc/PID/stat field 22 of the VMM */
};

/* Spawns argv (argv[0] the VMM binary) through the shim for the VM directory vmdir (which must
 * exist). self is the path of the vireod binary to re-execute as the shim. Removes a stale
 * VMDIR/exit-status first. Returns 0 with *out filled, or -errno. */
int vmm_spawn(const char *self, const char *vmdir, char *const argv[], struct vmm_proc *out);

/* The shim's main: argv as after `vireod --shim` (VMDIR REPORT_FD -- ARGV...). Never returns
 * on success (exits with 0 after writing exit-status); returns 1 on bad arguments. */
int vmm_shim_main(int argc, char **argv);

/* Field 22 of /proc/pid/stat. -ESRCH when the process is gone. */
int vmm_starttime(pid_t pid, uint64_t *out);
/* Whether pid is alive and is the process started at starttime (defeats pid reuse). A zombie
 * counts as dead. */
bool vmm_alive(pid_t pid, uint64_t starttime);
/* pidfd_open(pid) (close-on-exec), or -errno. */
int vmm_pidfd(pid_t pid);

/* VMDIR/exit-status: the VMM's wait status as the shim wrote it. -ENOENT when absent (the shim
 * has not seen the VMM end, or died itself). */
int vmm_read_exit_status(const char *vmdir, int *status);
/* A reason text for a wait status: "exited with status N" / "killed by signal N (SIGKILL)". */
void vmm_status_text(int status, char *buf, size_t len);

/* One request on the control socket at sock: sends req as a line, reads one reply line, with a
 * total timeout in ms. *reply is the parsed object (new reference). -ETIMEDOUT, -ECONNREFUSED,
 * -ENOENT (no socket), -EPROTO (reply not JSON). A reply {"ok":false} is still 0: the caller
 * looks at "ok". */
int vmm_request(const char *sock, json_object *req, int timeout_ms, json_object **reply);
/* Shorthand: {"cmd": cmd}. */
int vmm_command(const char *sock, const char *cmd, int timeout_ms, json_object **reply);

/* CPU time (utime+stime) in seconds and resident set size in bytes, from /proc/PID/stat and
 * /proc/PID/statm. -ESRCH when gone. */
int vmm_proc_stats(pid_t pid, double *cpu_seconds, uint64_t *rss_bytes);

#endif
