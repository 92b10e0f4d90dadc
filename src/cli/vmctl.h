/* SPDX-License-Identifier: MIT */
#ifndef VIREO_CLI_VMCTL_H
#define VIREO_CLI_VMCTL_H

/* `vireo vmctl ARGS`: argv[0] is "vmctl". */
int vmctl_main(int argc, char **argv);

#endif
