// SPDX-License-Identifier: MIT
/* vireod's REST API from the command line: connection settings, requests, errors, tasks. */
#include "client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX (64u << 20) /* a list of 1,000 VMs is well below this */

static void copy_setting(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src);
}

static void default_endpoint(struct client *c)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0)
		copy_setting(c->endpoint, sizeof(c->endpoint), "unix:/run/vireo/vireod.sock");
	else if (rt && *rt)
		snprintf(c->endpoint, sizeof(c->endpoint), "unix:%s/vireo/vireod.sock", rt);
	else
		snprintf(c->endpoint, sizeof(c->endpoint), "unix:/run/user/%u/vireo/vireod.sock",
			 (unsigned)geteuid());
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

/* ~/.config/vireo/client.conf: "key = value" lines (endpoint, token, cacert, insecure), '#'
 * comments. Settings already given on the command line or in the environment win. */
static int read_config(struct client *c, bool have_ep, bool have_tok, bool have_ca)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char path[1024], line[1024];
	int lineno = 0;
	FILE *f;

	if (xdg && *xdg)
		snprintf(path, sizeof(path), "%s/vireo/client.conf", xdg);
	else if (home && *home)
		snprintf(path, sizeof(path), "%s/.config/vireo/client.conf", home);
	else
		return 0;
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *k = trim(line), *eq, *v;

		lineno++;
		if (!*k || *k == '#')
			continue;
		eq = strchr(k, '=');
		if (!eq) {
			fprintf(stderr, "vireo: %s:%d: expected \"key = value\"\n", path, lineno);
			fclose(f);
			return CLIENT_EXIT_USAGE;
		}
		*eq = 0;
		k = trim(k);
		v = trim(eq + 1);
		if (!strcmp(k, "endpoint")) {
			if (!have_ep)
				copy_setting(c->endpoint, sizeof(c->endpoint), v);
		} else if (!strcmp(k, "token")) {
			if (!have_tok)
				copy_setting(c->token, sizeof(c->token), v);
		} else if (!strcmp(k, "cacert")) {
			if (!have_ca)
				copy_setting(c->cacert, sizeof(c->cacert), v);
		} else if (!strcmp(k, "insecure")) {
			c->insecure = c->insecure || !strcmp(v, "true") || !strcmp(v, "1");
		} else {
			fprintf(stderr, "vireo: %s:%d: unknown setting '%s'\n", path, lineno, k);
			fclose(f);
			return CLIENT_EXIT_USAGE;
		}
	}
	fclose(f);
	return 0;
}

/* "--name value" or "--name=value": returns the value and advances *i, or NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n))
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] || *i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int check_endpoint(const char *ep)
{
	if (!strncmp(ep, "unix:", 5) && ep[5] == '/')
		return 0;
	if (!strncmp(ep, "https://", 8) || !strncmp(ep, "http://", 7))
		return 0;
	fprintf(stderr, "vireo: endpoint '%s': expected unix:/PATH or https://HOST:PORT\n", ep);
	return CLIENT_EXIT_USAGE;
}

int client_init(struct client *c, int *argc, char ***argv)
{
	bool have_ep = false, have_tok = false, have_ca = false;
	const char *env;
	int i, rc, out = 1;

	memset(c, 0, sizeof(*c));
	default_endpoint(c);
	if ((env = getenv("VIREO_ENDPOINT")) && *env) {
		copy_setting(c->endpoint, sizeof(c->endpoint), env);
		have_ep = true;
	}
	if ((env = getenv("VIREO_TOKEN")) && *env) {
		copy_setting(c->token, sizeof(c->token), env);
		have_tok = true;
	}
	if ((env = getenv("VIREO_CACERT")) && *env) {
		copy_setting(c->cacert, sizeof(c->cacert), env);
		have_ca = true;
	}
	/* Global options may come anywhere after the noun; everything else stays in order. */
	for (i = 1; i < *argc; i++) {
		const char *v;

		if ((v = opt_value(*argc, *argv, &i, "--endpoint"))) {
			copy_setting(c->endpoint, sizeof(c->endpoint), v);
			have_ep = true;
		} else if ((v = opt_value(*argc, *argv, &i, "--token"))) {
			copy_setting(c->token, sizeof(c->token), v);
			have_tok = true;
		} else if ((v = opt_value(*argc, *argv, &i, "--cacert"))) {
			copy_setting(c->cacert, sizeof(c->cacert), v);
			have_ca = true;
		} else if (!strcmp((*argv)[i], "--insecure")) {
			c->insecure = true;
		} else if (!strcmp((*argv)[i], "--json")) {
			c->json = true;
		} else if (!strcmp((*argv)[i], "-q") || !strcmp((*argv)[i], "--quiet")) {
			c->quiet = true;
		} else if (!strcmp((*argv)[i], "--")) {
			while (i < *argc)
				(*argv)[out++] = (*argv)[i++];
			break;
		} else {
			(*argv)[out++] = (*argv)[i];
		}
	}
	*argc = out;
	(*argv)[out] = NULL;
	rc = read_config(c, have_ep, have_tok, have_ca);
	if (rc)
		return rc;
	rc = check_endpoint(c->endpoint);
	if (rc)
		return rc;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "vireo: libcurl did not initialise\n");
		return CLIENT_EXIT_CONNECT;
	}
	c->curl = curl_easy_init();
	if (!c->curl) {
		fprintf(stderr, "vireo: libcurl did not initialise\n");
		return CLIENT_EXIT_CONNECT;
	}
	return 0;
}

void client_close(struct client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
	curl_global_cleanup();
}

struct sink {
	char *buf;
	size_t len;
	bool overflow;
};

static size_t sink_write(char *data, size_t size, size_t n, void *opaque)
{
	struct sink *s = opaque;
	size_t add = size * n;
	char *nb;

	if (s->len + add > REPLY_MAX) {
		s->overflow = true;
		return 0;
	}
	nb = realloc(s->buf, s->len + add + 1);
	if (!nb)
		return 0;
	memcpy(nb + s->len, data, add);
	s->buf = nb;
	s->len += add;
	s->buf[s->len] = 0;
	return add;
}

/* Sets the URL, unix socket and TLS options shared by requests and raw connections. */
static int setup_target(struct client *c, CURL *h, const char *path)
{
	char url[1536];

	if (!strncmp(c->endpoint, "unix:", 5)) {
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->endpoint + 5);
		snprintf(url, sizeof(url), "http://localhost/api/v1%s", path);
	} else {
		size_t n = strlen(c->endpoint);

		while (n && c->endpoint[n - 1] == '/')
			n--;
		snprintf(url, sizeof(url), "%.*s/api/v1%s", (int)n, c->endpoint, path);
		if (c->cacert[0])
			curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
		if (c->insecure) {
			curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
			curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
		}
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	return 0;
}

static int connect_error(const struct client *c, CURLcode rc, const char *detail)
{
	if (rc == CURLE_COULDNT_CONNECT && !strncmp(c->endpoint, "unix:", 5)) {
		/* curl's message names "localhost port 80"; say what failed instead. */
		fprintf(stderr, "vireo: cannot reach vireod at %s: %s\n", c->endpoint,
			access(c->endpoint + 5, F_OK) ? "no such socket" : "connection refused");
		fprintf(stderr, "vireo: is vireod running? (start it with `vireod`, or set "
				"--endpoint / VIREO_ENDPOINT)\n");
		return CLIENT_EXIT_CONNECT;
	}
	fprintf(stderr, "vireo: cannot reach vireod at %s: %s\n", c->endpoint,
		detail && *detail ? detail : curl_easy_strerror(rc));
	return CLIENT_EXIT_CONNECT;
}

int client_request(struct client *c, const char *method, const char *path, json_object *body,
		   struct client_reply *r)
{
	CURL *h = c->curl;
	struct curl_slist *hdrs = NULL;
	struct sink s = { 0 };
	char auth[300], errbuf[CURL_ERROR_SIZE] = "";
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	curl_easy_reset(h);
	setup_target(c, h, path);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (c->token[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (body) {
		const char *js = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);

		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, js);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(js));
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK) {
		free(s.buf);
		if (s.overflow) {
			fprintf(stderr, "vireo: the reply to %s %s is larger than %u MiB\n", method,
				path, REPLY_MAX >> 20);
			return CLIENT_EXIT_FAILED;
		}
		return connect_error(c, rc, errbuf);
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	if (s.len) {
		r->body = json_tokener_parse(s.buf);
		if (!r->body && r->status < 300 && r->status != 204) {
			fprintf(stderr, "vireo: %s %s: the reply is not JSON\n", method, path);
			free(s.buf);
			return CLIENT_EXIT_FAILED;
		}
	}
	free(s.buf);
	return 0;
}

void client_reply_free(struct client_reply *r)
{
	if (r->body)
		json_object_put(r->body);
	r->body = NULL;
}

const char *client_str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return NULL;
	return json_object_get_string(v);
}

int client_vm_usage(const char *fmt, const char *arg)
{
	fputs("vireo vm: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n(see vireo vm --help)\n", stderr);
	return CLIENT_EXIT_USAGE;
}

int client_report_error(const struct client_reply *r)
{
	const char *msg = client_str(r->body, "message"), *code = client_str(r->body, "code");

	fprintf(stderr, "vireo: %s (%s, HTTP %ld)\n", msg ? msg : "request refused",
		code ? code : "no code", r->status);
	switch (r->status) {
	case 400:
	case 413:
	case 415:
	case 422:
		return CLIENT_EXIT_USAGE;
	case 401:
	case 403:
		return CLIENT_EXIT_AUTH;
	case 404:
		return CLIENT_EXIT_NOT_FOUND;
	case 409:
	case 412:
		return CLIENT_EXIT_CONFLICT;
	default:
		return CLIENT_EXIT_FAILED;
	}
}

int client_call(struct client *c, const char *method, const char *path, json_object *body,
		json_object **out)
{
	struct client_reply r;
	int rc = client_request(c, method, path, body, &r);

	if (out)
		*out = NULL;
	if (rc)
		return rc;
	if (r.status >= 400 || r.status < 200) {
		rc = client_report_error(&r);
		client_reply_free(&r);
		return rc;
	}
	if (out) {
		*out = r.body;
		r.body = NULL;
	} else if (c->json && r.body) {
		puts(json_object_to_json_string_ext(r.body, JSON_C_TO_STRING_PRETTY |
								    JSON_C_TO_STRING_SPACED));
	}
	client_reply_free(&r);
	return CLIENT_EXIT_OK;
}

int client_escape(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
			     ch == '~';

		if (o + (plain ? 1 : 3) >= outlen)
			return -ENAMETOOLONG;
		if (plain) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = 0;
	return 0;
}

static void draw_progress(const char *kind, const char *state, int pct)
{
	char bar[31];
	int fill = pct < 0 ? 0 : pct * 30 / 100;

	for (int i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : (pct < 0 ? '.' : '-');
	bar[30] = 0;
	if (pct >= 0)
		fprintf(stderr, "\r%-10s [%s] %3d%% %-10s", kind, bar, pct, state);
	else
		fprintf(stderr, "\r%-10s [%s]      %-10s", kind, bar, state);
}

static void print_task_error(json_object *task)
{
	json_object *err = NULL;
	const char *msg = NULL, *code = NULL;

	if (json_object_object_get_ex(task, "error", &err) && err) {
		if (json_object_is_type(err, json_type_string)) {
			msg = json_object_get_string(err);
		} else {
			msg = client_str(err, "message");
			code = client_str(err, "code");
		}
	}
	fprintf(stderr, "vireo: task %s %s: %s%s%s%s\n", client_str(task, "id"),
		client_str(task, "state"), msg ? msg : "no error message", code ? " (" : "",
		code ? code : "", code ? ")" : "");
}

int client_wait_task(struct client *c, const char *task_id, json_object **result)
{
	bool tty = isatty(STDERR_FILENO) && !c->quiet && !c->json;
	char path[256], esc[160];
	const struct timespec tick = { 0, 100 * 1000 * 1000 };
	int rc;

	if (result)
		*result = NULL;
	if (client_escape(task_id, esc, sizeof(esc)))
		return CLIENT_EXIT_FAILED;
	snprintf(path, sizeof(path), "/tasks/%s", esc);
	for (;;) {
		json_object *task = NULL, *p;
		const char *state;
		int pct = -1;

		rc = client_call(c, "GET", path, NULL, &task);
		if (rc)
			return rc;
		state = client_str(task, "state");
		if (!state) {
			fprintf(stderr, "vireo: task %s: the reply has no state\n", task_id);
			json_object_put(task);
			return CLIENT_EXIT_FAILED;
		}
		if (json_object_object_get_ex(task, "progress", &p) && p)
			pct = json_object_get_int(p);
		if (tty)
			draw_progress(client_str(task, "kind") ? client_str(task, "kind") : "task",
				      state, pct);
		if (strcmp(state, "queued") && strcmp(state, "running")) {
			if (tty)
				fputc('\n', stderr);
			rc = strcmp(state, "succeeded") ? CLIENT_EXIT_FAILED : CLIENT_EXIT_OK;
			if (rc)
				print_task_error(task);
			if (result)
				*result = task;
			else
				json_object_put(task);
			return rc;
		}
		json_object_put(task);
		nanosleep(&tick, NULL);
	}
}

int client_connect_raw(struct client *c, void **handle)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = curl_easy_init();
	CURLcode rc;

	*handle = NULL;
	if (!h)
		return CLIENT_EXIT_CONNECT;
	setup_target(c, h, "/");
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		curl_easy_cleanup(h);
		return connect_error(c, rc, errbuf);
	}
	*handle = h;
	return 0;
}
