// SPDX-License-Identifier: MIT
#include "rtc.h"

#include <errno.h>
#include <string.h>

#include "../common/tlv.h"

#define REG_SEC 0x00
#define REG_MIN 0x02
#define REG_HOUR 0x04
#define REG_WDAY 0x06
#define REG_MDAY 0x07
#define REG_MON 0x08
#define REG_YEAR 0x09
#define REG_A 0x0a
#define REG_B 0x0b
#define REG_C 0x0c
#define REG_D 0x0d
#define REG_CENTURY 0x32
#define B_SET 0x80
#define B_BINARY 0x04
#define B_24H 0x02

static time_t host_now(void)
{
	return time(NULL);
}

void rtc_init(struct rtc *rtc)
{
	memset(rtc, 0, sizeof(*rtc));
	pthread_mutex_init(&rtc->lock, NULL);
	rtc->now = host_now;
	rtc->cmos[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
	rtc->cmos[REG_B] = B_24H;
	rtc->cmos[REG_D] = 0x80; /* battery good */
}

static uint8_t to_reg(const struct rtc *rtc, int v)
{
	if (rtc->cmos[REG_B] & B_BINARY)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static int from_reg(const struct rtc *rtc, uint8_t v)
{
	if (rtc->cmos[REG_B] & B_BINARY)
		return v;
	return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t hour_reg(const struct rtc *rtc, int hour)
{
	uint8_t pm;

	if (rtc->cmos[REG_B] & B_24H)
		return to_reg(rtc, hour);
	pm = hour >= 12 ? 0x80 : 0;
	hour %= 12;
	return to_reg(rtc, hour ? hour : 12) | pm;
}

/* Fills the time registers from host time plus the guest's offset. */
static void refresh(struct rtc *rtc)
{
	time_t t = rtc->now() + rtc->offset;
	struct tm tm;

	gmtime_r(&t, &tm);
	rtc->cmos[REG_SEC] = to_reg(rtc, tm.tm_sec);
	rtc->cmos[REG_MIN] = to_reg(rtc, tm.tm_min);
	rtc->cmos[REG_HOUR] = hour_reg(rtc, tm.tm_hour);
	rtc->cmos[REG_WDAY] = to_reg(rtc, tm.tm_wday + 1);
	rtc->cmos[REG_MDAY] = to_reg(rtc, tm.tm_mday);
	rtc->cmos[REG_MON] = to_reg(rtc, tm.tm_mon + 1);
	rtc->cmos[REG_YEAR] = to_reg(rtc, tm.tm_year % 100);
	rtc->cmos[REG_CENTURY] = to_reg(rtc, (tm.tm_year + 1900) / 100);
}

/* The guest finished setting the clock (SET cleared): remember its time as an offset. */
static void latch_guest_time(struct rtc *rtc)
{
	struct tm tm = { 0 };
	uint8_t h = rtc->cmos[REG_HOUR];
	int hour;

	tm.tm_sec = from_reg(rtc, rtc->cmos[REG_SEC]);
	tm.tm_min = from_reg(rtc, rtc->cmos[REG_MIN]);
	if (rtc->cmos[REG_B] & B_24H) {
		hour = from_reg(rtc, h);
	} else {
		hour = from_reg(rtc, h & 0x7f) % 12;
		if (h & 0x80)
			hour += 12;
	}
	tm.tm_hour = hour;
	tm.tm_mday = from_reg(rtc, rtc->cmos[REG_MDAY]);
	tm.tm_mon = from_reg(rtc, rtc->cmos[REG_MON]) - 1;
	tm.tm_year = from_reg(rtc, rtc->cmos[REG_CENTURY]) * 100 +
		     from_reg(rtc, rtc->cmos[REG_YEAR]) - 1900;
	rtc->offset = (int64_t)(timegm(&tm) - rtc->now());
}

void rtc_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rtc *rtc = opaque;
	uint8_t idx;

	pthread_mutex_lock(&rtc->lock);
	if (offset == 0) {
		if (is_write)
			rtc->index = data[0] & 0x7f; /* bit 7 is the NMI mask */
		else
			memset(data, 0xff, len);
		goto out;
	}
	idx = rtc->index;
	if (!is_write) {
		memset(data, 0, len);
		if (idx <= REG_YEAR || idx == REG_CENTURY) {
			if (!(rtc->cmos[REG_B] & B_SET))
				refresh(rtc);
		}
		data[0] = rtc->cmos[idx];
		if (idx == REG_C)
			rtc->cmos[REG_C] = 0;
		goto out;
	}
	switch (idx) {
	case REG_B:
		if ((rtc->cmos[REG_B] & B_SET) && !(data[0] & B_SET)) {
			rtc->cmos[REG_B] = data[0];
			latch_guest_time(rtc);
		} else {
			if (!(rtc->cmos[REG_B] & B_SET) && (data[0] & B_SET))
				refresh(rtc);
			rtc->cmos[REG_B] = data[0];
		}
		break;
	case REG_A:
		rtc->cmos[REG_A] = data[0] & 0x7f; /* UIP is read-only */
		break;
	case REG_C:
	case REG_D:
		break;
	default:
		if ((idx <= REG_YEAR || idx == REG_CENTURY) && !(rtc->cmos[REG_B] & B_SET)) {
			/* A time register written outside a SET window takes effect at once. */
			refresh(rtc);
			rtc->cmos[idx] = data[0];
			latch_guest_time(rtc);
			break;
		}
		rtc->cmos[idx] = data[0];
		break;
	}
out:
	pthread_mutex_unlock(&rtc->lock);
}

/* Section SECTION_RTC, version 1. The clock itself is not saved: it follows host time plus the
 * offset the guest set, as a battery-backed clock would across a restore. */
enum {
	RTC_T_INDEX = 1,
	RTC_T_CMOS,
	RTC_T_OFFSET,
};

static int rtc_save(void *dev, struct tlv_writer *w)
{
	struct rtc *rtc = dev;

	pthread_mutex_lock(&rtc->lock);
	tlv_put_u8(w, RTC_T_INDEX, rtc->index);
	tlv_put(w, RTC_T_CMOS, rtc->cmos, sizeof(rtc->cmos));
	tlv_put_u64(w, RTC_T_OFFSET, (uint64_t)rtc->offset);
	pthread_mutex_unlock(&rtc->lock);
	return w->err;
}

static int rtc_load(void *dev, const struct tlv_section *s)
{
	struct rtc *rtc = dev;
	uint64_t off = (uint64_t)rtc->offset;
	int ret = 0;

	pthread_mutex_lock(&rtc->lock);
	ret |= tlv_get_u8(s, RTC_T_INDEX, &rtc->index);
	ret |= tlv_get_bytes(s, RTC_T_CMOS, rtc->cmos, sizeof(rtc->cmos));
	ret |= tlv_get_u64(s, RTC_T_OFFSET, &off);
	rtc->offset = (int64_t)off;
	rtc->index &= 0x7f;
	pthread_mutex_unlock(&rtc->lock);
	return ret ? -EINVAL : 0;
}

const struct device_ops rtc_device_ops = {
	.name = "cmos-rtc",
	.section_id = SECTION_RTC,
	.version = 1,
	.min_version = 1,
	.save = rtc_save,
	.load = rtc_load,
};
