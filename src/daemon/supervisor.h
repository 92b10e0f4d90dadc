/* SPDX-License-Identifier: MIT */
/*
 * The supervisor owns the VMs: their definitions (kept in memory, written through to the store),
 * their state machine, their VMM processes (spawned through vmm.c, watched with pidfds in an
 * epoll thread), re-attaching and reconciling at daemon start, autostart and restart policies.
 * API handlers (api_vms.c, api_host.c, api_metrics.c) call only these functions.
 *
 * States: defined, starting, running, paused, stopping, stopped, crashed, migrating.
 * Actions and where they are allowed (anything else: "invalid_state"):
 *   start     defined, stopped, crashed     -> starting -> running
 *   shutdown  running                       -> stopping -> stopped (ACPI power button;
 *             args {"timeout_s": 0..3600 (default 60), "force": bool (default true: stop hard
 *             after the timeout)})
 *   stop      running, paused, stopping, starting -> stopped (VMM's forced stop, SIGKILL after
 *             5 s)
 *   reboot    running -> running (power button, wait for the VMM to end, start again)
 *   reset     running -> running (the VMM's reset)
 *   pause     running -> paused;  resume  paused -> running
 *   snapshot  running, paused -> same ({"path"?: absolute directory, default
 *             STATE_DIR/vms/<id>/snapshots/<time>}; result {path, state_bytes, ...})
 *   migrate   running -> migrating -> stopped ({"uri":"tcp:HOST:PORT", "max_downtime_ms"?,
 *             "tls"?: "psk=FILE"|"x509=DIR", "insecure"?: bool, passed to the VMM's migrate};
 *             progress from migrate-status; a failed migration goes back to running)
 *   delete (not an action: supervisor_vm_delete) defined, stopped, crashed
 * Every transition is stored with its reason (store_vm_set_state) and published as "vm.state"
 * {id,name,from,to,reason}.
 *
 * Every action is a task (task.c) queued on the VM's FIFO, so concurrent actions serialise. An
 * action whose VM has nothing queued and is in a state the action is not allowed from is
 * refused at once (-EBUSY, "invalid_state"); otherwise the task checks again when it runs and
 * fails with "invalid_state" in its error.
 *
 * `id` arguments accept the VM's uuid or its name. Errors: -ENOENT "not_found", -EBUSY
 * "invalid_state", -EEXIST "name_taken", -ESTALE "generation_mismatch", -EINVAL
 * "invalid_value"/"unknown_field"/"bad_request", -EIO "internal". All functions are thread
 * safe.
 */
#ifndef VIREO_DAEMON_SUPERVISOR_H
#define VIREO_DAEMON_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "consolehub.h"
#include "derror.h"
#include "store.h"
#include "task.h"

struct supervisor;

/* The VM states, in the order the API and the metrics list them. */
#define SUPERVISOR_NSTATES 8
extern const char *const supervisor_states[SUPERVISOR_NSTATES];

/* Publishes an event: "vm.created" (vm), "vm.updated" (vm), "vm.deleted" {id,name},
 * "vm.state" {id,name,from,to,reason}. The caller keeps ownership of data (events_publish
 * fits). */
typedef void (*supervisor_publish_fn)(const char *type, json_object *data);

struct supervisor_config {
	const char *state_dir; /* VM directories are STATE_DIR/vms/<id>/ */
	const char *vireo; /* the `vireo` binary to run VMMs with */
	const char *self; /* this vireod binary (re-executed as the shim) */
	struct store *store;
	struct task_pool *tasks;
	struct consolehub *consoles; /* may be NULL: no consoles */
	supervisor_publish_fn publish; /* may be NULL */
};

/* The supervisor the daemon created (the first supervisor_create), for the API handlers. */
struct supervisor *supervisor_default(void);

/* Loads every VM from the store. Does not touch any process yet. */
int supervisor_create(const struct supervisor_config *cfg, struct supervisor **out);
/* Daemon start: re-attaches to every VMM the store says is alive (pid + start time + control
 * socket status); a VMM that died meanwhile becomes crashed (or stopped, if it exited with 0
 * or a stop was underway) with reason "exited while vireod was down: ..."; then starts the
 * autostart VMs that are not running and restarts crashed VMs whose restart_policy says so.
 * Starts the pidfd watcher thread. */
int supervisor_start(struct supervisor *sv);
/* The daemon is stopping: tasks waiting for a VMM give up at once (failed "shutting_down"),
 * and nothing is killed on the way out. Call before task_pool_destroy. */
void supervisor_shutdown(struct supervisor *sv);
/* Stops the watcher thread and frees everything. VMMs keep running (a later vireod
 * re-attaches). The task pool must have been destroyed first. */
void supervisor_destroy(struct supervisor *sv);

/* ---- VM resources (the API's VM object is described in docs/api.md) --------------------- */

struct vm_filter {
	const char *state; /* NULL = any */
	const char *tag; /* NULL = any */
	const char *name_glob; /* fnmatch(3) pattern, NULL = any */
	int limit; /* 1..1000, <= 0: 100 */
	int offset;
};

/* POST /vms: body is a definition (strict). *vm_out = the new VM object. */
int supervisor_vm_create(struct supervisor *sv, json_object *body, json_object **vm_out,
			 struct derror *e);
/* GET /vms/{id} */
int supervisor_vm_get(struct supervisor *sv, const char *id, json_object **vm_out,
		      struct derror *e);
/* GET /vms: {"items":[...],"total":N,"limit":L,"offset":O}, ordered by creation. The items
 * are rendered from a per-VM cache: they serialize (json_object_to_json_string) to the VM
 * objects, but have no members to read in C; use supervisor_vm_get for that. */
int supervisor_vm_list(struct supervisor *sv, const struct vm_filter *f, json_object **out,
		       struct derror *e);
/* PATCH /vms/{id}: RFC 7396 merge patch of the definition. if_match < 0: no precondition,
 * else the generation it must have. Only description, tags, autostart and restart_policy may
 * change unless the VM is defined, stopped or crashed. */
int supervisor_vm_patch(struct supervisor *sv, const char *id, json_object *patch, int64_t if_match,
			json_object **vm_out, struct derror *e);
/* DELETE /vms/{id}: also removes STATE_DIR/vms/<id>/. */
int supervisor_vm_delete(struct supervisor *sv, const char *id, struct derror *e);
/* POST /vms/{id}/actions/{action}: queues the action as a task; *task_out = the task object.
 * args may be NULL (no body). principal (may be NULL) goes into the task's owner and the state
 * reason ("started by api (PRINCIPAL)"). */
int supervisor_vm_action(struct supervisor *sv, const char *id, const char *action,
			 json_object *args, const char *principal, json_object **task_out,
			 struct derror *e);
/* POST /vms/actions/{action}: body {"ids":[...]} or {"tag":"t"} (plus action args as
 * "args":{...}). *out = {"tasks":[task...]}; a VM whose action is refused gets an entry
 * {"vm_id":..., "error":{code,message}} instead of a task. */
int supervisor_vm_action_bulk(struct supervisor *sv, const char *action, json_object *body,
			      const char *principal, json_object **out, struct derror *e);
/* GET /vms/{id}/history: {"items":[{seq,at,from,to,reason}...]} */
int supervisor_vm_history(struct supervisor *sv, const char *id, json_object **out,
			  struct derror *e);
/* GET /vms/{id}/stats: {"id","state","cpu_seconds","rss_bytes","balloon":{...}|null,
 * "block":[...]|null,"net":[...]|null} (null when the VMM does not report them or the VM is
 * not running; cpu and rss 0 then). */
int supervisor_vm_stats(struct supervisor *sv, const char *id, json_object **out, struct derror *e);
/* The VM's uuid for an id or name (for the console route). -ENOENT if none. */
int supervisor_vm_resolve(struct supervisor *sv, const char *id, char out[STORE_ID_LEN]);

/* ---- Host ------------------------------------------------------------------------------- */
/* {"vms":{"defined":N,...every state},"memory_committed_bytes":B} (memory of VMs that have a
 * VMM). */
int supervisor_host_summary(struct supervisor *sv, json_object **out);
/* For /metrics: [{"id","name","state","stats":{as supervisor_vm_stats}|null}...] (stats only
 * for VMs with a VMM; one control-socket request each, 1 s timeout). */
int supervisor_metrics(struct supervisor *sv, json_object **out);

#endif
