// SPDX-License-Identifier: MIT
/* Unit tests for the firmware tables: ACPI (src/boot/acpi.c) and the MP table
 * (src/boot/mptable.c), checked by walking them as a guest would. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "boot/acpi.h"
#include "boot/mptable.h"
#include "common/util.h"

#define BUF_SIZE (64 * 1024)
#define ACPI_GPA 0xe0000ULL
#define MP_GPA 0xf0000ULL

static uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

struct acpi {
	uint8_t *buf;
	int used;
	const uint8_t *rsdp, *rsdt, *xsdt, *fadt, *madt, *mcfg, *dsdt, *facs;
};

/* Host pointer for a table at gpa, which must lie inside what acpi_build wrote. */
static const uint8_t *at(const struct acpi *a, uint64_t gpa, size_t min_len)
{
	if (gpa < ACPI_GPA || gpa + min_len > ACPI_GPA + (uint64_t)a->used)
		fail_msg("table address %#llx is outside the %d bytes written at %#llx",
			 (unsigned long long)gpa, a->used, (unsigned long long)ACPI_GPA);
	return a->buf + (gpa - ACPI_GPA);
}

/* A system description table: checks its length fits and its checksum. */
static const uint8_t *sdt(const struct acpi *a, uint64_t gpa, const char *expect_sig)
{
	const uint8_t *t = at(a, gpa, ACPI_HEADER_SIZE);
	uint32_t len = get_le32(t + 4);

	assert_true(len >= ACPI_HEADER_SIZE);
	at(a, gpa, len);
	if (sum8(t, len) != 0)
		fail_msg("table %.4s at %#llx: checksum does not sum to zero", (const char *)t,
			 (unsigned long long)gpa);
	if (expect_sig)
		assert_memory_equal(t, expect_sig, 4);
	return t;
}

static void build(struct acpi *a, unsigned int ncpus)
{
	memset(a, 0, sizeof(*a));
	a->buf = malloc(BUF_SIZE);
	assert_non_null(a->buf);
	memset(a->buf, 0xee, BUF_SIZE);
	a->used = acpi_build(a->buf, BUF_SIZE, ACPI_GPA, ncpus);
	assert_true(a->used > ACPI_RSDP_SIZE);
	assert_true(a->used <= BUF_SIZE);
}

/* Walks RSDP -> XSDT/RSDT -> tables -> DSDT/FACS, checking every step. */
static void walk(struct acpi *a)
{
	const uint8_t *r = a->buf;
	int nx, nr;

	a->rsdp = r;
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(sum8(r, 20), 0);
	assert_int_equal(sum8(r, ACPI_RSDP_SIZE), 0);
	assert_int_equal(r[15], 2);
	assert_int_equal(get_le32(r + 20), ACPI_RSDP_SIZE);

	a->xsdt = sdt(a, get_le64(r + 24), "XSDT");
	a->rsdt = sdt(a, get_le32(r + 16), "RSDT");
	nx = (int)(get_le32(a->xsdt + 4) - ACPI_HEADER_SIZE) / 8;
	nr = (int)(get_le32(a->rsdt + 4) - ACPI_HEADER_SIZE) / 4;
	assert_int_equal((get_le32(a->xsdt + 4) - ACPI_HEADER_SIZE) % 8, 0);
	assert_int_equal(nx, nr);
	assert_true(nx >= 3);
	for (int i = 0; i < nx; i++) {
		uint64_t addr = get_le64(a->xsdt + ACPI_HEADER_SIZE + 8 * i);
		const uint8_t *t = sdt(a, addr, NULL);

		/* The RSDT lists the same tables. */
		assert_true(get_le32(a->rsdt + ACPI_HEADER_SIZE + 4 * i) == addr);
		if (!memcmp(t, "FACP", 4))
			a->fadt = t;
		else if (!memcmp(t, "APIC", 4))
			a->madt = t;
		else if (!memcmp(t, "MCFG", 4))
			a->mcfg = t;
	}
	if (!a->fadt || !a->madt || !a->mcfg)
		fail_msg("XSDT lacks FACP, APIC or MCFG");

	a->dsdt = sdt(a, get_le32(a->fadt + 40), "DSDT");
	assert_true(get_le64(a->fadt + 140) == get_le32(a->fadt + 40)); /* X_DSDT */
	a->facs = at(a, get_le32(a->fadt + 36), 64);
	assert_true(get_le64(a->fadt + 132) == get_le32(a->fadt + 36)); /* X_FIRMWARE_CTRL */
	assert_memory_equal(a->facs, "FACS", 4);
	assert_int_equal(get_le32(a->facs + 4), 64);
	assert_int_equal(get_le32(a->fadt + 36) % 64, 0);
}

static const uint8_t *memmem_or_fail(const uint8_t *hay, size_t len, const char *needle)
{
	const uint8_t *p = memmem(hay, len, needle, strlen(needle));

	if (!p)
		fail_msg("'%s' not found in the DSDT", needle);
	return p;
}

/* AML PkgLength: returns the encoded length and stores the number of bytes it took. */
static uint32_t pkglen(const uint8_t *p, int *nbytes)
{
	int follow = p[0] >> 6;
	uint32_t v;

	*nbytes = follow + 1;
	if (!follow)
		return p[0] & 0x3f;
	v = p[0] & 0x0f;
	for (int i = 1; i <= follow; i++)
		v |= (uint32_t)p[i] << (4 + 8 * (i - 1));
	return v;
}

static void check_dsdt(const struct acpi *a)
{
	const uint8_t *t = a->dsdt;
	uint32_t len = get_le32(t + 4), scope_len, dev_len, pkg_len;
	const uint8_t *p, *scope_end, *dev;
	int nb;
	/* EISAID("PNP0A08") and EISAID("PNP0A03") as DWordConst. */
	static const uint8_t hid[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x08 };
	static const uint8_t cid[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x03 };

	memmem_or_fail(t, len, "_S5_");
	memmem_or_fail(t, len, "PCI0");
	memmem_or_fail(t, len, "_SB_");
	memmem_or_fail(t, len, "_CRS");
	if (!memmem(t, len, hid, sizeof(hid)) || !memmem(t, len, cid, sizeof(cid)))
		fail_msg("PCI0 _HID/_CID are not PNP0A08/PNP0A03");

	/* Scope (\_SB_) { Device (PCI0) { ... } } then Name (\_S5_, Package ...), with
	 * package lengths that add up exactly to the table. */
	p = t + ACPI_HEADER_SIZE;
	assert_int_equal(p[0], 0x10); /* ScopeOp */
	scope_len = pkglen(p + 1, &nb);
	scope_end = p + 1 + scope_len;
	assert_memory_equal(p + 1 + nb, "\\_SB_", 5);
	dev = p + 1 + nb + 5;
	assert_int_equal(dev[0], 0x5b); /* DeviceOp */
	assert_int_equal(dev[1], 0x82);
	dev_len = pkglen(dev + 2, &nb);
	assert_memory_equal(dev + 2 + nb, "PCI0", 4);
	assert_ptr_equal(dev + 2 + dev_len, scope_end);

	p = scope_end;
	assert_int_equal(p[0], 0x08); /* NameOp */
	assert_memory_equal(p + 1, "\\_S5_", 5);
	assert_int_equal(p[6], 0x12); /* PackageOp */
	pkg_len = pkglen(p + 7, &nb);
	assert_ptr_equal(p + 7 + pkg_len, t + len);
	p += 7 + nb;
	assert_int_equal(p[0], 4); /* NumElements */
	assert_int_equal(p[1], 0x0a); /* BytePrefix */
	assert_int_equal(p[2], 5); /* SLP_TYPa = 5, as the PM1_CNT model expects */
}

static void check_fadt(const struct acpi *a)
{
	const uint8_t *f = a->fadt;

	assert_int_equal(get_le32(f + 4), 276);
	assert_int_equal(f[8], 6);
	assert_int_equal(get_le16(f + 46), 9); /* SCI_INT */
	assert_int_equal(get_le32(f + 48), 0); /* no SMI_CMD: always in ACPI mode */
	assert_int_equal(get_le32(f + 56), 0x600); /* PM1a_EVT_BLK */
	assert_int_equal(get_le32(f + 64), 0x604); /* PM1a_CNT_BLK */
	assert_int_equal(get_le32(f + 76), 0x608); /* PM_TMR_BLK */
	assert_int_equal(f[88], 4); /* PM1_EVT_LEN */
	assert_int_equal(f[89], 2); /* PM1_CNT_LEN */
	assert_int_equal(f[91], 4); /* PM_TMR_LEN */
	assert_int_equal(f[108], 0x32); /* CENTURY */
	assert_true(get_le32(f + 112) & (1u << 10)); /* RESET_REG_SUP */
	assert_true(get_le32(f + 112) & (1u << 8)); /* TMR_VAL_EXT */
	assert_int_equal(f[116], 1); /* RESET_REG: system I/O */
	assert_int_equal(f[117], 8);
	assert_true(get_le64(f + 120) == 0xcf9);
	assert_int_equal(f[128], 0x06); /* RESET_VALUE */
	assert_int_equal(f[148], 1); /* X_PM1a_EVT_BLK */
	assert_int_equal(f[149], 32);
	assert_true(get_le64(f + 152) == 0x600);
	assert_int_equal(f[173], 16); /* X_PM1a_CNT_BLK */
	assert_true(get_le64(f + 176) == 0x604);
	assert_int_equal(f[209], 32); /* X_PM_TMR_BLK */
	assert_true(get_le64(f + 212) == 0x608);
	assert_memory_equal(f + 268, "VIREOKVM", 8);
}

static void check_madt(const struct acpi *a, unsigned int ncpus)
{
	const uint8_t *m = a->madt;
	uint32_t len = get_le32(m + 4), off = 44;
	unsigned int nlapic = 0, nioapic = 0;
	bool irq0 = false, sci = false, nmi = false;

	assert_int_equal(get_le32(m + 36), 0xfee00000);
	assert_int_equal(get_le32(m + 40) & 1, 1); /* PCAT_COMPAT */
	while (off < len) {
		const uint8_t *e = m + off;

		assert_true(e[1] >= 2);
		assert_true(off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], nlapic); /* ACPI processor UID */
			assert_int_equal(e[3], nlapic); /* APIC ID */
			assert_int_equal(get_le32(e + 4) & 1, 1);
			nlapic++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(get_le32(e + 4), 0xfec00000);
			assert_int_equal(get_le32(e + 8), 0);
			nioapic++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			if (e[3] == 0) {
				assert_int_equal(get_le32(e + 4), 2);
				irq0 = true;
			} else if (e[3] == 9) {
				assert_int_equal(get_le32(e + 4), 9);
				assert_int_equal(get_le16(e + 8), 0x000d); /* level, high */
				sci = true;
			}
			break;
		case 4:
			assert_int_equal(e[1], 6);
			assert_int_equal(e[2], 0xff);
			assert_int_equal(e[5], 1); /* LINT1 */
			nmi = true;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	assert_int_equal(off, len);
	assert_int_equal(nlapic, ncpus);
	assert_int_equal(nioapic, 1);
	assert_true(irq0);
	assert_true(sci);
	assert_true(nmi);
}

static void check_mcfg(const struct acpi *a)
{
	const uint8_t *m = a->mcfg;

	assert_int_equal(get_le32(m + 4), 60);
	assert_true(get_le64(m + 44) == 0xe0000000ULL);
	assert_int_equal(get_le16(m + 52), 0);
	assert_int_equal(m[54], 0);
	assert_int_equal(m[55], 0);
}

static void run_acpi(unsigned int ncpus)
{
	struct acpi a;

	build(&a, ncpus);
	walk(&a);
	check_dsdt(&a);
	check_fadt(&a);
	check_madt(&a, ncpus);
	check_mcfg(&a);
	/* Everything after the tables is cleared. */
	for (size_t i = (size_t)a.used; i < BUF_SIZE; i++)
		if (a.buf[i])
			fail_msg("byte %#zx after the tables is %#x", i, a.buf[i]);
	free(a.buf);
}

static void test_acpi_1cpu(void **state)
{
	(void)state;
	run_acpi(1);
}

static void test_acpi_2cpus(void **state)
{
	(void)state;
	run_acpi(2);
}

static void test_acpi_8cpus(void **state)
{
	(void)state;
	run_acpi(8);
}

static void test_acpi_254cpus(void **state)
{
	(void)state;
	run_acpi(254);
}

static void test_acpi_no_space(void **state)
{
	uint8_t *buf = malloc(BUF_SIZE);
	int n;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(acpi_build(buf, 20, ACPI_GPA, 1), -ENOSPC);
	assert_int_equal(acpi_build(buf, ACPI_RSDP_SIZE, ACPI_GPA, 1), -ENOSPC);
	assert_int_equal(acpi_build(buf, 200, ACPI_GPA, 1), -ENOSPC);
	n = acpi_build(buf, BUF_SIZE, ACPI_GPA, 8);
	assert_true(n > 0);
	assert_int_equal(acpi_build(buf, (size_t)n - 1, ACPI_GPA, 8), -ENOSPC);
	assert_int_equal(acpi_build(buf, (size_t)n, ACPI_GPA, 8), n);
	free(buf);
}

/* --- MP table --- */

static void run_mptable(unsigned int ncpus)
{
	uint8_t *buf = malloc(BUF_SIZE);
	const uint8_t *c, *e;
	unsigned int nproc = 0, nbus = 0, nioapic = 0, nint = 0, nlint = 0, count = 0;
	uint32_t base_len;
	int n;

	assert_non_null(buf);
	n = mptable_build(buf, BUF_SIZE, MP_GPA, ncpus);
	assert_true(n > 60);

	/* Floating pointer. */
	assert_memory_equal(buf, "_MP_", 4);
	assert_int_equal(get_le32(buf + 4), MP_GPA + 16);
	assert_int_equal(buf[8], 1);
	assert_int_equal(buf[9], 4);
	assert_int_equal(sum8(buf, 16), 0);
	assert_int_equal(buf[11], 0); /* a configuration table follows */

	/* Configuration table. */
	c = buf + 16;
	assert_memory_equal(c, "PCMP", 4);
	base_len = get_le16(c + 4);
	assert_int_equal(16 + base_len, n);
	assert_int_equal(c[6], 4);
	assert_int_equal(sum8(c, base_len), 0);
	assert_int_equal(get_le32(c + 36), 0xfee00000);
	for (e = c + 44; e < c + base_len; count++) {
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], nproc); /* APIC ID */
			assert_int_equal(e[3] & 1, 1); /* enabled */
			assert_int_equal(!!(e[3] & 2), nproc == 0); /* BSP only on the first */
			nproc++;
			e += 20;
			break;
		case 1:
			assert_true(!memcmp(e + 2, "PCI   ", 6) || !memcmp(e + 2, "ISA   ", 6));
			nbus++;
			e += 8;
			break;
		case 2:
			assert_int_equal(e[1], ncpus); /* IOAPIC ID after the CPUs */
			assert_int_equal(e[3] & 1, 1);
			assert_int_equal(get_le32(e + 4), 0xfec00000);
			nioapic++;
			e += 8;
			break;
		case 3:
			assert_int_equal(e[6], ncpus); /* destination IOAPIC */
			if (e[1] == 0 && e[5] == 0)
				assert_int_equal(e[7], 2); /* ISA IRQ 0 -> pin 2 */
			if (e[1] == 0 && e[5] == 9)
				assert_int_equal(get_le16(e + 2), 0x000d);
			nint++;
			e += 8;
			break;
		case 4:
			nlint++;
			e += 8;
			break;
		default:
			fail_msg("unexpected MP entry type %u", e[0]);
		}
	}
	assert_ptr_equal(e, c + base_len);
	assert_int_equal(get_le16(c + 34), count);
	assert_int_equal(nproc, ncpus);
	assert_int_equal(nbus, 2);
	assert_int_equal(nioapic, 1);
	assert_int_equal(nint, 16); /* ExtINT + 15 ISA IRQs (not the cascade) */
	assert_int_equal(nlint, 2);
	free(buf);
}

static void test_mptable_1cpu(void **state)
{
	(void)state;
	run_mptable(1);
}

static void test_mptable_4cpus(void **state)
{
	(void)state;
	run_mptable(4);
}

static void test_mptable_64cpus(void **state)
{
	(void)state;
	run_mptable(64);
}

static void test_mptable_no_space(void **state)
{
	uint8_t buf[4096];
	int n;

	(void)state;
	assert_int_equal(mptable_build(buf, 59, MP_GPA, 1), -ENOSPC);
	assert_int_equal(mptable_build(buf, 100, MP_GPA, 1), -ENOSPC);
	n = mptable_build(buf, sizeof(buf), MP_GPA, 2);
	assert_true(n > 0);
	assert_int_equal(mptable_build(buf, (size_t)n - 1, MP_GPA, 2), -ENOSPC);
	assert_int_equal(mptable_build(buf, (size_t)n, MP_GPA, 2), n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acpi_1cpu),	 cmocka_unit_test(test_acpi_2cpus),
		cmocka_unit_test(test_acpi_8cpus),	 cmocka_unit_test(test_acpi_254cpus),
		cmocka_unit_test(test_acpi_no_space),	 cmocka_unit_test(test_mptable_1cpu),
		cmocka_unit_test(test_mptable_4cpus),	 cmocka_unit_test(test_mptable_64cpus),
		cmocka_unit_test(test_mptable_no_space),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
