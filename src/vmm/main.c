// SPDX-License-Identifier: MIT
/* `vireo run`: one VM in this process. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "config.h"
#include "control.h"
#include "jail.h"
#include "sandbox.h"
#include "vm.h"
#include "vmloop.h"
#include "vmm.h"
#include "vmstate.h"

static struct vm the_vm;
/* Outside struct vm: the VM does not know its control socket, which watches its fds through
 * vm_watch_fd (control_watch). */
static struct control the_control = { .listen_fd = -1 };

static void restore_terminal(void)
{
	console_restore(&the_vm.console);
}

/* Checks that this host gives the guest the CPUID it had, then loads the saved state into the
 * machine vm_create built from the snapshot's configuration. */
static int restore_load(struct vm *vm, struct restore_source *rs, const struct vm_config *cfg)
{
	int64_t t0, t1;
	int ret;

	if (vm->cpuid_fingerprint != rs->hdr.cpuid_fingerprint) {
		if (!cfg->force) {
			pr_err("--restore %s: this host's CPUID (fingerprint %016" PRIx64
			       ") differs from the snapshot's (%016" PRIx64
			       "); the guest may use features this CPU lacks. Use --force to "
			       "restore anyway",
			       rs->dir, vm->cpuid_fingerprint, rs->hdr.cpuid_fingerprint);
			return -EINVAL;
		}
		pr_warn("--restore %s: CPUID differs from the snapshot's; restoring anyway "
			"(--force)",
			rs->dir);
	}
	if (cfg->saved_tsc_khz)
		vm_set_tsc_khz(vm, cfg->saved_tsc_khz);
	t0 = clock_ns(CLOCK_MONOTONIC);
	ret = vmstate_load(vm, rs->body, rs->hdr.body_len, false);
	t1 = clock_ns(CLOCK_MONOTONIC);
	if (ret) {
		pr_err("--restore %s: the saved state could not be loaded", rs->dir);
		return ret;
	}
	pr_debug("restore: state loaded in %.3f ms", (double)(t1 - t0) / 1e6);
	return 0;
}

int vmm_run_main(int argc, char **argv)
{
	static struct vm_config cfg;
	struct restore_source restore = { .mem_fd = -1 };
	uint64_t mig_fp = 0;
	struct mig_chan mig = { .fd = -1 };
	char err[512];
	int ret, status;

	vmm_start_ns = (uint64_t)clock_ns(CLOCK_MONOTONIC);

	ret = config_parse_run(argc, argv, &cfg, err, sizeof(err));
	if (ret == 1) {
		fputs(config_run_usage(), stdout);
		return 0;
	}
	if (ret < 0) {
		fprintf(stderr, "vireo run: %s\n", err);
		return EXIT_USAGE;
	}
	if (cfg.verbosity < 0)
		log_max_level = LOG_ERROR;
	else if (cfg.verbosity == 1)
		log_max_level = LOG_INFO;
	else if (cfg.verbosity > 1)
		log_max_level = LOG_DEBUG;
	log_set_exit_hook(restore_terminal);
	if (sandbox_init(&cfg.sandbox) || (cfg.jail && jail_enter(&cfg)) || sandbox_build())
		return EXIT_ERROR;

	if (cfg.restore) {
		if (restore_open(&restore, cfg.restore, &cfg)) {
			restore_close(&restore);
			return EXIT_ERROR;
		}
		cfg.ram_from_fd = true;
		cfg.ram_fd = restore.mem_fd;
	}
	if (cfg.incoming) {
		if (migration_incoming_accept(&cfg, &mig_fp, &mig))
			return EXIT_ERROR;
	}
	/* The sandbox closes once the machine is built, before any saved state is parsed. */
	if (vm_create(&the_vm, &cfg) || sandbox_lockdown() ||
	    (cfg.restore && restore_load(&the_vm, &restore, &cfg))) {
		if (mig.fd >= 0)
			mig_chan_close(&mig, false);
		vm_destroy(&the_vm);
		restore_close(&restore);
		return EXIT_ERROR;
	}
	if (mig.fd >= 0 && cfg.saved_tsc_khz)
		vm_set_tsc_khz(&the_vm, cfg.saved_tsc_khz);
	if (mig.fd >= 0 && migration_incoming_receive(&the_vm, &mig, mig_fp)) {
		vm_destroy(&the_vm);
		return EXIT_ERROR;
	}
	/* The mapping keeps the memory file; the state file is no longer needed. */
	restore_close(&restore);
	if (console_open(&the_vm.console, cfg.console, cfg.console_path)) {
		vm_destroy(&the_vm);
		return EXIT_ERROR;
	}
	/* The control socket comes last: once it exists, the console (a file a client may wait
	 * for) and everything else is in place. */
	if (cfg.api_sock &&
	    (control_open(&the_control, cfg.api_sock) || control_watch(&the_control, &the_vm))) {
		control_close(&the_control);
		console_close(&the_vm.console);
		vm_destroy(&the_vm);
		return EXIT_ERROR;
	}
	if (the_vm.console.escape_enabled)
		pr_info("console on this terminal; press Ctrl-A x to quit");
	status = vm_run(&the_vm);
	console_close(&the_vm.console);
	control_close(&the_control);

	switch (the_vm.stop_reason) {
	case STOP_POWEROFF:
		pr_info("guest powered off");
		break;
	case STOP_MIGRATED:
		pr_info("the guest runs on the migration destination now");
		break;
	case STOP_REBOOT:
		if (cfg.on_reboot == REBOOT_RESTART) {
			pr_info("guest rebooted: restarting");
			vm_destroy(&the_vm);
			sandbox_before_exec();
			/* A fresh process is the most complete reset there is. */
			jail_exec_self(argv - 1);
			pr_err("restart failed: %s", strerror(errno));
			return EXIT_ERROR;
		}
		pr_info("guest rebooted (--on-reboot exit)");
		break;
	default:
		break;
	}
	vm_destroy(&the_vm);
	return status;
}
