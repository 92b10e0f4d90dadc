// SPDX-License-Identifier: MIT
/* `--net` option parsing: pure string work, unit-tested (tests/unit/test_net.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net.h"
#include "../common/util.h"

int net_parse_mac(const char *s, uint8_t mac[6])
{
	uint8_t m[6];

	for (int i = 0; i < 6; i++) {
		int hi = hex_digit(s[0]), lo = hi < 0 ? -1 : hex_digit(s[1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		m[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (i < 5) {
			if (*s != ':' && *s != '-')
				return -EINVAL;
			s++;
		}
	}
	/* A NIC's own address must be unicast: the guest would drop its own frames otherwise. */
	if (*s || (m[0] & 1))
		return -EINVAL;
	memcpy(mac, m, 6);
	return 0;
}

void net_default_mac(unsigned int index, uint8_t mac[6])
{
	static const uint8_t base[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

	memcpy(mac, base, 6);
	mac[5] = (uint8_t)(base[5] + index);
}

void net_format_mac(const uint8_t mac[6], char *buf)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

/* A port 1..65535 from s up to end. */
static int parse_port(const char *s, const char *end, uint16_t *port)
{
	unsigned long v = 0;

	if (s == end || end - s > 5)
		return -EINVAL;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* An IPv4 address from s up to end; empty keeps *a. */
static int parse_addr(const char *s, const char *end, struct in_addr *a)
{
	char buf[INET_ADDRSTRLEN];

	if (s == end)
		return 0;
	if ((size_t)(end - s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, (size_t)(end - s));
	buf[end - s] = 0;
	return inet_pton(AF_INET, buf, a) == 1 ? 0 : -EINVAL;
}

int net_parse_hostfwd(const char *s, struct net_hostfwd *f, char *err, size_t errlen)
{
	const char *p = s, *colon, *dash, *gcolon, *end = s + strlen(s);

	memset(f, 0, sizeof(*f));
	f->host_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->guest_addr.s_addr = htonl(0x0a00020f); /* 10.0.2.15, the first DHCP address */
	if (!strncmp(p, "tcp:", 4)) {
		p += 4;
	} else if (!strncmp(p, "udp:", 4)) {
		f->udp = true;
		p += 4;
	} else if (*p == ':') {
		p++; /* protocol left out: tcp */
	} else {
		goto bad;
	}
	dash = strchr(p, '-');
	colon = memchr(p, ':', (size_t)((dash ? dash : end) - p));
	if (!dash || !colon)
		goto bad;
	if (parse_addr(p, colon, &f->host_addr) || parse_port(colon + 1, dash, &f->host_port))
		goto bad;
	gcolon = strchr(dash + 1, ':');
	if (!gcolon)
		goto bad;
	if (parse_addr(dash + 1, gcolon, &f->guest_addr) ||
	    parse_port(gcolon + 1, end, &f->guest_port))
		goto bad;
	return 0;
bad:
	snprintf(err, errlen,
		 "hostfwd=%s: expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT "
		 "(e.g. tcp::2222-:22)",
		 s);
	return -EINVAL;
}

/* "on" or "off" for key from v (n bytes). Returns 0 or -EINVAL with the reason in err. */
static int parse_switch(const char *key, const char *v, size_t n, bool *out, char *err,
			size_t errlen)
{
	if (n == 2 && !strncmp(v, "on", 2)) {
		*out = true;
		return 0;
	}
	if (n == 3 && !strncmp(v, "off", 3)) {
		*out = false;
		return 0;
	}
	snprintf(err, errlen, "%s=%.*s: expected on or off", key, (int)n, v);
	return -EINVAL;
}

/* Copies the option value "key=VALUE" ends at (the next ',' or the end) into buf. */
static int take_value(const char *v, size_t n, char *buf, size_t buflen)
{
	if (n == 0 || n >= buflen)
		return -EINVAL;
	memcpy(buf, v, n);
	buf[n] = 0;
	return 0;
}

int net_parse_spec(const char *s, struct net_spec *spec, char *err, size_t errlen)
{
	const char *p;
	char val[128];

	memset(spec, 0, sizeof(*spec));
	if (!strncmp(s, "user", 4) && (s[4] == 0 || s[4] == ',')) {
		spec->kind = NET_USER;
		p = s + 4;
	} else if (!strncmp(s, "tap=", 4)) {
		size_t n = strcspn(s + 4, ",");

		spec->kind = NET_TAP;
		if (n == 0 || n > NET_IFNAME_MAX || memchr(s + 4, '/', n)) {
			snprintf(err, errlen, "'%s': a tap interface name has 1 to %d characters",
				 s, NET_IFNAME_MAX);
			return -EINVAL;
		}
		memcpy(spec->ifname, s + 4, n);
		spec->ifname[n] = 0;
		p = s + 4 + n;
	} else {
		snprintf(err, errlen, "'%s': expected user[,OPTIONS] or tap=NAME[,OPTIONS]", s);
		return -EINVAL;
	}
	while (*p == ',') {
		const char *key = p + 1, *eq;
		size_t n;

		p = key + strcspn(key, ",");
		eq = memchr(key, '=', (size_t)(p - key));
		if (!eq)
			goto bad_opt;
		n = (size_t)(p - eq - 1);
		if (!strncmp(key, "mac=", 4)) {
			if (take_value(eq + 1, n, val, sizeof(val)) ||
			    net_parse_mac(val, spec->mac)) {
				snprintf(err, errlen,
					 "mac=%.*s: expected a unicast address like "
					 "52:54:00:12:34:56",
					 (int)n, eq + 1);
				return -EINVAL;
			}
			spec->mac_set = true;
		} else if (!strncmp(key, "hostfwd=", 8) && spec->kind == NET_USER) {
			if (spec->nfwd == NET_MAX_HOSTFWD) {
				snprintf(err, errlen, "at most %d hostfwd rules per NIC",
					 NET_MAX_HOSTFWD);
				return -EINVAL;
			}
			if (take_value(eq + 1, n, val, sizeof(val))) {
				snprintf(err, errlen, "hostfwd=%.*s: expected a rule", (int)n,
					 eq + 1);
				return -EINVAL;
			}
			if (net_parse_hostfwd(val, &spec->fwd[spec->nfwd], err, errlen))
				return -EINVAL;
			for (unsigned int i = 0; i < spec->nfwd; i++) {
				const struct net_hostfwd *a = &spec->fwd[i],
							 *b = &spec->fwd[spec->nfwd];

				if (a->udp == b->udp && a->host_port == b->host_port &&
				    a->host_addr.s_addr == b->host_addr.s_addr) {
					snprintf(err, errlen,
						 "hostfwd=%s: host port %u is forwarded twice", val,
						 b->host_port);
					return -EINVAL;
				}
			}
			spec->nfwd++;
		} else if (!strncmp(key, "host-loopback=", 14) && spec->kind == NET_USER) {
			if (parse_switch("host-loopback", eq + 1, n, &spec->host_loopback, err,
					 errlen))
				return -EINVAL;
		} else if (!strncmp(key, "restrict=", 9) && spec->kind == NET_USER) {
			if (parse_switch("restrict", eq + 1, n, &spec->restrict_out, err, errlen))
				return -EINVAL;
		} else {
			goto bad_opt;
		}
	}
	if (*p)
		goto bad_opt;
	return 0;
bad_opt:
	snprintf(err, errlen, "'%s': unknown or malformed option (%s takes %s)", s,
		 spec->kind == NET_USER ? "user" : "tap",
		 spec->kind == NET_USER
			 ? "hostfwd=RULE, host-loopback=on|off, restrict=on|off and mac=MAC"
			 : "mac=MAC");
	return -EINVAL;
}
