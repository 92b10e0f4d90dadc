// SPDX-License-Identifier: MIT
/* The `vireo` command: subcommand dispatch. */
#include <stdio.h>
#include <string.h>

#include "../vmm/vmm.h"
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
	"  version    print the version\n"
	"  help       this text\n";

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
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("vireo %s\n", VIREO_VERSION);
		return 0;
	}
	fprintf(stderr, "vireo: unknown command '%s'\n\n%s", argv[1], usage);
	return 2;
}
