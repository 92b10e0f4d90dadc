// SPDX-License-Identifier: MIT
/* Unit tests for src/devices/serial8250.c: the 16550A register model driven through its bus
 * callback, with fake host-side hooks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "devices/serial8250.h"

struct fake {
	uint8_t tx[256];
	unsigned int ntx;
	int irq;
	unsigned int irq_changes;
	unsigned int rx_space_calls;
};

static void fake_tx(void *opaque, uint8_t byte)
{
	struct fake *f = opaque;

	if (f->ntx < sizeof(f->tx))
		f->tx[f->ntx] = byte;
	f->ntx++;
}

static void fake_set_irq(void *opaque, int level)
{
	struct fake *f = opaque;

	f->irq = level;
	f->irq_changes++;
}

static void fake_rx_space(void *opaque)
{
	struct fake *f = opaque;

	f->rx_space_calls++;
}

static const struct serial8250_ops fake_ops = {
	.tx = fake_tx,
	.set_irq = fake_set_irq,
	.rx_space = fake_rx_space,
};

struct ctx {
	struct serial8250 uart;
	struct fake fake;
};

static int setup(void **state)
{
	static struct ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	serial8250_init(&ctx.uart, &fake_ops, &ctx.fake);
	*state = &ctx;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *ctx = *state;

	serial8250_destroy(&ctx->uart);
	return 0;
}

static void wr(struct serial8250 *s, unsigned int off, uint8_t v)
{
	serial8250_io(s, off, &v, 1, true);
}

static uint8_t rd(struct serial8250 *s, unsigned int off)
{
	uint8_t v = 0x5a;

	serial8250_io(s, off, &v, 1, false);
	return v;
}

static void feed(struct serial8250 *s, size_t n, size_t expect_taken)
{
	uint8_t buf[64];

	assert_true(n <= sizeof(buf));
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)('a' + i);
	assert_int_equal(serial8250_receive(s, buf, n), expect_taken);
}

static void test_reset_state(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	assert_int_equal(rd(s, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(rd(s, UART_IER), 0);
	assert_int_equal(rd(s, UART_LCR), 0x03);
	assert_int_equal(rd(s, UART_MCR), 0);
	/* Outside loopback the modem lines read as connected: DCD, DSR, CTS. */
	assert_int_equal(rd(s, UART_MSR), 0xb0);
	assert_int_equal(ctx->fake.irq, 0);
	assert_int_equal(ctx->fake.irq_changes, 0);
	assert_int_equal(serial8250_rx_room(s), 1);
}

static void test_thr_transmits(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_THR, 'H');
	wr(s, UART_THR, 'i');
	assert_int_equal(ctx->fake.ntx, 2);
	assert_memory_equal(ctx->fake.tx, "Hi", 2);
	assert_int_equal(s->tx_bytes, 2);
	/* The byte leaves at once: the transmitter is empty again. */
	assert_int_equal(rd(s, UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT),
			 UART_LSR_THRE | UART_LSR_TEMT);
	/* No interrupts enabled: no IRQ. */
	assert_int_equal(ctx->fake.irq_changes, 0);
}

static void test_thri_irq_with_out2(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_MCR, UART_MCR_OUT2 | UART_MCR_DTR | UART_MCR_RTS);
	assert_int_equal(ctx->fake.irq, 0);
	wr(s, UART_IER, UART_IER_THRI);
	assert_int_equal(ctx->fake.irq, 1);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_THRI);
	/* Reading IIR acknowledged it. */
	assert_int_equal(ctx->fake.irq, 0);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_NO_INT);

	/* Each transmitted byte empties the holding register again. */
	wr(s, UART_THR, 'x');
	assert_int_equal(ctx->fake.irq, 1);
	assert_int_equal(ctx->fake.ntx, 1);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_THRI);
	assert_int_equal(ctx->fake.irq, 0);

	/* With the FIFO enabled IIR also reports it in bits 7:6. */
	wr(s, UART_FCR, UART_FCR_ENABLE);
	wr(s, UART_THR, 'y');
	assert_int_equal(ctx->fake.irq, 1);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_FIFO | UART_IIR_THRI);
	assert_int_equal(ctx->fake.irq, 0);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_FIFO | UART_IIR_NO_INT);

	/* Disabling THRI in IER drops a pending interrupt. */
	wr(s, UART_THR, 'z');
	assert_int_equal(ctx->fake.irq, 1);
	wr(s, UART_IER, 0);
	assert_int_equal(ctx->fake.irq, 0);
}

static void test_no_irq_without_out2(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_MCR, UART_MCR_DTR | UART_MCR_RTS);
	wr(s, UART_IER, UART_IER_THRI | UART_IER_RDI);
	wr(s, UART_THR, 'a');
	feed(s, 1, 1);
	assert_int_equal(ctx->fake.irq, 0);
	assert_int_equal(ctx->fake.irq_changes, 0);
	/* The condition is still visible in IIR. */
	assert_int_equal(rd(s, UART_IIR), UART_IIR_RDI);
	/* Setting OUT2 connects the line. */
	wr(s, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(ctx->fake.irq, 1);
}

static void test_receive_fifo(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_FCR, UART_FCR_ENABLE);
	assert_int_equal(serial8250_rx_room(s), 16);
	assert_false(rd(s, UART_LSR) & UART_LSR_DR);
	feed(s, 20, 16);
	assert_int_equal(serial8250_rx_room(s), 0);
	assert_int_equal(s->rx_bytes, 16);
	assert_true(rd(s, UART_LSR) & UART_LSR_DR);
	/* Refused input is not an overrun: it waits on the host side. */
	assert_false(rd(s, UART_LSR) & UART_LSR_OE);
	for (int i = 0; i < 16; i++) {
		assert_true(rd(s, UART_LSR) & UART_LSR_DR);
		assert_int_equal(rd(s, UART_RBR), 'a' + i);
		assert_int_equal(serial8250_rx_room(s), (size_t)i + 1);
	}
	assert_false(rd(s, UART_LSR) & UART_LSR_DR);
	assert_int_equal(rd(s, UART_RBR), 0);

	/* The ring wraps around. */
	feed(s, 10, 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(rd(s, UART_RBR), 'a' + i);
	feed(s, 16, 16);
	for (int i = 0; i < 16; i++)
		assert_int_equal(rd(s, UART_RBR), 'a' + i);
}

static void test_receive_no_fifo(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	feed(s, 3, 1);
	assert_int_equal(serial8250_rx_room(s), 0);
	feed(s, 3, 0);
	assert_true(rd(s, UART_LSR) & UART_LSR_DR);
	assert_int_equal(rd(s, UART_RBR), 'a');
	assert_false(rd(s, UART_LSR) & UART_LSR_DR);
	feed(s, 1, 1);
	assert_int_equal(rd(s, UART_RBR), 'a');
}

static void test_rx_trigger_14(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_FCR, 0xc1);
	wr(s, UART_MCR, UART_MCR_OUT2);
	wr(s, UART_IER, UART_IER_RDI);
	assert_int_equal(ctx->fake.irq, 0);
	feed(s, 13, 13);
	assert_int_equal(ctx->fake.irq, 1);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_FIFO | UART_IIR_TIMEOUT);
	feed(s, 1, 1);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_FIFO | UART_IIR_RDI);
	/* Reading IIR does not acknowledge received data. */
	assert_int_equal(rd(s, UART_IIR), UART_IIR_FIFO | UART_IIR_RDI);
	assert_int_equal(ctx->fake.irq, 1);
	rd(s, UART_RBR);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_FIFO | UART_IIR_TIMEOUT);
	for (int i = 0; i < 13; i++)
		rd(s, UART_RBR);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_FIFO | UART_IIR_NO_INT);
	assert_int_equal(ctx->fake.irq, 0);
}

static void test_rx_trigger_4(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_FCR, 0x41);
	wr(s, UART_MCR, UART_MCR_OUT2);
	wr(s, UART_IER, UART_IER_RDI);
	feed(s, 3, 3);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_FIFO | UART_IIR_TIMEOUT);
	feed(s, 1, 1);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_FIFO | UART_IIR_RDI);
	/* Trigger level 1 (FCR 0x01): one byte is enough. */
	wr(s, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	feed(s, 1, 1);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_FIFO | UART_IIR_RDI);
}

static void test_rx_priority_over_thri(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_MCR, UART_MCR_OUT2);
	wr(s, UART_IER, UART_IER_THRI | UART_IER_RDI);
	feed(s, 1, 1);
	/* Received data outranks the transmitter, and leaves THRI pending. */
	assert_int_equal(rd(s, UART_IIR), UART_IIR_RDI);
	assert_int_equal(rd(s, UART_RBR), 'a');
	assert_int_equal(rd(s, UART_IIR), UART_IIR_THRI);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(ctx->fake.irq, 0);
}

static void test_fcr_clear_rx(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_FCR, UART_FCR_ENABLE);
	feed(s, 5, 5);
	assert_true(rd(s, UART_LSR) & UART_LSR_DR);
	ctx->fake.rx_space_calls = 0;
	wr(s, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	assert_false(rd(s, UART_LSR) & UART_LSR_DR);
	assert_int_equal(serial8250_rx_room(s), 16);
	assert_true(ctx->fake.rx_space_calls >= 1);
	/* FIFO still enabled after the clear. */
	feed(s, 5, 5);
	assert_int_equal(rd(s, UART_IIR) & UART_IIR_FIFO, UART_IIR_FIFO);
	/* Disabling the FIFO also empties it. */
	wr(s, UART_FCR, 0);
	assert_false(rd(s, UART_LSR) & UART_LSR_DR);
	assert_int_equal(rd(s, UART_IIR) & UART_IIR_FIFO, 0);
	assert_int_equal(serial8250_rx_room(s), 1);
}

static void test_dlab(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_IER, UART_IER_RDI);
	wr(s, UART_LCR, UART_LCR_DLAB | 0x03);
	assert_int_equal(rd(s, UART_RBR), 0x0c); /* 9600 baud from reset */
	assert_int_equal(rd(s, UART_IER), 0x00);
	wr(s, UART_THR, 0x01); /* 115200 baud */
	wr(s, UART_IER, 0x02);
	assert_int_equal(rd(s, UART_RBR), 0x01);
	assert_int_equal(rd(s, UART_IER), 0x02);
	assert_int_equal(ctx->fake.ntx, 0); /* DLL writes do not transmit */
	assert_int_equal(rd(s, UART_LCR), 0x83);
	wr(s, UART_LCR, 0x03);
	assert_int_equal(rd(s, UART_IER), UART_IER_RDI); /* IER was not touched */
	assert_int_equal(s->dll, 0x01);
	assert_int_equal(s->dlm, 0x02);
	wr(s, UART_THR, 'q');
	assert_int_equal(ctx->fake.ntx, 1);
	assert_int_equal(ctx->fake.tx[0], 'q');
}

static void test_loopback(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_IER, UART_IER_RDI | UART_IER_THRI);
	/* Linux's autoconfig: MCR = LOOP | OUT2 | RTS must give CTS and DCD only. */
	wr(s, UART_MCR, UART_MCR_LOOP | 0x0a);
	assert_int_equal(rd(s, UART_MSR) & 0xf0, 0x90);
	wr(s, UART_MCR, UART_MCR_LOOP | 0x0f);
	assert_int_equal(rd(s, UART_MSR) & 0xf0, 0xf0);
	wr(s, UART_MCR, UART_MCR_LOOP);
	assert_int_equal(rd(s, UART_MSR) & 0xf0, 0x00);
	wr(s, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1);
	assert_int_equal(rd(s, UART_MSR) & 0xf0, UART_MSR_DSR | UART_MSR_RI);

	/* Transmitted data comes back as received data and does not reach the host. */
	wr(s, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2);
	wr(s, UART_THR, 0x42);
	assert_int_equal(ctx->fake.ntx, 0);
	assert_true(rd(s, UART_LSR) & UART_LSR_DR);
	assert_int_equal(rd(s, UART_RBR), 0x42);
	/* The interrupt line is disconnected in loopback. */
	assert_int_equal(ctx->fake.irq, 0);
	/* Input from outside is held back. */
	assert_int_equal(serial8250_rx_room(s), 0);
	feed(s, 2, 0);
	assert_false(rd(s, UART_LSR) & UART_LSR_DR);

	/* A second byte without FIFO overruns the one-byte holding register. */
	wr(s, UART_THR, 0x01);
	wr(s, UART_THR, 0x02);
	assert_true(rd(s, UART_LSR) & UART_LSR_OE);
	assert_false(rd(s, UART_LSR) & UART_LSR_OE); /* cleared by reading LSR */
	assert_int_equal(rd(s, UART_RBR), 0x01);

	/* Leaving loopback: data goes to the host again and the line is reconnected. */
	wr(s, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(ctx->fake.irq, 1); /* THRI pending from the loopback writes */
	wr(s, UART_THR, 'o');
	assert_int_equal(ctx->fake.ntx, 1);
	assert_int_equal(ctx->fake.tx[0], 'o');
	assert_int_equal(rd(s, UART_MSR) & 0xf0, 0xb0);
}

static void test_line_status_interrupt(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_IER, UART_IER_RLSI | UART_IER_RDI);
	wr(s, UART_MCR, UART_MCR_LOOP);
	wr(s, UART_THR, 1);
	wr(s, UART_THR, 2);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_RLSI);
	assert_true(rd(s, UART_LSR) & UART_LSR_OE);
	assert_int_equal(rd(s, UART_IIR), UART_IIR_RDI);
}

static void test_scratch(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	assert_int_equal(rd(s, UART_SCR), 0);
	wr(s, UART_SCR, 0xa5);
	assert_int_equal(rd(s, UART_SCR), 0xa5);
	wr(s, UART_SCR, 0x5a);
	assert_int_equal(rd(s, UART_SCR), 0x5a);
	/* LSR and MSR are read-only. */
	wr(s, UART_LSR, 0);
	assert_int_equal(rd(s, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
}

static void test_rx_space_callback(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;

	wr(s, UART_FCR, UART_FCR_ENABLE);
	feed(s, 2, 2);
	ctx->fake.rx_space_calls = 0;
	rd(s, UART_LSR);
	rd(s, UART_IIR);
	assert_int_equal(ctx->fake.rx_space_calls, 0);
	assert_int_equal(rd(s, UART_RBR), 'a');
	assert_int_equal(ctx->fake.rx_space_calls, 1);
	assert_int_equal(rd(s, UART_RBR), 'b');
	assert_int_equal(ctx->fake.rx_space_calls, 2);
	/* Reading an empty FIFO frees nothing. */
	rd(s, UART_RBR);
	assert_int_equal(ctx->fake.rx_space_calls, 2);
}

static void test_wide_and_out_of_range_access(void **state)
{
	struct ctx *ctx = *state;
	struct serial8250 *s = &ctx->uart;
	uint8_t data[4] = { 0xee, 0xee, 0xee, 0xee };
	uint8_t v = 0x11;

	wr(s, UART_SCR, 0x77);
	serial8250_io(s, UART_SCR, data, 4, false);
	assert_int_equal(data[0], 0x77);
	assert_int_equal(data[1], 0);
	assert_int_equal(data[3], 0);
	/* Offsets past the eight registers are ignored. */
	serial8250_io(s, 8, &v, 1, true);
	assert_int_equal(rd(s, UART_SCR), 0x77);
	assert_int_equal(ctx->fake.ntx, 0);
}

static void test_null_ops(void **state)
{
	struct serial8250 s;

	(void)state;
	serial8250_init(&s, NULL, NULL);
	wr(&s, UART_MCR, UART_MCR_OUT2);
	wr(&s, UART_IER, UART_IER_THRI);
	wr(&s, UART_THR, 'x');
	assert_int_equal(s.tx_bytes, 1);
	assert_int_equal(s.irq_level, 1);
	serial8250_destroy(&s);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_reset_state),
		T(test_thr_transmits),
		T(test_thri_irq_with_out2),
		T(test_no_irq_without_out2),
		T(test_receive_fifo),
		T(test_receive_no_fifo),
		T(test_rx_trigger_14),
		T(test_rx_trigger_4),
		T(test_rx_priority_over_thri),
		T(test_fcr_clear_rx),
		T(test_dlab),
		T(test_loopback),
		T(test_line_status_interrupt),
		T(test_scratch),
		T(test_rx_space_callback),
		T(test_wide_and_out_of_range_access),
		cmocka_unit_test(test_null_ops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
