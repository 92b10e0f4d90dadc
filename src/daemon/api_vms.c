// SPDX-License-Identifier: MIT
/*
 * /api/v1/vms: VM definitions (create, list, show, patch, delete), actions (one VM or many),
 * stats, state history and the serial console websocket. The supervisor does the work and
 * decides what each state allows; this file checks the request's shape and maps results to
 * HTTP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/util.h"
#include "derror.h"
#include "http.h"
#include "supervisor.h"

static struct supervisor *sv(struct http_resp *resp)
{
	struct supervisor *s = supervisor_default();

	if (!s)
		http_error(resp, 503, "shutting_down", NULL, "the supervisor is not running");
	return s;
}

/* ETag "<generation>" of a VM object, for If-Match on PATCH. */
static void set_etag(struct http_resp *resp, json_object *vm)
{
	json_object *g;

	if (json_object_object_get_ex(vm, "generation", &g))
		snprintf(resp->etag, sizeof(resp->etag), "\"%lld\"",
			 (long long)json_object_get_int64(g));
}

static int need_body(struct http_req *req, struct http_resp *resp)
{
	if (req->body)
		return 0;
	http_error(resp, 400, "bad_request", NULL, "this request needs a JSON body");
	return 1;
}

static void vms_list(struct http_req *req, struct http_resp *resp)
{
	struct vm_filter f = { .state = http_query(req, "state"),
			       .tag = http_query(req, "tag"),
			       .name_glob = http_query(req, "name") };
	struct supervisor *s = sv(resp);
	struct derror e = { 0 };
	json_object *out = NULL;
	int ret;

	/* The state's value is the supervisor's to check. */
	if (!s)
		return;
	if (f.name_glob && strlen(f.name_glob) > 255) {
		http_error(resp, 400, "invalid_value", NULL, "name pattern too long");
		return;
	}
	if (http_query_int(req, resp, "limit", 100, 1, 1000, &f.limit) ||
	    http_query_int(req, resp, "offset", 0, 0, 1 << 30, &f.offset))
		return;
	ret = supervisor_vm_list(s, &f, &out, &e);
	http_reply(resp, ret, &e, 200, out);
}

static void vms_create(struct http_req *req, struct http_resp *resp)
{
	struct supervisor *s = sv(resp);
	struct derror e = { 0 };
	json_object *vm = NULL, *id;
	int ret;

	if (need_body(req, resp) || !s)
		return;
	ret = supervisor_vm_create(s, req->body, &vm, &e);
	if (ret) {
		http_derror(resp, ret, &e);
		return;
	}
	if (json_object_object_get_ex(vm, "id", &id))
		snprintf(resp->location, sizeof(resp->location), "/api/v1/vms/%s",
			 json_object_get_string(id));
	set_etag(resp, vm);
	http_json(resp, 201, vm);
}

static void vms_get(struct http_req *req, struct http_resp *resp)
{
	struct supervisor *s = sv(resp);
	struct derror e = { 0 };
	json_object *vm = NULL;
	int ret;

	if (!s)
		return;
	ret = supervisor_vm_get(s, req->params[0], &vm, &e);
	if (ret) {
		http_derror(resp, ret, &e);
		return;
	}
	set_etag(resp, vm);
	http_json(resp, 200, vm);
}

/* If-Match: "<generation>" (quotes optional). -1 when absent; -2 when malformed. */
static int64_t if_match(struct http_req *req)
{
	const char *h = http_header(req, "If-Match");
	char buf[32];
	uint64_t g;
	size_t n;

	if (!h)
		return -1;
	n = strlen(h);
	if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
		h++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(buf))
		return -2;
	memcpy(buf, h, n);
	buf[n] = '\0';
	if (parse_u64(buf, &g) || g > INT64_MAX / 2)
		return -2;
	return (int64_t)g;
}

static void vms_patch(struct http_req *req, struct http_resp *resp)
{
	struct supervisor *s = sv(resp);
	int64_t gen = if_match(req);
	struct derror e = { 0 };
	json_object *vm = NULL;
	int ret;

	if (need_body(req, resp) || !s)
		return;
	if (gen == -2) {
		http_error(resp, 400, "bad_request", NULL, "If-Match must be \"<generation>\"");
		return;
	}
	ret = supervisor_vm_patch(s, req->params[0], req->body, gen, &vm, &e);
	if (ret) {
		http_derror(resp, ret, &e);
		return;
	}
	set_etag(resp, vm);
	http_json(resp, 200, vm);
}

static void vms_delete(struct http_req *req, struct http_resp *resp)
{
	struct supervisor *s = sv(resp);
	struct derror e = { 0 };
	int ret;

	if (!s)
		return;
	ret = supervisor_vm_delete(s, req->params[0], &e);
	http_reply(resp, ret, &e, 204, NULL);
}

static void task_location(struct http_resp *resp, json_object *task)
{
	json_object *id;

	if (json_object_object_get_ex(task, "id", &id))
		snprintf(resp->location, sizeof(resp->location), "/api/v1/tasks/%s",
			 json_object_get_string(id));
}

static void vms_action(struct http_req *req, struct http_resp *resp)
{
	struct supervisor *s = sv(resp);
	struct derror e = { 0 };
	json_object *task = NULL;
	int ret;

	/* The supervisor refuses an unknown action (404) before anything else. */
	if (!s)
		return;
	ret = supervisor_vm_action(s, req->params[0], req->params[1], req->body, req->who.name,
				   &task, &e);
	if (ret) {
		http_derror(resp, ret, &e);
		return;
	}
	task_location(resp, task);
	http_json(resp, 202, task);
}

static void vms_action_bulk(struct http_req *req, struct http_resp *resp)
{
	struct supervisor *s = sv(resp);
	struct derror e = { 0 };
	json_object *out = NULL;
	int ret;

	if (!s || need_body(req, resp))
		return;
	/* The selector's shape; the supervisor checks the values. */
	json_object_object_foreach(req->body, key, val)
	{
		(void)val;
		if (strcmp(key, "ids") && strcmp(key, "tag") && strcmp(key, "args")) {
			http_error(resp, 400, "unknown_field", NULL,
				   "unknown field '%s' (ids, tag, args)", key);
			return;
		}
	}
	ret = supervisor_vm_action_bulk(s, req->params[0], req->body, req->who.name, &out, &e);
	http_reply(resp, ret, &e, 202, out);
}

static void vms_stats(struct http_req *req, struct http_resp *resp)
{
	struct supervisor *s = sv(resp);
	struct derror e = { 0 };
	json_object *out = NULL;
	int ret;

	if (!s)
		return;
	ret = supervisor_vm_stats(s, req->params[0], &out, &e);
	http_reply(resp, ret, &e, 200, out);
}

static void vms_history(struct http_req *req, struct http_resp *resp)
{
	struct supervisor *s = sv(resp);
	struct derror e = { 0 };
	json_object *out = NULL;
	int ret;

	if (!s)
		return;
	ret = supervisor_vm_history(s, req->params[0], &out, &e);
	http_reply(resp, ret, &e, 200, out);
}

/* The websocket itself is http.c's; here only which VM, and that it exists. */
static void vms_console(struct http_req *req, struct http_resp *resp)
{
	struct supervisor *s = sv(resp);
	char id[STORE_ID_LEN];

	if (!s)
		return;
	if (supervisor_vm_resolve(s, req->params[0], id)) {
		http_error(resp, 404, "not_found", NULL, "no VM '%s'", req->params[0]);
		return;
	}
	resp->status = 101;
	resp->kind = HTTP_BODY_UPGRADE;
	snprintf(resp->upgrade_vm, sizeof(resp->upgrade_vm), "%s", id);
}

/* Fixed paths first: "/vms/actions/{action}" before "/vms/{id}/..." so a VM may be named
 * "actions" and still be reached as /vms/actions. */
const struct http_route api_vms_routes[] = {
	{ "GET", "/vms", ROLE_VIEWER, vms_list },
	{ "POST", "/vms", ROLE_ADMIN, vms_create },
	{ "POST", "/vms/actions/{action}", ROLE_OPERATOR, vms_action_bulk },
	{ "GET", "/vms/{id}", ROLE_VIEWER, vms_get },
	{ "PATCH", "/vms/{id}", ROLE_ADMIN, vms_patch },
	{ "DELETE", "/vms/{id}", ROLE_ADMIN, vms_delete },
	{ "POST", "/vms/{id}/actions/{action}", ROLE_OPERATOR, vms_action },
	{ "GET", "/vms/{id}/stats", ROLE_VIEWER, vms_stats },
	{ "GET", "/vms/{id}/history", ROLE_VIEWER, vms_history },
	{ "GET", "/vms/{id}/console", ROLE_OPERATOR, vms_console },
	{ NULL, NULL, ROLE_NONE, NULL },
};
