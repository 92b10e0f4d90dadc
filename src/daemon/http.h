/* SPDX-License-Identifier: MIT */
/*
 * vireod's HTTP servers (libmicrohttpd): the REST API under /api/v1 on a unix socket and,
 * with --listen, on TCP with TLS. This header has two audiences:
 *
 *  - main.c starts and stops the servers: http_start() after the store, events, tasks and the
 *    supervisor are up; http_stop() first on SIGTERM (stop serving, then tear down the rest).
 *  - the api_*.c files (one per resource) register their routes and answer requests through
 *    struct http_req / struct http_resp and the helpers below.
 */
#ifndef VIREO_DAEMON_HTTP_H
#define VIREO_DAEMON_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"

struct json_object;

struct http_opts {
	const char *state_dir; /* a generated TLS key and certificate go to <state_dir>/tls/ */
	const char *socket_path; /* unix socket, always served */
	/* Group that owns the unix socket (mode 0660) and is admin on it, e.g. "vireo" when that
	 * group exists; NULL: mode 0600, only root and the daemon's uid. */
	const char *socket_group;
	const char *listen; /* "ADDR:PORT" for TCP+TLS, or NULL */
	const char *tls_cert; /* PEM files; both NULL with listen set: generate self-signed */
	const char *tls_key;
	const char *openapi_path; /* served at GET /api/v1/openapi.yaml; NULL: 404 */
};

/* Starts serving. Returns 0 or -errno (with a message logged: socket in use, bad cert...). */
int http_start(const struct http_opts *o);
/* Stops accepting, ends event streams and consoles, waits for running handlers. Idempotent. */
void http_stop(void);

/* Request body cap; larger bodies get 413 body_too_large without being read. */
#define HTTP_BODY_MAX (1024 * 1024)

struct http_req {
	const char *method;
	const char *path; /* without the query string */
	const char *params[3]; /* the {placeholders} of the matched route, in order */
	struct json_object *body; /* parsed JSON object, or NULL when the request had no body */
	struct principal who;
	int tcp; /* arrived over TCP (TLS) rather than the unix socket */
	void *conn; /* struct MHD_Connection * (for http_query / http_header) */
};

/* A query argument or a header, or NULL. */
const char *http_query(const struct http_req *r, const char *key);
const char *http_header(const struct http_req *r, const char *key);

enum http_body_kind {
	HTTP_BODY_NONE,
	HTTP_BODY_JSON,
	HTTP_BODY_TEXT, /* text/content_type, e.g. metrics, openapi */
	HTTP_BODY_SSE, /* handled by http.c: the event stream */
	HTTP_BODY_UPGRADE, /* handled by http.c: websocket to the VM's console */
};

struct http_resp {
	int status;
	enum http_body_kind kind;
	struct json_object *json; /* owned; freed after sending */
	char *text; /* owned (malloc'd) */
	size_t text_len;
	const char *content_type;
	char location[160]; /* Location header when non-empty */
	char etag[32]; /* ETag header when non-empty */
	uint64_t sse_after; /* SSE: resume after this sequence number */
	unsigned sse_types; /* SSE: bit mask of HTTP_EV_* to send, 0 = all */
	char upgrade_vm[40]; /* UPGRADE: the VM id whose console the websocket attaches to */
};

#define HTTP_EV_VM 1u
#define HTTP_EV_TASK 2u

/* Reads an integer query argument in [min, max] (def when absent). 0, or 1 with a 400
 * invalid_value reply set in resp. */
int http_query_int(const struct http_req *r, struct http_resp *resp, const char *key, int def,
		   int min, int max, int *out);

/* Sets a JSON reply (takes ownership of body; NULL for 204). Returns 0. */
int http_json(struct http_resp *resp, int status, struct json_object *body);
/* Sets the error reply {"code","message","details"?}; details (owned) may be NULL. */
int http_error(struct http_resp *resp, int status, const char *code, struct json_object *details,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Maps -errno from a lower layer to an error reply: -ENOENT 404 not_found, -EBUSY/-EALREADY 409
 * invalid_state, -EEXIST 409 name_taken, -EINVAL 400 invalid_value, -ESTALE 412
 * generation_mismatch, -ENOEXEC 422 unprocessable, anything else 500 internal. msg may be NULL. */
int http_errno(struct http_resp *resp, int err, const char *msg);

/* The error a lower layer described in e (code and message; status from the code), or, when e
 * has no code, http_errno(err). */
struct derror;
int http_derror(struct http_resp *resp, int err, const struct derror *e);
/* The usual end of a handler: http_derror() when ret is an error, else http_json(status, body). */
int http_reply(struct http_resp *resp, int ret, const struct derror *e, int status,
	       struct json_object *body);

typedef void (*http_handler)(struct http_req *req, struct http_resp *resp);

/* One entry of a resource's route table. pattern is below /api/v1 and may contain "{x}"
 * segments, e.g. "/vms/{id}/actions/{action}". */
struct http_route {
	const char *method;
	const char *pattern;
	enum role role; /* least role allowed; ROLE_NONE: no authentication */
	http_handler fn;
};

/* Each api_*.c exports one table, ended by an entry with method NULL. */
extern const struct http_route api_vms_routes[];
extern const struct http_route api_tasks_routes[];
extern const struct http_route api_tokens_routes[];
extern const struct http_route api_host_routes[];
extern const struct http_route api_events_routes[];
extern const struct http_route api_metrics_routes[];

/* Counters for /metrics: requests answered by status code. */
void http_requests_by_code(uint64_t counts[6]); /* index status/100, 1xx..5xx */

#endif
