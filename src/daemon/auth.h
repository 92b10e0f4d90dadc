/* SPDX-License-Identifier: MIT */
/*
 * Who may do what on vireod's API. Roles are ordered viewer < operator < admin.
 *
 * API tokens look like "vireo_<id>_<secret>": id is 12 hex digits (the token's public name in
 * lists, audit lines and DELETE /tokens/{id}); secret is 32 random bytes in hex, shown once at
 * creation. Only SHA-256(secret) is stored, compared in constant time.
 *
 * On the unix socket the peer's credentials (SO_PEERCRED) decide: uid 0, the daemon's own uid or
 * a member of the socket's group is admin without a token. On TCP every request needs a valid
 * token (401 otherwise).
 *
 * Persistence goes through store.c (all SQL lives there); auth.c needs these from store.h:
 *   int store_token_insert(const char *id, const char *name, const char *role,
 *                          const char *hash_hex, int64_t created_at);
 *   int store_token_lookup(const char *id, char *role, size_t role_len, char *hash_hex,
 *                          size_t hash_len, int *revoked);            // -ENOENT if unknown
 *   int store_token_list(struct json_object **arr);  // [{id,name,role,created_at,last_used_at,
 *                                                     //   revoked_at}], RFC 3339 strings or null
 *   int store_token_touch(const char *id, int64_t now); // last_used_at
 *   int store_token_revoke(const char *id, int64_t now); // -ENOENT unknown, -EALREADY revoked
 *   int store_audit_append(int64_t at, const char *principal, const char *method,
 *                          const char *path, int status, const char *remote);
 * (times are ms since the epoch).
 */
#ifndef VIREO_DAEMON_AUTH_H
#define VIREO_DAEMON_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;

enum role {
	ROLE_NONE = 0,
	ROLE_VIEWER = 1,
	ROLE_OPERATOR = 2,
	ROLE_ADMIN = 3,
};

/* The caller of one request, as decided by auth_unix_peer() or auth_bearer(). */
struct principal {
	enum role role;
	/* For audit lines and task owners: "token:<id>(<name>)", "uid:<n>" or "anonymous". */
	char name[96];
	char token_id[16]; /* empty when not authenticated by a token */
};

const char *auth_role_name(enum role r);
/* "viewer", "operator", "admin" -> role; anything else ROLE_NONE. */
enum role auth_role_parse(const char *s);

/* Creates a token. On success *secret is the full "vireo_<id>_<secret>" string (malloc'd, the
 * only time it exists in clear) and *tok the token as GET /tokens lists it. -EINVAL for a bad
 * name (same rule as VM names) or role. */
int auth_token_create(const char *name, enum role role, char **secret, struct json_object **tok);
int auth_token_list(struct json_object **arr);
/* -ENOENT unknown id, -EALREADY already revoked. */
int auth_token_revoke(const char *id);

/* Checks an "Authorization" header value. 0 and *p filled, or -EACCES (missing, malformed,
 * unknown, revoked or wrong secret: the caller answers 401 without saying which). */
int auth_bearer(const char *header, struct principal *p);

/* Decides the role of a unix socket peer: admin for uid 0, the daemon's uid or a member of
 * sock_gid (-1: no group), else ROLE_NONE. Returns 0 or -errno from getsockopt. */
int auth_unix_peer(int fd, gid_t sock_gid, struct principal *p);

/* `vireod token create|list|revoke ...` (argv[0] is "token"), on the default store (opened by
 * the caller): the first admin token without a running daemon. Returns the exit status. */
int auth_token_cli(int argc, char **argv);

/* Records a write request (every method but GET/HEAD) in the audit table and the log. */
void auth_audit(const struct principal *p, const char *method, const char *path, int status,
		const char *remote);

#endif
