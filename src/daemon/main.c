// SPDX-License-Identifier: MIT
/*
 * vireod: the host daemon. First increment: option parsing only; the modules declared in the
 * headers next to this file land next (store, vmdef, vmm, supervisor, tasks, consoles).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "supervisor.h"
#include "vmdef.h"
#include "vmm.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: vireod [--state-dir DIR] [--socket PATH] [--vireo PATH]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "vireo", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c == '?') {
			usage(stderr);
			return 2;
		}
	}
	fprintf(stderr, "vireod: not functional yet (modules landing)\n");
	return 1;
}
