// SPDX-License-Identifier: MIT
#include "platform.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "../common/log.h"
#include "../common/tlv.h"
#include "../common/util.h"

#define PM_TIMER_HZ 3579545ULL

void platform_init(struct platform *p, const struct platform_ops *ops, void *opaque)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->ops = ops;
	p->opaque = opaque;
	/* No SMI command port: the platform is always in ACPI mode. */
	p->pm1_cnt = PM1_CNT_SCI_EN;
	p->tmr_start_ns = (uint64_t)clock_ns(CLOCK_MONOTONIC);
	p->kbc_cmd_byte = 0x61; /* translate, system flag, keyboard interrupt */
}

static void update_sci(struct platform *p)
{
	int level = (p->pm1_sts & p->pm1_en) != 0;

	if (level != p->sci_level) {
		p->sci_level = level;
		if (p->ops->set_sci)
			p->ops->set_sci(p->opaque, level);
	}
}

static uint64_t read_val(const uint8_t *data, uint32_t len)
{
	uint64_t v = 0;

	memcpy(&v, data, len > 8 ? 8 : len);
	return v;
}

static void write_val(uint8_t *data, uint32_t len, uint64_t v)
{
	memset(data, 0, len);
	memcpy(data, &v, len > 8 ? 8 : len);
}

/* Ports 0x600-0x60b: PM1a_STS, PM1a_EN, PM1a_CNT, PM_TMR. */
void platform_pm_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct platform *p = opaque;
	bool poweroff = false;
	uint64_t v, ticks;

	pthread_mutex_lock(&p->lock);
	if (!is_write) {
		switch (offset) {
		case 0:
			v = p->pm1_sts | ((uint32_t)p->pm1_en << 16);
			break;
		case 2:
			v = p->pm1_en;
			break;
		case 4:
			v = p->pm1_cnt;
			break;
		case 8:
			ticks = ((uint64_t)clock_ns(CLOCK_MONOTONIC) - p->tmr_start_ns) *
				PM_TIMER_HZ / 1000000000ULL;
			v = (uint32_t)ticks;
			break;
		default:
			v = 0;
			break;
		}
		write_val(data, len, v);
		goto out;
	}
	v = read_val(data, len);
	switch (offset) {
	case 0:
		p->pm1_sts &= (uint16_t) ~(v & 0xffff); /* write one to clear */
		if (len == 4)
			p->pm1_en = (uint16_t)(v >> 16);
		break;
	case 2:
		p->pm1_en = (uint16_t)v;
		break;
	case 4:
		p->pm1_cnt = (uint16_t)((v & ~(uint64_t)PM1_CNT_SLP_EN) | PM1_CNT_SCI_EN);
		if ((v & PM1_CNT_SLP_EN) && ((v >> 10) & 7) == ACPI_S5_SLP_TYP)
			poweroff = true;
		else if (v & PM1_CNT_SLP_EN)
			pr_warn("guest asked for ACPI sleep type %u, which is not supported",
				(unsigned int)((v >> 10) & 7));
		break;
	default:
		break;
	}
	update_sci(p);
out:
	pthread_mutex_unlock(&p->lock);
	if (poweroff)
		p->ops->event(p->opaque, PLATFORM_POWEROFF);
}

void platform_power_button(struct platform *p)
{
	pthread_mutex_lock(&p->lock);
	p->pm1_sts |= PM1_STS_PWRBTN;
	update_sci(p);
	pthread_mutex_unlock(&p->lock);
}

/* 0x60 data, 0x64 status/command (offset 4). Enough of an 8042 for the BIOS-style reset
 * (command 0xFE, or 0xD1 with bit 0 clear) and for drivers probing the controller. */
void platform_i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct platform *p = opaque;
	bool reset = false;

	if (offset != 0 && offset != 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&p->lock);
	if (!is_write) {
		memset(data, 0, len);
		if (offset == 0) {
			data[0] = p->kbc_out;
			p->kbc_out_full = false;
		} else {
			/* system flag; output buffer full when a reply is waiting */
			data[0] = 0x04 | (p->kbc_out_full ? 0x01 : 0);
		}
		goto out;
	}
	if (offset == 4) {
		p->kbc_pending_cmd = 0;
		switch (data[0]) {
		case 0x20: /* read command byte */
			p->kbc_out = p->kbc_cmd_byte;
			p->kbc_out_full = true;
			break;
		case 0x60: /* write command byte: next data byte */
		case 0xd1: /* write output port: next data byte */
			p->kbc_pending_cmd = data[0];
			break;
		case 0xaa: /* self test */
			p->kbc_out = 0x55;
			p->kbc_out_full = true;
			break;
		case 0xab: /* keyboard interface test */
			p->kbc_out = 0x00;
			p->kbc_out_full = true;
			break;
		case 0xfe: /* pulse the reset line */
			reset = true;
			break;
		default:
			break;
		}
		goto out;
	}
	switch (p->kbc_pending_cmd) {
	case 0x60:
		p->kbc_cmd_byte = data[0];
		break;
	case 0xd1:
		if (!(data[0] & 1))
			reset = true;
		break;
	default:
		/* A keyboard command: no keyboard is attached, answer "resend". */
		p->kbc_out = 0xfe;
		p->kbc_out_full = true;
		break;
	}
	p->kbc_pending_cmd = 0;
out:
	pthread_mutex_unlock(&p->lock);
	if (reset)
		p->ops->event(p->opaque, PLATFORM_RESET);
}

/* Port 0xCF9, the reset control register: writing bit 2 (with bit 1 for a hard reset) resets. */
void platform_rcr_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct platform *p = opaque;
	bool reset = false;

	(void)offset;
	pthread_mutex_lock(&p->lock);
	if (is_write) {
		if (data[0] & 0x04)
			reset = true;
		p->rcr = data[0] & 0x0a;
	} else {
		memset(data, 0, len);
		data[0] = p->rcr;
	}
	pthread_mutex_unlock(&p->lock);
	if (reset)
		p->ops->event(p->opaque, PLATFORM_RESET);
}

/* Section SECTION_PLATFORM, version 1. */
enum {
	PLAT_T_PM1_STS = 1,
	PLAT_T_PM1_EN,
	PLAT_T_PM1_CNT,
	PLAT_T_PM_TMR_TICKS, /* the PM timer's count, which goes on from there after a load */
	PLAT_T_KBC_CMD_BYTE,
	PLAT_T_KBC_PENDING_CMD,
	PLAT_T_KBC_OUT,
	PLAT_T_KBC_OUT_FULL,
	PLAT_T_RCR,
};

static int platform_save(void *dev, struct tlv_writer *w)
{
	struct platform *p = dev;

	pthread_mutex_lock(&p->lock);
	tlv_put_u16(w, PLAT_T_PM1_STS, p->pm1_sts);
	tlv_put_u16(w, PLAT_T_PM1_EN, p->pm1_en);
	tlv_put_u16(w, PLAT_T_PM1_CNT, p->pm1_cnt);
	tlv_put_u64(w, PLAT_T_PM_TMR_TICKS,
		    ((uint64_t)clock_ns(CLOCK_MONOTONIC) - p->tmr_start_ns) * PM_TIMER_HZ /
			    1000000000ULL);
	tlv_put_u8(w, PLAT_T_KBC_CMD_BYTE, p->kbc_cmd_byte);
	tlv_put_u8(w, PLAT_T_KBC_PENDING_CMD, p->kbc_pending_cmd);
	tlv_put_u8(w, PLAT_T_KBC_OUT, p->kbc_out);
	tlv_put_u8(w, PLAT_T_KBC_OUT_FULL, p->kbc_out_full);
	tlv_put_u8(w, PLAT_T_RCR, p->rcr);
	pthread_mutex_unlock(&p->lock);
	return w->err;
}

static int platform_load(void *dev, const struct tlv_section *s)
{
	struct platform *p = dev;
	uint64_t ticks = 0;
	int ret = 0;

	pthread_mutex_lock(&p->lock);
	ret |= tlv_get_u16(s, PLAT_T_PM1_STS, &p->pm1_sts);
	ret |= tlv_get_u16(s, PLAT_T_PM1_EN, &p->pm1_en);
	ret |= tlv_get_u16(s, PLAT_T_PM1_CNT, &p->pm1_cnt);
	ret |= tlv_get_u64(s, PLAT_T_PM_TMR_TICKS, &ticks);
	ret |= tlv_get_u8(s, PLAT_T_KBC_CMD_BYTE, &p->kbc_cmd_byte);
	ret |= tlv_get_u8(s, PLAT_T_KBC_PENDING_CMD, &p->kbc_pending_cmd);
	ret |= tlv_get_u8(s, PLAT_T_KBC_OUT, &p->kbc_out);
	ret |= tlv_get_bool(s, PLAT_T_KBC_OUT_FULL, &p->kbc_out_full);
	ret |= tlv_get_u8(s, PLAT_T_RCR, &p->rcr);
	/* ticks < 2^64 / 10^9 for 160 years of guest uptime; larger is corrupt */
	if (ticks > (UINT64_MAX / 1000000000ULL))
		ret = -EINVAL;
	p->tmr_start_ns = (uint64_t)clock_ns(CLOCK_MONOTONIC) - ticks * 1000000000ULL / PM_TIMER_HZ;
	p->sci_level = 0;
	if (!ret)
		update_sci(p);
	pthread_mutex_unlock(&p->lock);
	return ret ? -EINVAL : 0;
}

const struct device_ops platform_device_ops = {
	.name = "platform",
	.section_id = SECTION_PLATFORM,
	.version = 1,
	.min_version = 1,
	.save = platform_save,
	.load = platform_load,
};
