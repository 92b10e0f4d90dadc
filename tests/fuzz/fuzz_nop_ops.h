/* SPDX-License-Identifier: MIT */
/* Callbacks that do nothing, for the legacy devices of the state fuzzers: the UART's output and
 * interrupt line and the platform device's events and SCI go nowhere. */
#ifndef VIREO_TESTS_FUZZ_NOP_OPS_H
#define VIREO_TESTS_FUZZ_NOP_OPS_H

#include <stdint.h>

#include "devices/platform.h"
#include "devices/serial8250.h"

static void nop_tx(void *o, uint8_t b)
{
	(void)o;
	(void)b;
}

static void nop_irq(void *o, int level)
{
	(void)o;
	(void)level;
}

static void nop_event(void *o, enum platform_event ev)
{
	(void)o;
	(void)ev;
}

static const struct serial8250_ops uart_ops = { .tx = nop_tx, .set_irq = nop_irq };
static const struct platform_ops plat_ops = { .event = nop_event, .set_sci = nop_irq };

#endif
