// SPDX-License-Identifier: MIT
/*
 * vireod's SQLite store (store.h). One connection, serialised by a mutex: the daemon's write
 * rate is low (state changes, task progress) and one connection keeps every transaction simple.
 * WAL with synchronous=NORMAL: a killed daemon never corrupts the database and loses at most
 * the transactions not yet checkpointed to the WAL... which a process crash does not lose
 * (only a power cut could take the last commits).
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <sqlite3.h>

#include "../common/log.h"

struct store {
	sqlite3 *db;
	pthread_mutex_t lock;
};

static struct store *default_store;

/* Ordered: migration i takes user_version i to i + 1. Never edit a released entry; append. */
static const char *const migrations[] = {
	"CREATE TABLE vms(id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, state TEXT NOT NULL,"
	" state_reason TEXT NOT NULL DEFAULT '', state_changed_at TEXT NOT NULL,"
	" generation INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL,"
	" updated_at TEXT NOT NULL, autostart INTEGER NOT NULL DEFAULT 0, def TEXT NOT NULL);"
	"CREATE TABLE vm_tags(vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,"
	" tag TEXT NOT NULL, PRIMARY KEY(vm_id, tag));"
	"CREATE INDEX vm_tags_tag ON vm_tags(tag);"
	"CREATE TABLE vm_state_log(vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,"
	" seq INTEGER NOT NULL, at TEXT NOT NULL, from_state TEXT NOT NULL,"
	" to_state TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY(vm_id, seq));"
	"CREATE TABLE vm_runtime(vm_id TEXT PRIMARY KEY REFERENCES vms(id) ON DELETE CASCADE,"
	" shim_pid INTEGER NOT NULL, vmm_pid INTEGER NOT NULL, vmm_starttime INTEGER NOT NULL,"
	" started_at TEXT NOT NULL);"
	"CREATE TABLE tasks(id TEXT PRIMARY KEY, kind TEXT NOT NULL, vm_id TEXT, state TEXT NOT "
	"NULL,"
	" progress INTEGER, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,"
	" result TEXT, error TEXT, owner TEXT);"
	"CREATE INDEX tasks_vm ON tasks(vm_id);"
	"CREATE INDEX tasks_state ON tasks(state);"
	"CREATE TABLE task_log(task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	" seq INTEGER NOT NULL, at TEXT NOT NULL, line TEXT NOT NULL, PRIMARY KEY(task_id, seq));"
	"CREATE TABLE tokens(id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
	" hash TEXT NOT NULL, created_at INTEGER NOT NULL, last_used_at INTEGER,"
	" revoked_at INTEGER);"
	"CREATE TABLE audit(seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,"
	" principal TEXT, method TEXT, path TEXT, status INTEGER, remote TEXT);",
};

int store_schema_version(void)
{
	return (int)(sizeof(migrations) / sizeof(migrations[0]));
}

static void fmt_ms(int64_t ms, char out[STORE_TIME_LEN])
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	gmtime_r(&sec, &tm);
	n = strftime(out, STORE_TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, STORE_TIME_LEN - n, ".%03uZ", (unsigned)(ms % 1000) % 1000u);
}

void store_now(char out[STORE_TIME_LEN])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	/* Microseconds: tasks queued within one millisecond still sort in their real order. */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, STORE_TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, STORE_TIME_LEN - n, ".%06luZ",
		 ((unsigned long)ts.tv_nsec / 1000) % 1000000);
}

void store_uuid(char out[STORE_ID_LEN])
{
	uint8_t b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n > 0)
			got += (size_t)n;
	}
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, STORE_ID_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

/* ---- small SQLite helpers (called with the lock held) ------------------------------------ */

static int sql_err(struct store *st, const char *what)
{
	int code = sqlite3_extended_errcode(st->db);

	if ((code & 0xff) == SQLITE_CONSTRAINT)
		return -EEXIST;
	pr_err("store: %s: %s", what, sqlite3_errmsg(st->db));
	return -EIO;
}

static int exec(struct store *st, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		pr_err("store: %.60s...: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

/* Prepares sql and binds the arguments described by fmt: 's' text (NULL binds null),
 * 'i' int, 'I' int64, 'n' int64 or null when negative. */
static sqlite3_stmt *vprep(struct store *st, const char *sql, const char *fmt, va_list ap)
{
	sqlite3_stmt *s;
	int i = 1;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		pr_err("store: prepare %.60s: %s", sql, sqlite3_errmsg(st->db));
		return NULL;
	}
	for (const char *f = fmt; *f; f++, i++) {
		if (*f == 's') {
			const char *v = va_arg(ap, const char *);
			if (v)
				sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(s, i);
		} else if (*f == 'i') {
			sqlite3_bind_int(s, i, va_arg(ap, int));
		} else if (*f == 'I') {
			sqlite3_bind_int64(s, i, va_arg(ap, int64_t));
		} else {
			int64_t v = va_arg(ap, int64_t);
			if (v < 0)
				sqlite3_bind_null(s, i);
			else
				sqlite3_bind_int64(s, i, v);
		}
	}
	return s;
}

static sqlite3_stmt *prep(struct store *st, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *s;
	va_list ap;

	va_start(ap, fmt);
	s = vprep(st, sql, fmt, ap);
	va_end(ap);
	return s;
}

/* Steps a statement that returns no rows and finalizes it. */
static int run(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc;

	if (!s)
		return -EIO;
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return sql_err(st, what);
	return 0;
}

/* Takes the lock, prepares and runs one statement that returns no rows (as prep() and run()). */
static int run_locked(struct store *st, const char *what, const char *sql, const char *fmt, ...)
{
	va_list ap;
	int ret;

	pthread_mutex_lock(&st->lock);
	va_start(ap, fmt);
	ret = run(st, vprep(st, sql, fmt, ap), what);
	va_end(ap);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

static const char *col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? (const char *)t : "";
}

static void copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

static void begin(struct store *st)
{
	pthread_mutex_lock(&st->lock);
	exec(st, "BEGIN IMMEDIATE");
}

/* Commits when ret is 0, rolls back otherwise; unlocks; returns ret (or a commit error). */
static int finish(struct store *st, int ret)
{
	if (ret == 0)
		ret = exec(st, "COMMIT");
	if (ret != 0)
		exec(st, "ROLLBACK");
	pthread_mutex_unlock(&st->lock);
	return ret;
}

/* ---- open, migrate ------------------------------------------------------------------------ */

static int user_version(struct store *st, int *v)
{
	sqlite3_stmt *s = prep(st, "PRAGMA user_version", "");

	if (!s)
		return -EIO;
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_finalize(s);
		return sql_err(st, "user_version");
	}
	*v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return 0;
}

static int migrate(struct store *st, const char *path)
{
	int v, ret, newest = store_schema_version();
	char sql[64];

	ret = user_version(st, &v);
	if (ret)
		return ret;
	if (v > newest) {
		pr_err("store: %s has schema version %d, this vireod knows up to %d: use a newer "
		       "vireod (refusing to touch it)",
		       path, v, newest);
		return -EPROTO;
	}
	for (; v < newest; v++) {
		ret = exec(st, "BEGIN IMMEDIATE");
		if (!ret)
			ret = exec(st, migrations[v]);
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (!ret)
			ret = exec(st, sql);
		if (!ret)
			ret = exec(st, "COMMIT");
		if (ret) {
			exec(st, "ROLLBACK");
			pr_err("store: migrating %s to schema version %d failed", path, v + 1);
			return ret;
		}
		pr_debug("store: %s migrated to schema version %d", path, v + 1);
	}
	return 0;
}

int store_open(const char *path, struct store **out)
{
	struct store *st = calloc(1, sizeof(*st));
	int ret;

	if (!st)
		return -ENOMEM;
	pthread_mutex_init(&st->lock, NULL);
	if (sqlite3_open_v2(path, &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		pr_err("store: cannot open %s: %s", path,
		       st->db ? sqlite3_errmsg(st->db) : "out of memory");
		ret = -EIO;
		goto err_close;
	}
	sqlite3_busy_timeout(st->db, 5000);
	ret = exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
		       "PRAGMA foreign_keys=ON");
	if (ret)
		goto err_close;
	ret = migrate(st, path);
	if (ret)
		goto err_close;
	*out = st;
	return 0;

err_close:
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->lock);
	free(st);
	return ret;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (default_store == st)
		default_store = NULL;
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

int store_integrity_check(struct store *st)
{
	sqlite3_stmt *s;
	int ret = -EIO;

	pthread_mutex_lock(&st->lock);
	s = prep(st, "PRAGMA integrity_check", "");
	if (s && sqlite3_step(s) == SQLITE_ROW) {
		if (!strcmp(col_text(s, 0), "ok"))
			ret = 0;
		else
			pr_err("store: integrity_check: %s", col_text(s, 0));
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

void store_set_default(struct store *st)
{
	default_store = st;
}

struct store *store_default(void)
{
	return default_store;
}

/* ---- VMs ---------------------------------------------------------------------------------- */

void store_vm_free(struct store_vm *vm)
{
	free(vm->state_reason);
	free(vm->def_json);
	vm->state_reason = vm->def_json = NULL;
}

static int put_tags(struct store *st, const char *id, json_object *tags)
{
	int ret = run(st, prep(st, "DELETE FROM vm_tags WHERE vm_id = ?", "s", id), "tags");

	for (size_t i = 0; !ret && tags && i < json_object_array_length(tags); i++) {
		const char *t = json_object_get_string(json_object_array_get_idx(tags, i));
		ret = run(st,
			  prep(st, "INSERT OR IGNORE INTO vm_tags(vm_id, tag) VALUES (?, ?)", "ss",
			       id, t),
			  "tag");
	}
	return ret;
}

static int log_state(struct store *st, const char *id, const char *from, const char *to,
		     const char *reason, const char *at)
{
	return run(st,
		   prep(st,
			"INSERT INTO vm_state_log(vm_id, seq, at, from_state, to_state, reason) "
			"VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM vm_state_log "
			"WHERE vm_id = ?1), ?2, ?3, ?4, ?5)",
			"sssss", id, at, from, to, reason ? reason : ""),
		   "state log");
}

int store_vm_insert(struct store *st, const struct store_vm *vm, json_object *tags)
{
	int ret;

	begin(st);
	ret = run(
		st,
		prep(st,
		     "INSERT INTO vms(id, name, state, state_reason, state_changed_at, generation,"
		     " created_at, updated_at, autostart, def) VALUES (?,?,?,?,?,?,?,?,?,?)",
		     "sssssIssis", vm->id, vm->name, vm->state,
		     vm->state_reason ? vm->state_reason : "", vm->state_changed_at, vm->generation,
		     vm->created_at, vm->updated_at, vm->autostart ? 1 : 0, vm->def_json),
		"insert vm");
	if (!ret)
		ret = put_tags(st, vm->id, tags);
	if (!ret)
		ret = log_state(st, vm->id, "", vm->state, vm->state_reason, vm->created_at);
	return finish(st, ret);
}

#define VM_COLS                                                                                \
	"id, name, state, state_reason, state_changed_at, generation, created_at, updated_at," \
	" autostart, def"

static int vm_from_row(sqlite3_stmt *s, struct store_vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	copy(vm->id, sizeof(vm->id), col_text(s, 0));
	copy(vm->name, sizeof(vm->name), col_text(s, 1));
	copy(vm->state, sizeof(vm->state), col_text(s, 2));
	vm->state_reason = strdup(col_text(s, 3));
	copy(vm->state_changed_at, sizeof(vm->state_changed_at), col_text(s, 4));
	vm->generation = sqlite3_column_int64(s, 5);
	copy(vm->created_at, sizeof(vm->created_at), col_text(s, 6));
	copy(vm->updated_at, sizeof(vm->updated_at), col_text(s, 7));
	vm->autostart = sqlite3_column_int(s, 8) != 0;
	vm->def_json = strdup(col_text(s, 9));
	if (!vm->state_reason || !vm->def_json) {
		store_vm_free(vm);
		return -ENOMEM;
	}
	return 0;
}

int store_vm_foreach(struct store *st, int (*fn)(const struct store_vm *vm, void *opaque),
		     void *opaque)
{
	sqlite3_stmt *s;
	struct store_vm vm;
	int rc, ret = 0;

	pthread_mutex_lock(&st->lock);
	s = prep(st, "SELECT " VM_COLS " FROM vms ORDER BY created_at, id", "");
	if (!s) {
		pthread_mutex_unlock(&st->lock);
		return -EIO;
	}
	while (!ret && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		ret = vm_from_row(s, &vm);
		if (!ret) {
			ret = fn(&vm, opaque);
			store_vm_free(&vm);
		}
	}
	if (!ret && rc != SQLITE_DONE)
		ret = sql_err(st, "list vms");
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int store_vm_get(struct store *st, const char *id, struct store_vm *out)
{
	sqlite3_stmt *s;
	int ret = -ENOENT;

	pthread_mutex_lock(&st->lock);
	s = prep(st, "SELECT " VM_COLS " FROM vms WHERE id = ?", "s", id);
	if (!s)
		ret = -EIO;
	else if (sqlite3_step(s) == SQLITE_ROW)
		ret = vm_from_row(s, out);
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int store_vm_update_def(struct store *st, const char *id, int64_t expect_generation,
			const char *name, bool autostart, const char *def_json, json_object *tags,
			const char *updated_at)
{
	int ret;

	begin(st);
	ret = run(st,
		  prep(st,
		       "UPDATE vms SET name = ?, autostart = ?, def = ?, updated_at = ?,"
		       " generation = generation + 1 WHERE id = ? AND generation = ?",
		       "sisssI", name, autostart ? 1 : 0, def_json, updated_at, id,
		       expect_generation),
		  "update vm");
	if (!ret && sqlite3_changes(st->db) != 1)
		ret = -ESTALE;
	if (!ret)
		ret = put_tags(st, id, tags);
	return finish(st, ret);
}

int store_vm_set_state(struct store *st, const char *id, const char *from, const char *to,
		       const char *reason, const char *at)
{
	sqlite3_stmt *s;
	char old[16] = "";
	int ret = 0;

	begin(st);
	s = prep(st, "SELECT state FROM vms WHERE id = ?", "s", id);
	if (!s)
		ret = -EIO;
	else if (sqlite3_step(s) == SQLITE_ROW)
		copy(old, sizeof(old), col_text(s, 0));
	else
		ret = -ENOENT;
	sqlite3_finalize(s);
	if (!ret && from && strcmp(old, from))
		ret = -ESTALE;
	if (!ret)
		ret = run(st,
			  prep(st,
			       "UPDATE vms SET state = ?, state_reason = ?, state_changed_at = ?"
			       " WHERE id = ?",
			       "ssss", to, reason ? reason : "", at, id),
			  "set state");
	if (!ret)
		ret = log_state(st, id, old, to, reason, at);
	return finish(st, ret);
}

int store_vm_delete(struct store *st, const char *id)
{
	int ret;

	begin(st);
	ret = run(st, prep(st, "DELETE FROM vms WHERE id = ?", "s", id), "delete vm");
	if (!ret && sqlite3_changes(st->db) != 1)
		ret = -ENOENT;
	return finish(st, ret);
}

int store_vm_history(struct store *st, const char *id, int limit, json_object **out)
{
	json_object *items = json_object_new_array();
	sqlite3_stmt *s;
	int rc;

	pthread_mutex_lock(&st->lock);
	s = prep(st,
		 "SELECT seq, at, from_state, to_state, reason FROM vm_state_log WHERE vm_id = ?"
		 " ORDER BY seq LIMIT ?",
		 "si", id, limit > 0 ? limit : -1);
	if (!s) {
		pthread_mutex_unlock(&st->lock);
		json_object_put(items);
		return -EIO;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "seq", json_object_new_int64(sqlite3_column_int64(s, 0)));
		json_object_object_add(e, "at", json_object_new_string(col_text(s, 1)));
		json_object_object_add(e, "from", json_object_new_string(col_text(s, 2)));
		json_object_object_add(e, "to", json_object_new_string(col_text(s, 3)));
		json_object_object_add(e, "reason", json_object_new_string(col_text(s, 4)));
		json_object_array_add(items, e);
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	*out = json_object_new_object();
	json_object_object_add(*out, "items", items);
	return 0;
}

int store_runtime_set(struct store *st, const char *id, const struct store_runtime *rt)
{
	return run_locked(
		st, "runtime",
		"INSERT OR REPLACE INTO vm_runtime(vm_id, shim_pid, vmm_pid, vmm_starttime,"
		" started_at) VALUES (?,?,?,?,?)",
		"siiIs", id, rt->shim_pid, rt->vmm_pid, (int64_t)rt->vmm_starttime, rt->started_at);
}

int store_runtime_get(struct store *st, const char *id, struct store_runtime *out)
{
	sqlite3_stmt *s;
	int ret = -ENOENT;

	pthread_mutex_lock(&st->lock);
	s = prep(st,
		 "SELECT shim_pid, vmm_pid, vmm_starttime, started_at FROM vm_runtime"
		 " WHERE vm_id = ?",
		 "s", id);
	if (!s) {
		ret = -EIO;
	} else if (sqlite3_step(s) == SQLITE_ROW) {
		out->shim_pid = sqlite3_column_int(s, 0);
		out->vmm_pid = sqlite3_column_int(s, 1);
		out->vmm_starttime = (uint64_t)sqlite3_column_int64(s, 2);
		copy(out->started_at, sizeof(out->started_at), col_text(s, 3));
		ret = 0;
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int store_runtime_clear(struct store *st, const char *id)
{
	return run_locked(st, "runtime", "DELETE FROM vm_runtime WHERE vm_id = ?", "s", id);
}

/* ---- Tasks -------------------------------------------------------------------------------- */

static const char *nz(const char *s)
{
	return s && *s ? s : NULL;
}

int store_task_insert(struct store *st, const struct store_task *t)
{
	return run_locked(
		st, "insert task",
		"INSERT INTO tasks(id, kind, vm_id, state, progress, created_at, started_at,"
		" finished_at, result, error, owner) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
		"ssssnssssss", t->id, t->kind, nz(t->vm_id), t->state, (int64_t)t->progress,
		t->created_at, nz(t->started_at), nz(t->finished_at), t->result_json, t->error_json,
		nz(t->owner));
}

int store_task_update(struct store *st, const struct store_task *t)
{
	return run_locked(
		st, "update task",
		"UPDATE tasks SET state = ?, progress = ?, started_at = ?, finished_at = ?,"
		" result = ?, error = ? WHERE id = ?",
		"snsssss", t->state, (int64_t)t->progress, nz(t->started_at), nz(t->finished_at),
		t->result_json, t->error_json, t->id);
}

int store_task_log(struct store *st, const char *task_id, const char *at, const char *line)
{
	return run_locked(st, "task log",
			  "INSERT INTO task_log(task_id, seq, at, line) VALUES (?1, (SELECT"
			  " COALESCE(MAX(seq), 0) + 1 FROM task_log WHERE task_id = ?1), ?2, ?3)",
			  "sss", task_id, at, line);
}

/* A JSON text column as an object (null when empty or not JSON). */
static json_object *col_json(sqlite3_stmt *s, int i)
{
	const char *t = col_text(s, i);

	return *t ? json_tokener_parse(t) : NULL;
}

static json_object *col_str_or_null(sqlite3_stmt *s, int i)
{
	const char *t = col_text(s, i);

	return *t ? json_object_new_string(t) : NULL;
}

#define TASK_COLS                                                                               \
	"id, kind, vm_id, state, progress, created_at, started_at, finished_at, result, error," \
	" owner"

static json_object *task_from_row(sqlite3_stmt *s)
{
	json_object *t = json_object_new_object();

	json_object_object_add(t, "id", json_object_new_string(col_text(s, 0)));
	json_object_object_add(t, "kind", json_object_new_string(col_text(s, 1)));
	json_object_object_add(t, "vm_id", col_str_or_null(s, 2));
	json_object_object_add(t, "state", json_object_new_string(col_text(s, 3)));
	json_object_object_add(t, "progress",
			       sqlite3_column_type(s, 4) == SQLITE_NULL
				       ? NULL
				       : json_object_new_int(sqlite3_column_int(s, 4)));
	json_object_object_add(t, "created_at", json_object_new_string(col_text(s, 5)));
	json_object_object_add(t, "started_at", col_str_or_null(s, 6));
	json_object_object_add(t, "finished_at", col_str_or_null(s, 7));
	json_object_object_add(t, "result", col_json(s, 8));
	json_object_object_add(t, "error", col_json(s, 9));
	json_object_object_add(t, "owner", col_str_or_null(s, 10));
	return t;
}

int store_task_get(struct store *st, const char *id, json_object **out)
{
	json_object *t = NULL, *log;
	sqlite3_stmt *s;

	pthread_mutex_lock(&st->lock);
	s = prep(st, "SELECT " TASK_COLS " FROM tasks WHERE id = ?", "s", id);
	if (s && sqlite3_step(s) == SQLITE_ROW)
		t = task_from_row(s);
	sqlite3_finalize(s);
	if (!t) {
		pthread_mutex_unlock(&st->lock);
		return s ? -ENOENT : -EIO;
	}
	log = json_object_new_array();
	s = prep(st, "SELECT at, line FROM task_log WHERE task_id = ? ORDER BY seq", "s", id);
	while (s && sqlite3_step(s) == SQLITE_ROW) {
		json_object *l = json_object_new_object();
		json_object_object_add(l, "at", json_object_new_string(col_text(s, 0)));
		json_object_object_add(l, "line", json_object_new_string(col_text(s, 1)));
		json_object_array_add(log, l);
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	json_object_object_add(t, "log", log);
	*out = t;
	return 0;
}

int store_task_list(struct store *st, const char *state, const char *vm_id, int limit, int offset,
		    json_object **out)
{
	json_object *items = json_object_new_array();
	sqlite3_stmt *s;
	int64_t total = 0;

	pthread_mutex_lock(&st->lock);
	s = prep(st,
		 "SELECT COUNT(*) FROM tasks WHERE (?1 IS NULL OR state = ?1)"
		 " AND (?2 IS NULL OR vm_id = ?2)",
		 "ss", state, vm_id);
	if (s && sqlite3_step(s) == SQLITE_ROW)
		total = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	s = prep(st,
		 "SELECT " TASK_COLS " FROM tasks WHERE (?1 IS NULL OR state = ?1)"
		 " AND (?2 IS NULL OR vm_id = ?2) ORDER BY created_at DESC, rowid DESC"
		 " LIMIT ?3 OFFSET ?4",
		 "ssii", state, vm_id, limit, offset);
	while (s && sqlite3_step(s) == SQLITE_ROW)
		json_object_array_add(items, task_from_row(s));
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	*out = json_object_new_object();
	json_object_object_add(*out, "items", items);
	json_object_object_add(*out, "total", json_object_new_int64(total));
	json_object_object_add(*out, "limit", json_object_new_int(limit));
	json_object_object_add(*out, "offset", json_object_new_int(offset));
	return 0;
}

int store_task_fail_unfinished(struct store *st, const char *reason, const char *at)
{
	json_object *err = json_object_new_object();
	int ret, n;

	json_object_object_add(err, "code", json_object_new_string("internal"));
	json_object_object_add(err, "message", json_object_new_string(reason));
	begin(st);
	ret = run(st,
		  prep(st,
		       "UPDATE tasks SET state = 'failed', finished_at = ?, error = ?"
		       " WHERE state IN ('queued', 'running')",
		       "ss", at, json_object_to_json_string_ext(err, JSON_C_TO_STRING_PLAIN)),
		  "fail tasks");
	n = ret ? 0 : sqlite3_changes(st->db);
	json_object_put(err);
	ret = finish(st, ret);
	return ret ? ret : n;
}

/* ---- Tokens and audit --------------------------------------------------------------------- */

int store_token_insert(const char *id, const char *name, const char *role, const char *hash_hex,
		       int64_t created_at)
{
	struct store *st = default_store;
	if (!st)
		return -ENODEV;
	return run_locked(st, "insert token",
			  "INSERT INTO tokens(id, name, role, hash, created_at) VALUES (?,?,?,?,?)",
			  "ssssI", id, name, role, hash_hex, created_at);
}

int store_token_lookup(const char *id, char *role, size_t role_len, char *hash_hex, size_t hash_len,
		       int *revoked)
{
	struct store *st = default_store;
	sqlite3_stmt *s;
	int ret = -ENOENT;

	if (!st)
		return -ENODEV;
	pthread_mutex_lock(&st->lock);
	s = prep(st, "SELECT role, hash, revoked_at FROM tokens WHERE id = ?", "s", id);
	if (!s) {
		ret = -EIO;
	} else if (sqlite3_step(s) == SQLITE_ROW) {
		copy(role, role_len, col_text(s, 0));
		copy(hash_hex, hash_len, col_text(s, 1));
		*revoked = sqlite3_column_type(s, 2) != SQLITE_NULL;
		ret = 0;
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

static json_object *col_ms_time(sqlite3_stmt *s, int i)
{
	char t[STORE_TIME_LEN];

	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return NULL;
	fmt_ms(sqlite3_column_int64(s, i), t);
	return json_object_new_string(t);
}

int store_token_list(json_object **arr)
{
	struct store *st = default_store;
	sqlite3_stmt *s;

	if (!st)
		return -ENODEV;
	*arr = json_object_new_array();
	pthread_mutex_lock(&st->lock);
	s = prep(st,
		 "SELECT id, name, role, created_at, last_used_at, revoked_at FROM tokens"
		 " ORDER BY created_at, id",
		 "");
	while (s && sqlite3_step(s) == SQLITE_ROW) {
		json_object *t = json_object_new_object();
		json_object_object_add(t, "id", json_object_new_string(col_text(s, 0)));
		json_object_object_add(t, "name", json_object_new_string(col_text(s, 1)));
		json_object_object_add(t, "role", json_object_new_string(col_text(s, 2)));
		json_object_object_add(t, "created_at", col_ms_time(s, 3));
		json_object_object_add(t, "last_used_at", col_ms_time(s, 4));
		json_object_object_add(t, "revoked_at", col_ms_time(s, 5));
		json_object_array_add(*arr, t);
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return s ? 0 : -EIO;
}

int store_token_touch(const char *id, int64_t now)
{
	struct store *st = default_store;
	if (!st)
		return -ENODEV;
	return run_locked(st, "touch token", "UPDATE tokens SET last_used_at = ? WHERE id = ?",
			  "Is", now, id);
}

int store_token_revoke(const char *id, int64_t now)
{
	struct store *st = default_store;
	int ret;

	if (!st)
		return -ENODEV;
	pthread_mutex_lock(&st->lock);
	ret = run(st,
		  prep(st, "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
		       "Is", now, id),
		  "revoke token");
	if (!ret && sqlite3_changes(st->db) != 1) {
		sqlite3_stmt *s = prep(st, "SELECT 1 FROM tokens WHERE id = ?", "s", id);
		ret = s && sqlite3_step(s) == SQLITE_ROW ? -EALREADY : -ENOENT;
		sqlite3_finalize(s);
	}
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int store_audit_append(int64_t at, const char *principal, const char *method, const char *path,
		       int status, const char *remote)
{
	struct store *st = default_store;
	if (!st)
		return -ENODEV;
	return run_locked(st, "audit",
			  "INSERT INTO audit(at, principal, method, path, status, remote)"
			  " VALUES (?,?,?,?,?,?)",
			  "Isssis", at, principal, method, path, status, remote);
}
