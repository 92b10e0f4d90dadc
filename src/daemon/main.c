// SPDX-License-Identifier: MIT
/*
 * vireod: the host daemon (docs/api.md). Startup order: options, state directory (and its lock:
 * one vireod per state directory), store, events, consoles, task pool, supervisor (loads VMs,
 * re-attaches to running VMMs, queues autostarts), HTTP. SIGTERM/SIGINT stop serving and tear
 * down in reverse order; VMMs keep running, for the next vireod to re-attach to.
 *
 * `vireod --shim VMDIR FD -- ARGV...` is the per-VM shim (vmm.h), not for users.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"
#include "consolehub.h"
#include "events.h"
#include "http.h"
#include "store.h"
#include "supervisor.h"
#include "task.h"
#include "vmm.h"

#define TASK_WORKERS 4

/* Room for the file names appended to the directories. */
#define DIR_MAX (PATH_MAX - 512)

struct options {
	char state_dir[DIR_MAX];
	char socket[PATH_MAX];
	const char *listen;
	const char *tls_cert;
	const char *tls_key;
	char vireo[PATH_MAX];
	char self[DIR_MAX];
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vireod [OPTIONS]\n"
		"\n"
		"The Vireo host daemon: keeps this host's VMs (SQLite), runs one `vireo run` per\n"
		"running VM and serves the REST API (docs/api.md). Runs in the foreground; VMs "
		"keep\n"
		"running when it stops, and the next vireod re-attaches to them.\n"
		"\n"
		"  --state-dir DIR     database and per-VM files (default /var/lib/vireo as root,\n"
		"                      $XDG_STATE_HOME/vireo or ~/.local/state/vireo otherwise)\n"
		"  --socket PATH       the API's unix socket (default /run/vireo/vireod.sock as "
		"root,\n"
		"                      $XDG_RUNTIME_DIR/vireo/vireod.sock otherwise)\n"
		"  --listen ADDR:PORT  also serve HTTPS on TCP (tokens required)\n"
		"  --tls-cert FILE     PEM certificate for --listen (default: a self-signed one "
		"made\n"
		"  --tls-key FILE      in STATE_DIR/tls/ at first start)\n"
		"  --vireo PATH        the vireo binary that runs VMs (default: next to vireod, "
		"or\n"
		"                      `vireo` on PATH)\n"
		"  -v, --verbose       more messages;  -q, --quiet  errors only\n"
		"  -h, --help          this text\n"
		"\n"
		"Stops on SIGTERM or SIGINT (running VMs are left running).\n"
		"\n"
		"vireod [--state-dir DIR] token create --name N --role viewer|operator|admin\n"
		"vireod [--state-dir DIR] token list | token revoke ID\n"
		"                      API tokens straight in the database (e.g. the first admin\n"
		"                      token for --listen); the secret is printed once\n");
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

static void default_paths(struct options *o)
{
	const char *xdg, *home = getenv("HOME");

	if (!o->state_dir[0]) {
		if (geteuid() == 0)
			snprintf(o->state_dir, sizeof(o->state_dir), "/var/lib/vireo");
		else if ((xdg = getenv("XDG_STATE_HOME")) && *xdg)
			snprintf(o->state_dir, sizeof(o->state_dir), "%s/vireo", xdg);
		else
			snprintf(o->state_dir, sizeof(o->state_dir), "%s/.local/state/vireo",
				 home ? home : "/tmp");
	}
	if (!o->socket[0]) {
		if (geteuid() == 0)
			snprintf(o->socket, sizeof(o->socket), "/run/vireo/vireod.sock");
		else if ((xdg = getenv("XDG_RUNTIME_DIR")) && *xdg)
			snprintf(o->socket, sizeof(o->socket), "%s/vireo/vireod.sock", xdg);
		else
			snprintf(o->socket, sizeof(o->socket), "%s/vireod.sock", o->state_dir);
	}
	if (!o->vireo[0]) {
		/* Installed side by side, or in a build tree (build/src/daemon/vireod and
		 * build/vireo); else whatever `vireo` PATH finds. */
		char dir[DIR_MAX];
		snprintf(dir, sizeof(dir), "%s", o->self);
		dirname(dir);
		snprintf(o->vireo, sizeof(o->vireo), "%s/vireo", dir);
		if (access(o->vireo, X_OK))
			snprintf(o->vireo, sizeof(o->vireo), "%s/../../vireo", dir);
		if (access(o->vireo, X_OK))
			snprintf(o->vireo, sizeof(o->vireo), "vireo");
	}
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "listen", required_argument, NULL, 'l' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "vireo", required_argument, NULL, 'V' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	/* "+": options end at the first word, so `vireod token create --name N` keeps its own. */
	while ((c = getopt_long(argc, argv, "+vqh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			snprintf(o->state_dir, sizeof(o->state_dir), "%s", optarg);
			break;
		case 'S':
			snprintf(o->socket, sizeof(o->socket), "%s", optarg);
			break;
		case 'l':
			o->listen = optarg;
			break;
		case 'c':
			o->tls_cert = optarg;
			break;
		case 'k':
			o->tls_key = optarg;
			break;
		case 'V':
			snprintf(o->vireo, sizeof(o->vireo), "%s", optarg);
			break;
		case 'v':
			log_max_level = LOG_DEBUG;
			break;
		case 'q':
			log_max_level = LOG_ERROR;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc && strcmp(argv[optind], "token")) {
		fprintf(stderr, "vireod: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!o->tls_cert != !o->tls_key) {
		fprintf(stderr, "vireod: --tls-cert and --tls-key go together\n");
		return 2;
	}
	return 0;
}

/* `vireod token ...`: tokens straight in the database, the daemon running or not (SQLite's
 * WAL lets both write). */
static int token_command(const struct options *o, int argc, char **argv)
{
	char path[PATH_MAX];
	struct store *st;
	int ret;

	snprintf(path, sizeof(path), "%s/vireod.db", o->state_dir);
	if (store_open(path, &st))
		return 1;
	store_set_default(st);
	ret = auth_token_cli(argc, argv);
	store_set_default(NULL);
	store_close(st);
	return ret;
}

/* Tells systemd (Type=notify) we are ready; nothing without $NOTIFY_SOCKET. */
static void sd_notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	static const char msg[] = "READY=1";
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(a.sun_path))
		return;
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (a.sun_path[0] == '@')
		a.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&a,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path))) < 0)
		pr_warn("sd_notify: %s", strerror(errno));
	close(fd);
}

/* One vireod per state directory: a second one would spawn VMs twice. */
static int lock_state_dir(const char *dir)
{
	char path[PATH_MAX + 16];
	int fd;

	snprintf(path, sizeof(path), "%s/vireod.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB)) {
		pr_err("%s: %s", path,
		       errno == EWOULDBLOCK ? "another vireod uses this state directory"
					    : strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct daemon {
	struct store *st;
	struct consolehub *hub;
	struct task_pool *pool;
	struct supervisor *sv;
	bool http;
	bool events;
};

static void teardown(struct daemon *d)
{
	if (d->http)
		http_stop();
	if (d->sv)
		supervisor_shutdown(d->sv);
	task_pool_destroy(d->pool);
	supervisor_destroy(d->sv);
	consolehub_destroy(d->hub);
	if (d->events)
		events_fini();
	store_close(d->st);
}

static int start(const struct options *o, struct daemon *d)
{
	struct supervisor_config cfg = { 0 };
	char path[PATH_MAX + 16], now[STORE_TIME_LEN];
	struct group *g = geteuid() == 0 ? getgrnam("vireo") : NULL;
	struct http_opts h = { 0 };
	int n;

	snprintf(path, sizeof(path), "%s/vireod.db", o->state_dir);
	if (store_open(path, &d->st))
		return -1;
	store_set_default(d->st);
	store_now(now);
	n = store_task_fail_unfinished(d->st, "daemon restarted", now);
	if (n > 0)
		pr_info("%d task(s) left unfinished by the last vireod marked failed", n);
	if (events_init())
		return -1;
	d->events = true;
	if (consolehub_create(&d->hub) ||
	    task_pool_create(d->st, TASK_WORKERS, events_publish, &d->pool))
		return -1;
	cfg.state_dir = o->state_dir;
	cfg.vireo = o->vireo;
	cfg.self = o->self;
	cfg.store = d->st;
	cfg.tasks = d->pool;
	cfg.consoles = d->hub;
	cfg.publish = events_publish;
	if (supervisor_create(&cfg, &d->sv) || supervisor_start(d->sv))
		return -1;
	h.state_dir = o->state_dir;
	h.socket_path = o->socket;
	h.socket_group = g ? "vireo" : NULL;
	h.listen = o->listen;
	h.tls_cert = o->tls_cert;
	h.tls_key = o->tls_key;
	if (http_start(&h))
		return -1;
	d->http = true;
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct daemon d = { 0 };
	sigset_t set;
	char dir[PATH_MAX];
	int sig = 0, lock, ret;
	ssize_t n;

	if (argc > 1 && !strcmp(argv[1], "--shim"))
		return vmm_shim_main(argc - 2, argv + 2);
	n = readlink("/proc/self/exe", o.self, sizeof(o.self) - 1);
	if (n <= 0) {
		fprintf(stderr, "vireod: /proc/self/exe: %s\n", strerror(errno));
		return 1;
	}
	o.self[n] = '\0';
	ret = parse_options(argc, argv, &o);
	if (ret)
		return ret;
	default_paths(&o);
	if (mkdir_p(o.state_dir, 0700)) {
		pr_err("cannot create %s: %s", o.state_dir, strerror(errno));
		return 1;
	}
	if (optind < argc)
		return token_command(&o, argc - optind, argv + optind);
	snprintf(dir, sizeof(dir), "%s", o.socket);
	if (mkdir_p(dirname(dir), 0755)) {
		pr_err("cannot create the directory of %s: %s", o.socket, strerror(errno));
		return 1;
	}
	/* Two fds per running VM (pidfd, console) besides connections: lift the soft limit. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	lock = lock_state_dir(o.state_dir);
	if (lock < 0)
		return 1;
	/* Signals go to sigwait below only; every thread inherits this mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (start(&o, &d)) {
		pr_err("vireod did not start");
		teardown(&d);
		return 1;
	}
	pr_info("vireod %s serving on %s%s%s (state in %s, VMs run by %s)", VIREO_VERSION, o.socket,
		o.listen ? " and https://" : "", o.listen ? o.listen : "", o.state_dir, o.vireo);
	sd_notify_ready();
	while (sig != SIGTERM && sig != SIGINT) {
		if (sigwait(&set, &sig))
			break;
		if (sig == SIGHUP)
			pr_info("SIGHUP ignored (nothing to reload)");
	}
	pr_info("signal %d: stopping (VMs keep running)", sig);
	teardown(&d);
	close(lock);
	return 0;
}
