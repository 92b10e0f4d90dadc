// SPDX-License-Identifier: MIT
/* `vireo vmctl`: a client of one VM's control socket (vireo run --api-sock). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/util.h"
#include "vmctl.h"

static const char usage[] =
	"Usage: vireo vmctl --sock PATH [--json] COMMAND [OPTIONS]\n"
	"\n"
	"Send one request to a VM's control socket (vireo run --api-sock PATH).\n"
	"\n"
	"Commands:\n"
	"  status                 state (running, paused, stopping), vCPUs, memory, uptime\n"
	"  pause                  stop all vCPUs (returns when every vCPU is out of the guest)\n"
	"  resume                 run them again\n"
	"  stop [--timeout S]     press the ACPI power button; stop hard after S seconds\n"
	"                         (default 30) if the guest has not powered off\n"
	"  stop --force           stop now\n"
	"  reset                  reset the VM (what --on-reboot says)\n"
	"  power-button           press the ACPI power button\n"
	"  snapshot DIR [--paused]\n"
	"                         pause, save the VM into the new directory DIR (a state file\n"
	"                         and a sparse memory file) and resume, unless --paused.\n"
	"                         Restore it with vireo run --restore DIR\n"
	"  migrate tcp:HOST:PORT [--tls psk=FILE|x509=DIR | --insecure] [--max-downtime MS]\n"
	"          [--wait]       live-migrate the VM to a vireo run --incoming waiting there;\n"
	"                         returns at once (follow it with migrate-status), or with --wait\n"
	"                         shows a progress line until it ends (exit 0 when completed).\n"
	"                         TLS 1.3 with the destination's --migration-tls credentials\n"
	"                         (default: the VM's own --migration-tls); --insecure: plain TCP\n"
	"  migrate-status         progress: phase, rounds, bytes, dirty rate, expected downtime\n"
	"  migrate-cancel         abandon the migration; the VM keeps running here\n"
	"  balloon MIB            set the balloon's target (vireo run --balloon): the guest gives\n"
	"                         MIB of its RAM back to the host; 0 deflates it\n"
	"  balloon-stats          balloon size and the guest's memory statistics (the guest\n"
	"                         refreshes them after each request: ask again for newer ones)\n"
	"  net-info               the NICs: MAC, backend, link, frame and drop counters\n"
	"  net-link NIC up|down   set NIC's link status (the guest sees its carrier change)\n"
	"\n"
	"Options:\n"
	"  -s, --sock PATH        the control socket\n"
	"      --json             print the reply as JSON\n"
	"  -h, --help             this text\n"
	"\n"
	"Exit status: 0 when the VM accepted the request, 1 when it refused or could not be\n"
	"reached, 2 on bad arguments.\n";

/* Sends one request line and reads one reply line. */
static int roundtrip(const char *path, const char *req, char *reply, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t got = 0;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A VM that refuses this client may have closed before the request went out: its reply
	 * saying why is still there to read. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0 && errno != EPIPE &&
	     errno != ECONNRESET)) {
		ret = -errno;
		goto out;
	}
	while (got < len - 1) {
		ssize_t n = read(fd, reply + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(reply, '\n', got))
			break;
	}
	reply[got] = '\0';
	ret = got ? 0 : -ECONNRESET;
out:
	close(fd);
	return ret;
}

static int64_t get_i64(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static double get_dbl(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

/* migrate --wait: polls migrate-status and redraws one progress line until the migration ends.
 * The socket goes away with the source VMM when the migration completes. */
static int migrate_wait(const char *sock)
{
	const char *req = "{\"cmd\":\"migrate-status\"}\n";
	bool tty = isatty(STDOUT_FILENO);
	char reply[4096], last[512] = "";
	json_object *rep, *v;

	for (;;) {
		const char *phase;

		if (roundtrip(sock, req, reply, sizeof(reply))) {
			/* The source exits right after a completed migration. */
			printf("%s%s\n", tty ? "\r" : "", last[0] ? last : "");
			printf("migration completed (the source VM has exited)\n");
			return 0;
		}
		rep = json_tokener_parse(reply);
		if (!rep || !json_object_object_get_ex(rep, "phase", &v)) {
			json_object_put(rep);
			fprintf(stderr, "vireo vmctl: unexpected reply: %s", reply);
			return 1;
		}
		phase = json_object_get_string(v);
		snprintf(last, sizeof(last),
			 "%-9s round %2lld  sent %6lld MiB  dirty %6lld MiB  %7.1f MiB/s  expected "
			 "downtime %7.1f ms",
			 phase, (long long)get_i64(rep, "rounds"),
			 (long long)(get_i64(rep, "transferred_bytes") >> 20),
			 (long long)(get_i64(rep, "remaining_bytes") >> 20),
			 get_dbl(rep, "bandwidth_mib_s"), get_dbl(rep, "expected_downtime_ms"));
		if (!strcmp(phase, "completed")) {
			printf("%s%s\nmigration completed in %.0f ms, downtime %.1f ms\n",
			       tty ? "\r" : "", last, get_dbl(rep, "total_ms"),
			       get_dbl(rep, "downtime_ms"));
			json_object_put(rep);
			return 0;
		}
		if (!strcmp(phase, "failed") || !strcmp(phase, "cancelled") ||
		    !strcmp(phase, "none")) {
			printf("%s%s\n", tty ? "\r" : "", last);
			fprintf(stderr, "vireo vmctl: migration %s: %s\n", phase,
				json_object_object_get_ex(rep, "error", &v)
					? json_object_get_string(v)
					: "?");
			json_object_put(rep);
			return 1;
		}
		if (tty) {
			printf("\r%s", last);
			fflush(stdout);
		}
		json_object_put(rep);
		usleep(200 * 1000);
	}
}

int vmctl_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sock", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "force", no_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 't' },
		{ "paused", no_argument, NULL, 'p' },
		{ "max-downtime", required_argument, NULL, 'd' },
		{ "wait", no_argument, NULL, 'w' },
		{ "tls", required_argument, NULL, 'T' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *cmd, *arg = NULL, *tls = NULL;
	bool json = false, force = false, paused = false, wait = false, link_up = false;
	bool insecure = false;
	char tls_abs[4200];
	int nic = -1;
	int64_t timeout = -1, downtime = -1, balloon_mib = -1;
	char abs[4096];
	uint64_t v;
	char reply[4096];
	json_object *req, *rep, *okv, *errv;
	int c, ret;

	/* getopt permutes: options may come before or after the command. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'f':
			force = true;
			break;
		case 't':
			if (parse_u64(optarg, &v) < 0 || v > 3600) {
				fprintf(stderr, "vireo vmctl: --timeout: seconds 0..3600\n");
				return 2;
			}
			timeout = (int64_t)v;
			break;
		case 'p':
			paused = true;
			break;
		case 'w':
			wait = true;
			break;
		case 'd':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 60000) {
				fprintf(stderr,
					"vireo vmctl: --max-downtime: milliseconds 1..60000\n");
				return 2;
			}
			downtime = (int64_t)v;
			break;
		case 'T': {
			const char *eq = strchr(optarg, '=');

			tls = optarg;
			/* The VM may run in another directory: send an absolute path. */
			if (eq && eq[1] && eq[1] != '/') {
				char cwd[2048];

				if (!getcwd(cwd, sizeof(cwd))) {
					fprintf(stderr, "vireo vmctl: getcwd: %s\n",
						strerror(errno));
					return 1;
				}
				snprintf(tls_abs, sizeof(tls_abs), "%.*s%s/%s",
					 (int)(eq - optarg + 1), optarg, cwd, eq + 1);
				tls = tls_abs;
			}
			break;
		}
		case 'I':
			insecure = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fprintf(stderr, "vireo vmctl: bad option (see vireo vmctl --help)\n");
			return 2;
		}
	}
	if (!sock || optind >= argc) {
		fprintf(stderr, "vireo vmctl: need --sock PATH and a command (see --help)\n");
		return 2;
	}
	cmd = argv[optind++];
	if (!strcmp(cmd, "net-link")) {
		if (optind + 2 > argc || parse_u64(argv[optind], &v) < 0 || v > 255 ||
		    (strcmp(argv[optind + 1], "up") && strcmp(argv[optind + 1], "down"))) {
			fprintf(stderr,
				"vireo vmctl: net-link needs a NIC number and up or down\n");
			return 2;
		}
		nic = (int)v;
		link_up = !strcmp(argv[optind + 1], "up");
		optind += 2;
	}
	if (!strcmp(cmd, "snapshot") || !strcmp(cmd, "migrate")) {
		if (optind >= argc) {
			fprintf(stderr, "vireo vmctl: %s needs %s\n", cmd,
				!strcmp(cmd, "snapshot") ? "a directory" : "tcp:HOST:PORT");
			return 2;
		}
		arg = argv[optind++];
		/* The VM may run in another directory: send an absolute path. */
		if (!strcmp(cmd, "snapshot") && arg[0] != '/') {
			char cwd[2048];

			if (!getcwd(cwd, sizeof(cwd))) {
				fprintf(stderr, "vireo vmctl: getcwd: %s\n", strerror(errno));
				return 1;
			}
			snprintf(abs, sizeof(abs), "%s/%s", cwd, arg);
			arg = abs;
		}
	}
	if (!strcmp(cmd, "balloon")) {
		if (optind >= argc || parse_u64(argv[optind], &v) < 0 || v > (1ULL << 30)) {
			fprintf(stderr, "vireo vmctl: balloon needs a size in MiB\n");
			return 2;
		}
		balloon_mib = (int64_t)v;
		optind++;
	}
	if (optind < argc) {
		fprintf(stderr, "vireo vmctl: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (force)
		json_object_object_add(req, "force", json_object_new_boolean(1));
	if (timeout >= 0)
		json_object_object_add(req, "timeout_s", json_object_new_int64(timeout));
	if (paused)
		json_object_object_add(req, "paused", json_object_new_boolean(1));
	if (downtime >= 0)
		json_object_object_add(req, "max_downtime_ms", json_object_new_int64(downtime));
	if (tls)
		json_object_object_add(req, "tls", json_object_new_string(tls));
	if (insecure)
		json_object_object_add(req, "insecure", json_object_new_boolean(1));
	if (balloon_mib >= 0)
		json_object_object_add(req, "target_mib", json_object_new_int64(balloon_mib));
	if (nic >= 0) {
		json_object_object_add(req, "nic", json_object_new_int(nic));
		json_object_object_add(req, "up", json_object_new_boolean(link_up));
	}
	if (arg)
		json_object_object_add(req, !strcmp(cmd, "snapshot") ? "path" : "uri",
				       json_object_new_string(arg));
	snprintf(reply, sizeof(reply), "%s\n",
		 json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	json_object_put(req);
	ret = roundtrip(sock, reply, reply, sizeof(reply));
	if (ret) {
		fprintf(stderr, "vireo vmctl: %s: %s\n", sock, strerror(-ret));
		return 1;
	}
	rep = json_tokener_parse(reply);
	if (wait && !strcmp(cmd, "migrate") && rep && json_object_object_get_ex(rep, "ok", &okv) &&
	    json_object_get_boolean(okv)) {
		json_object_put(rep);
		return migrate_wait(sock);
	}
	if (!rep || !json_object_object_get_ex(rep, "ok", &okv)) {
		fprintf(stderr, "vireo vmctl: the VM sent a reply that is not ours: %s", reply);
		json_object_put(rep);
		return 1;
	}
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PRETTY));
	} else if (json_object_get_boolean(okv)) {
		json_object_object_foreach(rep, key, val)
		{
			if (strcmp(key, "ok"))
				printf("%s: %s\n", key, json_object_get_string(val));
		}
	}
	if (!json_object_get_boolean(okv)) {
		if (json_object_object_get_ex(rep, "error", &errv))
			fprintf(stderr, "vireo vmctl: %s\n", json_object_get_string(errv));
		json_object_put(rep);
		return 1;
	}
	json_object_put(rep);
	return 0;
}
