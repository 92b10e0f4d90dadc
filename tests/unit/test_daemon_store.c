// SPDX-License-Identifier: MIT
/* Unit tests for src/daemon/store.c: schema migrations (and refusing a newer database), VM rows
 * and their state log, optimistic generation checks, lost-update protection under concurrent
 * writers, tasks, tokens, and a writer killed with SIGKILL mid-transaction leaving a consistent
 * database. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "daemon/store.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vireo-store-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/vireod.db", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[160];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void new_vm(struct store_vm *vm, const char *name)
{
	memset(vm, 0, sizeof(*vm));
	store_uuid(vm->id);
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	snprintf(vm->state, sizeof(vm->state), "defined");
	vm->state_reason = (char *)"created by test";
	store_now(vm->state_changed_at);
	memcpy(vm->created_at, vm->state_changed_at, sizeof(vm->created_at));
	memcpy(vm->updated_at, vm->state_changed_at, sizeof(vm->updated_at));
	vm->generation = 1;
	vm->def_json = (char *)"{\"name\":\"x\"}";
}

static int sql_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void test_migrations(void **state)
{
	struct store *st;
	sqlite3 *db;

	(void)state;
	assert_int_equal(store_open(path, &st), 0);
	store_close(st);
	assert_int_equal(sql_int("PRAGMA user_version"), store_schema_version());
	assert_int_equal(sql_int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'vm_state_log'"),
			 1);
	/* Opening again migrates nothing and keeps the data. */
	assert_int_equal(store_open(path, &st), 0);
	assert_int_equal(store_integrity_check(st), 0);
	store_close(st);
	/* A database from a newer vireod is refused, untouched. */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(path, &st), -EPROTO);
	assert_int_equal(sql_int("PRAGMA user_version"), 99);
}

static void test_vm_rows(void **state)
{
	struct store_vm vm, vm2, got;
	struct store *st;
	json_object *tags = json_tokener_parse("[\"web\",\"prod\"]");
	json_object *hist;
	char now[STORE_TIME_LEN];

	(void)state;
	assert_int_equal(store_open(path, &st), 0);
	new_vm(&vm, "web-1");
	assert_int_equal(store_vm_insert(st, &vm, tags), 0);
	new_vm(&vm2, "web-1");
	assert_int_equal(store_vm_insert(st, &vm2, NULL), -EEXIST); /* name taken */
	assert_int_equal(sql_int("SELECT COUNT(*) FROM vm_tags"), 2);

	store_now(now);
	assert_int_equal(store_vm_set_state(st, vm.id, "defined", "starting", "by test", now), 0);
	/* A writer that read an older state loses: no lost update. */
	assert_int_equal(store_vm_set_state(st, vm.id, "defined", "starting", "late", now),
			 -ESTALE);
	assert_int_equal(store_vm_set_state(st, vm.id, NULL, "running", "vmm up", now), 0);
	assert_int_equal(store_vm_set_state(st, "nope", NULL, "running", "x", now), -ENOENT);
	assert_int_equal(store_vm_get(st, vm.id, &got), 0);
	assert_string_equal(got.state, "running");
	assert_string_equal(got.state_reason, "vmm up");
	store_vm_free(&got);

	assert_int_equal(store_vm_history(st, vm.id, 0, &hist), 0);
	json_object *items = json_object_object_get(hist, "items");
	assert_int_equal(json_object_array_length(items), 3);
	json_object *last = json_object_array_get_idx(items, 2);
	assert_string_equal(json_object_get_string(json_object_object_get(last, "from")),
			    "starting");
	assert_string_equal(json_object_get_string(json_object_object_get(last, "to")), "running");
	json_object_put(hist);

	/* Definition updates check the generation. */
	assert_int_equal(store_vm_update_def(st, vm.id, 1, "web-2", true, "{}", NULL, now), 0);
	assert_int_equal(store_vm_update_def(st, vm.id, 1, "web-3", true, "{}", NULL, now),
			 -ESTALE);
	assert_int_equal(store_vm_get(st, vm.id, &got), 0);
	assert_int_equal(got.generation, 2);
	assert_string_equal(got.name, "web-2");
	assert_true(got.autostart);
	store_vm_free(&got);
	assert_int_equal(sql_int("SELECT COUNT(*) FROM vm_tags"), 0);

	struct store_runtime rt = { .shim_pid = 10, .vmm_pid = 11, .vmm_starttime = 1234567 }, rt2;
	store_now(rt.started_at);
	assert_int_equal(store_runtime_set(st, vm.id, &rt), 0);
	assert_int_equal(store_runtime_get(st, vm.id, &rt2), 0);
	assert_int_equal(rt2.vmm_pid, 11);
	assert_true(rt2.vmm_starttime == 1234567);

	assert_int_equal(store_vm_delete(st, vm.id), 0);
	assert_int_equal(store_vm_delete(st, vm.id), -ENOENT);
	assert_int_equal(store_runtime_get(st, vm.id, &rt2), -ENOENT);
	assert_int_equal(sql_int("SELECT COUNT(*) FROM vm_state_log"), 0);
	json_object_put(tags);
	store_close(st);
}

struct racer {
	struct store *st;
	const char *id;
	int wins;
};

/* Each racer reads the state and moves it on (a -> b -> a ...) with the state it read as the
 * precondition. Exactly one racer wins each step; the log then has one row per win. */
static void *race(void *arg)
{
	struct racer *r = arg;
	char now[STORE_TIME_LEN];

	for (int i = 0; i < 200; i++) {
		struct store_vm vm;
		if (store_vm_get(r->st, r->id, &vm))
			continue;
		const char *to = !strcmp(vm.state, "running") ? "paused" : "running";
		store_now(now);
		if (store_vm_set_state(r->st, r->id, vm.state, to, "race", now) == 0)
			r->wins++;
		store_vm_free(&vm);
	}
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	struct racer r[8];
	pthread_t t[8];
	struct store_vm vm;
	struct store *st;
	int wins = 0;

	(void)state;
	assert_int_equal(store_open(path, &st), 0);
	new_vm(&vm, "race");
	assert_int_equal(store_vm_insert(st, &vm, NULL), 0);
	for (int i = 0; i < 8; i++) {
		r[i] = (struct racer){ st, vm.id, 0 };
		pthread_create(&t[i], NULL, race, &r[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		wins += r[i].wins;
	}
	store_close(st);
	/* One log row per successful transition (+1 for the creation), and the transitions
	 * alternate: no two rows leave the same state. */
	assert_true(wins > 0);
	assert_int_equal(sql_int("SELECT COUNT(*) FROM vm_state_log"), wins + 1);
	assert_int_equal(sql_int("SELECT COUNT(*) FROM vm_state_log a JOIN vm_state_log b"
				 " ON a.vm_id = b.vm_id AND b.seq = a.seq + 1"
				 " WHERE a.to_state != b.from_state"),
			 0);
}

static void test_tasks(void **state)
{
	struct store_task t = { 0 };
	struct store *st;
	json_object *o, *list;
	char now[STORE_TIME_LEN];

	(void)state;
	assert_int_equal(store_open(path, &st), 0);
	store_uuid(t.id);
	snprintf(t.kind, sizeof(t.kind), "vm.start");
	snprintf(t.state, sizeof(t.state), "queued");
	t.progress = -1;
	store_now(t.created_at);
	assert_int_equal(store_task_insert(st, &t), 0);
	assert_int_equal(store_task_log(st, t.id, t.created_at, "first"), 0);
	assert_int_equal(store_task_log(st, t.id, t.created_at, "second"), 0);
	snprintf(t.state, sizeof(t.state), "running");
	t.progress = 40;
	store_now(t.started_at);
	assert_int_equal(store_task_update(st, &t), 0);
	assert_int_equal(store_task_get(st, t.id, &o), 0);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "state")), "running");
	assert_int_equal(json_object_get_int(json_object_object_get(o, "progress")), 40);
	assert_null(json_object_object_get(o, "vm_id"));
	json_object *log = json_object_object_get(o, "log");
	assert_int_equal(json_object_array_length(log), 2);
	assert_string_equal(json_object_get_string(json_object_object_get(
				    json_object_array_get_idx(log, 1), "line")),
			    "second");
	json_object_put(o);
	assert_int_equal(store_task_get(st, "nope", &o), -ENOENT);

	store_now(now);
	assert_int_equal(store_task_fail_unfinished(st, "daemon restarted", now), 1);
	assert_int_equal(store_task_get(st, t.id, &o), 0);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "state")), "failed");
	assert_string_equal(json_object_get_string(json_object_object_get(
				    json_object_object_get(o, "error"), "message")),
			    "daemon restarted");
	json_object_put(o);
	assert_int_equal(store_task_list(st, "failed", NULL, 10, 0, &list), 0);
	assert_int_equal(json_object_get_int(json_object_object_get(list, "total")), 1);
	json_object_put(list);
	assert_int_equal(store_task_list(st, "running", NULL, 10, 0, &list), 0);
	assert_int_equal(json_object_get_int(json_object_object_get(list, "total")), 0);
	json_object_put(list);
	store_close(st);
}

static void test_tokens(void **state)
{
	struct store *st;
	char role[16], hash[80];
	int revoked = -1;
	json_object *arr;

	(void)state;
	assert_int_equal(store_token_insert("abc", "n", "admin", "00ff", 1000), -ENODEV);
	assert_int_equal(store_open(path, &st), 0);
	store_set_default(st);
	assert_int_equal(store_token_insert("abc", "n", "admin", "00ff", 1000), 0);
	assert_int_equal(store_token_insert("abc", "m", "viewer", "00ee", 1000), -EEXIST);
	assert_int_equal(
		store_token_lookup("abc", role, sizeof(role), hash, sizeof(hash), &revoked), 0);
	assert_string_equal(role, "admin");
	assert_string_equal(hash, "00ff");
	assert_int_equal(revoked, 0);
	assert_int_equal(
		store_token_lookup("zzz", role, sizeof(role), hash, sizeof(hash), &revoked),
		-ENOENT);
	assert_int_equal(store_token_touch("abc", 2000), 0);
	assert_int_equal(store_token_revoke("abc", 3000), 0);
	assert_int_equal(store_token_revoke("abc", 4000), -EALREADY);
	assert_int_equal(store_token_revoke("zzz", 4000), -ENOENT);
	assert_int_equal(
		store_token_lookup("abc", role, sizeof(role), hash, sizeof(hash), &revoked), 0);
	assert_int_equal(revoked, 1);
	assert_int_equal(store_token_list(&arr), 0);
	json_object *t = json_object_array_get_idx(arr, 0);
	assert_null(json_object_object_get(t, "hash"));
	assert_string_equal(json_object_get_string(json_object_object_get(t, "revoked_at")),
			    "1970-01-01T00:00:03.000Z");
	json_object_put(arr);
	assert_int_equal(store_audit_append(5000, "uid:0", "POST", "/api/v1/vms", 201, NULL), 0);
	store_close(st);
	assert_null(store_default());
}

/* A child inserts VMs (each a transaction of three tables) as fast as it can; it is killed with
 * SIGKILL at a random moment. The database must pass integrity_check and hold only whole VMs:
 * every VM has its tag and its first state-log row. */
static void test_kill9_mid_write(void **state)
{
	struct timespec ts;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	srand((unsigned)ts.tv_nsec);
	for (int round = 0; round < 5; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct store *st;
			json_object *tags = json_tokener_parse("[\"t\"]");
			if (store_open(path, &st))
				_exit(1);
			for (int i = 0;; i++) {
				struct store_vm vm;
				char name[64];
				snprintf(name, sizeof(name), "r%d-%d", round, i);
				new_vm(&vm, name);
				store_vm_insert(st, &vm, tags);
			}
		}
		usleep(50000 + (useconds_t)(rand() % 200000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		struct store *st;
		assert_int_equal(store_open(path, &st), 0);
		assert_int_equal(store_integrity_check(st), 0);
		store_close(st);
		int vms = sql_int("SELECT COUNT(*) FROM vms");
		assert_true(vms > 0);
		assert_int_equal(sql_int("SELECT COUNT(*) FROM vm_tags"), vms);
		assert_int_equal(sql_int("SELECT COUNT(*) FROM vm_state_log WHERE seq = 1"), vms);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tasks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_mid_write, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
