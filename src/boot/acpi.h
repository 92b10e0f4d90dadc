/* SPDX-License-Identifier: MIT */
/* ACPI tables for the guest: RSDP, RSDT, XSDT, FADT, FACS, DSDT (AML for the PCI root bridge and
 * the S5 soft-off state), MADT (one LAPIC per vCPU, the IOAPIC, ISA overrides) and MCFG. */
#ifndef VIREO_BOOT_ACPI_H
#define VIREO_BOOT_ACPI_H

#include <stddef.h>
#include <stdint.h>

/* Builds all tables into buf, which the guest sees at gpa; the RSDP comes first (so gpa must be
 * 16-byte aligned and inside 0xE0000-0xFFFFF for a scanning guest). Returns the bytes used or
 * -ENOSPC. */
int acpi_build(uint8_t *buf, size_t avail, uint64_t gpa, unsigned int ncpus);

/* Offsets and sizes, for tests. */
#define ACPI_HEADER_SIZE 36
#define ACPI_RSDP_SIZE 36

#endif
