// SPDX-License-Identifier: MIT
/* Unit tests for src/vmm/config.c: `vireo run` option parsing and checking. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "vmm/config.h"

#define MAX_ARGS 32
#define POOL_SIZE 1024

/*
 * Writable copies of the arguments (getopt_long may permute argv). They are freed only at the
 * end of the group: cfg points into them, and glibc's getopt keeps a pointer into the last
 * argument it scanned across calls.
 */
static void *pool[POOL_SIZE];
static int npool;
static struct vm_config cfg;
static char err[256];

static void *keep(void *p)
{
	assert_non_null(p);
	assert_true(npool < POOL_SIZE);
	pool[npool++] = p;
	return p;
}

/* parse("--kernel", "x", NULL): runs config_parse_run on {"run", ...}. */
static int parse(const char *first, ...)
{
	char **argv = keep(calloc(MAX_ARGS + 1, sizeof(char *)));
	int argc = 0;
	va_list ap;
	const char *a;

	argv[argc++] = keep(strdup("run"));
	va_start(ap, first);
	for (a = first; a; a = va_arg(ap, const char *)) {
		assert_true(argc < MAX_ARGS);
		argv[argc++] = keep(strdup(a));
	}
	va_end(ap);
	memset(err, 0, sizeof(err));
	return config_parse_run(argc, argv, &cfg, err, sizeof(err));
}

static int group_teardown(void **state)
{
	(void)state;
	while (npool > 0)
		free(pool[--npool]);
	return 0;
}

static void assert_err_contains(const char *what)
{
	if (!strstr(err, what))
		fail_msg("error message '%s' does not mention '%s'", err, what);
}

static void test_defaults(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "bzImage", NULL), 0);
	assert_string_equal(cfg.kernel, "bzImage");
	assert_true(cfg.mem_size == 256 * MIB);
	assert_int_equal(cfg.ncpus, 1);
	assert_null(cfg.initrd);
	assert_null(cfg.cmdline);
	assert_null(cfg.payload);
	assert_false(cfg.hugepages);
	assert_int_equal(cfg.ncpu_changes, 0);
	assert_int_equal(cfg.pvm, PVM_AUTO);
	assert_int_equal(cfg.console, CONSOLE_STDIO);
	assert_null(cfg.console_path);
	assert_int_equal(cfg.on_reboot, REBOOT_EXIT);
	assert_int_equal(cfg.timeout_s, 0);
	assert_int_equal(cfg.verbosity, 0);
}

static void test_all_options(void **state)
{
	(void)state;
	assert_int_equal(parse("-k", "vmlinux", "-i", "initrd.img", "-c", "console=ttyS0 quiet",
			       "-m", "1G", "--cpus", "4", "--hugepages", "--pvm", "off",
			       "--profile", "prof.txt", "-v", "-v", NULL),
			 0);
	assert_string_equal(cfg.kernel, "vmlinux");
	assert_string_equal(cfg.initrd, "initrd.img");
	assert_string_equal(cfg.cmdline, "console=ttyS0 quiet");
	assert_true(cfg.mem_size == GIB);
	assert_int_equal(cfg.ncpus, 4);
	assert_true(cfg.hugepages);
	assert_int_equal(cfg.pvm, PVM_OFF);
	assert_string_equal(cfg.profile, "prof.txt");
	assert_int_equal(cfg.verbosity, 2);

	assert_int_equal(parse("--kernel=k", "--memory=512", "--pvm=on", "-q", NULL), 0);
	assert_true(cfg.mem_size == 512 * MIB);
	assert_int_equal(cfg.pvm, PVM_ON);
	assert_int_equal(cfg.verbosity, -1);

	assert_int_equal(parse("--kernel", "k", "--pvm", "maybe", NULL), -EINVAL);
	assert_err_contains("--pvm");
}

static void test_memory(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", "--memory", "8M", NULL), -EINVAL);
	assert_err_contains("--memory");
	assert_int_equal(parse("--kernel", "k", "--memory", "0", NULL), -EINVAL);
	assert_err_contains("--memory");
	assert_int_equal(parse("--kernel", "k", "--memory", "abc", NULL), -EINVAL);
	assert_err_contains("--memory");
	assert_err_contains("abc");
	assert_int_equal(parse("--kernel", "k", "--memory", "2T", NULL), -EINVAL);
	assert_err_contains("--memory");
	assert_int_equal(parse("--kernel", "k", "--memory", "16777217B", NULL), -EINVAL);
	assert_err_contains("--memory");
	assert_err_contains("4 KiB");
	assert_int_equal(parse("--kernel", "k", "--memory", "20484K", NULL), 0);
	assert_true(cfg.mem_size == 20484 * KIB);
	assert_int_equal(parse("--kernel", "k", "--memory", "16M", NULL), 0);
	assert_true(cfg.mem_size == 16 * MIB);
	assert_int_equal(parse("--kernel", "k", "--memory", "1T", NULL), 0);
	assert_true(cfg.mem_size == 1024 * GIB);
	assert_int_equal(parse("--kernel", "k", "-m", "2048", NULL), 0);
	assert_true(cfg.mem_size == 2 * GIB);
}

static void test_cpus(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", "--cpus", "0", NULL), -EINVAL);
	assert_err_contains("--cpus");
	assert_int_equal(parse("--kernel", "k", "--cpus", "255", NULL), -EINVAL);
	assert_err_contains("--cpus");
	assert_int_equal(parse("--kernel", "k", "--cpus", "four", NULL), -EINVAL);
	assert_err_contains("--cpus");
	assert_int_equal(parse("--kernel", "k", "--cpus", "4", NULL), 0);
	assert_int_equal(cfg.ncpus, 4);
	assert_int_equal(parse("--kernel", "k", "--cpus", "254", NULL), 0);
	assert_int_equal(cfg.ncpus, 254);
}

static void test_unknown_option(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", "--frobnicate", NULL), -EINVAL);
	assert_err_contains("--frobnicate");
	assert_int_equal(parse("--kernel", "k", "-z", NULL), -EINVAL);
	assert_err_contains("-z");
	assert_int_equal(parse("--kernel", "k", "stray", NULL), -EINVAL);
	assert_err_contains("stray");
}

static void test_missing_value(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", "--memory", NULL), -EINVAL);
	assert_err_contains("--memory");
	assert_err_contains("value");
	assert_int_equal(parse("--kernel", NULL), -EINVAL);
	assert_err_contains("--kernel");
	assert_int_equal(parse("--kernel", "k", "-m", NULL), -EINVAL);
	assert_err_contains("-m");
}

static void test_guest_choice(void **state)
{
	(void)state;
	assert_int_equal(parse(NULL), -EINVAL);
	assert_err_contains("--kernel");
	assert_int_equal(parse("--cpus", "2", NULL), -EINVAL);
	assert_err_contains("--kernel");
	assert_int_equal(parse("--kernel", "k", "--payload", "p.bin", NULL), -EINVAL);
	assert_err_contains("--payload");
	assert_int_equal(parse("--payload", "p.bin", NULL), 0);
	assert_string_equal(cfg.payload, "p.bin");
	assert_null(cfg.kernel);
	assert_int_equal(parse("--payload", "p.bin", "--initrd", "i", NULL), -EINVAL);
	assert_int_equal(parse("--payload", "p.bin", "--cmdline", "x", NULL), -EINVAL);
}

static void test_console(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", "--console", "file:/tmp/out.log", NULL), 0);
	assert_int_equal(cfg.console, CONSOLE_FILE);
	assert_string_equal(cfg.console_path, "/tmp/out.log");
	assert_int_equal(parse("--kernel", "k", "--console", "socket:/run/x.sock", NULL), 0);
	assert_int_equal(cfg.console, CONSOLE_SOCKET);
	assert_string_equal(cfg.console_path, "/run/x.sock");
	assert_int_equal(parse("--kernel", "k", "--console", "none", NULL), 0);
	assert_int_equal(cfg.console, CONSOLE_NONE);
	assert_int_equal(parse("--kernel", "k", "--console", "stdio", NULL), 0);
	assert_int_equal(cfg.console, CONSOLE_STDIO);
	assert_int_equal(parse("--kernel", "k", "--console", "bogus", NULL), -EINVAL);
	assert_err_contains("--console");
	assert_err_contains("bogus");
	assert_int_equal(parse("--kernel", "k", "--console", "file:", NULL), -EINVAL);
	assert_err_contains("--console");
}

static void test_console_socket_path_too_long(void **state)
{
	char opt[200] = "socket:";

	(void)state;
	memset(opt + 7, 'a', 120);
	opt[127] = '\0';
	assert_int_equal(parse("--kernel", "k", "--console", opt, NULL), -EINVAL);
	assert_err_contains("too long");
}

static void test_virtio_options(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", NULL), 0);
	assert_false(cfg.virtio_rng);
	assert_null(cfg.virtio_console);
	assert_int_equal(
		parse("--kernel", "k", "--rng", "--virtio-console", "socket:/run/c.sock", NULL), 0);
	assert_true(cfg.virtio_rng);
	assert_string_equal(cfg.virtio_console, "socket:/run/c.sock");
	assert_int_equal(parse("--kernel", "k", "--virtio-console", "file:/tmp/c.log", NULL), 0);
	assert_string_equal(cfg.virtio_console, "file:/tmp/c.log");
	assert_int_equal(parse("--kernel", "k", "--virtio-console", "stdio", NULL), -EINVAL);
	assert_err_contains("--virtio-console");
	assert_int_equal(parse("--kernel", "k", "--virtio-console", "socket:", NULL), -EINVAL);
	/* The devices come from the snapshot; only the console's backend may change. */
	assert_int_equal(parse("--restore", "d", "--rng", NULL), -EINVAL);
	assert_err_contains("--rng");
	assert_int_equal(parse("--restore", "d", "--virtio-console", "socket:/run/c.sock", NULL),
			 0);
}

static void test_balloon_vsock_options(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", NULL), 0);
	assert_false(cfg.balloon);
	assert_null(cfg.vsock);
	assert_int_equal(parse("--kernel", "k", "--balloon", NULL), 0);
	assert_true(cfg.balloon);
	assert_int_equal(cfg.balloon_flags, 0);
	assert_int_equal(parse("--kernel", "k", "--balloon=deflate-on-oom", NULL), 0);
	assert_int_equal(cfg.balloon_flags, 1);
	assert_int_equal(parse("--kernel", "k", "--balloon=huge", NULL), -EINVAL);
	assert_err_contains("--balloon");
	/* The balloon is part of the machine. */
	assert_int_equal(parse("--restore", "d", "--balloon", NULL), -EINVAL);

	assert_int_equal(parse("--kernel", "k", "--vsock", "cid=3", NULL), 0);
	assert_int_equal(cfg.vsock_cid, 3);
	assert_string_equal(cfg.vsock_uds, "");
	assert_int_equal(parse("--kernel", "k", "--vsock", "cid=42,uds=/run/v,1.sock", NULL), 0);
	assert_int_equal(cfg.vsock_cid, 42);
	assert_string_equal(cfg.vsock_uds, "/run/v,1.sock");
	assert_string_equal(cfg.vsock, "cid=42,uds=/run/v,1.sock");
	assert_int_equal(parse("--kernel", "k", "--vsock", "cid=2", NULL), -EINVAL);
	assert_err_contains("cid=N");
	assert_int_equal(parse("--kernel", "k", "--vsock", "cid=4294967295", NULL), -EINVAL);
	assert_int_equal(parse("--kernel", "k", "--vsock", "uds=/x", NULL), -EINVAL);
	assert_int_equal(parse("--kernel", "k", "--vsock", "cid=3,port=1", NULL), -EINVAL);
	assert_int_equal(parse("--kernel", "k", "--vsock", "cid=3,uds=", NULL), -EINVAL);
	assert_int_equal(
		parse("--kernel", "k", "--vsock",
		      "cid=3,uds=/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		      NULL),
		-EINVAL);
	assert_err_contains("too long");
	/* A new CID or socket path for a restored VM. */
	assert_int_equal(parse("--restore", "d", "--vsock", "cid=5,uds=/run/w.sock", NULL), 0);
	assert_int_equal(cfg.vsock_cid, 5);
}

static void test_on_reboot(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", "--on-reboot", "restart", NULL), 0);
	assert_int_equal(cfg.on_reboot, REBOOT_RESTART);
	assert_int_equal(parse("--kernel", "k", "--on-reboot", "exit", NULL), 0);
	assert_int_equal(cfg.on_reboot, REBOOT_EXIT);
	assert_int_equal(parse("--kernel", "k", "--on-reboot", "halt", NULL), -EINVAL);
	assert_err_contains("--on-reboot");
}

static void test_boot_protocol(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", NULL), 0);
	assert_int_equal(cfg.boot, BOOT_AUTO);
	assert_int_equal(parse("--kernel", "k", "--boot", "pvh", NULL), 0);
	assert_int_equal(cfg.boot, BOOT_PVH);
	assert_int_equal(parse("--kernel", "k", "--boot", "linux64", NULL), 0);
	assert_int_equal(cfg.boot, BOOT_LINUX64);
	assert_int_equal(parse("--kernel", "k", "--boot", "bios", NULL), -EINVAL);
	assert_err_contains("--boot");
}

static void test_profile(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", "--profile", "/tmp/p.txt", NULL), 0);
	assert_string_equal(cfg.profile, "/tmp/p.txt");
}

/* --incoming takes a source only over TLS unless plain TCP is asked for by name; the images and
 * backends of a restored or migrated VM come from the command line. */
static void test_migration_trust(void **state)
{
	(void)state;
	assert_int_equal(parse("--incoming", "tcp:0.0.0.0:4444", NULL), -EINVAL);
	assert_err_contains("--migration-tls");
	assert_err_contains("--insecure-migration");
	assert_int_equal(parse("--incoming", "tcp:0.0.0.0:4444", "--migration-tls", "psk=/k", NULL),
			 0);
	assert_string_equal(cfg.migration_tls, "psk=/k");
	assert_false(cfg.insecure_migration);
	assert_int_equal(parse("--incoming", "tcp:h:1", "--migration-tls", "x509=/etc/pki", NULL),
			 0);
	assert_int_equal(parse("--incoming", "tcp:h:1", "--insecure-migration", NULL), 0);
	assert_true(cfg.insecure_migration);
	assert_null(cfg.migration_tls);
	assert_int_equal(parse("--incoming", "tcp:h:1", "--insecure-migration", "--migration-tls",
			       "psk=/k", NULL),
			 -EINVAL);
	assert_err_contains("not both");
	assert_int_equal(parse("--incoming", "tcp:h:1", "--migration-tls", "psk=", NULL), -EINVAL);
	assert_int_equal(parse("--incoming", "tcp:h:1", "--migration-tls", "key=/k", NULL),
			 -EINVAL);
	assert_err_contains("psk=FILE or x509=DIR");
	/* Plain TCP is a destination's choice; a source says so on its migrate command. */
	assert_int_equal(parse("--kernel", "k", "--insecure-migration", NULL), -EINVAL);
	assert_err_contains("only applies to --incoming");
	/* A source's default credentials. */
	assert_int_equal(parse("--kernel", "k", "--migration-tls", "psk=/k", NULL), 0);
	/* Host resources are not machine options. */
	assert_int_equal(parse("--restore", "d", "--disk", "/img/a.qcow2", "--disk",
			       "/img/b,readonly", "--net", "user", NULL),
			 0);
	assert_int_equal(cfg.ndisks, 2);
	free((char *)cfg.disks[0].path);
	free((char *)cfg.disks[1].path);
	assert_int_equal(
		parse("--incoming", "tcp:h:1", "--insecure-migration", "--disk", "/img/a", NULL),
		0);
	free((char *)cfg.disks[0].path);
}

static void test_timeout(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", "--timeout", "0", NULL), -EINVAL);
	assert_err_contains("--timeout");
	assert_int_equal(parse("--kernel", "k", "--timeout", "604801", NULL), -EINVAL);
	assert_err_contains("--timeout");
	assert_int_equal(parse("--kernel", "k", "--timeout", "1s", NULL), -EINVAL);
	assert_int_equal(parse("--kernel", "k", "--timeout", "30", NULL), 0);
	assert_int_equal(cfg.timeout_s, 30);
}

static void test_cpu_features(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", "--cpu-features", "-smap,+x2apic", NULL), 0);
	assert_int_equal(cfg.ncpu_changes, 2);
	assert_non_null(cfg.cpu_changes[0].feature);
	assert_string_equal(cfg.cpu_changes[0].feature->name, "smap");
	assert_false(cfg.cpu_changes[0].enable);
	assert_string_equal(cfg.cpu_changes[1].feature->name, "x2apic");
	assert_true(cfg.cpu_changes[1].enable);

	/* Repeated options accumulate. */
	assert_int_equal(
		parse("--kernel", "k", "--cpu-features", "-pcid", "--cpu-features", "avx2", NULL),
		0);
	assert_int_equal(cfg.ncpu_changes, 2);
	assert_string_equal(cfg.cpu_changes[0].feature->name, "pcid");
	assert_string_equal(cfg.cpu_changes[1].feature->name, "avx2");
	assert_true(cfg.cpu_changes[1].enable);

	assert_int_equal(parse("--kernel", "k", "--cpu-features", "-smap,+warpdrive", NULL),
			 -EINVAL);
	assert_err_contains("--cpu-features");
	assert_err_contains("warpdrive");
}

static void test_help(void **state)
{
	(void)state;
	assert_int_equal(parse("--help", NULL), 1);
	assert_int_equal(parse("-h", NULL), 1);
	assert_int_equal(parse("--kernel", "k", "--help", NULL), 1);
	assert_non_null(strstr(config_run_usage(), "--kernel"));
	assert_non_null(strstr(config_run_usage(), "--cpu-features"));
}

/* Parsing twice in one process must give the same result as parsing once. */
static void test_reparse_is_independent(void **state)
{
	(void)state;
	assert_int_equal(parse("--kernel", "k", "--cpus", "8", "-m", "1G", NULL), 0);
	assert_int_equal(cfg.ncpus, 8);
	assert_int_equal(parse("--kernel", "other", NULL), 0);
	assert_string_equal(cfg.kernel, "other");
	assert_int_equal(cfg.ncpus, 1);
	assert_true(cfg.mem_size == 256 * MIB);
	/* Options after a positional argument (permutation) are still seen. */
	assert_int_equal(parse("--kernel", "k", "extra", "--cpus", "2", NULL), -EINVAL);
	assert_err_contains("extra");
	assert_int_equal(parse("--payload", "p", NULL), 0);
	assert_string_equal(cfg.payload, "p");
}

/* An earlier parse that stopped in the middle of a cluster of short options ("-hv") must not
 * leak the rest of that cluster into the next parse. */
static void test_reparse_after_short_option_cluster(void **state)
{
	/* Both argument vectors stay alive, so a stale pointer into the first is harmless. */
	static char run[] = "run", hv[] = "-hv", kopt[] = "--kernel", kval[] = "k";
	char *argv1[] = { run, hv, NULL };
	char *argv2[] = { run, kopt, kval, NULL };
	int ret;

	(void)state;
	assert_int_equal(config_parse_run(2, argv1, &cfg, err, sizeof(err)), 1);
	ret = config_parse_run(3, argv2, &cfg, err, sizeof(err));
	if (ret != 0)
		fail_msg("second parse returned %d: %s", ret, err);
	assert_string_equal(cfg.kernel, "k");
	assert_int_equal(cfg.verbosity, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_virtio_options),
		cmocka_unit_test(test_balloon_vsock_options),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_memory),
		cmocka_unit_test(test_cpus),
		cmocka_unit_test(test_unknown_option),
		cmocka_unit_test(test_missing_value),
		cmocka_unit_test(test_guest_choice),
		cmocka_unit_test(test_console),
		cmocka_unit_test(test_console_socket_path_too_long),
		cmocka_unit_test(test_on_reboot),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_boot_protocol),
		cmocka_unit_test(test_profile),
		cmocka_unit_test(test_cpu_features),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_migration_trust),
		cmocka_unit_test(test_reparse_is_independent),
		cmocka_unit_test(test_reparse_after_short_option_cluster),
	};

	return cmocka_run_group_tests(tests, NULL, group_teardown);
}
