// SPDX-License-Identifier: MIT
/* Unit tests for src/daemon/task.c and the shim of src/daemon/vmm.c: tasks of one queue key run
 * one at a time in submission order while other keys run in parallel; cancel of queued and
 * running tasks; results, errors and logs persisted. The shim (this test binary re-executed
 * with --shim, as vireod does) records the exit status or signal of its child even after the
 * process that spawned it is gone, and a pid with another start time is not taken for it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/store.h"
#include "daemon/task.h"
#include "daemon/vmm.h"

static char dir[64];
static char self[512];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vireo-task-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[160];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct store *open_store(void)
{
	char path[128];
	struct store *st;

	snprintf(path, sizeof(path), "%s/vireod.db", dir);
	assert_int_equal(store_open(path, &st), 0);
	return st;
}

struct order {
	pthread_mutex_t lock;
	int next[2]; /* the sequence number each key expects next */
	int running[2]; /* tasks of each key running now */
	int max_running_total;
	int running_total;
	int bad;
};

struct job {
	struct order *o;
	int key;
	int seq;
};

static int job_fn(struct task *t, void *arg)
{
	struct job *j = arg;
	struct order *o = j->o;

	pthread_mutex_lock(&o->lock);
	if (o->running[j->key] != 0 || o->next[j->key] != j->seq)
		o->bad++;
	o->running[j->key]++;
	o->running_total++;
	if (o->running_total > o->max_running_total)
		o->max_running_total = o->running_total;
	pthread_mutex_unlock(&o->lock);
	usleep(2000);
	task_log(t, "job %d of key %d", j->seq, j->key);
	pthread_mutex_lock(&o->lock);
	o->running[j->key]--;
	o->running_total--;
	o->next[j->key]++;
	pthread_mutex_unlock(&o->lock);
	if (j->seq % 5 == 4)
		return task_fail(t, "invalid_state", "job %d refuses", j->seq);
	task_set_result(t, json_object_new_int(j->seq));
	return 0;
}

static void wait_done(struct task_pool *pool, const char *id, const char *state)
{
	json_object *o;

	for (int i = 0; i < 5000; i++) {
		assert_int_equal(task_get(pool, id, &o, NULL), 0);
		const char *s = json_object_get_string(json_object_object_get(o, "state"));
		if (strcmp(s, "queued") && strcmp(s, "running")) {
			assert_string_equal(s, state);
			json_object_put(o);
			return;
		}
		json_object_put(o);
		usleep(2000);
	}
	fail_msg("task %s did not finish", id);
}

static void test_fifo_per_key(void **state)
{
	struct order o = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct job jobs[2][25];
	char ids[2][25][STORE_ID_LEN];
	struct store *st = open_store();
	struct task_pool *pool;
	json_object *t;

	(void)state;
	assert_int_equal(task_pool_create(st, 4, NULL, &pool), 0);
	for (int i = 0; i < 25; i++) {
		for (int k = 0; k < 2; k++) {
			jobs[k][i] = (struct job){ &o, k, i };
			assert_int_equal(task_submit(pool, "test", k ? "vm-b" : "vm-a", "me",
						     job_fn, &jobs[k][i], NULL, &t),
					 0);
			snprintf(ids[k][i], STORE_ID_LEN, "%s",
				 json_object_get_string(json_object_object_get(t, "id")));
			json_object_put(t);
		}
	}
	for (int i = 0; i < 25; i++)
		for (int k = 0; k < 2; k++)
			wait_done(pool, ids[k][i], i % 5 == 4 ? "failed" : "succeeded");
	assert_int_equal(o.bad, 0);
	assert_int_equal(o.next[0], 25);
	assert_int_equal(o.max_running_total, 2); /* the two keys did run side by side */
	assert_int_equal(task_pending(pool, "vm-a"), 0);
	assert_int_equal(task_get(pool, ids[0][4], &t, NULL), 0);
	assert_string_equal(json_object_get_string(json_object_object_get(
				    json_object_object_get(t, "error"), "code")),
			    "invalid_state");
	json_object_put(t);
	assert_int_equal(task_get(pool, ids[1][3], &t, NULL), 0);
	assert_int_equal(json_object_get_int(json_object_object_get(t, "result")), 3);
	assert_int_equal(json_object_array_length(json_object_object_get(t, "log")), 1);
	json_object_put(t);
	task_pool_destroy(pool);
	store_close(st);
}

static int slow_fn(struct task *t, void *arg)
{
	(void)arg;
	for (int i = 0; i < 5000; i++) {
		if (task_cancelled(t))
			return -ECANCELED;
		usleep(1000);
	}
	return 0;
}

static void test_cancel(void **state)
{
	struct store *st = open_store();
	struct task_pool *pool;
	json_object *a, *b;
	char ida[STORE_ID_LEN], idb[STORE_ID_LEN];
	struct derror e;

	(void)state;
	assert_int_equal(task_pool_create(st, 2, NULL, &pool), 0);
	assert_int_equal(task_submit(pool, "slow", "vm", NULL, slow_fn, NULL, NULL, &a), 0);
	assert_int_equal(task_submit(pool, "slow", "vm", NULL, slow_fn, NULL, NULL, &b), 0);
	snprintf(ida, sizeof(ida), "%s", json_object_get_string(json_object_object_get(a, "id")));
	snprintf(idb, sizeof(idb), "%s", json_object_get_string(json_object_object_get(b, "id")));
	json_object_put(a);
	json_object_put(b);
	/* b waits behind a (same key): cancelled at once. */
	assert_int_equal(task_cancel(pool, idb, &e), 0);
	wait_done(pool, idb, "cancelled");
	usleep(20000);
	assert_int_equal(task_cancel(pool, ida, &e), 0); /* running: its flag */
	wait_done(pool, ida, "cancelled");
	assert_int_equal(task_cancel(pool, ida, &e), -EALREADY);
	assert_string_equal(e.code, "invalid_state");
	assert_int_equal(task_cancel(pool, "nope", &e), -ENOENT);
	assert_int_equal(task_list(pool, "done", NULL, 10, 0, &a, &e), -EINVAL);
	task_pool_destroy(pool);
	store_close(st);
}

/* ---- the shim --------------------------------------------------------------------------- */

static int spawn(const char *cmd, struct vmm_proc *p)
{
	char *const argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)cmd, NULL };

	return vmm_spawn(self, dir, argv, p);
}

static int wait_status(int *status)
{
	for (int i = 0; i < 1000; i++) {
		if (vmm_read_exit_status(dir, status) == 0)
			return 0;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

static void test_shim_exit_status(void **state)
{
	struct vmm_proc p;
	char text[96];
	int status;

	(void)state;
	assert_int_equal(spawn("exit 3", &p), 0);
	assert_true(p.vmm_pid > 0 && p.shim_pid > 0 && p.vmm_pid != p.shim_pid);
	assert_int_equal(wait_status(&status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	vmm_status_text(status, text, sizeof(text));
	assert_string_equal(text, "exited with status 3");
	/* Output goes to vmm.log. */
	assert_int_equal(spawn("echo hello-from-vmm", &p), 0);
	assert_int_equal(wait_status(&status), 0);
	char path[128], buf[256] = "";
	snprintf(path, sizeof(path), "%s/vmm.log", dir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(buf, 1, sizeof(buf) - 1, f) > 0);
	fclose(f);
	assert_non_null(strstr(buf, "hello-from-vmm"));
}

static void test_shim_signal_and_pidfd(void **state)
{
	struct vmm_proc p;
	char text[96];
	int status, pidfd;

	(void)state;
	assert_int_equal(spawn("exec sleep 30", &p), 0);
	assert_true(vmm_alive(p.vmm_pid, p.starttime));
	/* The same pid with another start time is someone else. */
	assert_false(vmm_alive(p.vmm_pid, p.starttime + 1));
	/* Not our child: the shim is (vireod never waits for VMMs). */
	assert_int_equal(waitpid(p.vmm_pid, NULL, WNOHANG), -1);
	pidfd = vmm_pidfd(p.vmm_pid);
	assert_true(pidfd >= 0);
	assert_int_equal(vmm_read_exit_status(dir, &status), -ENOENT);
	kill(p.vmm_pid, SIGKILL);
	struct pollfd pf = { .fd = pidfd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 5000), 1);
	close(pidfd);
	assert_int_equal(wait_status(&status), 0);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	vmm_status_text(status, text, sizeof(text));
	assert_string_equal(text, "killed by signal 9 (SIGKILL)");
	assert_false(vmm_alive(p.vmm_pid, p.starttime));
	/* A shim that cannot run its VMM says so in the log; the status is 127. */
	assert_int_equal(spawn("exec /nonexistent/vireo", &p), 0);
	assert_int_equal(wait_status(&status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 127);
}

/* A one-request control socket server: replies with the given line. */
struct server {
	int fd;
	const char *reply;
};

static void *serve(void *arg)
{
	struct server *s = arg;
	char buf[512];
	int c = accept(s->fd, NULL, NULL);

	if (c >= 0) {
		ssize_t n = read(c, buf, sizeof(buf));
		if (n > 0 && s->reply)
			n = write(c, s->reply, strlen(s->reply));
		(void)n;
		usleep(s->reply ? 0 : 1500000);
		close(c);
	}
	return NULL;
}

static void test_control_request(void **state)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct server s;
	pthread_t th;
	json_object *r = NULL;

	(void)state;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/control.sock", dir);
	assert_int_equal(vmm_command(a.sun_path, "status", 500, &r), -ENOENT);
	s.fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(s.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s.fd, 4), 0);
	s.reply = "{\"ok\":true,\"state\":\"running\"}\n";
	pthread_create(&th, NULL, serve, &s);
	assert_int_equal(vmm_command(a.sun_path, "status", 2000, &r), 0);
	assert_string_equal(json_object_get_string(json_object_object_get(r, "state")), "running");
	json_object_put(r);
	pthread_join(th, NULL);
	/* Garbage is not a reply. */
	s.reply = "not json\n";
	pthread_create(&th, NULL, serve, &s);
	assert_int_equal(vmm_command(a.sun_path, "status", 2000, &r), -EPROTO);
	pthread_join(th, NULL);
	/* Silence ends at the timeout. */
	s.reply = NULL;
	pthread_create(&th, NULL, serve, &s);
	assert_int_equal(vmm_command(a.sun_path, "status", 300, &r), -ETIMEDOUT);
	pthread_join(th, NULL);
	close(s.fd);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fifo_per_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shim_exit_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shim_signal_and_pidfd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_request, setup, teardown),
	};
	ssize_t n;

	/* Re-executed as the shim, as vireod is. */
	if (argc > 1 && !strcmp(argv[1], "--shim"))
		return vmm_shim_main(argc - 2, argv + 2);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';
	return cmocka_run_group_tests(tests, NULL, NULL);
}
