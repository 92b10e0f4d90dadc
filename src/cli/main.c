// SPDX-License-Identifier: MIT
/* The `vireo` command: subcommand dispatch. */
#include <stdio.h>
#include <string.h>

#include "../vmm/vmm.h"
#include "client.h"
#include "img.h"
#include "vmctl.h"

#ifndef VIREO_VERSION
#define VIREO_VERSION "0.1.0"
#endif

static const char usage[] =
	"Usage: vireo COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  run        boot one virtual machine in this process (see vireo run --help)\n"
	"  img        create, inspect, check and convert disk images (see vireo img --help)\n"
	"  vmctl      control one `vireo run` VM through its control socket\n"
	"\n"
	"Through the host daemon vireod (see docs/api.md):\n"
	"  vm         list, create, start, stop, console, snapshot... VMs (vireo vm --help)\n"
	"  task       list, show, wait for and cancel tasks (vireo task --help)\n"
	"  token      create, list and revoke API tokens (vireo token --help)\n"
	"  host       show the host (vireo host show)\n"
	"\n"
	"  version    print the version\n"
	"  help       this text\n";

/* The API client commands: argv[0] is the noun. */
static int api_main(int argc, char **argv)
{
	struct client c;
	int rc = client_init(&c, &argc, &argv);

	if (rc)
		return rc;
	if (!strcmp(argv[0], "vm"))
		rc = cmd_vm_main(&c, argc, argv);
	else if (!strcmp(argv[0], "task"))
		rc = cmd_task_main(&c, argc, argv);
	else if (!strcmp(argv[0], "token"))
		rc = cmd_token_main(&c, argc, argv);
	else
		rc = cmd_host_main(&c, argc, argv);
	client_close(&c);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "run"))
		return vmm_run_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "img"))
		return img_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "vmctl"))
		return vmctl_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "vm") || !strcmp(argv[1], "task") || !strcmp(argv[1], "token") ||
	    !strcmp(argv[1], "host"))
		return api_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("vireo %s\n", VIREO_VERSION);
		return 0;
	}
	fprintf(stderr, "vireo: unknown command '%s'\n\n%s", argv[1], usage);
	return 2;
}
