// SPDX-License-Identifier: MIT
#include "acpi.h"

#include <errno.h>
#include <string.h>

#include "../common/util.h"
#include "../devices/pci.h"
#include "../devices/platform.h"
#include "layout.h"

/* A growing byte buffer for one table or one piece of AML. */
struct blob {
	uint8_t data[4096];
	size_t len;
	int overflow;
};

static void put(struct blob *b, const void *p, size_t n)
{
	if (b->len + n > sizeof(b->data)) {
		b->overflow = 1;
		return;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put8(struct blob *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put16(struct blob *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	put(b, x, 2);
}

static void put32(struct blob *b, uint32_t v)
{
	put16(b, (uint16_t)v);
	put16(b, (uint16_t)(v >> 16));
}

static void put64(struct blob *b, uint64_t v)
{
	put32(b, (uint32_t)v);
	put32(b, (uint32_t)(v >> 32));
}

static void put_header(struct blob *b, const char *sig, uint8_t rev)
{
	put(b, sig, 4);
	put32(b, 0); /* length, patched by finish() */
	put8(b, rev);
	put8(b, 0); /* checksum, patched by finish() */
	put(b, "VIREO ", 6);
	put(b, "VIREOVM ", 8);
	put32(b, 1);
	put(b, "VIRO", 4);
	put32(b, 1);
}

static void finish(struct blob *b)
{
	b->data[4] = (uint8_t)b->len;
	b->data[5] = (uint8_t)(b->len >> 8);
	b->data[6] = (uint8_t)(b->len >> 16);
	b->data[7] = (uint8_t)(b->len >> 24);
	b->data[9] = 0;
	b->data[9] = checksum8(b->data, b->len);
}

/* Generic Address Structure for a system I/O port. */
static void put_gas_io(struct blob *b, uint16_t port, uint8_t bits, uint8_t access)
{
	put8(b, 1); /* system I/O */
	put8(b, bits);
	put8(b, 0);
	put8(b, access);
	put64(b, port);
}

/* --- AML --- */

/* PkgLength covers itself plus the payload. */
static void aml_pkg(struct blob *out, uint8_t op_prefix, uint8_t op, const struct blob *body,
		    int has_prefix)
{
	size_t n = body->len;

	if (has_prefix)
		put8(out, op_prefix);
	put8(out, op);
	if (n + 1 < 0x40) {
		put8(out, (uint8_t)(n + 1));
	} else if (n + 2 < 0x1000) {
		size_t t = n + 2;
		put8(out, (uint8_t)(0x40 | (t & 0xf)));
		put8(out, (uint8_t)(t >> 4));
	} else {
		size_t t = n + 3;
		put8(out, (uint8_t)(0x80 | (t & 0xf)));
		put8(out, (uint8_t)(t >> 4));
		put8(out, (uint8_t)(t >> 12));
	}
	put(out, body->data, body->len);
}

static void aml_name(struct blob *b, const char *name)
{
	put8(b, 0x08); /* NameOp */
	put(b, name, strlen(name));
}

static void aml_dword(struct blob *b, uint32_t v)
{
	put8(b, 0x0c);
	put32(b, v);
}

static void aml_integer(struct blob *b, uint64_t v)
{
	if (v == 0) {
		put8(b, 0x00);
	} else if (v == 1) {
		put8(b, 0x01);
	} else if (v <= 0xff) {
		put8(b, 0x0a);
		put8(b, (uint8_t)v);
	} else if (v <= 0xffff) {
		put8(b, 0x0b);
		put16(b, (uint16_t)v);
	} else {
		aml_dword(b, (uint32_t)v);
	}
}

/* EISA ID "PNP0A03" compressed into the 32-bit form ACPI uses. */
static uint32_t eisa_id(const char *id)
{
	uint32_t v = ((uint32_t)(id[0] - 0x40) << 26) | ((uint32_t)(id[1] - 0x40) << 21) |
		     ((uint32_t)(id[2] - 0x40) << 16);
	for (int i = 3; i < 7; i++) {
		char c = id[i];
		v |= (uint32_t)(c <= '9' ? c - '0' : c - 'A' + 10) << (4 * (6 - i));
	}
	/* stored big-endian */
	return ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >> 8) & 0xff00) | (v >> 24);
}

static void put_word_range(struct blob *r, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
	put8(r, 0x88); /* Word Address Space Descriptor */
	put16(r, 13);
	put8(r, type);
	put8(r, 0x0c); /* MinFixed, MaxFixed, producer */
	put8(r, tflags);
	put16(r, 0); /* granularity */
	put16(r, min);
	put16(r, max);
	put16(r, 0); /* translation */
	put16(r, (uint16_t)(max - min + 1));
}

static void build_pci0_crs(struct blob *r)
{
	put_word_range(r, 2, 0, 0, 0); /* bus numbers 0..0 */
	put_word_range(r, 1, 3, 0x0000, 0x0cf7); /* I/O below the config ports */
	put8(r, 0x47); /* I/O port descriptor: 0xCF8, 8 ports */
	put8(r, 1);
	put16(r, PCI_CONFIG_PORT);
	put16(r, PCI_CONFIG_PORT);
	put8(r, 1);
	put8(r, 8);
	put_word_range(r, 1, 3, 0x0d00, 0xffff); /* I/O above */
	put8(r, 0x87); /* DWord memory: the 32-bit MMIO window */
	put16(r, 23);
	put8(r, 0);
	put8(r, 0x0c);
	put8(r, 0x01); /* read-write, non-cacheable */
	put32(r, 0);
	put32(r, (uint32_t)PCI_MMIO32_BASE);
	put32(r, (uint32_t)(PCI_MMIO32_BASE + PCI_MMIO32_SIZE - 1));
	put32(r, 0);
	put32(r, (uint32_t)PCI_MMIO32_SIZE);
	put8(r, 0x79); /* end tag */
	put8(r, 0);
}

static void build_dsdt(struct blob *t)
{
	struct blob sb = { 0 }, dev = { 0 }, crs = { 0 }, buf = { 0 }, pkg = { 0 };

	put_header(t, "DSDT", 2);

	/* Device (PCI0) in \_SB: the PCI Express root bridge with its windows. */
	put(&dev, "PCI0", 4);
	aml_name(&dev, "_HID");
	aml_dword(&dev, eisa_id("PNP0A08"));
	aml_name(&dev, "_CID");
	aml_dword(&dev, eisa_id("PNP0A03"));
	aml_name(&dev, "_SEG");
	aml_integer(&dev, 0);
	aml_name(&dev, "_BBN");
	aml_integer(&dev, 0);
	aml_name(&dev, "_UID");
	aml_integer(&dev, 0);
	build_pci0_crs(&crs);
	aml_integer(&buf, crs.len);
	put(&buf, crs.data, crs.len);
	aml_name(&dev, "_CRS");
	aml_pkg(&dev, 0, 0x11, &buf, 0); /* BufferOp */

	put8(&sb, '\\');
	put(&sb, "_SB_", 4);
	aml_pkg(&sb, 0x5b, 0x82, &dev, 1); /* DeviceOp */
	aml_pkg(t, 0, 0x10, &sb, 0); /* ScopeOp */

	/* Name (\_S5, Package () { SLP_TYPa, SLP_TYPb, 0, 0 }): soft off. */
	put8(&pkg, 4);
	aml_integer(&pkg, ACPI_S5_SLP_TYP);
	aml_integer(&pkg, ACPI_S5_SLP_TYP);
	aml_integer(&pkg, 0);
	aml_integer(&pkg, 0);
	put8(t, 0x08);
	put8(t, '\\');
	put(t, "_S5_", 4);
	aml_pkg(t, 0, 0x12, &pkg, 0); /* PackageOp */
	if (sb.overflow || dev.overflow || crs.overflow || buf.overflow || pkg.overflow)
		t->overflow = 1;
	finish(t);
}

static void build_fadt(struct blob *t, uint64_t facs, uint64_t dsdt)
{
	put_header(t, "FACP", 6);
	put32(t, (uint32_t)facs);
	put32(t, (uint32_t)dsdt);
	put8(t, 0); /* reserved */
	put8(t, 0); /* preferred PM profile: unspecified */
	put16(t, ACPI_SCI_IRQ);
	put32(t, 0); /* SMI_CMD: none, ACPI is always enabled */
	put8(t, 0);
	put8(t, 0);
	put8(t, 0);
	put8(t, 0);
	put32(t, ACPI_PM1_EVT_PORT);
	put32(t, 0);
	put32(t, ACPI_PM1_CNT_PORT);
	put32(t, 0);
	put32(t, 0); /* PM2_CNT */
	put32(t, ACPI_PM_TMR_PORT);
	put32(t, 0); /* GPE0 */
	put32(t, 0); /* GPE1 */
	put8(t, 4); /* PM1_EVT_LEN */
	put8(t, 2); /* PM1_CNT_LEN */
	put8(t, 0);
	put8(t, 4); /* PM_TMR_LEN */
	put8(t, 0);
	put8(t, 0);
	put8(t, 0);
	put8(t, 0); /* CST_CNT */
	put16(t, 0x0fff); /* C2 latency: not supported */
	put16(t, 0x0fff); /* C3 latency: not supported */
	put16(t, 0);
	put16(t, 0);
	put8(t, 0);
	put8(t, 0);
	put8(t, 0);
	put8(t, 0);
	put8(t, 0x32); /* CMOS century register */
	put16(t, 0x0003); /* IAPC_BOOT_ARCH: legacy devices, 8042 */
	put8(t, 0);
	/* WBINVD | PROC_C1 | SLP_BUTTON (none) | TMR_VAL_EXT | RESET_REG_SUP */
	put32(t, (1u << 0) | (1u << 2) | (1u << 5) | (1u << 8) | (1u << 10));
	put_gas_io(t, RESET_CONTROL_PORT, 8, 1);
	put8(t, RESET_CONTROL_VALUE);
	put16(t, 0); /* ARM boot arch */
	put8(t, 0); /* FADT minor version */
	put64(t, facs);
	put64(t, dsdt);
	put_gas_io(t, ACPI_PM1_EVT_PORT, 32, 2);
	put_gas_io(t, 0, 0, 0);
	put_gas_io(t, ACPI_PM1_CNT_PORT, 16, 2);
	put_gas_io(t, 0, 0, 0);
	put_gas_io(t, 0, 0, 0);
	put_gas_io(t, ACPI_PM_TMR_PORT, 32, 3);
	put_gas_io(t, 0, 0, 0);
	put_gas_io(t, 0, 0, 0);
	put_gas_io(t, 0, 0, 0); /* sleep control */
	put_gas_io(t, 0, 0, 0); /* sleep status */
	put(t, "VIREOKVM", 8); /* hypervisor vendor identity */
	finish(t);
}

static void build_madt(struct blob *t, unsigned int ncpus)
{
	put_header(t, "APIC", 5);
	put32(t, LAPIC_ADDR);
	put32(t, 1); /* PCAT_COMPAT: dual 8259s present */
	for (unsigned int i = 0; i < ncpus; i++) {
		put8(t, 0); /* processor local APIC */
		put8(t, 8);
		put8(t, (uint8_t)i);
		put8(t, (uint8_t)i);
		put32(t, 1); /* enabled */
	}
	put8(t, 1); /* I/O APIC */
	put8(t, 12);
	put8(t, 0);
	put8(t, 0);
	put32(t, IOAPIC_ADDR);
	put32(t, 0);
	put8(t, 2); /* ISA IRQ 0 -> GSI 2 (the PIT on the IOAPIC) */
	put8(t, 10);
	put8(t, 0);
	put8(t, 0);
	put32(t, 2);
	put16(t, 0);
	put8(t, 2); /* SCI: level triggered, active high */
	put8(t, 10);
	put8(t, 0);
	put8(t, ACPI_SCI_IRQ);
	put32(t, ACPI_SCI_IRQ);
	put16(t, 0x000d);
	put8(t, 4); /* local APIC NMI on LINT1 of every processor */
	put8(t, 6);
	put8(t, 0xff);
	put16(t, 0);
	put8(t, 1);
	finish(t);
}

static void build_mcfg(struct blob *t)
{
	put_header(t, "MCFG", 1);
	put64(t, 0);
	put64(t, PCI_ECAM_BASE);
	put16(t, 0); /* segment */
	put8(t, 0); /* start bus */
	put8(t, 0); /* end bus */
	put32(t, 0);
	finish(t);
}

static void build_facs(struct blob *t)
{
	put(t, "FACS", 4);
	put32(t, 64);
	put32(t, 0); /* hardware signature */
	put32(t, 0); /* waking vector */
	put32(t, 0); /* global lock */
	put32(t, 0); /* flags */
	put64(t, 0);
	put8(t, 2); /* version */
	while (t->len < 64)
		put8(t, 0);
}

static void build_sdt(struct blob *t, const char *sig, const uint64_t *tables, int n, int wide)
{
	put_header(t, sig, 1);
	for (int i = 0; i < n; i++) {
		if (wide)
			put64(t, tables[i]);
		else
			put32(t, (uint32_t)tables[i]);
	}
	finish(t);
}

/* Appends a finished table at a 16-byte (FACS: 64-byte) aligned offset; returns its address. */
static int place(uint8_t *buf, size_t avail, size_t *off, uint64_t gpa, const struct blob *t,
		 size_t align, uint64_t *addr)
{
	size_t at = ALIGN_UP(*off, align);

	if (t->overflow || at + t->len > avail)
		return -ENOSPC;
	memcpy(buf + at, t->data, t->len);
	*addr = gpa + at;
	*off = at + t->len;
	return 0;
}

int acpi_build(uint8_t *buf, size_t avail, uint64_t gpa, unsigned int ncpus)
{
	static struct blob t; /* 4 KiB: keep it off small thread stacks */
	uint64_t facs, dsdt, tables[3], rsdt, xsdt;
	size_t off = ACPI_RSDP_SIZE;
	struct blob rsdp = { 0 };

	if (avail < ACPI_RSDP_SIZE)
		return -ENOSPC;
	memset(buf, 0, avail);
	memset(&t, 0, sizeof(t));
	build_facs(&t);
	if (place(buf, avail, &off, gpa, &t, 64, &facs))
		return -ENOSPC;
	memset(&t, 0, sizeof(t));
	build_dsdt(&t);
	if (place(buf, avail, &off, gpa, &t, 16, &dsdt))
		return -ENOSPC;
	memset(&t, 0, sizeof(t));
	build_fadt(&t, facs, dsdt);
	if (place(buf, avail, &off, gpa, &t, 16, &tables[0]))
		return -ENOSPC;
	memset(&t, 0, sizeof(t));
	build_madt(&t, ncpus);
	if (place(buf, avail, &off, gpa, &t, 16, &tables[1]))
		return -ENOSPC;
	memset(&t, 0, sizeof(t));
	build_mcfg(&t);
	if (place(buf, avail, &off, gpa, &t, 16, &tables[2]))
		return -ENOSPC;
	memset(&t, 0, sizeof(t));
	build_sdt(&t, "RSDT", tables, 3, 0);
	if (place(buf, avail, &off, gpa, &t, 16, &rsdt))
		return -ENOSPC;
	memset(&t, 0, sizeof(t));
	build_sdt(&t, "XSDT", tables, 3, 1);
	if (place(buf, avail, &off, gpa, &t, 16, &xsdt))
		return -ENOSPC;

	put(&rsdp, "RSD PTR ", 8);
	put8(&rsdp, 0);
	put(&rsdp, "VIREO ", 6);
	put8(&rsdp, 2); /* ACPI 2.0+ */
	put32(&rsdp, (uint32_t)rsdt);
	put32(&rsdp, ACPI_RSDP_SIZE);
	put64(&rsdp, xsdt);
	put8(&rsdp, 0);
	put8(&rsdp, 0);
	put8(&rsdp, 0);
	put8(&rsdp, 0);
	rsdp.data[8] = checksum8(rsdp.data, 20);
	rsdp.data[32] = checksum8(rsdp.data, ACPI_RSDP_SIZE);
	memcpy(buf, rsdp.data, ACPI_RSDP_SIZE);
	return (int)off;
}
