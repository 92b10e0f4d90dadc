/* SPDX-License-Identifier: MIT */
/*
 * One error shape for every daemon module below the HTTP layer: a stable API error code (the
 * `code` of the REST error body, docs/api.md) and a human message. Modules return 0/-errno and,
 * when given a struct derror, fill it in; http.c turns it into {"code","message","details"}
 * with derror_http_status(). Header-only so every module can use it without a link edge.
 */
#ifndef VIREO_DAEMON_DERROR_H
#define VIREO_DAEMON_DERROR_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct derror {
	const char *code; /* static string: "invalid_state", "not_found", ... NULL = no error */
	char message[256];
};

static inline void derror_clear(struct derror *e)
{
	if (e) {
		e->code = NULL;
		e->message[0] = '\0';
	}
}

/* Sets code and message (printf-style). A NULL e is allowed (caller does not want details). */
__attribute__((format(printf, 3, 4))) static inline void
derror_set(struct derror *e, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

/* The HTTP status for an error code of the design's table; 500 for unknown codes. */
static inline int derror_http_status(const char *code)
{
	static const struct {
		const char *code;
		int status;
	} map[] = {
		{ "bad_request", 400 },	    { "invalid_json", 400 },
		{ "unknown_field", 400 },   { "invalid_value", 400 },
		{ "unauthenticated", 401 }, { "forbidden", 403 },
		{ "not_found", 404 },	    { "method_not_allowed", 405 },
		{ "invalid_state", 409 },   { "name_taken", 409 },
		{ "conflict", 409 },	    { "generation_mismatch", 412 },
		{ "body_too_large", 413 },  { "unsupported_media_type", 415 },
		{ "unprocessable", 422 },   { "internal", 500 },
		{ "shutting_down", 503 },
	};

	for (size_t i = 0; code && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].code, code))
			return map[i].status;
	return 500;
}

#endif
