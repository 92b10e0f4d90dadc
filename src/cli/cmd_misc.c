// SPDX-License-Identifier: MIT
/* `vireo task|token|host ...`: the rest of vireod's API from the command line. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client.h"

static const char task_usage[] =
	"Usage: vireo task list [--state S] [--vm NAME] | show ID | wait ID | cancel ID\n"
	"\n"
	"Tasks are vireod's long operations (VM actions, snapshots, migrations).\n"
	"  list     recent tasks, newest first\n"
	"  show     one task with its log lines, result and error\n"
	"  wait     wait for a task to end (exit status 0 only if it succeeded)\n"
	"  cancel   cancel a queued or running task\n"
	"Common options: --json, --endpoint E, --token T (see vireo vm --help).\n";

static const char token_usage[] =
	"Usage: vireo token create --name NAME --role admin|operator|viewer\n"
	"       vireo token list\n"
	"       vireo token revoke ID\n"
	"\n"
	"API tokens for vireod's TCP endpoint (Authorization: Bearer TOKEN). The secret is\n"
	"printed once, at creation; vireod keeps only its hash. Needs the admin role.\n";

static const char host_usage[] = "Usage: vireo host show [--json]\n"
				 "\n"
				 "The host: CPUs, memory, KVM kind, versions and VMs by state.\n";

/* A member as text, "-" when absent (for tables). */
static const char *str_of(json_object *o, const char *key)
{
	const char *s = client_str(o, key);

	return s ? s : "-";
}

static int misc_usage(const char *text, const char *cmd)
{
	if (cmd && (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help"))) {
		fputs(text, stdout);
		return 0;
	}
	if (cmd)
		fprintf(stderr, "vireo: unknown command '%s'\n", cmd);
	fputs(text, stderr);
	return CLIENT_EXIT_USAGE;
}

static int id_path(char *out, size_t len, const char *prefix, const char *id)
{
	char esc[200];

	if (client_escape(id, esc, sizeof(esc))) {
		fprintf(stderr, "vireo: id too long\n");
		return CLIENT_EXIT_USAGE;
	}
	snprintf(out, len, "%s/%s", prefix, esc);
	return 0;
}

static int print_items(struct client *c, const char *path, const char *head,
		       void (*row)(json_object *))
{
	json_object *page = NULL, *items;
	int rc = client_call(c, "GET", path, NULL, c->json ? NULL : &page);

	if (rc || c->json)
		return rc;
	puts(head);
	if (json_object_object_get_ex(page, "items", &items))
		for (size_t i = 0; i < json_object_array_length(items); i++)
			row(json_object_array_get_idx(items, i));
	json_object_put(page);
	return 0;
}

static void task_row(json_object *t)
{
	json_object *p;

	printf("%-36s %-10s %-10s %4s  %-24s %s\n", str_of(t, "id"), str_of(t, "kind"),
	       str_of(t, "state"),
	       json_object_object_get_ex(t, "progress", &p) && p ? json_object_get_string(p) : "-",
	       str_of(t, "vm_id"), str_of(t, "created_at"));
}

static int task_show(struct client *c, const char *id)
{
	json_object *t = NULL, *log;
	char path[256];
	int rc = id_path(path, sizeof(path), "/tasks", id);

	if (rc || (rc = client_call(c, "GET", path, NULL, c->json ? NULL : &t)) || c->json)
		return rc;
	static const char *const keys[] = { "id",	  "kind",	"vm_id", "state",
					    "progress",	  "result",	"error", "created_at",
					    "started_at", "finished_at" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_object *v;

		if (json_object_object_get_ex(t, keys[i], &v) && v)
			printf("%-12s %s\n", keys[i],
			       json_object_to_json_string_ext(
				       v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	if (json_object_object_get_ex(t, "log", &log))
		for (size_t i = 0; i < json_object_array_length(log); i++) {
			json_object *e = json_object_array_get_idx(log, i);

			printf("  %s  %s\n", str_of(e, "at"), str_of(e, "line"));
		}
	json_object_put(t);
	return 0;
}

int cmd_task_main(struct client *c, int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	char path[512];
	int rc;

	if (cmd && !strcmp(cmd, "list")) {
		static const struct option opts[] = { { "state", required_argument, NULL, 's' },
						      { "vm", required_argument, NULL, 'v' },
						      { NULL, 0, NULL, 0 } };
		char esc[256];
		int opt;

		snprintf(path, sizeof(path), "/tasks?limit=100");
		optind = 1;
		while ((opt = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
			size_t n = strlen(path);

			if (opt == '?' || client_escape(optarg, esc, sizeof(esc)))
				return misc_usage(task_usage, NULL);
			snprintf(path + n, sizeof(path) - n, "&%s=%s", opt == 's' ? "state" : "vm",
				 esc);
		}
		return print_items(c, path,
				   "ID                                   KIND       STATE        %"
				   "  VM                       CREATED",
				   task_row);
	}
	if (cmd && argc == 3 && !strcmp(cmd, "show"))
		return task_show(c, argv[2]);
	if (cmd && argc == 3 && !strcmp(cmd, "wait"))
		return client_wait_task(c, argv[2], NULL);
	if (cmd && argc == 3 && !strcmp(cmd, "cancel")) {
		if ((rc = id_path(path, sizeof(path), "/tasks", argv[2])))
			return rc;
		rc = client_call(c, "DELETE", path, NULL, NULL);
		if (!rc && !c->quiet && !c->json)
			printf("cancel requested for %s\n", argv[2]);
		return rc;
	}
	return misc_usage(task_usage, cmd);
}

static void token_row(json_object *t)
{
	printf("%-20s %-20s %-9s %-25s %s\n", str_of(t, "id"), str_of(t, "name"), str_of(t, "role"),
	       str_of(t, "created_at"), str_of(t, "revoked_at"));
}

static int token_create(struct client *c, int argc, char **argv)
{
	static const struct option opts[] = { { "name", required_argument, NULL, 'n' },
					      { "role", required_argument, NULL, 'r' },
					      { NULL, 0, NULL, 0 } };
	json_object *body = json_object_new_object(), *tok = NULL;
	const char *name = NULL, *role = NULL;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'n')
			name = optarg;
		else if (opt == 'r')
			role = optarg;
		else
			name = role = NULL;
	}
	if (!name || !role || optind != argc) {
		json_object_put(body);
		return misc_usage(token_usage, NULL);
	}
	json_object_object_add(body, "name", json_object_new_string(name));
	json_object_object_add(body, "role", json_object_new_string(role));
	rc = client_call(c, "POST", "/tokens", body, c->json ? NULL : &tok);
	json_object_put(body);
	if (!rc && !c->json) {
		printf("%s\n", str_of(tok, "secret"));
		if (!c->quiet)
			fprintf(stderr,
				"token %s (%s, role %s): the line above is shown only once\n",
				str_of(tok, "id"), str_of(tok, "name"), str_of(tok, "role"));
	}
	json_object_put(tok);
	return rc;
}

int cmd_token_main(struct client *c, int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	char path[256];
	int rc;

	if (cmd && !strcmp(cmd, "create"))
		return token_create(c, argc - 1, argv + 1);
	if (cmd && argc == 2 && !strcmp(cmd, "list"))
		return print_items(c, "/tokens",
				   "ID                   NAME                 ROLE      CREATED    "
				   "               REVOKED",
				   token_row);
	if (cmd && argc == 3 && !strcmp(cmd, "revoke")) {
		if ((rc = id_path(path, sizeof(path), "/tokens", argv[2])))
			return rc;
		rc = client_call(c, "DELETE", path, NULL, NULL);
		if (!rc && !c->quiet && !c->json)
			printf("revoked %s\n", argv[2]);
		return rc;
	}
	return misc_usage(token_usage, cmd);
}

static void print_flat(const char *prefix, json_object *o)
{
	json_object_object_foreach(o, k, v)
	{
		char key[128];

		snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", k);
		if (v && json_object_is_type(v, json_type_object))
			print_flat(key, v);
		else
			printf("%-32s %s\n", key, v ? json_object_get_string(v) : "-");
	}
}

int cmd_host_main(struct client *c, int argc, char **argv)
{
	json_object *h = NULL;
	int rc;

	if (argc != 2 || strcmp(argv[1], "show"))
		return misc_usage(host_usage, argc > 1 ? argv[1] : NULL);
	rc = client_call(c, "GET", "/host", NULL, c->json ? NULL : &h);
	if (rc || c->json)
		return rc;
	print_flat("", h);
	json_object_put(h);
	return 0;
}
