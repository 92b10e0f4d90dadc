// SPDX-License-Identifier: MIT
/* Unit tests for src/net/netopt.c (`--net` specs, MAC addresses, hostfwd rules) and the --net
 * option of `vireo run`. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/net.h"
#include "vmm/config.h"

static char err[256];

static void assert_err_contains(const char *what)
{
	if (!strstr(err, what))
		fail_msg("error message '%s' does not mention '%s'", err, what);
}

static uint32_t ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void test_mac(void **state)
{
	uint8_t mac[6] = { 0 };
	static const uint8_t want[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	char buf[18];

	(void)state;
	assert_int_equal(net_parse_mac("52:54:00:ab:cd:ef", mac), 0);
	assert_memory_equal(mac, want, 6);
	assert_int_equal(net_parse_mac("52-54-00-AB-CD-EF", mac), 0);
	assert_memory_equal(mac, want, 6);
	net_format_mac(mac, buf);
	assert_string_equal(buf, "52:54:00:ab:cd:ef");
	/* Wrong shapes, and a multicast address (bit 0 of the first byte). */
	assert_int_equal(net_parse_mac("52:54:00:ab:cd", mac), -EINVAL);
	assert_int_equal(net_parse_mac("52:54:00:ab:cd:ef:01", mac), -EINVAL);
	assert_int_equal(net_parse_mac("52:54:00:ab:cd:e", mac), -EINVAL);
	assert_int_equal(net_parse_mac("5254.00ab.cdef", mac), -EINVAL);
	assert_int_equal(net_parse_mac("52:54:00:ab:cd:eg", mac), -EINVAL);
	assert_int_equal(net_parse_mac("", mac), -EINVAL);
	assert_int_equal(net_parse_mac("01:00:5e:00:00:01", mac), -EINVAL);
	/* The refused ones leave mac alone. */
	assert_memory_equal(mac, want, 6);
}

static void test_default_mac(void **state)
{
	uint8_t a[6], b[6];
	char buf[18];

	(void)state;
	net_default_mac(0, a);
	net_format_mac(a, buf);
	assert_string_equal(buf, "52:54:00:12:34:56");
	net_default_mac(1, b);
	net_format_mac(b, buf);
	assert_string_equal(buf, "52:54:00:12:34:57");
	net_default_mac(0, b);
	assert_memory_equal(a, b, 6);
}

static void test_hostfwd(void **state)
{
	struct net_hostfwd f;

	(void)state;
	assert_int_equal(net_parse_hostfwd("tcp::2222-:22", &f, err, sizeof(err)), 0);
	assert_false(f.udp);
	assert_int_equal(f.host_addr.s_addr, ip("127.0.0.1"));
	assert_int_equal(f.host_port, 2222);
	assert_int_equal(f.guest_addr.s_addr, ip("10.0.2.15"));
	assert_int_equal(f.guest_port, 22);

	assert_int_equal(net_parse_hostfwd("udp:0.0.0.0:5353-10.0.2.16:53", &f, err, sizeof(err)),
			 0);
	assert_true(f.udp);
	assert_int_equal(f.host_addr.s_addr, ip("0.0.0.0"));
	assert_int_equal(f.host_port, 5353);
	assert_int_equal(f.guest_addr.s_addr, ip("10.0.2.16"));
	assert_int_equal(f.guest_port, 53);

	/* The protocol may be left out (tcp). */
	assert_int_equal(net_parse_hostfwd("::8080-:80", &f, err, sizeof(err)), 0);
	assert_false(f.udp);
	assert_int_equal(f.host_port, 8080);
	assert_int_equal(f.guest_port, 80);

	static const char *const bad[] = {
		"",
		"tcp",
		"tcp:",
		"tcp::2222",
		"tcp::2222-",
		"tcp::2222-:",
		"tcp::-:22",
		"tcp::0-:22",
		"tcp::65536-:22",
		"tcp::22x-:22",
		"tcp::2222-:22x",
		"sctp::1-:2",
		"tcp:1.2.3:1-:2",
		"tcp:1.2.3.4:1-1.2.3.4.5:2",
		"tcp:::1-:2",
		"tcp::1-2",
		"tcp::123456-:1",
		"tcp:999.1.1.1:1-:2",
		":65535-:1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (net_parse_hostfwd(bad[i], &f, err, sizeof(err)) != -EINVAL)
			fail_msg("hostfwd '%s' was accepted", bad[i]);
		assert_err_contains("HOSTPORT");
	}
}

static void test_spec_user(void **state)
{
	struct net_spec s;

	(void)state;
	assert_int_equal(net_parse_spec("user", &s, err, sizeof(err)), 0);
	assert_int_equal(s.kind, NET_USER);
	assert_false(s.mac_set);
	assert_int_equal(s.nfwd, 0);

	assert_int_equal(net_parse_spec("user,hostfwd=tcp::2222-:22,mac=52:54:00:00:00:01,"
					"hostfwd=udp::5353-:53",
					&s, err, sizeof(err)),
			 0);
	assert_true(s.mac_set);
	assert_int_equal(s.mac[5], 1);
	assert_int_equal(s.nfwd, 2);
	assert_int_equal(s.fwd[0].host_port, 2222);
	assert_true(s.fwd[1].udp);

	/* The same host port twice is refused; tcp and udp on one port are two rules. */
	assert_int_equal(
		net_parse_spec("user,hostfwd=tcp::1-:2,hostfwd=tcp::1-:3", &s, err, sizeof(err)),
		-EINVAL);
	assert_err_contains("twice");
	assert_int_equal(
		net_parse_spec("user,hostfwd=tcp::1-:2,hostfwd=udp::1-:2", &s, err, sizeof(err)),
		0);

	assert_int_equal(net_parse_spec("user,", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_parse_spec("user,foo=1", &s, err, sizeof(err)), -EINVAL);
	assert_err_contains("hostfwd=RULE");
	assert_int_equal(net_parse_spec("user,mac", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_parse_spec("user,mac=", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_parse_spec("user,mac=zz", &s, err, sizeof(err)), -EINVAL);
	assert_err_contains("unicast");
	assert_int_equal(net_parse_spec("user,hostfwd=", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_parse_spec("user,hostfwd=tcp::1", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_parse_spec("users", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_parse_spec("", &s, err, sizeof(err)), -EINVAL);
	assert_err_contains("user[,OPTIONS]");
}

static void test_spec_hostfwd_limit(void **state)
{
	char buf[2048] = "user";
	struct net_spec s;

	(void)state;
	for (int i = 1; i <= NET_MAX_HOSTFWD; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ",hostfwd=tcp::%d-:1", i);
	assert_int_equal(net_parse_spec(buf, &s, err, sizeof(err)), 0);
	assert_int_equal(s.nfwd, NET_MAX_HOSTFWD);
	strcat(buf, ",hostfwd=tcp::999-:1");
	assert_int_equal(net_parse_spec(buf, &s, err, sizeof(err)), -EINVAL);
	assert_err_contains("at most");
}

static void test_spec_tap(void **state)
{
	struct net_spec s;

	(void)state;
	assert_int_equal(net_parse_spec("tap=vireotap0", &s, err, sizeof(err)), 0);
	assert_int_equal(s.kind, NET_TAP);
	assert_string_equal(s.ifname, "vireotap0");
	assert_int_equal(net_parse_spec("tap=t,mac=02:00:00:00:00:09", &s, err, sizeof(err)), 0);
	assert_string_equal(s.ifname, "t");
	assert_true(s.mac_set);
	assert_int_equal(net_parse_spec("tap=123456789012345", &s, err, sizeof(err)), 0);

	assert_int_equal(net_parse_spec("tap=1234567890123456", &s, err, sizeof(err)), -EINVAL);
	assert_err_contains("1 to 15");
	assert_int_equal(net_parse_spec("tap=", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_parse_spec("tap=,mac=02:00:00:00:00:09", &s, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(net_parse_spec("tap=a/b", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_parse_spec("tap", &s, err, sizeof(err)), -EINVAL);
	/* hostfwd is a user networking option. */
	assert_int_equal(net_parse_spec("tap=t,hostfwd=tcp::1-:2", &s, err, sizeof(err)), -EINVAL);
	assert_err_contains("tap takes mac=MAC");
}

static int run_parse(struct vm_config *cfg, int argc, char **argv)
{
	memset(err, 0, sizeof(err));
	return config_parse_run(argc, argv, cfg, err, sizeof(err));
}

static void test_config_net(void **state)
{
	struct vm_config cfg;
	char *two[] = { "run",	 "--kernel", "k", "--net", "user,hostfwd=tcp::2222-:22",
			"--net", "tap=t0",   NULL };
	char *same_tap[] = { "run", "--kernel", "k", "--net", "tap=t0", "--net", "tap=t0", NULL };
	char *same_mac[] = { "run",
			     "--kernel",
			     "k",
			     "--net",
			     "user,mac=02:00:00:00:00:01",
			     "--net",
			     "tap=t1,mac=02:00:00:00:00:01",
			     NULL };
	char *bad[] = { "run", "--kernel", "k", "--net", "user,hostfwd=tcp::x-:22", NULL };
	char *restore[] = { "run", "--restore", "dir", "--net", "user", NULL };
	char *nine[32] = { "run", "--kernel", "k" };
	int n = 3;

	(void)state;
	assert_int_equal(run_parse(&cfg, 7, two), 0);
	assert_int_equal(cfg.nnet, 2);
	assert_string_equal(cfg.net[0], "user,hostfwd=tcp::2222-:22");
	assert_string_equal(cfg.net[1], "tap=t0");
	assert_int_equal(run_parse(&cfg, 7, same_tap), -EINVAL);
	assert_err_contains("already used");
	assert_int_equal(run_parse(&cfg, 7, same_mac), -EINVAL);
	assert_err_contains("same MAC");
	assert_int_equal(run_parse(&cfg, 5, bad), -EINVAL);
	assert_err_contains("--net hostfwd=tcp::x-:22");
	/* With --restore, --net replaces the saved backends (checked against the snapshot). */
	assert_int_equal(run_parse(&cfg, 5, restore), 0);
	assert_int_equal(cfg.nnet, 1);
	for (int i = 0; i <= NET_MAX_NICS; i++) {
		nine[n++] = "--net";
		nine[n++] = "user";
	}
	assert_int_equal(run_parse(&cfg, n, nine), -EINVAL);
	assert_err_contains("at most 8 NICs");
	assert_non_null(strstr(config_run_usage(), "--net user[,hostfwd=RULE]"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_default_mac),
		cmocka_unit_test(test_hostfwd),
		cmocka_unit_test(test_spec_user),
		cmocka_unit_test(test_spec_hostfwd_limit),
		cmocka_unit_test(test_spec_tap),
		cmocka_unit_test(test_config_net),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
