/* SPDX-License-Identifier: MIT */
/* Intel MultiProcessor Specification 1.4 table, for guests without ACPI (acpi=off or kernels
 * built without it): processors, buses, the IOAPIC and ISA interrupt routing. */
#ifndef VIREO_BOOT_MPTABLE_H
#define VIREO_BOOT_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

/* Writes the floating pointer then the configuration table into buf (seen at gpa). Returns bytes
 * used or -ENOSPC. */
int mptable_build(uint8_t *buf, size_t avail, uint64_t gpa, unsigned int ncpus);

#endif
