/* SPDX-License-Identifier: MIT */
#ifndef VIREO_VMM_VMM_H
#define VIREO_VMM_VMM_H

/* `vireo run ARGS`: argv[0] is "run" and argv[-1] the program (kept for restart). */
int vmm_run_main(int argc, char **argv);

#endif
