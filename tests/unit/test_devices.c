// SPDX-License-Identifier: MIT
/* Unit tests for the small devices: CMOS RTC, ACPI PM / i8042 / reset control, PCI config
 * space, and the I/O bus dispatcher. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/platform.h"
#include "devices/rtc.h"

/* --- RTC --- */

static time_t fake_time;

static time_t fake_now(void)
{
	return fake_time;
}

static time_t utc(int year, int mon, int mday, int hour, int min, int sec)
{
	struct tm tm = { 0 };

	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = mday;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	return timegm(&tm);
}

static void rtc_write(struct rtc *rtc, uint8_t reg, uint8_t v)
{
	rtc_io(rtc, 0, &reg, 1, true);
	rtc_io(rtc, 1, &v, 1, true);
}

static uint8_t rtc_read(struct rtc *rtc, uint8_t reg)
{
	uint8_t v = 0xaa;

	rtc_io(rtc, 0, &reg, 1, true);
	rtc_io(rtc, 1, &v, 1, false);
	return v;
}

static void rtc_setup(struct rtc *rtc)
{
	rtc_init(rtc);
	rtc->now = fake_now;
	/* Friday 2024-03-15 13:45:27 UTC */
	fake_time = utc(2024, 3, 15, 13, 45, 27);
}

static void test_rtc_bcd(void **state)
{
	struct rtc rtc;

	(void)state;
	rtc_setup(&rtc);
	assert_int_equal(rtc_read(&rtc, 0x00), 0x27);
	assert_int_equal(rtc_read(&rtc, 0x02), 0x45);
	assert_int_equal(rtc_read(&rtc, 0x04), 0x13);
	assert_int_equal(rtc_read(&rtc, 0x06), 0x06); /* day of week: Sunday = 1 */
	assert_int_equal(rtc_read(&rtc, 0x07), 0x15);
	assert_int_equal(rtc_read(&rtc, 0x08), 0x03);
	assert_int_equal(rtc_read(&rtc, 0x09), 0x24);
	assert_int_equal(rtc_read(&rtc, 0x32), 0x20);
	/* The clock runs with the host. */
	fake_time += 60 * 60 + 33;
	assert_int_equal(rtc_read(&rtc, 0x00), 0x00);
	assert_int_equal(rtc_read(&rtc, 0x02), 0x46);
	assert_int_equal(rtc_read(&rtc, 0x04), 0x14);
	/* Status registers. */
	assert_int_equal(rtc_read(&rtc, 0x0a) & 0x80, 0); /* no update in progress */
	assert_int_equal(rtc_read(&rtc, 0x0b), 0x02); /* 24-hour, BCD */
	assert_int_equal(rtc_read(&rtc, 0x0d), 0x80); /* battery good */
	pthread_mutex_destroy(&rtc.lock);
}

static void test_rtc_binary_and_12h(void **state)
{
	struct rtc rtc;

	(void)state;
	rtc_setup(&rtc);
	rtc_write(&rtc, 0x0b, 0x06); /* binary, 24-hour */
	assert_int_equal(rtc_read(&rtc, 0x00), 27);
	assert_int_equal(rtc_read(&rtc, 0x02), 45);
	assert_int_equal(rtc_read(&rtc, 0x04), 13);
	assert_int_equal(rtc_read(&rtc, 0x07), 15);
	assert_int_equal(rtc_read(&rtc, 0x08), 3);
	assert_int_equal(rtc_read(&rtc, 0x09), 24);
	assert_int_equal(rtc_read(&rtc, 0x32), 20);
	rtc_write(&rtc, 0x0b, 0x00); /* BCD, 12-hour: 13h is 1 PM */
	assert_int_equal(rtc_read(&rtc, 0x04), 0x81);
	fake_time = utc(2024, 3, 15, 0, 5, 0); /* midnight is 12 AM */
	assert_int_equal(rtc_read(&rtc, 0x04), 0x12);
	fake_time = utc(2024, 3, 15, 12, 5, 0); /* noon is 12 PM */
	assert_int_equal(rtc_read(&rtc, 0x04), 0x92);
	pthread_mutex_destroy(&rtc.lock);
}

static void test_rtc_index_port(void **state)
{
	struct rtc rtc;
	uint8_t v = 0x80 | 0x02; /* NMI disable bit plus index 2 */

	(void)state;
	rtc_setup(&rtc);
	rtc_io(&rtc, 0, &v, 1, true);
	v = 0;
	rtc_io(&rtc, 1, &v, 1, false);
	assert_int_equal(v, 0x45);
	rtc_io(&rtc, 0, &v, 1, false);
	assert_int_equal(v, 0xff);
	/* Plain CMOS memory. */
	rtc_write(&rtc, 0x40, 0x5a);
	rtc_write(&rtc, 0x7f, 0xa5);
	assert_int_equal(rtc_read(&rtc, 0x40), 0x5a);
	assert_int_equal(rtc_read(&rtc, 0x7f), 0xa5);
	/* Register D is read-only. */
	rtc_write(&rtc, 0x0d, 0x00);
	assert_int_equal(rtc_read(&rtc, 0x0d), 0x80);
	pthread_mutex_destroy(&rtc.lock);
}

static void test_rtc_guest_sets_time(void **state)
{
	struct rtc rtc;

	(void)state;
	rtc_setup(&rtc);
	/* The way a guest sets the clock: SET, write the registers, clear SET. */
	rtc_write(&rtc, 0x0b, 0x82);
	rtc_write(&rtc, 0x00, 0x59);
	rtc_write(&rtc, 0x02, 0x30);
	rtc_write(&rtc, 0x04, 0x08);
	rtc_write(&rtc, 0x07, 0x31);
	rtc_write(&rtc, 0x08, 0x12);
	rtc_write(&rtc, 0x09, 0x99);
	rtc_write(&rtc, 0x32, 0x19);
	/* While SET is on, reads show what was written. */
	fake_time += 10;
	assert_int_equal(rtc_read(&rtc, 0x00), 0x59);
	rtc_write(&rtc, 0x0b, 0x02);
	assert_true(rtc.offset == (int64_t)(utc(1999, 12, 31, 8, 30, 59) - fake_time));
	assert_int_equal(rtc_read(&rtc, 0x00), 0x59);
	assert_int_equal(rtc_read(&rtc, 0x02), 0x30);
	assert_int_equal(rtc_read(&rtc, 0x04), 0x08);
	assert_int_equal(rtc_read(&rtc, 0x07), 0x31);
	assert_int_equal(rtc_read(&rtc, 0x08), 0x12);
	assert_int_equal(rtc_read(&rtc, 0x09), 0x99);
	assert_int_equal(rtc_read(&rtc, 0x32), 0x19);
	/* And it keeps running from there: one second later it is the year 2000. */
	fake_time += 15 * 3600 + 29 * 60 + 1;
	assert_int_equal(rtc_read(&rtc, 0x00), 0x00);
	assert_int_equal(rtc_read(&rtc, 0x02), 0x00);
	assert_int_equal(rtc_read(&rtc, 0x04), 0x00);
	assert_int_equal(rtc_read(&rtc, 0x07), 0x01);
	assert_int_equal(rtc_read(&rtc, 0x08), 0x01);
	assert_int_equal(rtc_read(&rtc, 0x09), 0x00);
	assert_int_equal(rtc_read(&rtc, 0x32), 0x20);
	pthread_mutex_destroy(&rtc.lock);
}

static void test_rtc_single_register_write(void **state)
{
	struct rtc rtc;

	(void)state;
	rtc_setup(&rtc);
	/* Without SET a write to a time register takes effect at once. */
	rtc_write(&rtc, 0x02, 0x10);
	assert_int_equal(rtc_read(&rtc, 0x02), 0x10);
	assert_int_equal(rtc_read(&rtc, 0x00), 0x27);
	assert_int_equal(rtc_read(&rtc, 0x04), 0x13);
	assert_true(rtc.offset == -35 * 60);
	/* In binary mode the guest writes binary values. */
	rtc_write(&rtc, 0x0b, 0x06);
	rtc_write(&rtc, 0x04, 20);
	assert_int_equal(rtc_read(&rtc, 0x04), 20);
	assert_int_equal(rtc_read(&rtc, 0x02), 10);
	pthread_mutex_destroy(&rtc.lock);
}

/* --- Platform --- */

struct plat_fake {
	int events[8];
	int nevents;
	int sci;
	int sci_changes;
};

static void plat_event(void *opaque, enum platform_event ev)
{
	struct plat_fake *f = opaque;

	if (f->nevents < 8)
		f->events[f->nevents] = ev;
	f->nevents++;
}

static void plat_set_sci(void *opaque, int level)
{
	struct plat_fake *f = opaque;

	f->sci = level;
	f->sci_changes++;
}

static const struct platform_ops plat_ops = {
	.event = plat_event,
	.set_sci = plat_set_sci,
};

static void pm_write(struct platform *p, uint64_t off, uint32_t v, uint32_t len)
{
	uint8_t d[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	platform_pm_io(p, off, d, len, true);
}

static uint32_t pm_read(struct platform *p, uint64_t off, uint32_t len)
{
	uint8_t d[4] = { 0xaa, 0xaa, 0xaa, 0xaa };

	platform_pm_io(p, off, d, len, false);
	if (len == 2)
		return (uint32_t)d[0] | (uint32_t)d[1] << 8;
	return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

static void test_pm_poweroff(void **state)
{
	struct platform p;
	struct plat_fake f = { 0 };

	(void)state;
	platform_init(&p, &plat_ops, &f);
	assert_int_equal(pm_read(&p, 4, 2) & PM1_CNT_SCI_EN, PM1_CNT_SCI_EN);
	/* SLP_TYP 5 without SLP_EN only sets the type. */
	pm_write(&p, 4, 5 << 10, 2);
	assert_int_equal(f.nevents, 0);
	assert_int_equal(pm_read(&p, 4, 2), (5 << 10) | PM1_CNT_SCI_EN);
	/* Other sleep types are not supported: nothing happens. */
	pm_write(&p, 4, (3 << 10) | PM1_CNT_SLP_EN, 2);
	pm_write(&p, 4, (1 << 10) | PM1_CNT_SLP_EN, 2);
	assert_int_equal(f.nevents, 0);
	/* S5: soft off. */
	pm_write(&p, 4, (5 << 10) | PM1_CNT_SLP_EN, 2);
	assert_int_equal(f.nevents, 1);
	assert_int_equal(f.events[0], PLATFORM_POWEROFF);
	/* SLP_EN is write-only. */
	assert_int_equal(pm_read(&p, 4, 2) & PM1_CNT_SLP_EN, 0);
	pthread_mutex_destroy(&p.lock);
}

static void test_i8042_reset(void **state)
{
	struct platform p;
	struct plat_fake f = { 0 };
	uint8_t v;

	(void)state;
	platform_init(&p, &plat_ops, &f);
	/* Self test: status shows a reply waiting, the reply is 0x55. */
	v = 0xaa;
	platform_i8042_io(&p, 4, &v, 1, true);
	platform_i8042_io(&p, 4, &v, 1, false);
	assert_int_equal(v & 0x01, 0x01);
	platform_i8042_io(&p, 0, &v, 1, false);
	assert_int_equal(v, 0x55);
	platform_i8042_io(&p, 4, &v, 1, false);
	assert_int_equal(v & 0x01, 0);
	/* Output port write with bit 0 set: no reset. */
	v = 0xd1;
	platform_i8042_io(&p, 4, &v, 1, true);
	v = 0x01;
	platform_i8042_io(&p, 0, &v, 1, true);
	assert_int_equal(f.nevents, 0);
	/* Other commands do not reset. */
	v = 0xad;
	platform_i8042_io(&p, 4, &v, 1, true);
	assert_int_equal(f.nevents, 0);
	/* Pulse the reset line. */
	v = 0xfe;
	platform_i8042_io(&p, 4, &v, 1, true);
	assert_int_equal(f.nevents, 1);
	assert_int_equal(f.events[0], PLATFORM_RESET);
	/* Output port write with bit 0 clear resets too. */
	v = 0xd1;
	platform_i8042_io(&p, 4, &v, 1, true);
	v = 0x00;
	platform_i8042_io(&p, 0, &v, 1, true);
	assert_int_equal(f.nevents, 2);
	assert_int_equal(f.events[1], PLATFORM_RESET);
	pthread_mutex_destroy(&p.lock);
}

static void test_i8042_command_byte(void **state)
{
	struct platform p;
	struct plat_fake f = { 0 };
	uint8_t v;

	(void)state;
	platform_init(&p, &plat_ops, &f);
	v = 0x20;
	platform_i8042_io(&p, 4, &v, 1, true);
	platform_i8042_io(&p, 0, &v, 1, false);
	assert_int_equal(v, 0x61);
	v = 0x60;
	platform_i8042_io(&p, 4, &v, 1, true);
	v = 0x47;
	platform_i8042_io(&p, 0, &v, 1, true);
	v = 0x20;
	platform_i8042_io(&p, 4, &v, 1, true);
	platform_i8042_io(&p, 0, &v, 1, false);
	assert_int_equal(v, 0x47);
	/* A keyboard command with no keyboard: "resend". */
	v = 0xff;
	platform_i8042_io(&p, 0, &v, 1, true);
	platform_i8042_io(&p, 0, &v, 1, false);
	assert_int_equal(v, 0xfe);
	assert_int_equal(f.nevents, 0);
	pthread_mutex_destroy(&p.lock);
}

static void test_reset_control_register(void **state)
{
	struct platform p;
	struct plat_fake f = { 0 };
	uint8_t v;

	(void)state;
	platform_init(&p, &plat_ops, &f);
	v = 0x02; /* select hard reset, no reset yet */
	platform_rcr_io(&p, 0, &v, 1, true);
	assert_int_equal(f.nevents, 0);
	v = 0;
	platform_rcr_io(&p, 0, &v, 1, false);
	assert_int_equal(v, 0x02);
	v = RESET_CONTROL_VALUE;
	platform_rcr_io(&p, 0, &v, 1, true);
	assert_int_equal(f.nevents, 1);
	assert_int_equal(f.events[0], PLATFORM_RESET);
	pthread_mutex_destroy(&p.lock);
}

static void test_power_button_sci(void **state)
{
	struct platform p;
	struct plat_fake f = { 0 };

	(void)state;
	platform_init(&p, &plat_ops, &f);
	/* Not enabled: the status bit is set but no SCI. */
	platform_power_button(&p);
	assert_int_equal(f.sci_changes, 0);
	assert_int_equal(pm_read(&p, 0, 2) & PM1_STS_PWRBTN, PM1_STS_PWRBTN);
	pm_write(&p, 0, PM1_STS_PWRBTN, 2);
	assert_int_equal(pm_read(&p, 0, 2) & PM1_STS_PWRBTN, 0);
	assert_int_equal(f.sci_changes, 0);

	/* Enabled (PM1_EN at offset 2). */
	pm_write(&p, 2, PM1_STS_PWRBTN, 2);
	assert_int_equal(pm_read(&p, 2, 2), PM1_STS_PWRBTN);
	assert_int_equal(f.sci, 0);
	platform_power_button(&p);
	assert_int_equal(f.sci, 1);
	assert_int_equal(f.sci_changes, 1);
	/* A 32-bit read of PM1 shows status low, enable high. */
	assert_int_equal(pm_read(&p, 0, 4), PM1_STS_PWRBTN | (PM1_STS_PWRBTN << 16));
	/* Writing zero leaves it; writing one clears it and lowers the SCI. */
	pm_write(&p, 0, 0, 2);
	assert_int_equal(f.sci, 1);
	pm_write(&p, 0, PM1_STS_PWRBTN, 2);
	assert_int_equal(f.sci, 0);
	assert_int_equal(f.sci_changes, 2);
	assert_int_equal(pm_read(&p, 0, 2) & PM1_STS_PWRBTN, 0);

	/* Enabling while the status is pending raises it at once; disabling lowers it. */
	pm_write(&p, 2, 0, 2);
	platform_power_button(&p);
	assert_int_equal(f.sci, 0);
	pm_write(&p, 2, PM1_STS_PWRBTN, 2);
	assert_int_equal(f.sci, 1);
	pm_write(&p, 2, 0, 2);
	assert_int_equal(f.sci, 0);
	pthread_mutex_destroy(&p.lock);
}

static void test_pm_timer(void **state)
{
	struct platform p;
	struct plat_fake f = { 0 };
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	uint32_t t1, t2;

	(void)state;
	platform_init(&p, &plat_ops, &f);
	t1 = pm_read(&p, 8, 4);
	nanosleep(&ts, NULL);
	t2 = pm_read(&p, 8, 4);
	/* 3.579545 MHz: at least 2 ms worth of ticks, and (on a loaded host) under a second. */
	assert_true(t2 - t1 >= 7150);
	assert_true(t2 - t1 < 3579545);
	pthread_mutex_destroy(&p.lock);
}

/* --- PCI --- */

static void cf8(struct pci_bus *bus, uint32_t addr)
{
	uint8_t d[4];

	memcpy(d, &addr, 4);
	pci_io_port(bus, 0, d, 4, true);
}

static uint32_t cfc_read(struct pci_bus *bus, unsigned int off, uint32_t len)
{
	uint8_t d[4] = { 0 };
	uint32_t v = 0;

	pci_io_port(bus, 4 + off, d, len, false);
	memcpy(&v, d, len);
	return v;
}

static void cfc_write(struct pci_bus *bus, unsigned int off, uint32_t v, uint32_t len)
{
	uint8_t d[4];

	memcpy(d, &v, 4);
	pci_io_port(bus, 4 + off, d, len, true);
}

static uint32_t ecam_read(struct pci_bus *bus, uint64_t off, uint32_t len)
{
	uint8_t d[4] = { 0 };
	uint32_t v = 0;

	pci_ecam_mmio(bus, off, d, len, false);
	memcpy(&v, d, len);
	return v;
}

static void test_pci_host_bridge_cf8(void **state)
{
	static struct pci_bus bus;
	uint8_t d[4];

	(void)state;
	pci_bus_init(&bus);
	cf8(&bus, 0x80000000);
	assert_int_equal(cfc_read(&bus, 0, 4), 0x00081b36);
	assert_int_equal(cfc_read(&bus, 0, 2), 0x1b36);
	assert_int_equal(cfc_read(&bus, 2, 2), 0x0008);
	assert_int_equal(cfc_read(&bus, 1, 1), 0x1b);
	cf8(&bus, 0x80000008);
	assert_int_equal(cfc_read(&bus, 0, 4) >> 8, 0x060000); /* host bridge class */
	/* The address register reads back; byte accesses to it do not change it. */
	pci_io_port(&bus, 0, d, 4, false);
	assert_int_equal(d[0] | d[1] << 8 | d[2] << 16 | (uint32_t)d[3] << 24, 0x80000008);
	d[0] = 0x01;
	pci_io_port(&bus, 3, d, 1, true);
	pci_io_port(&bus, 0, d, 4, false);
	assert_int_equal(d[0] | d[1] << 8 | d[2] << 16 | (uint32_t)d[3] << 24, 0x80000008);
	pthread_mutex_destroy(&bus.lock);
}

static void test_pci_absent(void **state)
{
	static struct pci_bus bus;

	(void)state;
	pci_bus_init(&bus);
	cf8(&bus, 0x80000800); /* 00:01.0 */
	assert_int_equal(cfc_read(&bus, 0, 4), 0xffffffff);
	cf8(&bus, 0x80000100); /* 00:00.1 */
	assert_int_equal(cfc_read(&bus, 0, 4), 0xffffffff);
	cf8(&bus, 0x80010000); /* 01:00.0 */
	assert_int_equal(cfc_read(&bus, 0, 4), 0xffffffff);
	cf8(&bus, 0x00000000); /* enable bit clear */
	assert_int_equal(cfc_read(&bus, 0, 4), 0xffffffff);
	assert_int_equal(cfc_read(&bus, 0, 2), 0xffff);
	assert_int_equal(ecam_read(&bus, 1 << 15, 4), 0xffffffff);
	assert_int_equal(ecam_read(&bus, 0x100, 4), 0); /* present, but an unused register */
	pthread_mutex_destroy(&bus.lock);
}

static void test_pci_ecam(void **state)
{
	static struct pci_bus bus;

	(void)state;
	pci_bus_init(&bus);
	assert_int_equal(ecam_read(&bus, 0, 4), 0x00081b36);
	assert_int_equal(ecam_read(&bus, 2, 2), 0x0008);
	assert_int_equal(ecam_read(&bus, 0xa, 2), 0x0600);
	/* Misaligned or too wide accesses read as all ones. */
	assert_int_equal(ecam_read(&bus, 2, 4), 0xffffffff);
	assert_int_equal(ecam_read(&bus, 0xffe, 4), 0xffffffff);
	pthread_mutex_destroy(&bus.lock);
}

static void test_pci_write_masks(void **state)
{
	static struct pci_bus bus;
	uint8_t d[4] = { 0x07, 0x00, 0, 0 };

	(void)state;
	pci_bus_init(&bus);
	cf8(&bus, 0x80000000);
	cfc_write(&bus, 0, 0xffffffff, 4);
	assert_int_equal(cfc_read(&bus, 0, 4), 0x00081b36); /* IDs are read-only */
	cf8(&bus, 0x80000004);
	cfc_write(&bus, 0, 0x0007, 2);
	assert_int_equal(cfc_read(&bus, 0, 2), 0x0007);
	/* Only I/O, memory, bus master and INTx disable stick. */
	cfc_write(&bus, 0, 0xffff, 2);
	assert_int_equal(cfc_read(&bus, 0, 2), 0x0407);
	assert_int_equal(ecam_read(&bus, 4, 2), 0x0407);
	/* ECAM writes land in the same config space. */
	d[0] = 0x02;
	d[1] = 0x00;
	pci_ecam_mmio(&bus, 4, d, 2, true);
	assert_int_equal(cfc_read(&bus, 0, 2), 0x0002);
	/* Interrupt line is writable, class code is not. */
	d[0] = 0x0b;
	pci_ecam_mmio(&bus, 0x3c, d, 1, true);
	assert_int_equal(ecam_read(&bus, 0x3c, 1), 0x0b);
	d[0] = 0xff;
	pci_ecam_mmio(&bus, 0x0b, d, 1, true);
	assert_int_equal(ecam_read(&bus, 0x0b, 1), 0x06);
	pthread_mutex_destroy(&bus.lock);
}

static int cfg_written_calls;
static uint32_t cfg_written_off, cfg_written_len;

static void cfg_written(struct pci_device *dev, uint32_t offset, uint32_t len)
{
	(void)dev;
	cfg_written_calls++;
	cfg_written_off = offset;
	cfg_written_len = len;
}

static void test_pci_add_device(void **state)
{
	static struct pci_bus bus;
	static struct pci_device dev, other;
	uint8_t d[4] = { 0x03, 0, 0, 0 };

	(void)state;
	pci_bus_init(&bus);
	pci_device_init(&dev, "test", 0x1af4, 0x1041, 0x02, 0x00, 0x00);
	dev.cfg_written = cfg_written;
	assert_int_equal(pci_bus_add(&bus, &dev, 3), 3);
	assert_int_equal(pci_bus_add(&bus, &other, 3), -EBUSY);
	assert_int_equal(pci_bus_add(&bus, &other, 32), -EINVAL);
	assert_int_equal(pci_bus_add(&bus, &other, 0), 1);
	cf8(&bus, 0x80001800); /* 00:03.0 */
	assert_int_equal(cfc_read(&bus, 0, 4), 0x10411af4);
	assert_int_equal(ecam_read(&bus, 3 << 15, 4), 0x10411af4);
	assert_int_equal(ecam_read(&bus, (3 << 15) + 8, 4), 0x02000000);
	cfg_written_calls = 0;
	pci_ecam_mmio(&bus, (3 << 15) + 4, d, 2, true);
	assert_int_equal(cfg_written_calls, 1);
	assert_int_equal(cfg_written_off, 4);
	assert_int_equal(cfg_written_len, 2);
	assert_int_equal(ecam_read(&bus, (3 << 15) + 4, 2), 0x0003);
	pthread_mutex_destroy(&bus.lock);
}

/* --- Bus --- */

struct io_record {
	int calls;
	uint64_t offset;
	uint32_t len;
	bool is_write;
	uint8_t data[8];
};

static void record_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct io_record *r = opaque;

	r->calls++;
	r->offset = offset;
	r->len = len;
	r->is_write = is_write;
	if (is_write)
		memcpy(r->data, data, len);
	else
		memset(data, 0x42, len);
}

static void test_bus(void **state)
{
	static struct bus bus;
	struct io_record a = { 0 }, b = { 0 };
	uint8_t d[4] = { 0x11, 0x22, 0x33, 0x44 };

	(void)state;
	bus_init(&bus, "pio");
	assert_int_equal(bus_register(&bus, 0x3f8, 8, record_io, &a, "uart"), 0);
	assert_int_equal(bus_register(&bus, 0x60, 1, record_io, &b, "kbd"), 0);
	assert_int_equal(bus_register(&bus, 0x3fc, 8, record_io, &b, "overlap"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x3f0, 9, record_io, &b, "overlap"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x3f0, 0x100, record_io, &b, "cover"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x3f0, 8, record_io, &b, "adjacent"), 0);
	assert_int_equal(bus_register(&bus, 0x400, 0, record_io, &b, "empty"), -EINVAL);
	assert_int_equal(bus_register(&bus, UINT64_MAX, 2, record_io, &b, "wrap"), -EINVAL);
	assert_int_equal(bus.nranges, 3);

	assert_true(bus_access(&bus, 0x3fa, d, 2, true));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.offset, 2);
	assert_int_equal(a.len, 2);
	assert_true(a.is_write);
	assert_memory_equal(a.data, "\x11\x22", 2);
	assert_int_equal(b.calls, 0);

	assert_true(bus_access(&bus, 0x3ff, d, 1, false));
	assert_int_equal(a.calls, 2);
	assert_int_equal(a.offset, 7);
	assert_false(a.is_write);
	assert_int_equal(d[0], 0x42);

	assert_true(bus_access(&bus, 0x60, d, 1, false));
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.offset, 0);
	assert_true(bus_access(&bus, 0x3f7, d, 1, false));
	assert_int_equal(b.calls, 2);
	assert_int_equal(b.offset, 7);

	/* Unclaimed: reads are all ones, writes are dropped, both are counted. */
	assert_int_equal(bus.unclaimed, 0);
	memset(d, 0, sizeof(d));
	assert_false(bus_access(&bus, 0x400, d, 4, false));
	assert_memory_equal(d, "\xff\xff\xff\xff", 4);
	assert_int_equal(bus.unclaimed, 1);
	d[0] = 0x12;
	assert_false(bus_access(&bus, 0x61, d, 1, true));
	assert_int_equal(d[0], 0x12);
	assert_int_equal(bus.unclaimed, 2);
	assert_int_equal(a.calls, 2);
	assert_int_equal(b.calls, 2);
}

static void test_bus_full(void **state)
{
	static struct bus bus;
	struct io_record r = { 0 };

	(void)state;
	bus_init(&bus, "mmio");
	for (int i = 0; i < BUS_MAX_RANGES; i++)
		assert_int_equal(
			bus_register(&bus, 0x1000 * (uint64_t)i, 0x1000, record_io, &r, "dev"), 0);
	assert_int_equal(bus_register(&bus, 0x100000, 0x1000, record_io, &r, "more"), -ENOSPC);
	assert_true(bus_access(&bus, 0x3f123, (uint8_t[4]){ 0 }, 4, false));
	assert_int_equal(r.offset, 0x123);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rtc_bcd),
		cmocka_unit_test(test_rtc_binary_and_12h),
		cmocka_unit_test(test_rtc_index_port),
		cmocka_unit_test(test_rtc_guest_sets_time),
		cmocka_unit_test(test_rtc_single_register_write),
		cmocka_unit_test(test_pm_poweroff),
		cmocka_unit_test(test_i8042_reset),
		cmocka_unit_test(test_i8042_command_byte),
		cmocka_unit_test(test_reset_control_register),
		cmocka_unit_test(test_power_button_sci),
		cmocka_unit_test(test_pm_timer),
		cmocka_unit_test(test_pci_host_bridge_cf8),
		cmocka_unit_test(test_pci_absent),
		cmocka_unit_test(test_pci_ecam),
		cmocka_unit_test(test_pci_write_masks),
		cmocka_unit_test(test_pci_add_device),
		cmocka_unit_test(test_bus),
		cmocka_unit_test(test_bus_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
