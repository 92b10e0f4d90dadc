/* SPDX-License-Identifier: MIT */
/* The client side of vireod's REST API (docs/api.md), used by `vireo vm|task|token|host`.
 * One connection setting (endpoint, token, TLS trust) is found from the command line, the
 * environment (VIREO_ENDPOINT, VIREO_TOKEN, VIREO_CACERT) or ~/.config/vireo/client.conf, in
 * that order. Requests go through libcurl: a unix socket endpoint ("unix:PATH") or
 * http(s)://HOST:PORT. */
#ifndef VIREO_CLI_CLIENT_H
#define VIREO_CLI_CLIENT_H

#include <json-c/json.h>
#include <stdbool.h>

/* Exit statuses of the API commands, documented in `vireo vm --help`. */
enum client_exit {
	CLIENT_EXIT_OK = 0,
	CLIENT_EXIT_FAILED = 1, /* the task failed, or the server said 500 */
	CLIENT_EXIT_USAGE = 2, /* bad command line, or the server refused the input (400, 422) */
	CLIENT_EXIT_NOT_FOUND = 3,
	CLIENT_EXIT_CONFLICT = 4, /* wrong state, name taken, generation mismatch (409, 412) */
	CLIENT_EXIT_AUTH = 5, /* 401, 403 */
	CLIENT_EXIT_CONNECT = 6, /* no daemon at the endpoint, TLS failure */
};

struct client {
	char endpoint[512]; /* "unix:/path" or "https://host:port" */
	char token[256];
	char cacert[512];
	bool insecure; /* do not verify the server certificate */
	bool json; /* print the API's JSON instead of tables */
	bool quiet;
	void *curl; /* CURL *, reused across requests */
};

struct client_reply {
	long status; /* HTTP status, 0 when no reply came */
	json_object *body; /* parsed body, or NULL (owned by the reply) */
};

/* Takes the global options (--endpoint, --token, --cacert, --insecure, --json, -q) off the
 * front of argv and fills in the rest from the environment and the config file. Returns 0 or
 * CLIENT_EXIT_USAGE after printing why. */
int client_init(struct client *c, int *argc, char ***argv);
void client_close(struct client *c);

/* One request. path starts with "/" and is below /api/v1. body may be NULL. Returns 0 when a
 * reply came (any status), or a client_exit code after printing why there was none. */
int client_request(struct client *c, const char *method, const char *path, json_object *body,
		   struct client_reply *r);
void client_reply_free(struct client_reply *r);

/* For a reply with status >= 400: prints "vireo: MESSAGE (code)" and returns the exit code
 * for it. */
int client_report_error(const struct client_reply *r);

/* A request whose 2xx body is printed as JSON with --json (or handed back in *out for the
 * caller to format, which then owns it). Returns an exit code. */
int client_call(struct client *c, const char *method, const char *path, json_object *body,
		json_object **out);

/* Waits for a task (GET /tasks/ID until it ends), drawing a progress line on stderr when it
 * is a terminal. Returns CLIENT_EXIT_OK when it succeeded; prints the error otherwise.
 * With result != NULL, *result receives the task's final JSON (caller owns it). */
int client_wait_task(struct client *c, const char *task_id, json_object **result);

/* Percent-encodes s for a path segment or query value into out. Returns -ENAMETOOLONG if it
 * does not fit. */
int client_escape(const char *s, char *out, size_t outlen);

/* A fresh connection to the endpoint (TLS when https) for the websocket console, as a CURL
 * handle made with CURLOPT_CONNECT_ONLY (use curl_easy_send/recv). Returns an exit code. */
int client_connect_raw(struct client *c, void **handle);

/* A member of an API object as text (numbers too), or NULL when absent or null. */
const char *client_str(json_object *o, const char *key);
/* "vireo vm: " + fmt (one %s: arg) + a pointer to --help on stderr; returns CLIENT_EXIT_USAGE. */
int client_vm_usage(const char *fmt, const char *arg);

/* Subcommands. Each takes argv starting at its noun ("vm", "task", ...). */
int cmd_vm_main(struct client *c, int argc, char **argv);
/* vm start|stop|shutdown|reboot|reset|pause|resume|snapshot|migrate: argv[0] is the action. */
int cmd_vm_action(struct client *c, int argc, char **argv);
int cmd_task_main(struct client *c, int argc, char **argv);
int cmd_token_main(struct client *c, int argc, char **argv);
int cmd_host_main(struct client *c, int argc, char **argv);
/* The serial console of a VM over the API's websocket, on this terminal. */
int wsconsole_run(struct client *c, const char *vm);

#endif
