// SPDX-License-Identifier: MIT
/* `vireo run`: one VM in this process. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "config.h"
#include "vm.h"
#include "vmm.h"

static struct vm the_vm;

static void restore_terminal(void)
{
	console_restore(&the_vm.console);
}

int vmm_run_main(int argc, char **argv)
{
	static struct vm_config cfg;
	char err[512];
	int ret, status;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	vmm_start_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;

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

	if (vm_create(&the_vm, &cfg)) {
		vm_destroy(&the_vm);
		return EXIT_ERROR;
	}
	if (console_open(&the_vm.console, cfg.console, cfg.console_path)) {
		vm_destroy(&the_vm);
		return EXIT_ERROR;
	}
	if (the_vm.console.escape_enabled)
		pr_info("console on this terminal; press Ctrl-A x to quit");
	status = vm_run(&the_vm);
	console_close(&the_vm.console);

	switch (the_vm.stop_reason) {
	case STOP_POWEROFF:
		pr_info("guest powered off");
		break;
	case STOP_REBOOT:
		if (cfg.on_reboot == REBOOT_RESTART) {
			pr_info("guest rebooted: restarting");
			vm_destroy(&the_vm);
			/* A fresh process is the most complete reset there is. */
			execv("/proc/self/exe", argv - 1);
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
