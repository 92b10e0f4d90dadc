// SPDX-License-Identifier: MIT
/* Unit tests for src/net/netopt.c (`--net` specs, MAC addresses, hostfwd rules), the --net
 * option of `vireo run`, and the user-mode backend's guard of the host: crafted guest TCP SYNs
 * go through libslirp for real and a host listener shows whether they got through. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
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

static void test_spec_host_guards(void **state)
{
	struct net_spec s;

	(void)state;
	assert_int_equal(net_parse_spec("user", &s, err, sizeof(err)), 0);
	assert_false(s.host_loopback);
	assert_false(s.restrict_out);
	assert_int_equal(net_parse_spec("user,host-loopback=on,restrict=on", &s, err, sizeof(err)),
			 0);
	assert_true(s.host_loopback);
	assert_true(s.restrict_out);
	assert_int_equal(
		net_parse_spec("user,host-loopback=on,host-loopback=off", &s, err, sizeof(err)), 0);
	assert_false(s.host_loopback);
	assert_int_equal(net_parse_spec("user,restrict=yes", &s, err, sizeof(err)), -EINVAL);
	assert_err_contains("restrict=yes: expected on or off");
	assert_int_equal(net_parse_spec("user,host-loopback=", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_parse_spec("tap=t0,restrict=on", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_parse_spec("user,foo=1", &s, err, sizeof(err)), -EINVAL);
	assert_err_contains("host-loopback=on|off");
}

/* ---- the user-mode backend against a hostile guest ---- */

static unsigned int frames_to_guest;
static uint8_t last_frame[2048];
static size_t last_len;

static void peer_receive(void *opaque, const uint8_t *frame, size_t len)
{
	(void)opaque;
	if (len < 14 || frame[12] != 0x08 || frame[13] != 0x00)
		return; /* ARP */
	frames_to_guest++;
	last_len = MIN(len, sizeof(last_frame));
	memcpy(last_frame, frame, last_len);
}

/* The main loop's side, run by hand: what the backend watches, called on demand. */
static void (*loop_cb)(void *arg);
static void *loop_arg;

static int loop_watch(void *opaque, int fd, void (*cb)(void *arg), void *arg)
{
	(void)opaque;
	(void)fd;
	loop_cb = cb;
	loop_arg = arg;
	return 0;
}

static void loop_pump(int rounds)
{
	for (int i = 0; i < rounds; i++) {
		usleep(20000);
		loop_cb(loop_arg);
	}
}

static bool peer_can_receive(void *opaque)
{
	(void)opaque;
	return true;
}

static void peer_nop(void *opaque)
{
	(void)opaque;
}

static uint16_t csum(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* A TCP SYN from the guest (10.0.2.15, its default MAC) to dst:port, as a guest that builds its
 * own frames can send it. dst and port in network order. */
static size_t make_syn(uint8_t *f, uint32_t dst, uint16_t port)
{
	static const uint8_t macs[12] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02,
					  0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	static uint16_t sport = 40000;
	uint8_t *ip = f + 14, *tcp = ip + 20, pseudo[12];
	uint32_t src = htonl(0x0a00020f), sum = 0;
	uint16_t c;

	memset(f, 0, 14 + 40);
	memcpy(f, macs, 12);
	f[12] = 0x08;
	ip[0] = 0x45;
	ip[3] = 40; /* total length */
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = 6; /* TCP */
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	c = csum(0, ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	sport++;
	tcp[0] = (uint8_t)(sport >> 8);
	tcp[1] = (uint8_t)sport;
	memcpy(tcp + 2, &port, 2);
	tcp[7] = 1; /* sequence number */
	tcp[12] = 5 << 4;
	tcp[13] = 0x02; /* SYN */
	tcp[14] = tcp[15] = 0xff; /* window */
	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = 6;
	pseudo[10] = 0;
	pseudo[11] = 20;
	for (int i = 0; i < 12; i += 2)
		sum += (uint32_t)(pseudo[i] << 8 | pseudo[i + 1]);
	c = csum(sum, tcp, 20);
	tcp[16] = (uint8_t)(c >> 8);
	tcp[17] = (uint8_t)c;
	return 14 + 40;
}

static int listener(uint32_t addr, uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = addr };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = sa.sin_port;
	return fd;
}

/* Whether a connection reached the listener within ms (taken off its queue). */
static bool got_connection(int lfd, int ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int c;

	if (poll(&p, 1, ms) != 1)
		return false;
	c = accept(lfd, NULL, NULL);
	if (c >= 0)
		close(c);
	return c >= 0;
}

/* The guest sends a SYN to dst:port through a fresh backend made from spec. */
static bool guest_reaches(const char *spec_str, uint32_t dst, int lfd, uint16_t port)
{
	const struct net_peer peer = { .receive = peer_receive,
				       .can_receive = peer_can_receive,
				       .lock = peer_nop,
				       .unlock = peer_nop };
	const struct net_loop loop = { 0 };
	struct net_backend *be;
	struct net_spec spec;
	uint8_t frame[64];
	bool got;

	assert_int_equal(net_parse_spec(spec_str, &spec, err, sizeof(err)), 0);
	assert_int_equal(net_slirp_open(&be, &spec, &peer, &loop, err, sizeof(err)), 0);
	be->ops->send(be, frame, make_syn(frame, dst, port));
	got = got_connection(lfd, 300);
	net_slirp_close(be);
	return got;
}

/* An IPv4 address of this host that is not loopback (network order), or 0. */
static uint32_t outside_addr(void)
{
	struct ifaddrs *ifa, *i;
	uint32_t a = 0;

	if (getifaddrs(&ifa))
		return 0;
	for (i = ifa; i && !a; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    !(i->ifa_flags & IFF_LOOPBACK))
			a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
	freeifaddrs(ifa);
	return a;
}

static void test_slirp_host_loopback(void **state)
{
	uint32_t gw = htonl(0x0a000202), lo = htonl(INADDR_LOOPBACK), zero = 0;
	uint16_t port;
	int lfd = listener(lo, &port);

	(void)state;
	/* The attack: a service on the host's 127.0.0.1, through the gateway or addressed
	 * directly (127.0.0.1, or 0.0.0.0 which connect() takes for the local host). */
	assert_false(guest_reaches("user", gw, lfd, port));
	assert_false(guest_reaches("user", lo, lfd, port));
	assert_false(guest_reaches("user", zero, lfd, port));
	assert_false(guest_reaches("user,host-loopback=off", gw, lfd, port));
	/* Asked for: the same SYNs get through (so the refusals above are not an accident). */
	assert_true(guest_reaches("user,host-loopback=on", gw, lfd, port));
	assert_true(guest_reaches("user,host-loopback=on", lo, lfd, port));
	/* restrict=on lets nothing out, host-loopback or not. */
	assert_false(guest_reaches("user,host-loopback=on,restrict=on", gw, lfd, port));
	assert_false(guest_reaches("user,host-loopback=on,restrict=on", lo, lfd, port));
	close(lfd);
}

/* The host's first nameserver from /etc/resolv.conf (network order), or 0. */
static uint32_t host_resolver(void)
{
	char line[256], addr[64];
	uint32_t a = 0;
	FILE *f = fopen("/etc/resolv.conf", "r");

	while (f && !a && fgets(line, sizeof(line), f))
		if (sscanf(line, "nameserver %63s", addr) == 1 && inet_pton(AF_INET, addr, &a) != 1)
			a = 0;
	if (f)
		fclose(f);
	return a;
}

/* The DNS alias 10.0.2.3 leads to the host's resolver. When that is on loopback (127.0.0.53
 * with systemd-resolved), other ports of that address must not be reachable through it
 * (libslirp proxies port 53 only; this guards that on upgrades). */
static void test_slirp_dns_alias(void **state)
{
	uint32_t res = host_resolver(), dns = htonl(0x0a000203);
	uint16_t port;
	int lfd;

	(void)state;
	if ((ntohl(res) >> 24) != 127)
		skip(); /* the resolver is elsewhere: nothing of the host's loopback to reach */
	lfd = listener(res, &port);
	assert_false(guest_reaches("user", dns, lfd, port));
	assert_false(guest_reaches("user,host-loopback=on", dns, lfd, port));
	close(lfd);
}

/* A UDP datagram from the guest: 10.0.2.15:sport to dst:dport (network order), 4 bytes. */
static size_t make_udp(uint8_t *f, uint32_t dst, uint16_t sport, uint16_t dport)
{
	size_t n = make_syn(f, dst, dport); /* Ethernet and IP headers, then redone for UDP */
	uint8_t *ip = f + 14, *udp = ip + 20;
	uint16_t c;

	(void)n;
	ip[3] = 20 + 8 + 4;
	ip[9] = 17;
	ip[10] = ip[11] = 0;
	c = csum(0, ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	memset(udp, 0, 12);
	memcpy(udp, &sport, 2);
	memcpy(udp + 2, &dport, 2);
	udp[5] = 12;
	memcpy(udp + 8, "pong", 4); /* checksum 0: none, allowed for UDP over IPv4 */
	return 14 + 20 + 12;
}

/* The guest answers a client of a UDP hostfwd on the host's loopback (the user's own rule works
 * with host-loopback off), but cannot use the forwarded port to write to other loopback ports. */
static void test_slirp_udp_hostfwd(void **state)
{
	const struct net_peer peer = { .receive = peer_receive,
				       .can_receive = peer_can_receive,
				       .lock = peer_nop,
				       .unlock = peer_nop };
	const struct net_loop loop = { .watch_fd = loop_watch };
	struct sockaddr_in fwd = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in other = fwd;
	struct net_backend *be;
	struct net_spec spec;
	uint8_t frame[128];
	char buf[64], rule[96];
	uint16_t hport, cport;
	int client, victim;
	socklen_t sl = sizeof(fwd);

	(void)state;
	/* A free UDP port for the rule, and a UDP service on loopback the guest must not reach. */
	victim = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(victim, (struct sockaddr *)&other, sizeof(other)), 0);
	assert_int_equal(getsockname(victim, (struct sockaddr *)&other, &sl), 0);
	client = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(client, (struct sockaddr *)&fwd, sizeof(fwd)), 0);
	assert_int_equal(getsockname(client, (struct sockaddr *)&fwd, &sl), 0);
	cport = fwd.sin_port;
	hport = (uint16_t)(ntohs(other.sin_port) + 1);
	snprintf(rule, sizeof(rule), "user,hostfwd=udp::%u-:5353", hport);
	assert_int_equal(net_parse_spec(rule, &spec, err, sizeof(err)), 0);
	assert_int_equal(net_slirp_open(&be, &spec, &peer, &loop, err, sizeof(err)), 0);
	/* The guest announces itself (ARP), so slirp can send to it at once. */
	static const uint8_t arp[42] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00,
					 0x12, 0x34, 0x56, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00,
					 6,    4,    0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34,
					 0x56, 10,   0,	   2,	 15,   0,    0,	   0,	 0,
					 0,    0,    10,   0,	 2,    2 };
	memcpy(frame, arp, sizeof(arp));
	be->ops->send(be, frame, sizeof(arp));
	/* The client on the host's loopback writes to the forwarded port... */
	fwd.sin_port = htons(hport);
	frames_to_guest = 0;
	assert_int_equal(sendto(client, "ping", 4, 0, (struct sockaddr *)&fwd, sizeof(fwd)), 4);
	for (int i = 0; i < 50 && !frames_to_guest; i++)
		loop_pump(1);
	/* ...the guest gets it from 10.0.2.2:(client's port) and answers there. */
	assert_true(frames_to_guest > 0);
	assert_memory_equal(last_frame + 14 + 12, ((const uint8_t[]){ 10, 0, 2, 2 }), 4);
	assert_memory_equal(last_frame + 14 + 20, &cport, 2);
	be->ops->send(be, frame, make_udp(frame, htonl(0x0a000202), htons(5353), cport));
	loop_pump(3);
	assert_int_equal(recv(client, buf, sizeof(buf), MSG_DONTWAIT), 4);
	assert_memory_equal(buf, "pong", 4);
	/* The attack: from the forwarded port to another loopback port. */
	be->ops->send(be, frame, make_udp(frame, htonl(0x0a000202), htons(5353), other.sin_port));
	loop_pump(3);
	assert_int_equal(recv(victim, buf, sizeof(buf), MSG_DONTWAIT), -1);
	net_slirp_close(be);
	close(client);
	close(victim);
}

static void test_slirp_restrict(void **state)
{
	uint32_t out = outside_addr();
	uint16_t port;
	int lfd;

	(void)state;
	if (!out)
		skip(); /* no interface but lo: nothing "outside" to try */
	lfd = listener(out, &port);
	/* An ordinary outbound connection: allowed by default, not with restrict=on. */
	assert_true(guest_reaches("user", out, lfd, port));
	assert_false(guest_reaches("user,restrict=on", out, lfd, port));
	assert_false(guest_reaches("user,restrict=on,hostfwd=tcp::1-:2", out, lfd, port));
	close(lfd);
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
		cmocka_unit_test(test_spec_host_guards),
		cmocka_unit_test(test_slirp_host_loopback),
		cmocka_unit_test(test_slirp_restrict),
		cmocka_unit_test(test_slirp_dns_alias),
		cmocka_unit_test(test_slirp_udp_hostfwd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
