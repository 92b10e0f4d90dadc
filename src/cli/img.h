/* SPDX-License-Identifier: MIT */
/* `vireo img`: offline disk image tool. */
#ifndef VIREO_CLI_IMG_H
#define VIREO_CLI_IMG_H

/* argv[0] is "img". Returns the process exit status. */
int img_main(int argc, char **argv);

#endif
