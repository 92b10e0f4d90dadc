/* SPDX-License-Identifier: MIT */
/* 8250/16550A UART model: registers, 16-byte receive FIFO with trigger levels, loopback, and the
 * interrupt line as the PC wires it (gated by MCR.OUT2). No KVM in here, so it is unit tested. */
#ifndef VIREO_DEVICES_SERIAL8250_H
#define VIREO_DEVICES_SERIAL8250_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

#define SERIAL8250_FIFO_SIZE 16

struct serial8250_ops {
	/* A byte the guest transmitted (not called in loopback mode). */
	void (*tx)(void *opaque, uint8_t byte);
	/* The interrupt output changed level. */
	void (*set_irq)(void *opaque, int level);
	/* The guest read a byte, so the receive FIFO has room again. Called with the UART lock
	 * held: must not call back into the UART. May be NULL. */
	void (*rx_space)(void *opaque);
};

struct serial8250 {
	pthread_mutex_t lock;
	const struct serial8250_ops *ops;
	void *opaque;
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thri_pending; /* transmitter-empty interrupt not yet acknowledged */
	bool fifo_enabled;
	uint8_t rx[SERIAL8250_FIFO_SIZE];
	unsigned int rx_head, rx_count;
	int irq_level;
	unsigned long tx_bytes, rx_bytes;
};

void serial8250_init(struct serial8250 *s, const struct serial8250_ops *ops, void *opaque);
void serial8250_destroy(struct serial8250 *s);
/* Register access at offset 0..7 (bus callback). Accesses wider than a byte use the low byte. */
void serial8250_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Input from the host side. Returns how many bytes the FIFO took (the rest should be offered
 * again after rx_space). */
size_t serial8250_receive(struct serial8250 *s, const uint8_t *buf, size_t len);
/* Bytes the receive FIFO can take now. */
size_t serial8250_rx_room(struct serial8250 *s);

/* Register offsets and bits, as in the 16550A data sheet. */
#define UART_RBR 0
#define UART_THR 0
#define UART_IER 1
#define UART_IIR 2
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7
#define UART_IER_RDI 0x01
#define UART_IER_THRI 0x02
#define UART_IER_RLSI 0x04
#define UART_IER_MSI 0x08
#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI 0x00
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_RLSI 0x06
#define UART_IIR_TIMEOUT 0x0c
#define UART_IIR_FIFO 0xc0
#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_FCR_CLEAR_TX 0x04
#define UART_LCR_DLAB 0x80
#define UART_MCR_DTR 0x01
#define UART_MCR_RTS 0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10
#define UART_LSR_DR 0x01
#define UART_LSR_OE 0x02
#define UART_LSR_BI 0x10
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80

extern const struct device_ops serial8250_device_ops;

#endif
