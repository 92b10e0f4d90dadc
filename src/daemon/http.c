// SPDX-License-Identifier: MIT
/*
 * vireod's HTTP front: two libmicrohttpd daemons (unix socket; TCP with TLS) sharing one access
 * handler. The handler authenticates from the headers alone, finds the route, refuses what it
 * can before the body is read (401, 403, 404, 405, 413), collects the body up to HTTP_BODY_MAX,
 * parses it as strict JSON and calls the resource's handler. Handlers fill a struct http_resp;
 * this file turns it into bytes, streams events (SSE) and hands console websockets to
 * http_ws.c. Every connection has its own thread (MHD_USE_THREAD_PER_CONNECTION), so a handler
 * may block on the store or a VMM's control socket without stalling others.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "common/log.h"
#include "common/util.h"
#include "consolehub.h"
#include "events.h"
#include "derror.h"
#include "http.h"
#include "http_int.h"

#define API_PREFIX "/api/v1"
#define MAX_SEGMENTS 8
#define SSE_KEEPALIVE_MS 15000

struct server {
	struct MHD_Daemon *mhd;
	int tcp;
	int fd;
};

static struct server srv_unix = { .fd = -1 }, srv_tcp = { .tcp = 1, .fd = -1 };
static gid_t sock_gid = (gid_t)-1;
static char sock_path[256];
static char *tls_cert_pem, *tls_key_pem;
static atomic_int http_stopping;
static atomic_uint_fast64_t req_by_code[6];

static const struct http_route *const route_tables[] = {
	api_vms_routes,	 api_tasks_routes,  api_tokens_routes,
	api_host_routes, api_events_routes, api_metrics_routes,
};

/* One request in flight: what the first call of the access handler decided, and the body. */
struct conn_state {
	const struct http_route *route;
	struct principal who;
	char pathbuf[512]; /* the path, split into NUL-terminated segments for params */
	const char *params[3];
	char *body;
	size_t len;
	int too_large;
	/* Refused from the headers: the reply waits until the body has been read (and dropped),
	 * because closing a connection with unread input resets it and the client may never see
	 * the reply. Only 413 goes out at once. */
	int refused;
	int answered;
	size_t dropped;
	struct http_resp early;
	char allow[64];
	/* A console viewer opened for a 101 reply; the upgrade handler takes it (NULL). If the
	 * reply never got out, completed_cb closes it. */
	struct console_viewer *viewer;
};

void http_requests_by_code(uint64_t counts[6])
{
	for (int i = 0; i < 6; i++)
		counts[i] = atomic_load(&req_by_code[i]);
}

const char *http_query(const struct http_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(const struct http_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, key);
}

int http_query_int(const struct http_req *r, struct http_resp *resp, const char *key, int def,
		   int min, int max, int *out)
{
	const char *v = http_query(r, key);
	char *end;
	long n;

	*out = def;
	if (!v)
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (!*v || *end || errno || n < min || n > max) {
		http_error(resp, 400, "invalid_value", NULL, "query argument %s must be %d-%d", key,
			   min, max);
		return 1;
	}
	*out = (int)n;
	return 0;
}

int http_json(struct http_resp *resp, int status, struct json_object *body)
{
	json_object_put(resp->json);
	resp->status = status;
	resp->kind = body ? HTTP_BODY_JSON : HTTP_BODY_NONE;
	resp->json = body;
	return 0;
}

int http_error(struct http_resp *resp, int status, const char *code, struct json_object *details,
	       const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "code", json_object_new_string(code));
	json_object_object_add(o, "message", json_object_new_string(msg));
	if (details)
		json_object_object_add(o, "details", details);
	return http_json(resp, status, o);
}

int http_errno(struct http_resp *resp, int err, const char *msg)
{
	switch (err) {
	case -ENOENT:
		return http_error(resp, 404, "not_found", NULL, "%s", msg ? msg : "no such object");
	case -EBUSY:
	case -EALREADY:
		return http_error(resp, 409, "invalid_state", NULL, "%s",
				  msg ? msg : "not allowed in the current state");
	case -EEXIST:
		return http_error(resp, 409, "name_taken", NULL, "%s", msg ? msg : "name in use");
	case -EINVAL:
	case -ERANGE:
		return http_error(resp, 400, "invalid_value", NULL, "%s",
				  msg ? msg : "invalid value");
	case -ESTALE:
		return http_error(resp, 412, "generation_mismatch", NULL, "%s",
				  msg ? msg : "the object changed (If-Match)");
	case -ENOEXEC:
		return http_error(resp, 422, "unprocessable", NULL, "%s",
				  msg ? msg : "the request cannot be carried out");
	default:
		return http_error(resp, 500, "internal", NULL, "%s: %s",
				  msg ? msg : "internal error", strerror(-err));
	}
}

/* Splits path into segments inside st->pathbuf; returns the count or -1 when it does not fit. */
static int split_path(struct conn_state *st, const char *path, char **seg)
{
	int n = 0;
	char *p;

	if (strlen(path) >= sizeof(st->pathbuf))
		return -1;
	strcpy(st->pathbuf, path);
	for (p = st->pathbuf; *p;) {
		if (*p == '/') {
			*p++ = '\0';
			continue;
		}
		if (n == MAX_SEGMENTS)
			return -1;
		seg[n++] = p;
		p += strcspn(p, "/");
	}
	return n;
}

/* Does pattern match the segments? Fills params with the {x} segments. */
static int route_match(const char *pattern, char **seg, int nseg, const char **params)
{
	const char *p = pattern;
	int i = 0, np = 0;

	while (*p) {
		size_t len;

		if (*p == '/') {
			p++;
			continue;
		}
		len = strcspn(p, "/");
		if (i == nseg)
			return 0;
		if (*p == '{') {
			if (np == 3)
				return 0;
			params[np++] = seg[i];
		} else if (strlen(seg[i]) != len || strncmp(seg[i], p, len)) {
			return 0;
		}
		i++;
		p += len;
	}
	return i == nseg;
}

/* Finds the route of method+path. 0, -ENOENT (no such path), -EOPNOTSUPP (path exists, not
 * with this method; allow lists the methods that do). */
static int route_find(struct conn_state *st, const char *method, const char *url, char *allow,
		      size_t allow_len)
{
	char *seg[MAX_SEGMENTS];
	const char *path;
	int nseg, found = 0;

	allow[0] = '\0';
	if (!strcmp(url, "/metrics"))
		path = url; /* what Prometheus scrapes by default, also under /api/v1 */
	else if (!strncmp(url, API_PREFIX "/", strlen(API_PREFIX) + 1))
		path = url + strlen(API_PREFIX);
	else
		return -ENOENT;
	nseg = split_path(st, path, seg);
	if (nseg < 0)
		return -ENOENT;
	for (size_t t = 0; t < ARRAY_SIZE(route_tables); t++) {
		for (const struct http_route *r = route_tables[t]; r->method; r++) {
			const char *params[3] = { NULL, NULL, NULL };

			if (!route_match(r->pattern, seg, nseg, params))
				continue;
			found = 1;
			if (!strcmp(r->method, method)) {
				st->route = r;
				memcpy(st->params, params, sizeof(params));
				return 0;
			}
			if (!strstr(allow, r->method)) {
				size_t l = strlen(allow);

				snprintf(allow + l, allow_len - l, "%s%s", l ? ", " : "",
					 r->method);
			}
		}
	}
	return found ? -EOPNOTSUPP : -ENOENT;
}

int http_derror(struct http_resp *resp, int err, const struct derror *e)
{
	if (e && e->code)
		return http_error(resp, derror_http_status(e->code), e->code, NULL, "%s",
				  e->message);
	return http_errno(resp, err, NULL);
}

int http_reply(struct http_resp *resp, int ret, const struct derror *e, int status,
	       struct json_object *body)
{
	if (ret) {
		json_object_put(body);
		return http_derror(resp, ret, e);
	}
	return http_json(resp, status, body);
}

static void remote_name(struct MHD_Connection *conn, int tcp, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	snprintf(out, len, "unix");
	if (!tcp)
		return;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr)
		return;
	sa = ci->client_addr;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, out, len);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, out, len);
	}
}

/* ---- responses ---- */

struct sse_state {
	uint64_t after;
	unsigned types;
	char *buf; /* formatted events not yet handed to MHD */
	size_t len, off;
	double last_write;
};

static int sse_wanted(const struct sse_state *s, const char *type)
{
	if (!s->types)
		return 1;
	if (!strncmp(type, "vm.", 3))
		return !!(s->types & HTTP_EV_VM);
	if (!strncmp(type, "task.", 5))
		return !!(s->types & HTTP_EV_TASK);
	return 0;
}

static void sse_append(struct sse_state *s, const char *txt)
{
	size_t n = strlen(txt);
	char *nb = realloc(s->buf, s->len + n + 1);

	if (!nb)
		return;
	s->buf = nb;
	memcpy(s->buf + s->len, txt, n + 1);
	s->len += n;
}

/* Blocks (its connection has its own thread) until there is something to send. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse_state *s = cls;
	struct event ev[32];

	(void)pos;
	while (s->off == s->len) {
		int n;

		free(s->buf);
		s->buf = NULL;
		s->len = s->off = 0;
		if (atomic_load(&http_stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		n = events_wait(s->after, ev, ARRAY_SIZE(ev), 1000);
		if (n < 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		for (int i = 0; i < n; i++) {
			char *line;

			s->after = ev[i].seq;
			if (!sse_wanted(s, ev[i].type))
				continue;
			if (asprintf(&line, "id: %llu\nevent: %s\ndata: %s\n\n",
				     (unsigned long long)ev[i].seq, ev[i].type, ev[i].data) < 0)
				continue;
			sse_append(s, line);
			free(line);
		}
		events_release(ev, n);
		/* A comment line now and then keeps proxies and idle timeouts from cutting us. */
		if (s->len == 0 && mono_ms() - s->last_write > SSE_KEEPALIVE_MS)
			sse_append(s, ": keepalive\n\n");
	}
	s->last_write = mono_ms();
	max = MIN(max, s->len - s->off);
	memcpy(buf, s->buf + s->off, max);
	s->off += max;
	return (ssize_t)max;
}

static void sse_free(void *cls)
{
	struct sse_state *s = cls;

	free(s->buf);
	free(s);
}

static struct MHD_Response *sse_response(const struct http_resp *resp)
{
	struct sse_state *s = calloc(1, sizeof(*s));
	struct MHD_Response *r;
	char hello[64];

	if (!s)
		return NULL;
	s->after = resp->sse_after;
	s->types = resp->sse_types;
	s->last_write = mono_ms();
	/* The first bytes say from where the stream runs, so a client knows it is subscribed. */
	snprintf(hello, sizeof(hello), ": subscribed after %llu\n\n", (unsigned long long)s->after);
	sse_append(s, hello);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
	if (!r) {
		sse_free(s);
		return NULL;
	}
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	return r;
}

static struct MHD_Response *build_response(struct MHD_Connection *conn, struct conn_state *st,
					   struct http_resp *resp)
{
	struct MHD_Response *r = NULL;
	const char *msg = NULL, *code = NULL;

	switch (resp->kind) {
	case HTTP_BODY_JSON: {
		const char *txt =
			json_object_to_json_string_ext(resp->json, JSON_C_TO_STRING_PLAIN);

		r = MHD_create_response_from_buffer(strlen(txt), (void *)txt,
						    MHD_RESPMEM_MUST_COPY);
		if (r)
			MHD_add_response_header(r, "Content-Type", "application/json");
		break;
	}
	case HTTP_BODY_TEXT:
		r = MHD_create_response_from_buffer(resp->text_len, resp->text,
						    MHD_RESPMEM_MUST_COPY);
		if (r)
			MHD_add_response_header(r, "Content-Type", resp->content_type);
		break;
	case HTTP_BODY_SSE:
		r = sse_response(resp);
		break;
	case HTTP_BODY_UPGRADE:
		r = http_ws_response(conn, resp->upgrade_vm, &st->viewer, &resp->status, &code,
				     &msg);
		if (!r && msg) {
			http_error(resp, resp->status, code, NULL, "%s", msg);
			return build_response(conn, st, resp);
		}
		break;
	case HTTP_BODY_NONE:
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		break;
	}
	if (!r)
		return NULL;
	if (resp->location[0])
		MHD_add_response_header(r, "Location", resp->location);
	if (resp->etag[0])
		MHD_add_response_header(r, "ETag", resp->etag);
	return r;
}

/* Sends resp, audits writes, counts the status, and frees what resp owns. */
static enum MHD_Result send_resp(struct MHD_Connection *conn, const struct server *srv,
				 struct conn_state *st, const char *method, const char *url,
				 struct http_resp *resp, const char *allow)
{
	const struct principal *who = &st->who;
	struct MHD_Response *r = build_response(conn, st, resp);
	enum MHD_Result ret = MHD_NO;
	char remote[64];

	if (r) {
		if (allow && allow[0])
			MHD_add_response_header(r, "Allow", allow);
		ret = MHD_queue_response(conn, (unsigned)resp->status, r);
		MHD_destroy_response(r);
	}
	if (resp->status >= 100 && resp->status < 600)
		atomic_fetch_add(&req_by_code[resp->status / 100], 1);
	remote_name(conn, srv->tcp, remote, sizeof(remote));
	auth_audit(who, method, url, resp->status, srv->tcp ? remote : NULL);
	json_object_put(resp->json);
	free(resp->text);
	memset(resp, 0, sizeof(*resp));
	return ret;
}

/* ---- the access handler ---- */

/* Decides who is calling: 0, or -EACCES (401: a bad token, or no token on TCP). */
static int authenticate(struct MHD_Connection *conn, const struct server *srv,
			struct principal *who)
{
	const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	const union MHD_ConnectionInfo *ci;

	if (authz || srv->tcp)
		return auth_bearer(authz, who);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci || auth_unix_peer(ci->connect_fd, sock_gid, who))
		return -EACCES;
	return 0;
}

/* The first call: everything that can be refused from the headers alone. Returns 0 to go on
 * reading the body, or 1 with resp filled. */
static int precheck(struct MHD_Connection *conn, const struct server *srv, const char *url,
		    const char *method, struct conn_state *st, struct http_resp *resp, char *allow,
		    size_t allow_len)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
	int ret;

	if (atomic_load(&http_stopping))
		return http_error(resp, 503, "shutting_down", NULL, "vireod is stopping"), 1;
	if (authenticate(conn, srv, &st->who))
		return http_error(resp, 401, "unauthenticated", NULL,
				  "a valid API token is required (Authorization: Bearer)"),
		       1;
	ret = route_find(st, method, url, allow, allow_len);
	if (ret == -EOPNOTSUPP)
		return http_error(resp, 405, "method_not_allowed", NULL, "%s is not allowed on %s",
				  method, url),
		       1;
	if (ret)
		return http_error(resp, 404, "not_found", NULL, "no such resource: %s", url), 1;
	if (st->who.role < st->route->role) {
		if (st->who.role == ROLE_NONE)
			return http_error(resp, 401, "unauthenticated", NULL,
					  "a valid API token is required"),
			       1;
		return http_error(resp, 403, "forbidden", NULL, "%s needs the %s role (you are %s)",
				  url, auth_role_name(st->route->role),
				  auth_role_name(st->who.role)),
		       1;
	}
	if (cl) {
		uint64_t n;

		if (parse_u64(cl, &n))
			return http_error(resp, 400, "bad_request", NULL, "bad Content-Length"), 1;
		if (n > HTTP_BODY_MAX)
			return http_error(resp, 413, "body_too_large", NULL,
					  "request bodies are limited to %d bytes", HTTP_BODY_MAX),
			       1;
	}
	return 0;
}

static int media_type_is(const char *ct, const char *type)
{
	size_t n = strlen(type);

	return ct && !strncasecmp(ct, type, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Parses the collected body. 0 with req->body set (or NULL for no body), or 1 with resp set. */
static int parse_body(struct MHD_Connection *conn, struct conn_state *st, struct http_req *req,
		      struct http_resp *resp)
{
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
	struct json_tokener *tok;
	struct json_object *o;
	size_t end;

	if (st->too_large)
		return http_error(resp, 413, "body_too_large", NULL,
				  "request bodies are limited to %d bytes", HTTP_BODY_MAX),
		       1;
	if (st->len == 0)
		return 0;
	if (!media_type_is(ct, "application/json") &&
	    !media_type_is(ct, "application/merge-patch+json"))
		return http_error(resp, 415, "unsupported_media_type", NULL,
				  "request bodies must be application/json"),
		       1;
	tok = json_tokener_new_ex(32);
	if (!tok)
		return http_errno(resp, -ENOMEM, NULL), 1;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, st->body, (int)st->len);
	end = tok->char_offset;
	if (!o || json_tokener_get_error(tok) != json_tokener_success) {
		http_error(resp, 400, "invalid_json", NULL, "malformed JSON at byte %zu: %s", end,
			   json_tokener_error_desc(json_tokener_get_error(tok)));
		json_tokener_free(tok);
		json_object_put(o);
		return 1;
	}
	json_tokener_free(tok);
	while (end < st->len && strchr(" \t\r\n", st->body[end]))
		end++;
	if (end != st->len || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return http_error(resp, 400, "invalid_json", NULL,
				  "the body must be one JSON object"),
		       1;
	}
	req->body = o;
	return 0;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	const struct server *srv = cls;
	struct conn_state *st = *con_cls;
	struct http_resp resp = { 0 };
	struct http_req req = { 0 };

	(void)version;
	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st)
			return MHD_NO;
		*con_cls = st;
		if (precheck(conn, srv, url, method, st, &st->early, st->allow, sizeof(st->allow)))
			st->refused = 1;
		if (st->refused && st->early.status == 413) {
			st->answered = 1;
			return send_resp(conn, srv, st, method, url, &st->early, st->allow);
		}
		return MHD_YES;
	}
	if (st->answered)
		return MHD_YES; /* MHD drops the rest of the body */
	if (*upload_size) {
		if (st->refused) {
			st->dropped += *upload_size;
			*upload_size = 0;
			if (st->dropped <= HTTP_BODY_MAX)
				return MHD_YES;
			st->answered = 1;
			return send_resp(conn, srv, st, method, url, &st->early, st->allow);
		}
		if (!st->too_large && st->len + *upload_size <= HTTP_BODY_MAX) {
			char *nb = realloc(st->body, st->len + *upload_size + 1);

			if (!nb)
				return MHD_NO;
			st->body = nb;
			memcpy(st->body + st->len, upload, *upload_size);
			st->len += *upload_size;
			st->body[st->len] = '\0';
		} else {
			/* Chunked bodies have no Content-Length to refuse up front. */
			st->too_large = 1;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	st->answered = 1;
	if (st->refused)
		return send_resp(conn, srv, st, method, url, &st->early, st->allow);
	req.method = method;
	req.path = url;
	memcpy(req.params, st->params, sizeof(req.params));
	req.who = st->who;
	req.tcp = srv->tcp;
	req.conn = conn;
	if (!parse_body(conn, st, &req, &resp)) {
		resp.status = 500;
		st->route->fn(&req, &resp);
		json_object_put(req.body);
	}
	return send_resp(conn, srv, st, method, url, &resp, NULL);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode code)
{
	struct conn_state *st = *con_cls;

	(void)cls, (void)conn, (void)code;
	if (st) {
		json_object_put(st->early.json); /* a refusal never sent (connection lost) */
		if (st->viewer)
			consolehub_close(st->viewer);
		free(st->body);
		free(st);
		*con_cls = NULL;
	}
}

/* Percent-decoding of the path and query arguments, in place. "%00" stays as it is: decoded, it
 * would cut the string short, and "/vms/x/actions/start%00junk" would mean "start". */
static size_t unescape_cb(void *cls, struct MHD_Connection *conn, char *s)
{
	char *w = s;

	(void)cls, (void)conn;
	for (const char *r = s; *r; r++) {
		int hi, lo;

		if (*r == '%' && (hi = hex_digit(r[1])) >= 0 && (lo = hex_digit(r[2])) >= 0 &&
		    (hi || lo)) {
			*w++ = (char)(hi << 4 | lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	pr_warn("http: %s%s", msg, msg[0] && msg[strlen(msg) - 1] == '\n' ? "" : "\n");
}

/* ---- servers ---- */

static int mkdir_parents(const char *path, mode_t mode)
{
	char buf[512];

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static int unix_socket_open(const struct http_opts *o)
{
	int fd, ret;

	ret = mkdir_parents(o->socket_path, 0755);
	if (ret) {
		pr_err("vireod: cannot create the directory of %s: %s\n", o->socket_path,
		       strerror(-ret));
		return ret;
	}
	fd = unix_listen(o->socket_path, 64);
	if (fd < 0) {
		pr_err("vireod: cannot listen on %s: %s\n", o->socket_path, strerror(-fd));
		return fd;
	}
	if (o->socket_group) {
		struct group gr, *grp = NULL;
		char buf[4096];

		if (getgrnam_r(o->socket_group, &gr, buf, sizeof(buf), &grp) || !grp) {
			pr_err("vireod: no group %s for the socket\n", o->socket_group);
			ret = -ENOENT;
			goto err_close;
		}
		sock_gid = grp->gr_gid;
		if (chown(o->socket_path, (uid_t)-1, sock_gid) < 0) {
			ret = -errno;
			pr_err("vireod: chown %s: %s\n", o->socket_path, strerror(errno));
			goto err_close;
		}
	}
	/* The mode is the first gate (connect needs write permission); SO_PEERCRED the second. */
	if (chmod(o->socket_path, o->socket_group ? 0660 : 0600) < 0) {
		ret = -errno;
		goto err_close;
	}
	snprintf(sock_path, sizeof(sock_path), "%s", o->socket_path);
	return fd;
err_close:
	close(fd);
	unlink(o->socket_path);
	return ret;
}

/* "ADDR:PORT" or "[V6ADDR]:PORT" -> a listening, close-on-exec TCP socket. */
static int tcp_socket_open(const char *listen_addr)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	char host[256];
	const char *colon = strrchr(listen_addr, ':');
	size_t hl;
	int fd, one = 1, ret;

	if (!colon || colon == listen_addr || !colon[1])
		goto err_syntax;
	hl = (size_t)(colon - listen_addr);
	if (listen_addr[0] == '[') {
		if (hl < 3 || listen_addr[hl - 1] != ']')
			goto err_syntax;
		listen_addr++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		goto err_syntax;
	memcpy(host, listen_addr, hl);
	host[hl] = '\0';
	ret = getaddrinfo(host, colon + 1, &hints, &ai);
	if (ret) {
		pr_err("vireod: --listen %s: %s\n", host, gai_strerror(ret));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto err_errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		close(fd);
		goto err_errno;
	}
	freeaddrinfo(ai);
	return fd;
err_errno:
	ret = -errno;
	pr_err("vireod: cannot listen on %s: %s\n", colon ? host : listen_addr, strerror(errno));
	freeaddrinfo(ai);
	return ret;
err_syntax:
	pr_err("vireod: --listen wants ADDR:PORT (or [ADDR]:PORT), not '%s'\n", listen_addr);
	return -EINVAL;
}

static struct MHD_Daemon *mhd_start(struct server *srv)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;

	/* The logger first, so MHD's own complaints about later options reach it too. */
	if (srv->tcp)
		return MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, access_cb, srv,
					MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
					MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, NULL,
					MHD_OPTION_LISTEN_SOCKET, srv->fd, MHD_OPTION_HTTPS_MEM_KEY,
					tls_key_pem, MHD_OPTION_HTTPS_MEM_CERT, tls_cert_pem,
					MHD_OPTION_NOTIFY_COMPLETED, completed_cb, NULL,
					MHD_OPTION_CONNECTION_TIMEOUT, 120u,
					MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_END);
	return MHD_start_daemon(flags, 0, NULL, NULL, access_cb, srv, MHD_OPTION_EXTERNAL_LOGGER,
				mhd_log, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, NULL,
				MHD_OPTION_LISTEN_SOCKET, srv->fd, MHD_OPTION_NOTIFY_COMPLETED,
				completed_cb, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
				MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_END);
}

static void server_stop(struct server *srv)
{
	/* MHD_stop_daemon closes the listening socket it was given. */
	if (srv->mhd) {
		MHD_stop_daemon(srv->mhd);
		srv->mhd = NULL;
		srv->fd = -1;
	}
	if (srv->fd >= 0) {
		close(srv->fd);
		srv->fd = -1;
	}
}

int http_start(const struct http_opts *o)
{
	int ret;

	atomic_store(&http_stopping, 0);
	srv_unix.fd = unix_socket_open(o);
	if (srv_unix.fd < 0)
		return srv_unix.fd;
	srv_unix.mhd = mhd_start(&srv_unix);
	if (!srv_unix.mhd) {
		pr_err("vireod: cannot start the HTTP server on %s\n", o->socket_path);
		ret = -EIO;
		goto err_unix;
	}
	pr_info("vireod: serving on unix:%s\n", o->socket_path);
	if (!o->listen)
		return 0;
	ret = http_tls_load(o->state_dir, o->tls_cert, o->tls_key, &tls_cert_pem, &tls_key_pem);
	if (ret)
		goto err_mhd;
	srv_tcp.fd = tcp_socket_open(o->listen);
	if (srv_tcp.fd < 0) {
		ret = srv_tcp.fd;
		goto err_mhd;
	}
	srv_tcp.mhd = mhd_start(&srv_tcp);
	if (!srv_tcp.mhd) {
		pr_err("vireod: cannot start the HTTPS server on %s\n", o->listen);
		close(srv_tcp.fd);
		srv_tcp.fd = -1;
		ret = -EIO;
		goto err_mhd;
	}
	pr_info("vireod: serving on https://%s\n", o->listen);
	return 0;
err_mhd:
	free(tls_cert_pem);
	free(tls_key_pem);
	tls_cert_pem = tls_key_pem = NULL;
err_unix:
	server_stop(&srv_unix);
	unlink(sock_path);
	sock_path[0] = '\0';
	return ret;
}

void http_stop(void)
{
	/* Event streams notice within a second; websockets are shut down; new requests get 503
	 * until MHD stops accepting. */
	atomic_store(&http_stopping, 1);
	http_ws_stop_all();
	server_stop(&srv_tcp);
	server_stop(&srv_unix);
	if (sock_path[0])
		unlink(sock_path);
	sock_path[0] = '\0';
	free(tls_cert_pem);
	free(tls_key_pem);
	tls_cert_pem = tls_key_pem = NULL;
}
