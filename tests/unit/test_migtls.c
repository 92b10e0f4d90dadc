// SPDX-License-Identifier: MIT
/* Unit tests for src/vmm/migtls.c: real TLS 1.3 handshakes over a socketpair with pre-shared
 * keys, right and wrong; key files that are malformed, too short or readable by others. */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "vmm/migtls.h"

static char dir[] = "/tmp/vireo-migtls-XXXXXX";

static const char *key_file(const char *name, const char *text, mode_t mode)
{
	static char path[4][256];
	static int n;
	char *p = path[n++ % 4];
	FILE *f;

	snprintf(p, 256, "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(p, mode), 0);
	return p;
}

struct server {
	int fd;
	struct mig_tls_opts o;
	int ret;
	char err[512];
	char got[6];
};

/* The destination's side: handshake, then read 6 bytes and answer "pong". */
static void *serve(void *arg)
{
	struct server *s = arg;
	struct mig_chan c;

	s->ret = mig_chan_server(&c, s->fd, &s->o, s->err, sizeof(s->err));
	if (s->ret)
		return NULL;
	s->ret = mig_chan_recv(&c, s->got, 6);
	if (!s->ret)
		s->ret = mig_chan_send(&c, "pong", 4);
	mig_chan_close(&c, true);
	return NULL;
}

/* One connection: client key file ck, server key file sk. Returns the client's result; the
 * server's is in *sret. */
static int connect_pair(const char *ck, const char *sk, int *sret, char *cerr, size_t cerrlen)
{
	struct timeval tv = { .tv_sec = 5 };
	struct server s = { 0 };
	struct mig_tls_opts o;
	struct mig_chan c;
	char spec[300], reply[4];
	pthread_t t;
	int sv[2], ret;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(sv[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	snprintf(spec, sizeof(spec), "psk=%s", sk);
	assert_int_equal(mig_tls_parse(spec, &s.o, s.err, sizeof(s.err)), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, serve, &s), 0);
	snprintf(spec, sizeof(spec), "psk=%s", ck);
	assert_int_equal(mig_tls_parse(spec, &o, cerr, cerrlen), 0);
	ret = mig_chan_client(&c, sv[0], &o, "127.0.0.1", cerr, cerrlen);
	if (!ret) {
		ret = mig_chan_send(&c, "ping!!", 6);
		if (!ret)
			ret = mig_chan_recv(&c, reply, 4);
		if (!ret)
			assert_memory_equal(reply, "pong", 4);
		mig_chan_close(&c, true);
	}
	pthread_join(t, NULL);
	if (!s.ret)
		assert_memory_equal(s.got, "ping!!", 6);
	*sret = s.ret;
	return ret;
}

static const char key_a[] =
	"vireo:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
static const char key_b[] =
	"vireo:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n";

/* Two identities, a comment, and a group-readable mode (other users have no access). */
static const char keys_ab[] =
	"# two keys\n"
	"other:0123456789abcdef0123456789abcdef\n"
	"vireo:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

static void test_same_key(void **state)
{
	char err[512] = "";
	int sret;

	(void)state;
	assert_int_equal(connect_pair(key_file("a1", key_a, 0600), key_file("a2", key_a, 0600),
				      &sret, err, sizeof(err)),
			 0);
	assert_int_equal(sret, 0);
	/* The server looks the identity up among several keys. */
	assert_int_equal(connect_pair(key_file("a3", key_a, 0600), key_file("ab", keys_ab, 0640),
				      &sret, err, sizeof(err)),
			 0);
	assert_int_equal(sret, 0);
}

static void test_wrong_key(void **state)
{
	char err[512] = "";
	int ret, sret;

	(void)state;
	ret = connect_pair(key_file("a", key_a, 0600), key_file("b", key_b, 0600), &sret, err,
			   sizeof(err));
	/* Neither side gets a channel: no byte of the protocol crosses. */
	assert_int_not_equal(ret, 0);
	assert_int_equal(sret, -EPROTO);
	/* An unknown identity too. */
	ret = connect_pair(key_file("c", "someone:00112233445566778899aabbccddeeff\n", 0600),
			   key_file("a4", key_a, 0600), &sret, err, sizeof(err));
	assert_int_not_equal(ret, 0);
	assert_int_equal(sret, -EPROTO);
}

static void test_bad_key_files(void **state)
{
	char err[512] = "";
	int sret;

	(void)state;
	/* Readable by others: refused before any handshake. */
	assert_int_equal(connect_pair(key_file("loose", key_a, 0644), key_file("a5", key_a, 0600),
				      &sret, err, sizeof(err)),
			 -EACCES);
	assert_non_null(strstr(err, "other users"));
	/* A key shorter than 16 bytes, odd hex, not hex, no identity. */
	assert_int_equal(connect_pair(key_file("short", "vireo:0011223344556677\n", 0600),
				      key_file("a6", key_a, 0600), &sret, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "16 to 64 bytes"));
	assert_int_equal(
		connect_pair(key_file("odd", "vireo:00112233445566778899aabbccddeef\n", 0600),
			     key_file("a7", key_a, 0600), &sret, err, sizeof(err)),
		-EINVAL);
	assert_int_equal(
		connect_pair(key_file("nothex", "vireo:zz112233445566778899aabbccddeeff\n", 0600),
			     key_file("a8", key_a, 0600), &sret, err, sizeof(err)),
		-EINVAL);
	assert_int_equal(connect_pair(key_file("noid", ":00112233445566778899aabbccddeeff\n", 0600),
				      key_file("a9", key_a, 0600), &sret, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(connect_pair("/nonexistent/key", key_file("aa", key_a, 0600), &sret, err,
				      sizeof(err)),
			 -ENOENT);
}

static void test_parse(void **state)
{
	struct mig_tls_opts o;
	char err[256];

	(void)state;
	assert_int_equal(mig_tls_parse(NULL, &o, err, sizeof(err)), 0);
	assert_int_equal(o.kind, MIG_TLS_INSECURE);
	assert_int_equal(mig_tls_parse("x509=/etc/pki/vireo", &o, err, sizeof(err)), 0);
	assert_int_equal(o.kind, MIG_TLS_X509);
	assert_string_equal(o.path, "/etc/pki/vireo");
	assert_int_equal(mig_tls_parse("psk=", &o, err, sizeof(err)), -EINVAL);
	assert_int_equal(mig_tls_parse("tls", &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "psk=FILE or x509=DIR"));
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_key),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_bad_key_files),
		cmocka_unit_test(test_parse),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
