// SPDX-License-Identifier: MIT
#include "mptable.h"

#include <errno.h>
#include <string.h>

#include "../common/util.h"
#include "../devices/platform.h"
#include "layout.h"

#define MPF_SIZE 16
#define MPC_HEADER_SIZE 44
#define BUS_PCI 0
#define BUS_ISA 1

struct writer {
	uint8_t *p;
	size_t len, avail;
};

static void w8(struct writer *w, uint8_t v)
{
	if (w->len < w->avail)
		w->p[w->len] = v;
	w->len++;
}

static void w16(struct writer *w, uint16_t v)
{
	w8(w, (uint8_t)v);
	w8(w, (uint8_t)(v >> 8));
}

static void w32(struct writer *w, uint32_t v)
{
	w16(w, (uint16_t)v);
	w16(w, (uint16_t)(v >> 16));
}

static void wstr(struct writer *w, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		w8(w, (uint8_t)s[i]);
}

static void irq_entry(struct writer *w, uint8_t type, uint16_t flags, uint8_t bus, uint8_t irq,
		      uint8_t apic, uint8_t pin)
{
	w8(w, 3);
	w8(w, type);
	w16(w, flags);
	w8(w, bus);
	w8(w, irq);
	w8(w, apic);
	w8(w, pin);
}

int mptable_build(uint8_t *buf, size_t avail, uint64_t gpa, unsigned int ncpus)
{
	struct writer w = { buf, 0, avail };
	uint8_t ioapic_id = (uint8_t)ncpus; /* after the processors, as PC firmware does */
	size_t mpc;
	uint16_t count = 0;

	if (avail < MPF_SIZE + MPC_HEADER_SIZE)
		return -ENOSPC;
	memset(buf, 0, avail);
	/* Floating pointer structure. */
	wstr(&w, "_MP_", 4);
	w32(&w, (uint32_t)(gpa + MPF_SIZE));
	w8(&w, 1); /* length in 16-byte units */
	w8(&w, 4); /* spec 1.4 */
	w8(&w, 0); /* checksum */
	w8(&w, 0); /* a configuration table is present */
	w8(&w, 0); /* virtual wire mode, no IMCR */
	w8(&w, 0);
	w8(&w, 0);
	w8(&w, 0);
	buf[10] = checksum8(buf, MPF_SIZE);

	mpc = w.len;
	wstr(&w, "PCMP", 4);
	w16(&w, 0); /* length, patched below */
	w8(&w, 4);
	w8(&w, 0); /* checksum */
	wstr(&w, "VIREO   ", 8);
	wstr(&w, "VIREOVM     ", 12);
	w32(&w, 0);
	w16(&w, 0);
	w16(&w, 0); /* entry count, patched below */
	w32(&w, LAPIC_ADDR);
	w16(&w, 0);
	w8(&w, 0);
	w8(&w, 0);

	for (unsigned int i = 0; i < ncpus; i++, count++) {
		w8(&w, 0);
		w8(&w, (uint8_t)i);
		w8(&w, 0x14); /* LAPIC version */
		w8(&w, i == 0 ? 3 : 1); /* enabled, bootstrap processor */
		w32(&w, 0x600); /* family 6 */
		w32(&w, 0x201); /* FPU, APIC */
		w32(&w, 0);
		w32(&w, 0);
	}
	w8(&w, 1);
	w8(&w, BUS_PCI);
	wstr(&w, "PCI   ", 6);
	w8(&w, 1);
	w8(&w, BUS_ISA);
	wstr(&w, "ISA   ", 6);
	count += 2;
	w8(&w, 2);
	w8(&w, ioapic_id);
	w8(&w, 0x11);
	w8(&w, 1);
	w32(&w, IOAPIC_ADDR);
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
	w8(&w, 4);
	w8(&w, 3);
	w16(&w, 0);
	w8(&w, BUS_ISA);
	w8(&w, 0);
	w8(&w, 0xff);
	w8(&w, 0);
	w8(&w, 4);
	w8(&w, 1);
	w16(&w, 0);
	w8(&w, BUS_ISA);
	w8(&w, 0);
	w8(&w, 0xff);
	w8(&w, 1);
	count += 2;

	if (w.len > avail)
		return -ENOSPC;
	buf[mpc + 4] = (uint8_t)(w.len - mpc);
	buf[mpc + 5] = (uint8_t)((w.len - mpc) >> 8);
	buf[mpc + 34] = (uint8_t)count;
	buf[mpc + 35] = (uint8_t)(count >> 8);
	buf[mpc + 7] = checksum8(buf + mpc, w.len - mpc);
	return (int)w.len;
}
