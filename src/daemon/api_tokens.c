// SPDX-License-Identifier: MIT
/* /api/v1/tokens: API tokens, admin only. The secret appears once, in the reply to POST. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "http.h"

static void tokens_list(struct http_req *req, struct http_resp *resp)
{
	json_object *arr = NULL, *out;
	int ret = auth_token_list(&arr);

	(void)req;
	if (ret) {
		http_errno(resp, ret, "cannot list tokens");
		return;
	}
	out = json_object_new_object();
	json_object_object_add(out, "items", arr);
	http_json(resp, 200, out);
}

/* Body {"name": "...", "role": "viewer|operator|admin"}, nothing else. */
static void tokens_create(struct http_req *req, struct http_resp *resp)
{
	const char *name = NULL, *role = NULL;
	json_object *tok = NULL, *id;
	char *secret = NULL;
	enum role r;
	int ret;

	if (!req->body) {
		http_error(resp, 400, "bad_request", NULL, "this request needs a JSON body");
		return;
	}
	json_object_object_foreach(req->body, key, val)
	{
		const char **slot = !strcmp(key, "name")   ? &name
				    : !strcmp(key, "role") ? &role
							   : NULL;

		if (!slot) {
			http_error(resp, 400, "unknown_field", json_object_new_string(key),
				   "unknown field '%s' (name, role)", key);
			return;
		}
		if (!json_object_is_type(val, json_type_string)) {
			http_error(resp, 400, "invalid_value", NULL, "%s must be a string", key);
			return;
		}
		*slot = json_object_get_string(val);
	}
	if (!name || !role) {
		http_error(resp, 400, "invalid_value", NULL, "name and role are required");
		return;
	}
	r = auth_role_parse(role);
	if (r == ROLE_NONE) {
		http_error(resp, 400, "invalid_value", NULL,
			   "role must be viewer, operator or admin, not '%s'", role);
		return;
	}
	ret = auth_token_create(name, r, &secret, &tok);
	if (ret == -EINVAL) {
		http_error(resp, 400, "invalid_value", NULL,
			   "name must match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$");
		return;
	}
	if (ret) {
		http_errno(resp, ret, "cannot create the token");
		return;
	}
	json_object_object_add(tok, "secret", json_object_new_string(secret));
	free(secret);
	if (json_object_object_get_ex(tok, "id", &id))
		snprintf(resp->location, sizeof(resp->location), "/api/v1/tokens/%s",
			 json_object_get_string(id));
	http_json(resp, 201, tok);
}

static void tokens_revoke(struct http_req *req, struct http_resp *resp)
{
	int ret = auth_token_revoke(req->params[0]);

	if (ret == -ENOENT)
		http_error(resp, 404, "not_found", NULL, "no token '%s'", req->params[0]);
	else if (ret == -EALREADY)
		http_error(resp, 409, "invalid_state", NULL, "token %s is already revoked",
			   req->params[0]);
	else if (ret)
		http_errno(resp, ret, "cannot revoke the token");
	else
		http_json(resp, 204, NULL);
}

const struct http_route api_tokens_routes[] = {
	{ "GET", "/tokens", ROLE_ADMIN, tokens_list },
	{ "POST", "/tokens", ROLE_ADMIN, tokens_create },
	{ "DELETE", "/tokens/{id}", ROLE_ADMIN, tokens_revoke },
	{ NULL, NULL, ROLE_NONE, NULL },
};
