// SPDX-License-Identifier: MIT
#include "acpi.h"

#include <errno.h>
#include <string.h>

#include "../common/bytebuf.h"
#include "../common/util.h"
#include "../devices/pci.h"
#include "../devices/platform.h"
#include "layout.h"

static void put_header(struct bytebuf *b, const char *sig, uint8_t rev)
{
	bytebuf_put(b, sig, 4);
	bytebuf_put32(b, 0); /* length, patched by finish() */
	bytebuf_put8(b, rev);
	bytebuf_put8(b, 0); /* checksum, patched by finish() */
	bytebuf_put(b, "VIREO ", 6);
	bytebuf_put(b, "VIREOVM ", 8);
	bytebuf_put32(b, 1);
	bytebuf_put(b, "VIRO", 4);
	bytebuf_put32(b, 1);
}

static void finish(struct bytebuf *b)
{
	b->data[4] = (uint8_t)b->len;
	b->data[5] = (uint8_t)(b->len >> 8);
	b->data[6] = (uint8_t)(b->len >> 16);
	b->data[7] = (uint8_t)(b->len >> 24);
	b->data[9] = 0;
	b->data[9] = checksum8(b->data, b->len);
}

/* Generic Address Structure for a system I/O port. */
static void put_gas_io(struct bytebuf *b, uint16_t port, uint8_t bits, uint8_t access)
{
	bytebuf_put8(b, 1); /* system I/O */
	bytebuf_put8(b, bits);
	bytebuf_put8(b, 0);
	bytebuf_put8(b, access);
	bytebuf_put64(b, port);
}

/* --- AML --- */

/* PkgLength covers itself plus the payload. */
static void aml_pkg(struct bytebuf *out, uint8_t op_prefix, uint8_t op, const struct bytebuf *body,
		    int has_prefix)
{
	size_t n = body->len;

	if (has_prefix)
		bytebuf_put8(out, op_prefix);
	bytebuf_put8(out, op);
	if (n + 1 < 0x40) {
		bytebuf_put8(out, (uint8_t)(n + 1));
	} else if (n + 2 < 0x1000) {
		size_t t = n + 2;
		bytebuf_put8(out, (uint8_t)(0x40 | (t & 0xf)));
		bytebuf_put8(out, (uint8_t)(t >> 4));
	} else {
		size_t t = n + 3;
		bytebuf_put8(out, (uint8_t)(0x80 | (t & 0xf)));
		bytebuf_put8(out, (uint8_t)(t >> 4));
		bytebuf_put8(out, (uint8_t)(t >> 12));
	}
	bytebuf_put(out, body->data, body->len);
}

static void aml_name(struct bytebuf *b, const char *name)
{
	bytebuf_put8(b, 0x08); /* NameOp */
	bytebuf_put(b, name, strlen(name));
}

static void aml_dword(struct bytebuf *b, uint32_t v)
{
	bytebuf_put8(b, 0x0c);
	bytebuf_put32(b, v);
}

static void aml_integer(struct bytebuf *b, uint64_t v)
{
	if (v == 0) {
		bytebuf_put8(b, 0x00);
	} else if (v == 1) {
		bytebuf_put8(b, 0x01);
	} else if (v <= 0xff) {
		bytebuf_put8(b, 0x0a);
		bytebuf_put8(b, (uint8_t)v);
	} else if (v <= 0xffff) {
		bytebuf_put8(b, 0x0b);
		bytebuf_put16(b, (uint16_t)v);
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

static void put_word_range(struct bytebuf *r, uint8_t type, uint8_t tflags, uint16_t min,
			   uint16_t max)
{
	bytebuf_put8(r, 0x88); /* Word Address Space Descriptor */
	bytebuf_put16(r, 13);
	bytebuf_put8(r, type);
	bytebuf_put8(r, 0x0c); /* MinFixed, MaxFixed, producer */
	bytebuf_put8(r, tflags);
	bytebuf_put16(r, 0); /* granularity */
	bytebuf_put16(r, min);
	bytebuf_put16(r, max);
	bytebuf_put16(r, 0); /* translation */
	bytebuf_put16(r, (uint16_t)(max - min + 1));
}

static void build_pci0_crs(struct bytebuf *r)
{
	put_word_range(r, 2, 0, 0, 0); /* bus numbers 0..0 */
	put_word_range(r, 1, 3, 0x0000, 0x0cf7); /* I/O below the config ports */
	bytebuf_put8(r, 0x47); /* I/O port descriptor: 0xCF8, 8 ports */
	bytebuf_put8(r, 1);
	bytebuf_put16(r, PCI_CONFIG_PORT);
	bytebuf_put16(r, PCI_CONFIG_PORT);
	bytebuf_put8(r, 1);
	bytebuf_put8(r, 8);
	put_word_range(r, 1, 3, 0x0d00, 0xffff); /* I/O above */
	bytebuf_put8(r, 0x87); /* DWord memory: the 32-bit MMIO window */
	bytebuf_put16(r, 23);
	bytebuf_put8(r, 0);
	bytebuf_put8(r, 0x0c);
	bytebuf_put8(r, 0x01); /* read-write, non-cacheable */
	bytebuf_put32(r, 0);
	bytebuf_put32(r, (uint32_t)PCI_MMIO32_BASE);
	bytebuf_put32(r, (uint32_t)(PCI_MMIO32_BASE + PCI_MMIO32_SIZE - 1));
	bytebuf_put32(r, 0);
	bytebuf_put32(r, (uint32_t)PCI_MMIO32_SIZE);
	bytebuf_put8(r, 0x79); /* end tag */
	bytebuf_put8(r, 0);
}

static void build_dsdt(struct bytebuf *t)
{
	uint8_t sb_mem[1024], dev_mem[1024], crs_mem[256], buf_mem[256], pkg_mem[64];
	struct bytebuf sb = BYTEBUF_ON(sb_mem), dev = BYTEBUF_ON(dev_mem),
		       crs = BYTEBUF_ON(crs_mem);
	struct bytebuf buf = BYTEBUF_ON(buf_mem), pkg = BYTEBUF_ON(pkg_mem);

	put_header(t, "DSDT", 2);

	/* Device (PCI0) in \_SB: the PCI Express root bridge with its windows. */
	bytebuf_put(&dev, "PCI0", 4);
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
	bytebuf_put(&buf, crs.data, crs.len);
	aml_name(&dev, "_CRS");
	aml_pkg(&dev, 0, 0x11, &buf, 0); /* BufferOp */

	bytebuf_put8(&sb, '\\');
	bytebuf_put(&sb, "_SB_", 4);
	aml_pkg(&sb, 0x5b, 0x82, &dev, 1); /* DeviceOp */
	aml_pkg(t, 0, 0x10, &sb, 0); /* ScopeOp */

	/* Name (\_S5, Package () { SLP_TYPa, SLP_TYPb, 0, 0 }): soft off. */
	bytebuf_put8(&pkg, 4);
	aml_integer(&pkg, ACPI_S5_SLP_TYP);
	aml_integer(&pkg, ACPI_S5_SLP_TYP);
	aml_integer(&pkg, 0);
	aml_integer(&pkg, 0);
	bytebuf_put8(t, 0x08);
	bytebuf_put8(t, '\\');
	bytebuf_put(t, "_S5_", 4);
	aml_pkg(t, 0, 0x12, &pkg, 0); /* PackageOp */
	if (sb.overflow || dev.overflow || crs.overflow || buf.overflow || pkg.overflow)
		t->overflow = true;
	finish(t);
}

static void build_fadt(struct bytebuf *t, uint64_t facs, uint64_t dsdt)
{
	put_header(t, "FACP", 6);
	bytebuf_put32(t, (uint32_t)facs);
	bytebuf_put32(t, (uint32_t)dsdt);
	bytebuf_put8(t, 0); /* reserved */
	bytebuf_put8(t, 0); /* preferred PM profile: unspecified */
	bytebuf_put16(t, ACPI_SCI_IRQ);
	bytebuf_put32(t, 0); /* SMI_CMD: none, ACPI is always enabled */
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put32(t, ACPI_PM1_EVT_PORT);
	bytebuf_put32(t, 0);
	bytebuf_put32(t, ACPI_PM1_CNT_PORT);
	bytebuf_put32(t, 0);
	bytebuf_put32(t, 0); /* PM2_CNT */
	bytebuf_put32(t, ACPI_PM_TMR_PORT);
	bytebuf_put32(t, 0); /* GPE0 */
	bytebuf_put32(t, 0); /* GPE1 */
	bytebuf_put8(t, 4); /* PM1_EVT_LEN */
	bytebuf_put8(t, 2); /* PM1_CNT_LEN */
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 4); /* PM_TMR_LEN */
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0); /* CST_CNT */
	bytebuf_put16(t, 0x0fff); /* C2 latency: not supported */
	bytebuf_put16(t, 0x0fff); /* C3 latency: not supported */
	bytebuf_put16(t, 0);
	bytebuf_put16(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0x32); /* CMOS century register */
	bytebuf_put16(t, 0x0003); /* IAPC_BOOT_ARCH: legacy devices, 8042 */
	bytebuf_put8(t, 0);
	/* WBINVD | PROC_C1 | SLP_BUTTON (none) | TMR_VAL_EXT | RESET_REG_SUP */
	bytebuf_put32(t, (1u << 0) | (1u << 2) | (1u << 5) | (1u << 8) | (1u << 10));
	put_gas_io(t, RESET_CONTROL_PORT, 8, 1);
	bytebuf_put8(t, RESET_CONTROL_VALUE);
	bytebuf_put16(t, 0); /* ARM boot arch */
	bytebuf_put8(t, 0); /* FADT minor version */
	bytebuf_put64(t, facs);
	bytebuf_put64(t, dsdt);
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
	bytebuf_put(t, "VIREOKVM", 8); /* hypervisor vendor identity */
	finish(t);
}

static void build_madt(struct bytebuf *t, unsigned int ncpus)
{
	put_header(t, "APIC", 5);
	bytebuf_put32(t, LAPIC_ADDR);
	bytebuf_put32(t, 1); /* PCAT_COMPAT: dual 8259s present */
	for (unsigned int i = 0; i < ncpus; i++) {
		bytebuf_put8(t, 0); /* processor local APIC */
		bytebuf_put8(t, 8);
		bytebuf_put8(t, (uint8_t)i);
		bytebuf_put8(t, (uint8_t)i);
		bytebuf_put32(t, 1); /* enabled */
	}
	bytebuf_put8(t, 1); /* I/O APIC */
	bytebuf_put8(t, 12);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put32(t, IOAPIC_ADDR);
	bytebuf_put32(t, 0);
	bytebuf_put8(t, 2); /* ISA IRQ 0 -> GSI 2 (the PIT on the IOAPIC) */
	bytebuf_put8(t, 10);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, 0);
	bytebuf_put32(t, 2);
	bytebuf_put16(t, 0);
	bytebuf_put8(t, 2); /* SCI: level triggered, active high */
	bytebuf_put8(t, 10);
	bytebuf_put8(t, 0);
	bytebuf_put8(t, ACPI_SCI_IRQ);
	bytebuf_put32(t, ACPI_SCI_IRQ);
	bytebuf_put16(t, 0x000d);
	bytebuf_put8(t, 4); /* local APIC NMI on LINT1 of every processor */
	bytebuf_put8(t, 6);
	bytebuf_put8(t, 0xff);
	bytebuf_put16(t, 0);
	bytebuf_put8(t, 1);
	finish(t);
}

static void build_mcfg(struct bytebuf *t)
{
	put_header(t, "MCFG", 1);
	bytebuf_put64(t, 0);
	bytebuf_put64(t, PCI_ECAM_BASE);
	bytebuf_put16(t, 0); /* segment */
	bytebuf_put8(t, 0); /* start bus */
	bytebuf_put8(t, 0); /* end bus */
	bytebuf_put32(t, 0);
	finish(t);
}

static void build_facs(struct bytebuf *t)
{
	bytebuf_put(t, "FACS", 4);
	bytebuf_put32(t, 64);
	bytebuf_put32(t, 0); /* hardware signature */
	bytebuf_put32(t, 0); /* waking vector */
	bytebuf_put32(t, 0); /* global lock */
	bytebuf_put32(t, 0); /* flags */
	bytebuf_put64(t, 0);
	bytebuf_put8(t, 2); /* version */
	while (t->len < 64 && !t->overflow)
		bytebuf_put8(t, 0);
}

static void build_sdt(struct bytebuf *t, const char *sig, const uint64_t *tables, int n, int wide)
{
	put_header(t, sig, 1);
	for (int i = 0; i < n; i++) {
		if (wide)
			bytebuf_put64(t, tables[i]);
		else
			bytebuf_put32(t, (uint32_t)tables[i]);
	}
	finish(t);
}

/* The output area: tables are built in place, one after another, each aligned. */
struct area {
	uint8_t *buf;
	size_t avail;
	size_t off;
	uint64_t gpa;
	bool failed;
};

static struct bytebuf area_next(struct area *a, size_t align)
{
	size_t at = ALIGN_UP(a->off, align);

	if (at > a->avail) {
		a->failed = true;
		at = a->avail;
	}
	return (struct bytebuf){ a->buf + at, 0, a->avail - at, false };
}

/* Returns the guest address of the table just built. */
static uint64_t area_done(struct area *a, const struct bytebuf *t)
{
	size_t at = (size_t)(t->data - a->buf);

	if (t->overflow)
		a->failed = true;
	a->off = at + t->len;
	return a->gpa + at;
}

int acpi_build(uint8_t *buf, size_t avail, uint64_t gpa, unsigned int ncpus)
{
	struct area a = { buf, avail, ACPI_RSDP_SIZE, gpa, false };
	uint64_t facs, dsdt, tables[3], rsdt, xsdt;
	struct bytebuf t;

	if (avail < ACPI_RSDP_SIZE)
		return -ENOSPC;
	memset(buf, 0, avail);
	t = area_next(&a, 64);
	build_facs(&t);
	facs = area_done(&a, &t);
	t = area_next(&a, 16);
	build_dsdt(&t);
	dsdt = area_done(&a, &t);
	t = area_next(&a, 16);
	build_fadt(&t, facs, dsdt);
	tables[0] = area_done(&a, &t);
	t = area_next(&a, 16);
	build_madt(&t, ncpus);
	tables[1] = area_done(&a, &t);
	t = area_next(&a, 16);
	build_mcfg(&t);
	tables[2] = area_done(&a, &t);
	t = area_next(&a, 16);
	build_sdt(&t, "RSDT", tables, 3, 0);
	rsdt = area_done(&a, &t);
	t = area_next(&a, 16);
	build_sdt(&t, "XSDT", tables, 3, 1);
	xsdt = area_done(&a, &t);
	if (a.failed)
		return -ENOSPC;

	/* The RSDP at the start, where a guest scanning 0xE0000-0xFFFFF finds it. */
	t = (struct bytebuf){ buf, 0, ACPI_RSDP_SIZE, false };
	bytebuf_put(&t, "RSD PTR ", 8);
	bytebuf_put8(&t, 0);
	bytebuf_put(&t, "VIREO ", 6);
	bytebuf_put8(&t, 2); /* ACPI 2.0+ */
	bytebuf_put32(&t, (uint32_t)rsdt);
	bytebuf_put32(&t, ACPI_RSDP_SIZE);
	bytebuf_put64(&t, xsdt);
	bytebuf_put(&t, "\0\0\0\0", 4);
	buf[8] = checksum8(buf, 20);
	buf[32] = checksum8(buf, ACPI_RSDP_SIZE);
	return (int)a.off;
}
