// SPDX-License-Identifier: MIT
/* /api/v1/tasks: list, show and cancel the tasks that VM actions run as (task.c does the work). */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "common/util.h"
#include "derror.h"
#include "http.h"
#include "supervisor.h"
#include "task.h"

static struct task_pool *pool(struct http_resp *resp)
{
	struct task_pool *p = task_pool_default();

	if (!p)
		http_error(resp, 503, "shutting_down", NULL, "the task pool is not running");
	return p;
}

static void tasks_list(struct http_req *req, struct http_resp *resp)
{
	const char *state = http_query(req, "state"), *vm = http_query(req, "vm");
	struct task_pool *p = pool(resp);
	char vm_id[STORE_ID_LEN];
	struct derror e = { 0 };
	json_object *out = NULL;
	int limit, offset, ret;

	/* task_list() checks the state's value. */
	if (!p)
		return;
	if (http_query_int(req, resp, "limit", 100, 1, 1000, &limit) ||
	    http_query_int(req, resp, "offset", 0, 0, 1 << 30, &offset))
		return;
	/* vm= takes a name as well as an id, as everywhere else. */
	if (vm && supervisor_default() && !supervisor_vm_resolve(supervisor_default(), vm, vm_id))
		vm = vm_id;
	ret = task_list(p, state, vm, limit, offset, &out, &e);
	http_reply(resp, ret, &e, 200, out);
}

static void tasks_get(struct http_req *req, struct http_resp *resp)
{
	struct task_pool *p = pool(resp);
	struct derror e = { 0 };
	json_object *out = NULL;
	int ret;

	if (!p)
		return;
	ret = task_get(p, req->params[0], &out, &e);
	http_reply(resp, ret, &e, 200, out);
}

/* 202 with the task as it is now: cancelled when it was queued, still running (with its cancel
 * flag set) when it was running. */
static void tasks_cancel(struct http_req *req, struct http_resp *resp)
{
	struct task_pool *p = pool(resp);
	struct derror e = { 0 };
	json_object *out = NULL;
	int ret;

	if (!p)
		return;
	ret = task_cancel(p, req->params[0], &e);
	if (!ret)
		ret = task_get(p, req->params[0], &out, &e);
	http_reply(resp, ret, &e, 202, out);
}

const struct http_route api_tasks_routes[] = {
	{ "GET", "/tasks", ROLE_VIEWER, tasks_list },
	{ "GET", "/tasks/{id}", ROLE_VIEWER, tasks_get },
	{ "DELETE", "/tasks/{id}", ROLE_OPERATOR, tasks_cancel },
	{ NULL, NULL, ROLE_NONE, NULL },
};
