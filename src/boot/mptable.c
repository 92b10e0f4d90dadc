// SPDX-License-Identifier: MIT
#include "mptable.h"

#include <errno.h>
#include <string.h>

#include "../common/bytebuf.h"
#include "../common/util.h"
#include "../devices/platform.h"
#include "layout.h"

#define MPF_SIZE 16
#define MPC_HEADER_SIZE 44
#define BUS_PCI 0
#define BUS_ISA 1

static void irq_entry(struct bytebuf *w, uint8_t type, uint16_t flags, uint8_t bus, uint8_t irq,
		      uint8_t apic, uint8_t pin)
{
	bytebuf_put8(w, 3);
	bytebuf_put8(w, type);
	bytebuf_put16(w, flags);
	bytebuf_put8(w, bus);
	bytebuf_put8(w, irq);
	bytebuf_put8(w, apic);
	bytebuf_put8(w, pin);
}

int mptable_build(uint8_t *buf, size_t avail, uint64_t gpa, unsigned int ncpus)
{
	struct bytebuf w = { buf, 0, avail, false };
	uint8_t ioapic_id = (uint8_t)ncpus; /* after the processors, as PC firmware does */
	size_t mpc;
	uint16_t count = 0;

	if (avail < MPF_SIZE + MPC_HEADER_SIZE)
		return -ENOSPC;
	memset(buf, 0, avail);
	/* Floating pointer structure. */
	bytebuf_put(&w, "_MP_", 4);
	bytebuf_put32(&w, (uint32_t)(gpa + MPF_SIZE));
	bytebuf_put8(&w, 1); /* length in 16-byte units */
	bytebuf_put8(&w, 4); /* spec 1.4 */
	bytebuf_put8(&w, 0); /* checksum */
	bytebuf_put8(&w, 0); /* a configuration table is present */
	bytebuf_put8(&w, 0); /* virtual wire mode, no IMCR */
	bytebuf_put8(&w, 0);
	bytebuf_put8(&w, 0);
	bytebuf_put8(&w, 0);
	buf[10] = checksum8(buf, MPF_SIZE);

	mpc = w.len;
	bytebuf_put(&w, "PCMP", 4);
	bytebuf_put16(&w, 0); /* length, patched below */
	bytebuf_put8(&w, 4);
	bytebuf_put8(&w, 0); /* checksum */
	bytebuf_put(&w, "VIREO   ", 8);
	bytebuf_put(&w, "VIREOVM     ", 12);
	bytebuf_put32(&w, 0);
	bytebuf_put16(&w, 0);
	bytebuf_put16(&w, 0); /* entry count, patched below */
	bytebuf_put32(&w, LAPIC_ADDR);
	bytebuf_put16(&w, 0);
	bytebuf_put8(&w, 0);
	bytebuf_put8(&w, 0);

	for (unsigned int i = 0; i < ncpus; i++, count++) {
		bytebuf_put8(&w, 0);
		bytebuf_put8(&w, (uint8_t)i);
		bytebuf_put8(&w, 0x14); /* LAPIC version */
		bytebuf_put8(&w, i == 0 ? 3 : 1); /* enabled, bootstrap processor */
		bytebuf_put32(&w, 0x600); /* family 6 */
		bytebuf_put32(&w, 0x201); /* FPU, APIC */
		bytebuf_put32(&w, 0);
		bytebuf_put32(&w, 0);
	}
	bytebuf_put8(&w, 1);
	bytebuf_put8(&w, BUS_PCI);
	bytebuf_put(&w, "PCI   ", 6);
	bytebuf_put8(&w, 1);
	bytebuf_put8(&w, BUS_ISA);
	bytebuf_put(&w, "ISA   ", 6);
	count += 2;
	bytebuf_put8(&w, 2);
	bytebuf_put8(&w, ioapic_id);
	bytebuf_put8(&w, 0x11);
	bytebuf_put8(&w, 1);
	bytebuf_put32(&w, IOAPIC_ADDR);
	count++;
	/* ISA IRQs: 0 goes to pin 2 (as the MADT override says), 2 is the cascade. */
	irq_entry(&w, 3, 0, BUS_ISA, 0, ioapic_id, 0); /* ExtINT through pin 0 */
	count++;
	for (uint8_t irq = 0; irq < 16; irq++) {
		if (irq == 2)
			continue;
		irq_entry(&w, 0, irq == ACPI_SCI_IRQ ? 0x000d : 0, BUS_ISA, irq, ioapic_id,
			  irq == 0 ? 2 : irq);
		count++;
	}
	/* Local interrupts: ExtINT on LINT0, NMI on LINT1, all processors. */
	bytebuf_put8(&w, 4);
	bytebuf_put8(&w, 3);
	bytebuf_put16(&w, 0);
	bytebuf_put8(&w, BUS_ISA);
	bytebuf_put8(&w, 0);
	bytebuf_put8(&w, 0xff);
	bytebuf_put8(&w, 0);
	bytebuf_put8(&w, 4);
	bytebuf_put8(&w, 1);
	bytebuf_put16(&w, 0);
	bytebuf_put8(&w, BUS_ISA);
	bytebuf_put8(&w, 0);
	bytebuf_put8(&w, 0xff);
	bytebuf_put8(&w, 1);
	count += 2;

	if (w.overflow)
		return -ENOSPC;
	buf[mpc + 4] = (uint8_t)(w.len - mpc);
	buf[mpc + 5] = (uint8_t)((w.len - mpc) >> 8);
	buf[mpc + 34] = (uint8_t)count;
	buf[mpc + 35] = (uint8_t)(count >> 8);
	buf[mpc + 7] = checksum8(buf + mpc, w.len - mpc);
	return (int)w.len;
}
