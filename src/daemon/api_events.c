// SPDX-License-Identifier: MIT
/*
 * /api/v1/events: the event stream as server-sent events. SSE rather than a websocket: it is
 * one-way (as events are), plain HTTP through any proxy, resumable by the standard
 * Last-Event-ID header, and readable with curl. http.c streams it; here the parameters.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "events.h"
#include "http.h"

/* "vm,task" -> HTTP_EV_* bits; -1 for an unknown or empty type. */
static int parse_types(const char *s)
{
	unsigned bits = 0;

	for (;;) {
		size_t n = strcspn(s, ",");

		if (n == 2 && !strncmp(s, "vm", 2))
			bits |= HTTP_EV_VM;
		else if (n == 4 && !strncmp(s, "task", 4))
			bits |= HTTP_EV_TASK;
		else
			return -1;
		s += n;
		if (!*s)
			return (int)bits;
		s++; /* past the comma: another type must follow */
	}
}

static void events_get(struct http_req *req, struct http_resp *resp)
{
	const char *last = http_header(req, "Last-Event-ID");
	const char *after = http_query(req, "after");
	const char *types = http_query(req, "types");
	uint64_t seq = events_last_seq();
	int bits = 0;

	if (last || after) {
		if (parse_u64(last ? last : after, &seq)) {
			http_error(resp, 400, "invalid_value", NULL,
				   "Last-Event-ID / after must be an event id");
			return;
		}
	}
	if (types) {
		bits = parse_types(types);
		if (bits < 0) {
			http_error(resp, 400, "invalid_value", NULL,
				   "types is a comma-separated list of vm, task");
			return;
		}
	}
	resp->status = 200;
	resp->kind = HTTP_BODY_SSE;
	resp->sse_after = seq;
	resp->sse_types = (unsigned)bits;
}

const struct http_route api_events_routes[] = {
	{ "GET", "/events", ROLE_VIEWER, events_get },
	{ NULL, NULL, ROLE_NONE, NULL },
};
