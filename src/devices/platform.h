/* SPDX-License-Identifier: MIT */
/* Small platform devices: the i8042 keyboard controller (enough for the reset line), the ACPI
 * PM1 event/control registers and PM timer, the 0xCF9 reset control register, and the
 * debug-exit port used by test payloads. */
#ifndef VIREO_DEVICES_PLATFORM_H
#define VIREO_DEVICES_PLATFORM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "device.h"

/* What the guest asked the machine to do. */
enum platform_event {
	PLATFORM_RESET,
	PLATFORM_POWEROFF
};

struct platform_ops {
	void (*event)(void *opaque, enum platform_event ev);
	void (*set_sci)(void *opaque, int level);
};

/* I/O ports and values, shared with the ACPI table builder (FADT, DSDT). */
#define ACPI_PM1_EVT_PORT 0x600
#define ACPI_PM1_CNT_PORT 0x604
#define ACPI_PM_TMR_PORT 0x608
#define ACPI_SCI_IRQ 9
#define ACPI_S5_SLP_TYP 5
#define RESET_CONTROL_PORT 0xcf9
#define RESET_CONTROL_VALUE 0x06
#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64

#define PM1_STS_TMR 0x0001
#define PM1_STS_PWRBTN 0x0100
#define PM1_STS_WAK 0x8000
#define PM1_CNT_SCI_EN 0x0001
#define PM1_CNT_SLP_EN 0x2000

struct platform {
	pthread_mutex_t lock;
	const struct platform_ops *ops;
	void *opaque;
	/* ACPI PM1 */
	uint16_t pm1_sts, pm1_en, pm1_cnt;
	int sci_level;
	uint64_t tmr_start_ns;
	/* i8042 */
	uint8_t kbc_cmd_byte, kbc_pending_cmd, kbc_out;
	bool kbc_out_full;
	/* 0xCF9 */
	uint8_t rcr;
};

void platform_init(struct platform *p, const struct platform_ops *ops, void *opaque);
void platform_pm_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void platform_i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void platform_rcr_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* The ACPI power button: sets PWRBTN_STS and raises the SCI when the guest enabled it. */
void platform_power_button(struct platform *p);

extern const struct device_ops platform_device_ops;

#endif
