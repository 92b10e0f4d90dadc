/* SPDX-License-Identifier: MIT */
/* Shared between the api_*.c files; not for other modules. */
#ifndef VIREO_DAEMON_API_INT_H
#define VIREO_DAEMON_API_INT_H

#include <stdint.h>

/* MemTotal and MemAvailable of /proc/meminfo, in bytes (0 when unknown). 0 or -errno. */
int host_meminfo(uint64_t *total, uint64_t *available);

#endif
