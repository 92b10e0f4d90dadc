/* SPDX-License-Identifier: MIT */
/* MC146818 CMOS real-time clock at ports 0x70/0x71: reads the host's clock (UTC), keeps the
 * guest's own setting as an offset, and 128 bytes of CMOS memory. No periodic or alarm
 * interrupts (Linux uses the PIT, LAPIC timer and kvmclock instead). */
#ifndef VIREO_DEVICES_RTC_H
#define VIREO_DEVICES_RTC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include <time.h>

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t cmos[128];
	int64_t offset; /* guest time minus host time, seconds */
	time_t (*now)(void); /* host clock; replaceable for tests */
};

void rtc_init(struct rtc *rtc);
void rtc_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

extern const struct device_ops rtc_device_ops;

#endif
