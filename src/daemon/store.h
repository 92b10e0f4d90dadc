/* SPDX-License-Identifier: MIT */
/*
 * vireod's durable state: one SQLite database (vireod.db, WAL journal) behind one connection and
 * a mutex. All SQL of the daemon lives in store.c. Schema versions are `PRAGMA user_version`
 * with an ordered array of migrations; a database newer than this binary is refused.
 *
 * Tables: vms, vm_tags, vm_state_log, vm_runtime, tasks, task_log, tokens, audit (see
 * /work/helpers/vireod-design.md "Data model"). Times are RFC 3339 UTC strings with
 * milliseconds ("2026-11-29T19:42:03.123Z"), as the API shows them. Every multi-row change is
 * one transaction, so a kill -9 at any point leaves the database consistent (WAL).
 *
 * Thread safety: every function may be called from any thread. Returns 0 or -errno:
 * -ENOENT (no such row), -EEXIST (unique name/id taken), -ESTALE (generation or state
 * precondition failed), -EIO (SQLite error; logged with its message).
 */
#ifndef VIREO_DAEMON_STORE_H
#define VIREO_DAEMON_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

struct store;

/* RFC 3339 times: "YYYY-MM-DDTHH:MM:SS.mmmZ" plus NUL fits in STORE_TIME_LEN. */
#define STORE_TIME_LEN 32
#define STORE_ID_LEN 37 /* UUID text + NUL */

/* The current time as above, with microseconds ("...T19:42:03.123456Z"). */
void store_now(char out[STORE_TIME_LEN]);
/* A random version-4 UUID (getrandom), lower-case text. */
void store_uuid(char out[STORE_ID_LEN]);

/* Opens (creating if needed) the database at path, WAL mode, synchronous=NORMAL, foreign keys
 * on, and migrates it to the newest schema. A database whose user_version is newer than this
 * binary knows is refused with -EPROTO and a log line saying which versions. */
int store_open(const char *path, struct store **out);
void store_close(struct store *st);
/* Schema version this binary writes (the number of migrations). */
int store_schema_version(void);
/* Runs PRAGMA integrity_check; 0 when "ok", -EIO otherwise (the first problem is logged). */
int store_integrity_check(struct store *st);

/* ---- VMs -------------------------------------------------------------------------------- */

/* One row of `vms`. def_json is the definition as vmdef_to_json() writes it (tags included;
 * the tags are also kept in vm_tags). Strings are owned by the struct (store_vm_free). */
struct store_vm {
	char id[STORE_ID_LEN];
	char name[64];
	char state[16];
	char *state_reason;
	char state_changed_at[STORE_TIME_LEN];
	int64_t generation;
	char created_at[STORE_TIME_LEN];
	char updated_at[STORE_TIME_LEN];
	bool autostart;
	char *def_json;
};
void store_vm_free(struct store_vm *vm);

/* Inserts a new VM (state and reason as given, usually "defined") and its tags (json array of
 * strings, may be NULL), plus the first vm_state_log row (from "" to state). -EEXIST if the
 * name or id is taken. */
int store_vm_insert(struct store *st, const struct store_vm *vm, json_object *tags);
/* Calls fn for every VM (ordered by created_at, id); fn returns 0 to go on. The row passed is
 * only valid during the call. */
int store_vm_foreach(struct store *st, int (*fn)(const struct store_vm *vm, void *opaque),
		     void *opaque);
/* Reads one VM by id. -ENOENT if absent. Caller frees with store_vm_free. */
int store_vm_get(struct store *st, const char *id, struct store_vm *out);
/* Replaces the definition (name, autostart, def_json, tags) when the stored generation is
 * expect_generation; the new generation is expect_generation + 1 and updated_at is now.
 * -ESTALE when the generation moved, -EEXIST when the new name is taken. */
int store_vm_update_def(struct store *st, const char *id, int64_t expect_generation,
			const char *name, bool autostart, const char *def_json, json_object *tags,
			const char *updated_at);
/* Moves a VM from state `from` to `to`, recording reason, in one transaction with the
 * vm_state_log row (seq = previous max + 1). from == NULL skips the precondition; otherwise
 * -ESTALE when the stored state is not `from` (a lost update caught). */
int store_vm_set_state(struct store *st, const char *id, const char *from, const char *to,
		       const char *reason, const char *at);
/* Deletes the VM and its tags, state log and runtime row. -ENOENT if absent. */
int store_vm_delete(struct store *st, const char *id);
/* {"items":[{"seq","at","from","to","reason"}...]} oldest first, at most limit (<= 0: all). */
int store_vm_history(struct store *st, const char *id, int limit, json_object **out);

/* vm_runtime: how to find a VM's processes again after a vireod restart. */
struct store_runtime {
	int shim_pid;
	int vmm_pid;
	uint64_t vmm_starttime; /* field 22 of /proc/PID/stat, in clock ticks since boot */
	char started_at[STORE_TIME_LEN];
};
int store_runtime_set(struct store *st, const char *id, const struct store_runtime *rt);
int store_runtime_get(struct store *st, const char *id, struct store_runtime *out);
int store_runtime_clear(struct store *st, const char *id);

/* ---- Tasks ------------------------------------------------------------------------------ */

/* A row of `tasks`. progress -1 = null. result_json/error_json are JSON text or NULL. */
struct store_task {
	char id[STORE_ID_LEN];
	char kind[32];
	char vm_id[STORE_ID_LEN]; /* "" = not about a VM */
	char state[16]; /* queued running succeeded failed cancelled */
	int progress;
	char created_at[STORE_TIME_LEN];
	char started_at[STORE_TIME_LEN]; /* "" = null */
	char finished_at[STORE_TIME_LEN];
	const char *result_json;
	const char *error_json;
	char owner[64];
};
int store_task_insert(struct store *st, const struct store_task *t);
/* Writes state, progress, started_at, finished_at, result and error of the row t->id. */
int store_task_update(struct store *st, const struct store_task *t);
/* Appends a log line (seq = previous max + 1). */
int store_task_log(struct store *st, const char *task_id, const char *at, const char *line);
/* The task as the API shows it: {id,kind,vm_id,state,progress,log:[{at,line}...],result,error,
 * created_at,started_at,finished_at,owner}. -ENOENT if absent. */
int store_task_get(struct store *st, const char *id, json_object **out);
/* {"items":[task without log...],"total":N,"limit":L,"offset":O}, newest first; state and
 * vm_id filter when not NULL. */
int store_task_list(struct store *st, const char *state, const char *vm_id, int limit, int offset,
		    json_object **out);
/* At daemon start: every task still queued or running becomes failed with error
 * {"code":"internal","message":reason}. Returns the number changed or -errno. */
int store_task_fail_unfinished(struct store *st, const char *reason, const char *at);

/* ---- Tokens and audit (used by auth.c, with the signatures auth.h asked for) ------------ */

/* The daemon's one store, which the token and audit functions below use (they take no store
 * argument). main.c sets it after store_open; without it they return -ENODEV. */
void store_set_default(struct store *st);
struct store *store_default(void);

/* Times are ms since the epoch (shown as RFC 3339 by store_token_list). hash_hex is the
 * lower-case hex SHA-256 of the secret. -EEXIST if the id is taken. */
int store_token_insert(const char *id, const char *name, const char *role, const char *hash_hex,
		       int64_t created_at);
/* -ENOENT if unknown; *revoked = 1 when revoked. */
int store_token_lookup(const char *id, char *role, size_t role_len, char *hash_hex, size_t hash_len,
		       int *revoked);
/* [{id,name,role,created_at,last_used_at,revoked_at}...] oldest first, times RFC 3339 or null;
 * never the hash. */
int store_token_list(json_object **arr);
int store_token_touch(const char *id, int64_t now);
/* -ENOENT unknown, -EALREADY already revoked. */
int store_token_revoke(const char *id, int64_t now);
int store_audit_append(int64_t at, const char *principal, const char *method, const char *path,
		       int status, const char *remote);

#endif
