// SPDX-License-Identifier: MIT
/*
 * API tokens, roles, unix socket peers and the audit log. The clear secret exists only in the
 * reply to its creation; the store keeps SHA-256(secret) in hex.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>

#include "auth.h"
#include "common/log.h"
#include "common/util.h"
#include "store.h"

#define TOKEN_ID_HEX 12
#define TOKEN_SECRET_BYTES 32

static const char *const role_names[] = { "none", "viewer", "operator", "admin" };

const char *auth_role_name(enum role r)
{
	return (unsigned)r < ARRAY_SIZE(role_names) ? role_names[r] : "none";
}

enum role auth_role_parse(const char *s)
{
	for (unsigned i = ROLE_VIEWER; s && i < ARRAY_SIZE(role_names); i++)
		if (!strcmp(s, role_names[i]))
			return (enum role)i;
	return ROLE_NONE;
}

static int64_t now_ms(void)
{
	return clock_ns(CLOCK_REALTIME) / 1000000;
}

static void to_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* SHA-256 of the secret's hex text, in hex (65 bytes with the NUL). */
static int hash_secret(const char *secret, char out[65])
{
	uint8_t d[32];

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, strlen(secret), d) < 0)
		return -EIO;
	to_hex(d, sizeof(d), out);
	return 0;
}

/* Token names follow the VM name rule: they end up in audit lines and task owners. */
static int name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int alnum =
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return 0;
	}
	return 1;
}

int auth_token_create(const char *name, enum role role, char **secret, struct json_object **tok)
{
	uint8_t rnd[TOKEN_ID_HEX / 2 + TOKEN_SECRET_BYTES];
	char id[TOKEN_ID_HEX + 1], sec[2 * TOKEN_SECRET_BYTES + 1], hash[65];
	struct json_object *arr = NULL;
	int ret;

	if (!name_ok(name) || role < ROLE_VIEWER || role > ROLE_ADMIN)
		return -EINVAL;
	if (gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof(rnd)) < 0)
		return -EIO;
	to_hex(rnd, TOKEN_ID_HEX / 2, id);
	to_hex(rnd + TOKEN_ID_HEX / 2, TOKEN_SECRET_BYTES, sec);
	ret = hash_secret(sec, hash);
	if (ret)
		return ret;
	ret = store_token_insert(id, name, auth_role_name(role), hash, now_ms());
	if (ret)
		return ret;
	if (asprintf(secret, "vireo_%s_%s", id, sec) < 0)
		return -ENOMEM;
	*tok = NULL;
	/* The reply shows the token as lists do, read back so both always agree. */
	if (store_token_list(&arr) == 0) {
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			struct json_object *t = json_object_array_get_idx(arr, i), *v;

			if (json_object_object_get_ex(t, "id", &v) &&
			    !strcmp(json_object_get_string(v), id)) {
				*tok = json_object_get(t);
				break;
			}
		}
		json_object_put(arr);
	}
	if (!*tok) {
		free(*secret);
		*secret = NULL;
		return -EIO;
	}
	return 0;
}

int auth_token_list(struct json_object **arr)
{
	return store_token_list(arr);
}

int auth_token_revoke(const char *id)
{
	if (!id || strlen(id) != TOKEN_ID_HEX || !is_hex(id, TOKEN_ID_HEX))
		return -ENOENT;
	return store_token_revoke(id, now_ms());
}

/* Constant-time comparison of two equally long strings. */
static int same(const char *a, const char *b, size_t n)
{
	unsigned char diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

int auth_bearer(const char *header, struct principal *p)
{
	char id[TOKEN_ID_HEX + 1], role[16], stored[80], hash[65];
	const char *tok, *sec;
	int revoked = 0;
	enum role r;

	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "anonymous");
	if (!header || strncasecmp(header, "Bearer ", 7))
		return -EACCES;
	tok = header + 7;
	while (*tok == ' ')
		tok++;
	/* vireo_<12 hex>_<64 hex> */
	if (strlen(tok) != 6 + TOKEN_ID_HEX + 1 + 2 * TOKEN_SECRET_BYTES ||
	    strncmp(tok, "vireo_", 6) || tok[6 + TOKEN_ID_HEX] != '_')
		return -EACCES;
	memcpy(id, tok + 6, TOKEN_ID_HEX);
	id[TOKEN_ID_HEX] = '\0';
	sec = tok + 6 + TOKEN_ID_HEX + 1;
	if (!is_hex(id, TOKEN_ID_HEX) || !is_hex(sec, 2 * TOKEN_SECRET_BYTES))
		return -EACCES;
	if (store_token_lookup(id, role, sizeof(role), stored, sizeof(stored), &revoked))
		return -EACCES;
	if (hash_secret(sec, hash) || strlen(stored) != 64 || !same(hash, stored, 64) || revoked)
		return -EACCES;
	r = auth_role_parse(role);
	if (r == ROLE_NONE)
		return -EACCES;
	store_token_touch(id, now_ms());
	p->role = r;
	snprintf(p->token_id, sizeof(p->token_id), "%s", id);
	snprintf(p->name, sizeof(p->name), "token:%s", id);
	return 0;
}

static int in_group(uid_t uid, gid_t gid)
{
	struct passwd pw, *pwp = NULL;
	gid_t groups[256];
	int n = ARRAY_SIZE(groups);
	char buf[4096];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) || !pwp)
		return 0;
	if (pw.pw_gid == gid)
		return 1;
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
		return 0;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

int auth_unix_peer(int fd, gid_t sock_gid, struct principal *p)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	memset(p, 0, sizeof(*p));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -errno;
	snprintf(p->name, sizeof(p->name), "uid:%u", (unsigned)cr.uid);
	/* The peer's primary or supplementary group, as the kernel checked it against the socket
	 * file's mode when it connected. */
	if (cr.uid == 0 || cr.uid == getuid() ||
	    (sock_gid != (gid_t)-1 && (cr.gid == sock_gid || in_group(cr.uid, sock_gid))))
		p->role = ROLE_ADMIN;
	return 0;
}

void auth_audit(const struct principal *p, const char *method, const char *path, int status,
		const char *remote)
{
	if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
		return;
	pr_info("audit: %s %s %s -> %d (%s)\n", p->name, method, path, status,
		remote ? remote : "unix");
	store_audit_append(now_ms(), p->name, method, path, status, remote ? remote : "unix");
}

static void token_cli_usage(FILE *f)
{
	fprintf(f,
		"Usage: vireod [--state-dir DIR] token create --name NAME --role ROLE\n"
		"       vireod [--state-dir DIR] token list\n"
		"       vireod [--state-dir DIR] token revoke ID\n"
		"Manages API tokens directly in the database (no running vireod needed), e.g. the\n"
		"first admin token for the TCP endpoint. ROLE is viewer, operator or admin. The\n"
		"secret is printed once.\n");
}

static int token_cli_create(int argc, char **argv)
{
	const char *name = NULL, *role = NULL;
	struct json_object *tok = NULL;
	char *secret = NULL;
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			name = argv[++i];
		} else if (!strcmp(argv[i], "--role") && i + 1 < argc) {
			role = argv[++i];
		} else {
			token_cli_usage(stderr);
			return 2;
		}
	}
	if (!name || auth_role_parse(role) == ROLE_NONE) {
		fprintf(stderr,
			"vireod: token create needs --name and --role viewer|operator|admin\n");
		return 2;
	}
	ret = auth_token_create(name, auth_role_parse(role), &secret, &tok);
	if (ret == -EINVAL) {
		fprintf(stderr, "vireod: a token name is 1-63 characters of [A-Za-z0-9._-]\n");
		return 2;
	}
	if (ret) {
		fprintf(stderr, "vireod: cannot create the token: %s\n", strerror(-ret));
		return 1;
	}
	printf("%s\n", secret);
	free(secret);
	json_object_put(tok);
	return 0;
}

int auth_token_cli(int argc, char **argv)
{
	struct json_object *arr = NULL;
	int ret;

	if (argc >= 2 && !strcmp(argv[1], "create"))
		return token_cli_create(argc - 1, argv + 1);
	if (argc == 2 && !strcmp(argv[1], "list")) {
		ret = auth_token_list(&arr);
		if (ret) {
			fprintf(stderr, "vireod: cannot list tokens: %s\n", strerror(-ret));
			return 1;
		}
		printf("%s\n",
		       json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "revoke")) {
		ret = auth_token_revoke(argv[2]);
		if (ret == -ENOENT || ret == -EALREADY)
			fprintf(stderr, "vireod: token %s: %s\n", argv[2],
				ret == -ENOENT ? "no such token" : "already revoked");
		else if (ret)
			fprintf(stderr, "vireod: cannot revoke %s: %s\n", argv[2], strerror(-ret));
		return ret == -ENOENT ? 3 : ret ? 1 : 0;
	}
	token_cli_usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
	return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
}
