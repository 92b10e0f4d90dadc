/* SPDX-License-Identifier: MIT */
/*
 * What supervisor.c (VM table, API, re-attach, pidfd watcher) and supervisor_actions.c (the
 * action tasks) share. Not for other modules.
 *
 * Locking: sv->lock guards the VM table and every field of every struct vm. It is held for
 * short stretches only: never across a control-socket request, a spawn or a wait. A struct vm
 * is freed only by supervisor_vm_delete, which refuses while the VM has a task queued or
 * running, or a VMM; so an action task may keep its struct vm pointer across unlocks.
 */
#ifndef VIREO_DAEMON_SUPERVISOR_INT_H
#define VIREO_DAEMON_SUPERVISOR_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "supervisor.h"
#include "vmdef.h"

struct vm {
	char id[STORE_ID_LEN];
	struct vm_def def;
	json_object *def_json; /* vmdef_to_json(&def), kept to build replies cheaply */
	char state[16];
	char *reason;
	char state_changed_at[STORE_TIME_LEN];
	int64_t generation;
	char created_at[STORE_TIME_LEN];
	char updated_at[STORE_TIME_LEN];
	/* sv_vm_json() rendered as text for lists; NULL when something changed (sv_vm_dirty). */
	char *text;

	/* The VMM, while there is one (vmm_pid != 0). */
	pid_t shim_pid;
	pid_t vmm_pid;
	uint64_t starttime;
	int pidfd;
	/* A stop, shutdown, reboot or migration is underway: the VMM's clean exit (status 0, or
	 * the SIGKILL we sent) then means stopped with expect_reason, not a power-off or crash. */
	bool expect_exit;
	bool kill_sent;
	char expect_reason[320];
	/* Restarts by the restart policy in the current window, against restart loops. */
	int restarts;
	int64_t restart_window;

	char dir[PATH_MAX - 64];
	char api_sock[PATH_MAX];
	char console_sock[PATH_MAX];
};

struct supervisor {
	struct supervisor_config cfg; /* strings below are copies */
	char *state_dir;
	char *vireo;
	char *self;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* broadcast when a VMM ends (CLOCK_MONOTONIC) */
	struct vm **vms; /* creation order */
	size_t nvms;
	size_t cap;
	int epfd;
	int wakefd;
	bool stopping;
	bool watching;
	pthread_t watcher;
};

/* ---- supervisor.c ---- */
void sv_publish(struct supervisor *sv, const char *type, json_object *data);
/* The table (lock held). */
int sv_table_add(struct supervisor *sv, struct vm *vm);
void sv_vm_free(struct vm *vm);
/* Sets dir, api_sock and console_sock from the id. */
void sv_vm_paths(struct supervisor *sv, struct vm *vm);
/* A list item rendered from the VM's cached text (see supervisor_vm_list). Lock held. */
json_object *sv_vm_list_item(struct vm *vm);
/* The VM with this uuid or name (lock held), or NULL. */
struct vm *sv_find(struct supervisor *sv, const char *id);
/* Moves vm to state `to` with reason: store (guarded by the current state), memory, event.
 * Lock held. */
int sv_transition(struct supervisor *sv, struct vm *vm, const char *to, const char *reason);
/* The VM as the API shows it (lock held). New reference. */
json_object *sv_vm_json(const struct vm *vm);
/* Forgets the VM's cached rendering (lock held): call after changing anything it shows. */
void sv_vm_dirty(struct vm *vm);
/* Records a freshly spawned or re-attached VMM: pidfd into the watcher, runtime row. Lock held.
 * Returns 0 or -errno (the VMM already gone: pidfd_open fails with -ESRCH). */
int sv_watch(struct supervisor *sv, struct vm *vm, pid_t shim, pid_t vmm, uint64_t starttime,
	     bool store_runtime);
/* Waits until vm has no VMM, up to timeout_ms. Lock held (released while waiting). Returns
 * true when the VMM is gone. */
bool sv_wait_gone(struct supervisor *sv, struct vm *vm, int timeout_ms);
/* Queues a start on behalf of the daemon itself (autostart, restart policy). */
void sv_queue_start(struct supervisor *sv, const char *id, const char *reason);

/* ---- supervisor_actions.c ---- */
/* Whether the action exists; whether it is allowed from state. */
bool sv_action_known(const char *action);
bool sv_action_allowed(const char *action, const char *state);
/* Checks the action's arguments (args may be NULL). */
int sv_action_check_args(const char *action, json_object *args, struct derror *e);
/* Queues the action as a task. reason_by is "api (PRINCIPAL)" or "vireod (autostart)"... */
int sv_action_submit(struct supervisor *sv, const char *id, const char *action, json_object *args,
		     const char *principal, const char *reason_by, json_object **task_out);
/* Per-VM stats (lock not held; vm must stay alive: called with a copy of what it needs). */
json_object *sv_stats(const char *api_sock, pid_t vmm_pid, bool balloon, int nnics);

#endif
