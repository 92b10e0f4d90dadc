// SPDX-License-Identifier: MIT
/* Unit tests for src/daemon/auth.c and events.c: tokens are checked against their stored hash
 * (wrong, truncated, foreign and revoked secrets refused), names and roles validated, unix peers
 * mapped to roles; the event ring keeps the newest EVENTS_RING events, wakes waiters, times out
 * and shuts down. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/util.h"
#include "daemon/auth.h"
#include "daemon/events.h"
#include "daemon/store.h"

static char dir[64];
static struct store *st;

static int setup(void **state)
{
	char path[128];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vireo-auth-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/vireod.db", dir);
	if (store_open(path, &st))
		return -1;
	store_set_default(st);
	return 0;
}

static int teardown(void **state)
{
	char cmd[160];

	(void)state;
	store_set_default(NULL);
	store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void bearer(char *out, size_t len, const char *secret)
{
	snprintf(out, len, "Bearer %s", secret);
}

static void test_token_roundtrip(void **state)
{
	struct json_object *tok = NULL, *v;
	struct principal p;
	char *secret = NULL, hdr[160];

	(void)state;
	assert_int_equal(auth_token_create("ops", ROLE_OPERATOR, &secret, &tok), 0);
	assert_non_null(secret);
	assert_int_equal(strncmp(secret, "vireo_", 6), 0);
	assert_int_equal(strlen(secret), 6 + 12 + 1 + 64);
	assert_true(json_object_object_get_ex(tok, "role", &v));
	assert_string_equal(json_object_get_string(v), "operator");
	assert_false(json_object_object_get_ex(tok, "hash", NULL));
	bearer(hdr, sizeof(hdr), secret);
	assert_int_equal(auth_bearer(hdr, &p), 0);
	assert_int_equal(p.role, ROLE_OPERATOR);
	assert_int_equal(strncmp(p.name, "token:", 6), 0);
	assert_int_equal(strncmp(p.token_id, secret + 6, 12), 0);
	/* The scheme is case-insensitive (RFC 7235); the token is not. */
	hdr[0] = 'b';
	assert_int_equal(auth_bearer(hdr, &p), 0);
	json_object_put(tok);
	free(secret);
}

static void test_token_refusals(void **state)
{
	struct json_object *tok = NULL;
	struct principal p;
	char *secret = NULL, hdr[200], id[13];

	(void)state;
	assert_int_equal(auth_token_create("victim", ROLE_ADMIN, &secret, &tok), 0);
	json_object_put(tok);
	memcpy(id, secret + 6, 12);
	id[12] = '\0';
	/* Each mutation of a valid token is refused, as are missing and other schemes. */
	assert_int_equal(auth_bearer(NULL, &p), -EACCES);
	assert_int_equal(p.role, ROLE_NONE);
	assert_int_equal(auth_bearer("", &p), -EACCES);
	assert_int_equal(auth_bearer("Basic YWRtaW46YWRtaW4=", &p), -EACCES);
	snprintf(hdr, sizeof(hdr), "Bearer %.*s", (int)strlen(secret) - 1, secret);
	assert_int_equal(auth_bearer(hdr, &p), -EACCES);
	snprintf(hdr, sizeof(hdr), "Bearer %s0", secret);
	assert_int_equal(auth_bearer(hdr, &p), -EACCES);
	bearer(hdr, sizeof(hdr), secret);
	hdr[strlen(hdr) - 1] = hdr[strlen(hdr) - 1] == 'a' ? 'b' : 'a';
	assert_int_equal(auth_bearer(hdr, &p), -EACCES);
	bearer(hdr, sizeof(hdr), secret);
	hdr[strlen(hdr) - 1] = 'A'; /* upper-case hex is not the same secret */
	assert_int_equal(auth_bearer(hdr, &p), -EACCES);
	snprintf(hdr, sizeof(hdr), "Bearer vireo_%s_%064d", id, 0);
	assert_int_equal(auth_bearer(hdr, &p), -EACCES);
	snprintf(hdr, sizeof(hdr), "Bearer vireo_000000000000_%s", secret + 19);
	assert_int_equal(auth_bearer(hdr, &p), -EACCES);
	snprintf(hdr, sizeof(hdr), "Bearer vireo_'OR'1'='1_%s", secret + 19);
	assert_int_equal(auth_bearer(hdr, &p), -EACCES);
	/* Revoked: refused from then on; revoking again says so; unknown ids are not found. */
	bearer(hdr, sizeof(hdr), secret);
	assert_int_equal(auth_bearer(hdr, &p), 0);
	assert_int_equal(auth_token_revoke(id), 0);
	assert_int_equal(auth_bearer(hdr, &p), -EACCES);
	assert_int_equal(p.role, ROLE_NONE);
	assert_int_equal(auth_token_revoke(id), -EALREADY);
	assert_int_equal(auth_token_revoke("000000000000"), -ENOENT);
	assert_int_equal(auth_token_revoke("../../etc/pa"), -ENOENT);
	assert_int_equal(auth_token_revoke(NULL), -ENOENT);
	free(secret);
}

static void test_token_names_and_roles(void **state)
{
	static const char *const bad[] = {
		"", "../x", "a/b", "a b", "-a", ".a", "a\n", "x\"y", NULL
	};
	struct json_object *tok = NULL, *arr = NULL;
	char *secret = NULL, name[80];

	(void)state;
	for (int i = 0; bad[i]; i++)
		assert_int_equal(auth_token_create(bad[i], ROLE_VIEWER, &secret, &tok), -EINVAL);
	memset(name, 'a', 64);
	name[64] = '\0';
	assert_int_equal(auth_token_create(name, ROLE_VIEWER, &secret, &tok), -EINVAL);
	assert_int_equal(auth_token_create("ok", ROLE_NONE, &secret, &tok), -EINVAL);
	assert_int_equal(auth_token_create("ok", (enum role)7, &secret, &tok), -EINVAL);
	assert_int_equal(auth_role_parse("admin"), ROLE_ADMIN);
	assert_int_equal(auth_role_parse("viewer"), ROLE_VIEWER);
	assert_int_equal(auth_role_parse("none"), ROLE_NONE);
	assert_int_equal(auth_role_parse("Admin"), ROLE_NONE);
	assert_int_equal(auth_role_parse(NULL), ROLE_NONE);
	/* The list never shows a hash or a secret. */
	assert_int_equal(auth_token_list(&arr), 0);
	assert_null(strstr(json_object_to_json_string(arr), "hash"));
	assert_null(strstr(json_object_to_json_string(arr), "secret"));
	json_object_put(arr);
}

static void test_unix_peer(void **state)
{
	struct principal p;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* Our own uid is admin (the daemon's user). */
	assert_int_equal(auth_unix_peer(sv[0], (gid_t)-1, &p), 0);
	assert_int_equal(p.role, ROLE_ADMIN);
	assert_int_equal(strncmp(p.name, "uid:", 4), 0);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(auth_unix_peer(-1, (gid_t)-1, &p), -EBADF);
}

/* A peer connecting as uid 65534 with primary group gid: the role auth_unix_peer gives it when
 * the socket's group is sock_gid. */
static enum role peer_role(gid_t gid, gid_t sock_gid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct principal p = { .role = ROLE_ADMIN };
	int lfd, fd, status;
	pid_t pid;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/peer.sock", dir);
	unlink(sa.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	chmod(sa.sun_path, 0666);
	chmod(dir, 0711); /* the other user must reach the socket */
	pid = fork();
	if (pid == 0) {
		int c = socket(AF_UNIX, SOCK_STREAM, 0);

		if (setgroups(0, NULL) || setgid(gid) || setuid(65534))
			_exit(2);
		_exit(connect(c, (struct sockaddr *)&sa, sizeof(sa)) ? 3 : 0);
	}
	{
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };

		/* A child that could not connect must fail the test, not hang it. */
		if (poll(&pfd, 1, 5000) != 1) {
			waitpid(pid, &status, 0);
			fail_msg("the peer did not connect (exit %d)", WEXITSTATUS(status));
		}
	}
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	assert_int_equal(auth_unix_peer(fd, sock_gid, &p), 0);
	waitpid(pid, &status, 0);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_string_equal(p.name, "uid:65534");
	close(fd);
	close(lfd);
	return p.role;
}

static void test_unix_peer_group(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		skip(); /* needs to become another user */
		return;
	}
	/* Another user is admin only through the socket's group; without one it has no role. */
	assert_int_equal(peer_role(4242, 4242), ROLE_ADMIN);
	assert_int_equal(peer_role(4242, 4243), ROLE_NONE);
	assert_int_equal(peer_role(4242, (gid_t)-1), ROLE_NONE);
}

static void test_events_ring(void **state)
{
	struct event ev[8];
	int n;

	(void)state;
	assert_int_equal(events_init(), 0);
	assert_int_equal(events_last_seq(), 0);
	/* Nothing yet: a short wait times out with 0. */
	assert_int_equal(events_wait(0, ev, 8, 50), 0);
	for (int i = 0; i < EVENTS_RING + 10; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "i", json_object_new_int(i));
		events_publish("vm.state", o);
		json_object_put(o);
	}
	assert_int_equal(events_last_seq(), EVENTS_RING + 10);
	/* A reader from the start gets the oldest kept, not lost slots or garbage. */
	n = events_wait(0, ev, 8, 0);
	assert_int_equal(n, 8);
	assert_int_equal(ev[0].seq, 11);
	assert_string_equal(ev[0].type, "vm.state");
	assert_string_equal(ev[0].data, "{\"i\":10}");
	assert_int_equal(ev[7].seq, 18);
	events_release(ev, n);
	n = events_wait(EVENTS_RING + 8, ev, 8, 0);
	assert_int_equal(n, 2);
	assert_int_equal(ev[1].seq, EVENTS_RING + 10);
	events_release(ev, n);
	events_publish("task.log", NULL);
	n = events_wait(EVENTS_RING + 10, ev, 8, 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].data, "{}");
	events_release(ev, n);
}

static void *publish_later(void *arg)
{
	(void)arg;
	usleep(100 * 1000);
	events_publish("vm.created", NULL);
	return NULL;
}

static void *shutdown_later(void *arg)
{
	(void)arg;
	usleep(100 * 1000);
	events_shutdown();
	return NULL;
}

static void test_events_wakeup_and_shutdown(void **state)
{
	uint64_t last = events_last_seq();
	struct event ev[2];
	pthread_t t;
	double t0;
	int n;

	(void)state;
	/* A waiter is woken by a publish, long before its timeout. */
	t0 = mono_ms();
	pthread_create(&t, NULL, publish_later, NULL);
	n = events_wait(last, ev, 2, 10000);
	pthread_join(t, NULL);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].seq, last + 1);
	assert_true(mono_ms() - t0 < 5000);
	events_release(ev, n);
	/* And by a shutdown, which sticks. */
	t0 = mono_ms();
	pthread_create(&t, NULL, shutdown_later, NULL);
	n = events_wait(last + 1, ev, 2, 10000);
	pthread_join(t, NULL);
	assert_int_equal(n, -ESHUTDOWN);
	assert_true(mono_ms() - t0 < 5000);
	assert_int_equal(events_wait(0, ev, 2, 0), -ESHUTDOWN);
	events_fini();
	/* Publishing after the end is harmless. */
	events_publish("vm.deleted", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_roundtrip),
		cmocka_unit_test(test_token_refusals),
		cmocka_unit_test(test_token_names_and_roles),
		cmocka_unit_test(test_unix_peer),
		cmocka_unit_test(test_unix_peer_group),
		cmocka_unit_test(test_events_ring),
		cmocka_unit_test(test_events_wakeup_and_shutdown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
