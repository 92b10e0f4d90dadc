// SPDX-License-Identifier: MIT
/* `vireo vm start|stop|...`: VM actions become tasks on vireod; the command waits for them. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

static const char *const actions[] = { "start", "stop",	  "shutdown", "reboot",	 "reset",
				       "pause", "resume", "snapshot", "migrate", NULL };

struct action_opts {
	bool no_wait, force;
	const char *tag, *path, *uri;
	long timeout_s, max_downtime_ms;
};

static int parse_action_opts(int argc, char **argv, struct action_opts *o)
{
	static const struct option opts[] = {
		{ "no-wait", no_argument, NULL, 'W' },
		{ "force", no_argument, NULL, 'f' },
		{ "tag", required_argument, NULL, 't' },
		{ "path", required_argument, NULL, 'p' },
		{ "uri", required_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "max-downtime-ms", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	memset(o, 0, sizeof(*o));
	o->timeout_s = -1;
	o->max_downtime_ms = -1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;

		switch (opt) {
		case 'W':
			o->no_wait = true;
			break;
		case 'f':
			o->force = true;
			break;
		case 't':
			o->tag = optarg;
			break;
		case 'p':
			o->path = optarg;
			break;
		case 'u':
			o->uri = optarg;
			break;
		case 'T':
		case 'D':
			errno = 0;
			*(opt == 'T' ? &o->timeout_s : &o->max_downtime_ms) =
				strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || strtol(optarg, NULL, 10) < 0)
				return client_vm_usage("%s: expected a number", optarg);
			break;
		default:
			return CLIENT_EXIT_USAGE;
		}
	}
	return 0;
}

/* The action's parameters as the API takes them (docs/api.md), or NULL for none. */
static json_object *action_body(const char *action, const struct action_opts *o)
{
	json_object *b = json_object_new_object();

	if (!strcmp(action, "shutdown")) {
		if (o->timeout_s >= 0)
			json_object_object_add(b, "timeout_s", json_object_new_int64(o->timeout_s));
		if (o->force)
			json_object_object_add(b, "force", json_object_new_boolean(1));
	} else if (!strcmp(action, "snapshot") && o->path) {
		json_object_object_add(b, "path", json_object_new_string(o->path));
	} else if (!strcmp(action, "migrate")) {
		json_object_object_add(b, "uri", json_object_new_string(o->uri));
		if (o->max_downtime_ms >= 0)
			json_object_object_add(b, "max_downtime_ms",
					       json_object_new_int64(o->max_downtime_ms));
	}
	if (!json_object_object_length(b)) {
		json_object_put(b);
		return NULL;
	}
	return b;
}

static int check_action(const char *action, const struct action_opts *o, int nnames)
{
	bool known = false;

	for (int i = 0; actions[i]; i++)
		known = known || !strcmp(actions[i], action);
	if (!known)
		return client_vm_usage("unknown command '%s'", action);
	if (!nnames && !o->tag)
		return client_vm_usage("%s needs VM names or --tag", action);
	if (nnames && o->tag)
		return client_vm_usage("%s takes VM names or --tag, not both", action);
	if (!strcmp(action, "migrate") && (!o->uri || nnames != 1))
		return client_vm_usage("%s needs one VM name and --uri tcp:HOST:PORT", action);
	if ((o->force || o->timeout_s >= 0) && strcmp(action, "shutdown"))
		return client_vm_usage("--force and --timeout are for shutdown, not %s", action);
	if (o->path && strcmp(action, "snapshot"))
		return client_vm_usage("--path is for snapshot, not %s", action);
	if (!strcmp(action, "snapshot") && nnames != 1)
		return client_vm_usage("%s takes one VM name", action);
	return 0;
}

/* Waits for each task in turn; the worst exit code wins. */
static int wait_tasks(struct client *c, json_object *tasks, const char *action, const char *name)
{
	int worst = 0;

	for (size_t i = 0; i < json_object_array_length(tasks); i++) {
		json_object *t = json_object_array_get_idx(tasks, i), *done = NULL, *res;
		const char *id = client_str(t, "id");
		int rc;

		if (!id) {
			/* A bulk request's VM whose action was refused at once. */
			json_object *err = NULL;

			json_object_object_get_ex(t, "error", &err);
			fprintf(stderr, "vireo: %s: %s (%s)\n", client_str(t, "vm_id"),
				err && client_str(err, "message") ? client_str(err, "message")
								  : "refused",
				err && client_str(err, "code") ? client_str(err, "code")
							       : "no code");
			rc = err && client_str(err, "code") &&
					     !strcmp(client_str(err, "code"), "not_found")
				     ? CLIENT_EXIT_NOT_FOUND
				     : CLIENT_EXIT_CONFLICT;
			worst = rc > worst ? rc : worst;
			continue;
		}
		rc = client_wait_task(c, id, &done);
		if (c->json && done)
			puts(json_object_to_json_string_ext(done, JSON_C_TO_STRING_PRETTY |
									  JSON_C_TO_STRING_SPACED));
		else if (!rc && !c->quiet) {
			printf("%s: %s done", name ? name : client_str(done, "vm_id"), action);
			if (json_object_object_get_ex(done, "result", &res) && res &&
			    json_object_is_type(res, json_type_object) && client_str(res, "path"))
				printf(" (%s)", client_str(res, "path"));
			putchar('\n');
		}
		json_object_put(done);
		if (rc > worst)
			worst = rc;
	}
	return worst;
}

int cmd_vm_action(struct client *c, int argc, char **argv)
{
	const char *action = argv[0];
	struct action_opts o;
	json_object *body = NULL, *reply = NULL, *tasks = NULL;
	char path[512], esc[256];
	int rc, nnames;

	if ((rc = parse_action_opts(argc, argv, &o)))
		return rc;
	nnames = argc - optind;
	if ((rc = check_action(action, &o, nnames)))
		return rc;
	body = action_body(action, &o);
	if (nnames == 1) {
		if (client_escape(argv[optind], esc, sizeof(esc)))
			return client_vm_usage("name too long: %s", argv[optind]);
		snprintf(path, sizeof(path), "/vms/%s/actions/%s", esc, action);
	} else {
		/* Several VMs or a tag: one bulk request, one task per VM. */
		json_object *sel = json_object_new_object();

		if (o.tag) {
			json_object_object_add(sel, "tag", json_object_new_string(o.tag));
		} else {
			json_object *ids = json_object_new_array();

			for (int i = optind; i < argc; i++)
				json_object_array_add(ids, json_object_new_string(argv[i]));
			json_object_object_add(sel, "ids", ids);
		}
		if (body)
			json_object_object_add(sel, "args", body);
		body = sel;
		snprintf(path, sizeof(path), "/vms/actions/%s", action);
	}
	rc = client_call(c, "POST", path, body, &reply);
	json_object_put(body);
	if (rc)
		return rc;
	if (nnames == 1) {
		tasks = json_object_new_array();
		json_object_array_add(tasks, json_object_get(reply));
	} else if (!json_object_object_get_ex(reply, "tasks", &tasks)) {
		fprintf(stderr, "vireo: the reply has no task list\n");
		json_object_put(reply);
		return CLIENT_EXIT_FAILED;
	} else {
		json_object_get(tasks);
	}
	if (o.no_wait) {
		for (size_t i = 0; i < json_object_array_length(tasks); i++) {
			const char *id = client_str(json_object_array_get_idx(tasks, i), "id");

			if (id)
				puts(id);
			else
				rc = CLIENT_EXIT_CONFLICT;
		}
	} else {
		rc = wait_tasks(c, tasks, action, nnames == 1 ? argv[optind] : NULL);
	}
	json_object_put(tasks);
	json_object_put(reply);
	return rc;
}
