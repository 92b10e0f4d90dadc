// SPDX-License-Identifier: MIT
/* `vireo vm ...`: VMs through vireod's API (docs/api.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

static const char vm_usage[] =
	"Usage: vireo vm COMMAND [ARGS] [--json] [--endpoint E] [--token T]\n"
	"\n"
	"Manage the VMs of a vireod host (see docs/api.md).\n"
	"\n"
	"Commands:\n"
	"  list [--state S] [--tag T] [--name GLOB] [--limit N]\n"
	"                           the VMs, optionally filtered\n"
	"  show NAME                one VM's definition and state\n"
	"  create NAME DEFINITION   define a VM (it stays stopped until `vm start`)\n"
	"  create NAME --from-json FILE\n"
	"                           define a VM from a JSON definition (\"-\": stdin)\n"
	"  edit NAME DEFINITION     change a stopped VM (description, tags, autostart and\n"
	"                           restart policy can change in any state)\n"
	"  start|stop|shutdown|reboot|reset|pause|resume NAME... | --tag T\n"
	"                           act on VMs and wait for the tasks; shutdown presses\n"
	"                           the power button (--timeout S, --force: then stop);\n"
	"                           stop kills the VMM at once. --no-wait prints the task\n"
	"                           ids instead of waiting\n"
	"  snapshot NAME [--path DIR]\n"
	"                           save the running VM (it keeps running)\n"
	"  migrate NAME --uri tcp:HOST:PORT\n"
	"                           live-migrate the VM to a waiting `vireo run --incoming`\n"
	"  console NAME             the serial console on this terminal (Ctrl-] quits)\n"
	"  history NAME             the VM's state changes with their reasons\n"
	"  stats NAME               CPU, memory, disk and network counters\n"
	"  delete NAME...           delete stopped VMs' definitions (disks stay)\n"
	"\n"
	"DEFINITION options:\n"
	"  --kernel FILE [--initrd FILE] [--cmdline S] | --payload FILE\n"
	"  --cpus N  --memory SIZE (256M, 2G; bare number = MiB)\n"
	"  --disk PATH[,format=qcow2|raw][,readonly][,serial=ID]   (repeatable)\n"
	"  --net user[,hostfwd=RULE]...[,mac=MAC] | --net tap=NAME[,mac=MAC]   (repeatable)\n"
	"  --rng  --balloon  --vsock-cid N  --tag T (repeatable)  --description S\n"
	"  --autostart | --no-autostart  --restart no|on-failure|always\n"
	"\n"
	"Exit status: 0 done, 1 a task failed, 2 bad arguments or refused input, 3 no such\n"
	"VM, 4 wrong state or conflict, 5 not allowed (token), 6 cannot reach vireod.\n";

static int vm_path(char *out, size_t len, const char *name, const char *suffix)
{
	char esc[256];

	if (client_escape(name, esc, sizeof(esc)))
		return client_vm_usage("name too long: %s", name);
	snprintf(out, len, "/vms/%s%s", esc, suffix);
	return 0;
}

/* 256M, 2G, 1024K, or bare MiB. */
static int parse_mib(const char *s, int64_t *mib)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v <= 0)
		return -EINVAL;
	switch (*end) {
	case 0:
	case 'M':
	case 'm':
		break;
	case 'G':
	case 'g':
		v *= 1024;
		break;
	case 'T':
	case 't':
		v *= 1024 * 1024;
		break;
	case 'K':
	case 'k':
		v /= 1024;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B"))
		return -EINVAL;
	*mib = (int64_t)v;
	return *mib > 0 ? 0 : -EINVAL;
}

static json_object *sub_object(json_object *o, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_object))
		return v;
	v = json_object_new_object();
	json_object_object_add(o, key, v);
	return v;
}

static json_object *sub_array(json_object *o, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_array))
		return v;
	v = json_object_new_array();
	json_object_object_add(o, key, v);
	return v;
}

/* The daemon takes absolute paths only (it does not share our working directory): a relative
 * path on the command line is made absolute here, with symlinks left as they are. */
static json_object *abs_path(const char *p)
{
	char cwd[4096], buf[8192];

	if (p[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return json_object_new_string(p);
	snprintf(buf, sizeof(buf), "%s/%s", cwd, p[0] == '.' && p[1] == '/' ? p + 2 : p);
	return json_object_new_string(buf);
}

/* PATH[,format=F][,readonly][,serial=ID] as in `vireo run --disk`. */
static int parse_disk(const char *arg, json_object **out)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	json_object *d = json_object_new_object();
	int rc = 0;

	tok = strtok_r(copy, ",", &save);
	if (!tok) {
		rc = client_vm_usage("--disk %s: no path", arg);
		goto out;
	}
	json_object_object_add(d, "path", abs_path(tok));
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (!strncmp(tok, "format=", 7))
			json_object_object_add(d, "format", json_object_new_string(tok + 7));
		else if (!strcmp(tok, "readonly"))
			json_object_object_add(d, "readonly", json_object_new_boolean(1));
		else if (!strncmp(tok, "serial=", 7))
			json_object_object_add(d, "serial", json_object_new_string(tok + 7));
		else {
			rc = client_vm_usage("--disk: unknown option '%s'", tok);
			goto out;
		}
	}
out:
	free(copy);
	if (rc)
		json_object_put(d);
	else
		*out = d;
	return rc;
}

/* user[,hostfwd=RULE]...[,mac=MAC] or tap=NAME[,mac=MAC]. */
static int parse_net(const char *arg, json_object **out)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	json_object *n = json_object_new_object();
	int rc = 0;

	tok = strtok_r(copy, ",", &save);
	if (tok && !strcmp(tok, "user")) {
		json_object_object_add(n, "type", json_object_new_string("user"));
	} else if (tok && !strncmp(tok, "tap=", 4)) {
		json_object_object_add(n, "type", json_object_new_string("tap"));
		json_object_object_add(n, "tap", json_object_new_string(tok + 4));
	} else {
		rc = client_vm_usage("--net %s: expected user[,...] or tap=NAME[,...]", arg);
		goto out;
	}
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (!strncmp(tok, "hostfwd=", 8))
			json_object_array_add(sub_array(n, "hostfwd"),
					      json_object_new_string(tok + 8));
		else if (!strncmp(tok, "mac=", 4))
			json_object_object_add(n, "mac", json_object_new_string(tok + 4));
		else {
			rc = client_vm_usage("--net: unknown option '%s'", tok);
			goto out;
		}
	}
out:
	free(copy);
	if (rc)
		json_object_put(n);
	else
		*out = n;
	return rc;
}

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_PAYLOAD,
	OPT_CPUS,
	OPT_MEMORY,
	OPT_DISK,
	OPT_NET,
	OPT_RNG,
	OPT_BALLOON,
	OPT_VSOCK,
	OPT_TAG,
	OPT_DESC,
	OPT_AUTOSTART,
	OPT_NO_AUTOSTART,
	OPT_RESTART,
	OPT_FROM_JSON,
};

static const struct option def_options[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "payload", required_argument, NULL, OPT_PAYLOAD },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "net", required_argument, NULL, OPT_NET },
	{ "rng", no_argument, NULL, OPT_RNG },
	{ "balloon", no_argument, NULL, OPT_BALLOON },
	{ "vsock-cid", required_argument, NULL, OPT_VSOCK },
	{ "tag", required_argument, NULL, OPT_TAG },
	{ "description", required_argument, NULL, OPT_DESC },
	{ "autostart", no_argument, NULL, OPT_AUTOSTART },
	{ "no-autostart", no_argument, NULL, OPT_NO_AUTOSTART },
	{ "restart", required_argument, NULL, OPT_RESTART },
	{ "from-json", required_argument, NULL, OPT_FROM_JSON },
	{ NULL, 0, NULL, 0 },
};

static int parse_int_arg(const char *opt, const char *s, int64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return client_vm_usage("%s: not a number", opt);
	return 0;
}

static json_object *read_json_file(const char *path)
{
	json_object *o;

	if (strcmp(path, "-"))
		return json_object_from_file(path);
	{
		char buf[65536];
		size_t n = fread(buf, 1, sizeof(buf) - 1, stdin);

		buf[n] = 0;
		o = json_tokener_parse(buf);
	}
	return o;
}

/* One definition option into def (a full definition or a merge patch). */
static int apply_def_option(json_object *def, int opt, const char *arg)
{
	json_object *o = NULL;
	int64_t v;
	int rc;

	switch (opt) {
	case OPT_KERNEL:
	case OPT_INITRD:
	case OPT_CMDLINE:
	case OPT_PAYLOAD: {
		static const char *const keys[] = { "kernel", "initrd", "cmdline", "payload" };

		json_object_object_add(sub_object(def, "boot"), keys[opt - OPT_KERNEL],
				       opt == OPT_CMDLINE ? json_object_new_string(arg)
							  : abs_path(arg));
		return 0;
	}
	case OPT_CPUS:
		if ((rc = parse_int_arg("--cpus", arg, &v)))
			return rc;
		json_object_object_add(def, "vcpus", json_object_new_int64(v));
		return 0;
	case OPT_MEMORY:
		if (parse_mib(arg, &v))
			return client_vm_usage("--memory %s: expected a size such as 256M or 2G",
					       arg);
		json_object_object_add(def, "memory_mib", json_object_new_int64(v));
		return 0;
	case OPT_DISK:
		if ((rc = parse_disk(arg, &o)))
			return rc;
		json_object_array_add(sub_array(def, "disks"), o);
		return 0;
	case OPT_NET:
		if ((rc = parse_net(arg, &o)))
			return rc;
		json_object_array_add(sub_array(def, "nics"), o);
		return 0;
	case OPT_RNG:
	case OPT_BALLOON:
		json_object_object_add(sub_object(def, "devices"),
				       opt == OPT_RNG ? "rng" : "balloon",
				       json_object_new_boolean(1));
		return 0;
	case OPT_VSOCK:
		if ((rc = parse_int_arg("--vsock-cid", arg, &v)))
			return rc;
		json_object_object_add(sub_object(def, "devices"), "vsock_cid",
				       json_object_new_int64(v));
		return 0;
	case OPT_TAG:
		json_object_array_add(sub_array(def, "tags"), json_object_new_string(arg));
		return 0;
	case OPT_DESC:
		json_object_object_add(def, "description", json_object_new_string(arg));
		return 0;
	case OPT_AUTOSTART:
	case OPT_NO_AUTOSTART:
		json_object_object_add(def, "autostart",
				       json_object_new_boolean(opt == OPT_AUTOSTART));
		return 0;
	case OPT_RESTART:
		json_object_object_add(def, "restart_policy", json_object_new_string(arg));
		return 0;
	default:
		return CLIENT_EXIT_USAGE;
	}
}

/* Builds a definition (or merge patch) from the options after NAME. */
static int build_def(int argc, char **argv, json_object **out)
{
	json_object *def = json_object_new_object();
	const char *from_json = NULL;
	int opt, rc;

	optind = 1;
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "", def_options, NULL)) != -1) {
		if (opt == '?') {
			json_object_put(def);
			return client_vm_usage("%s", "unknown option");
		}
		if (opt == OPT_FROM_JSON) {
			from_json = optarg;
			continue;
		}
		rc = apply_def_option(def, opt, optarg);
		if (rc) {
			json_object_put(def);
			return rc;
		}
	}
	if (optind != argc) {
		json_object_put(def);
		return client_vm_usage("unexpected argument '%s'", argv[optind]);
	}
	if (from_json) {
		json_object *file = read_json_file(from_json);

		if (!file || !json_object_is_type(file, json_type_object)) {
			json_object_put(file);
			json_object_put(def);
			return client_vm_usage("--from-json %s: not a JSON object", from_json);
		}
		/* Options given beside the file override its members. */
		json_object_object_foreach(def, k, v)
		{
			json_object_object_add(file, k, json_object_get(v));
		}
		json_object_put(def);
		def = file;
	}
	*out = def;
	return 0;
}

static int vm_create(struct client *c, int argc, char **argv, bool patch)
{
	json_object *def = NULL, *vm = NULL;
	char path[320];
	int rc;

	if (argc < 2 || argv[1][0] == '-')
		return client_vm_usage("%s needs a VM name", patch ? "edit" : "create");
	rc = build_def(argc - 1, argv + 1, &def);
	if (rc)
		return rc;
	if (patch) {
		if ((rc = vm_path(path, sizeof(path), argv[1], "")))
			goto out;
	} else {
		json_object_object_add(def, "name", json_object_new_string(argv[1]));
		snprintf(path, sizeof(path), "/vms");
	}
	rc = client_call(c, patch ? "PATCH" : "POST", path, def, c->json ? NULL : &vm);
	if (!rc && !c->json && !c->quiet)
		printf("%s %s (%s)\n", patch ? "changed" : "defined", client_str(vm, "name"),
		       client_str(vm, "id"));
out:
	json_object_put(vm);
	json_object_put(def);
	return rc;
}

static void print_tags(json_object *vm)
{
	json_object *tags;
	size_t n;

	if (!json_object_object_get_ex(vm, "tags", &tags) ||
	    !json_object_is_type(tags, json_type_array) || !(n = json_object_array_length(tags))) {
		fputs("-", stdout);
		return;
	}
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? "," : "",
		       json_object_get_string(json_object_array_get_idx(tags, i)));
}

static int64_t int_of(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	return json_object_get_int64(v);
}

static int add_query(char *q, size_t len, const char *key, const char *val)
{
	char esc[512];
	size_t n = strlen(q);

	if (client_escape(val, esc, sizeof(esc)))
		return client_vm_usage("%s: value too long", key);
	snprintf(q + n, len - n, "%c%s=%s", n ? '&' : '?', key, esc);
	return 0;
}

static int vm_list(struct client *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "tag", required_argument, NULL, 't' },
		{ "name", required_argument, NULL, 'n' },
		{ "limit", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	char query[1024] = "", path[1200];
	json_object *all = json_object_new_array();
	int64_t limit = -1, offset = 0, total;
	int opt, rc = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == '?') {
			rc = CLIENT_EXIT_USAGE;
			goto out;
		}
		if (opt == 'l') {
			if ((rc = parse_int_arg("--limit", optarg, &limit)))
				goto out;
			continue;
		}
		if ((rc = add_query(query, sizeof(query),
				    opt == 's'	 ? "state"
				    : opt == 't' ? "tag"
						 : "name",
				    optarg)))
			goto out;
	}
	/* Pages of up to 1,000 until the total (or --limit) is reached. */
	do {
		json_object *page = NULL, *items;
		int64_t want = limit >= 0 && limit - offset < 1000 ? limit - offset : 1000;

		snprintf(path, sizeof(path), "/vms%s%climit=%" PRId64 "&offset=%" PRId64, query,
			 query[0] ? '&' : '?', want, offset);
		if ((rc = client_call(c, "GET", path, NULL, &page)))
			goto out;
		total = int_of(page, "total");
		if (!json_object_object_get_ex(page, "items", &items) ||
		    !json_object_array_length(items)) {
			json_object_put(page);
			break;
		}
		for (size_t i = 0; i < json_object_array_length(items); i++)
			json_object_array_add(all,
					      json_object_get(json_object_array_get_idx(items, i)));
		offset += (int64_t)json_object_array_length(items);
		json_object_put(page);
	} while (offset < total && (limit < 0 || offset < limit));

	if (c->json) {
		puts(json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY |
								 JSON_C_TO_STRING_SPACED));
		goto out;
	}
	printf("%-24s %-10s %5s %9s  %-36s  %s\n", "NAME", "STATE", "CPUS", "MEMORY", "ID", "TAGS");
	for (size_t i = 0; i < json_object_array_length(all); i++) {
		json_object *vm = json_object_array_get_idx(all, i);

		printf("%-24s %-10s %5" PRId64 " %6" PRId64 "MiB  %-36s  ", client_str(vm, "name"),
		       client_str(vm, "state"), int_of(vm, "vcpus"), int_of(vm, "memory_mib"),
		       client_str(vm, "id"));
		print_tags(vm);
		putchar('\n');
	}
out:
	json_object_put(all);
	return rc;
}

static void print_member(const char *label, json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return;
	if (json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array)) {
		if (json_object_is_type(v, json_type_array) && !json_object_array_length(v))
			return;
		printf("%-16s %s\n", label,
		       json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		printf("%-16s %s\n", label, json_object_get_string(v));
	}
}

static int vm_show(struct client *c, int argc, char **argv)
{
	static const char *const keys[] = { "name",	      "id",	     "state",
					    "state_reason",   "vcpus",	     "memory_mib",
					    "boot",	      "disks",	     "nics",
					    "devices",	      "tags",	     "autostart",
					    "restart_policy", "description", "pid",
					    "created_at",     "updated_at",  "generation" };
	json_object *vm = NULL;
	char path[320];
	int rc;

	if (argc != 2)
		return client_vm_usage("%s", "show needs exactly one VM name");
	if ((rc = vm_path(path, sizeof(path), argv[1], "")))
		return rc;
	rc = client_call(c, "GET", path, NULL, c->json ? NULL : &vm);
	if (rc || c->json)
		return rc;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		print_member(keys[i], vm, keys[i]);
	json_object_put(vm);
	return 0;
}

static int vm_simple_get(struct client *c, int argc, char **argv, const char *suffix)
{
	json_object *o = NULL, *items;
	char path[320];
	int rc;

	if (argc != 2)
		return client_vm_usage("%s needs exactly one VM name", argv[0]);
	if ((rc = vm_path(path, sizeof(path), argv[1], suffix)))
		return rc;
	rc = client_call(c, "GET", path, NULL, c->json ? NULL : &o);
	if (rc || c->json)
		return rc;
	if (json_object_object_get_ex(o, "items", &items)) {
		for (size_t i = 0; i < json_object_array_length(items); i++) {
			json_object *e = json_object_array_get_idx(items, i);

			printf("%s  %-9s -> %-9s %s\n", client_str(e, "at"), client_str(e, "from"),
			       client_str(e, "to"),
			       client_str(e, "reason") ? client_str(e, "reason") : "");
		}
	} else {
		json_object_object_foreach(o, k, v)
		{
			print_member(k, o, k);
			(void)v;
		}
	}
	json_object_put(o);
	return 0;
}

static int vm_delete(struct client *c, int argc, char **argv)
{
	char path[320];
	int rc, worst = 0;

	if (argc < 2)
		return client_vm_usage("%s", "delete needs a VM name");
	for (int i = 1; i < argc; i++) {
		if ((rc = vm_path(path, sizeof(path), argv[i], "")))
			return rc;
		rc = client_call(c, "DELETE", path, NULL, NULL);
		if (!rc && !c->quiet && !c->json)
			printf("deleted %s\n", argv[i]);
		if (rc > worst)
			worst = rc;
	}
	return worst;
}

int cmd_vm_main(struct client *c, int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(vm_usage, cmd ? stdout : stderr);
		return cmd ? 0 : CLIENT_EXIT_USAGE;
	}
	argc--;
	argv++;
	if (!strcmp(cmd, "list"))
		return vm_list(c, argc, argv);
	if (!strcmp(cmd, "show"))
		return vm_show(c, argc, argv);
	if (!strcmp(cmd, "create"))
		return vm_create(c, argc, argv, false);
	if (!strcmp(cmd, "edit"))
		return vm_create(c, argc, argv, true);
	if (!strcmp(cmd, "delete"))
		return vm_delete(c, argc, argv);
	if (!strcmp(cmd, "history"))
		return vm_simple_get(c, argc, argv, "/history");
	if (!strcmp(cmd, "stats"))
		return vm_simple_get(c, argc, argv, "/stats");
	if (!strcmp(cmd, "console")) {
		if (argc != 2)
			return client_vm_usage("%s", "console needs exactly one VM name");
		return wsconsole_run(c, argv[1]);
	}
	return cmd_vm_action(c, argc, argv);
}
