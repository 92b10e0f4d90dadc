// SPDX-License-Identifier: MIT
#include "serial8250.h"

#include <errno.h>
#include <string.h>

#include "../common/tlv.h"

static const unsigned int trigger_levels[4] = { 1, 4, 8, 14 };

static unsigned int rx_capacity(const struct serial8250 *s)
{
	return s->fifo_enabled ? SERIAL8250_FIFO_SIZE : 1;
}

/* Modem status as seen by the guest: in loopback the outputs of MCR feed the inputs. */
static uint8_t msr_value(const struct serial8250 *s)
{
	uint8_t m = s->msr & 0x0f;

	if (s->mcr & UART_MCR_LOOP) {
		if (s->mcr & UART_MCR_RTS)
			m |= UART_MSR_CTS;
		if (s->mcr & UART_MCR_DTR)
			m |= UART_MSR_DSR;
		if (s->mcr & UART_MCR_OUT1)
			m |= UART_MSR_RI;
		if (s->mcr & UART_MCR_OUT2)
			m |= UART_MSR_DCD;
	} else {
		m |= UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	}
	return m;
}

/* The interrupt identification the guest would read now, highest priority first. */
static uint8_t iir_value(const struct serial8250 *s)
{
	if ((s->ier & UART_IER_RLSI) && (s->lsr & (UART_LSR_OE | UART_LSR_BI)))
		return UART_IIR_RLSI;
	if ((s->ier & UART_IER_RDI) && s->rx_count) {
		/* Below the trigger level the character-timeout interrupt stands in. */
		if (s->fifo_enabled && s->rx_count < trigger_levels[s->fcr >> 6])
			return UART_IIR_TIMEOUT;
		return UART_IIR_RDI;
	}
	if ((s->ier & UART_IER_THRI) && s->thri_pending)
		return UART_IIR_THRI;
	if ((s->ier & UART_IER_MSI) && (s->msr & 0x0f))
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

static void update_irq(struct serial8250 *s)
{
	/* On the PC the UART's interrupt reaches the PIC only when OUT2 is set; in loopback the
	 * line is disconnected. */
	int level = iir_value(s) != UART_IIR_NO_INT && (s->mcr & UART_MCR_OUT2) &&
		    !(s->mcr & UART_MCR_LOOP);

	if (level != s->irq_level) {
		s->irq_level = level;
		if (s->ops && s->ops->set_irq)
			s->ops->set_irq(s->opaque, level);
	}
}

static void rx_push(struct serial8250 *s, uint8_t byte)
{
	if (s->rx_count >= rx_capacity(s)) {
		s->lsr |= UART_LSR_OE;
		return;
	}
	s->rx[(s->rx_head + s->rx_count) % SERIAL8250_FIFO_SIZE] = byte;
	s->rx_count++;
	s->rx_bytes++;
}

void serial8250_init(struct serial8250 *s, const struct serial8250_ops *ops, void *opaque)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->ops = ops;
	s->opaque = opaque;
	s->lsr = UART_LSR_THRE | UART_LSR_TEMT;
	s->dll = 0x0c; /* 9600 baud, as a BIOS would leave it */
	s->lcr = 0x03;
}

void serial8250_destroy(struct serial8250 *s)
{
	pthread_mutex_destroy(&s->lock);
}

static uint8_t reg_read(struct serial8250 *s, unsigned int off)
{
	uint8_t v;

	switch (off) {
	case UART_RBR:
		if (s->lcr & UART_LCR_DLAB)
			return s->dll;
		if (!s->rx_count)
			return 0;
		v = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % SERIAL8250_FIFO_SIZE;
		s->rx_count--;
		if (s->ops && s->ops->rx_space)
			s->ops->rx_space(s->opaque);
		return v;
	case UART_IER:
		if (s->lcr & UART_LCR_DLAB)
			return s->dlm;
		return s->ier;
	case UART_IIR:
		v = iir_value(s);
		/* Reading IIR acknowledges a transmitter-empty interrupt. */
		if (v == UART_IIR_THRI)
			s->thri_pending = false;
		return v | (s->fifo_enabled ? UART_IIR_FIFO : 0);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		v = s->lsr | (s->rx_count ? UART_LSR_DR : 0);
		s->lsr &= (uint8_t) ~(UART_LSR_OE | UART_LSR_BI);
		return v;
	case UART_MSR:
		v = msr_value(s);
		s->msr &= 0xf0; /* delta bits clear on read */
		return v;
	default:
		return s->scr;
	}
}

static void reg_write(struct serial8250 *s, unsigned int off, uint8_t v)
{
	switch (off) {
	case UART_THR:
		if (s->lcr & UART_LCR_DLAB) {
			s->dll = v;
			break;
		}
		s->tx_bytes++;
		if (s->mcr & UART_MCR_LOOP)
			rx_push(s, v);
		else if (s->ops && s->ops->tx)
			s->ops->tx(s->opaque, v);
		/* The byte leaves at once, so the holding register is empty again. */
		s->thri_pending = true;
		break;
	case UART_IER:
		if (s->lcr & UART_LCR_DLAB) {
			s->dlm = v;
			break;
		}
		/* Enabling THRI while the transmitter is empty raises the interrupt at once. */
		if ((v & UART_IER_THRI) && !(s->ier & UART_IER_THRI))
			s->thri_pending = true;
		s->ier = v & 0x0f;
		break;
	case UART_FCR:
		s->fifo_enabled = v & UART_FCR_ENABLE;
		if ((v & UART_FCR_CLEAR_RX) || !s->fifo_enabled) {
			s->rx_head = 0;
			s->rx_count = 0;
			if (s->ops && s->ops->rx_space)
				s->ops->rx_space(s->opaque);
		}
		s->fcr = v & 0xc9;
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_LSR:
	case UART_MSR:
		break; /* read-only on a 16550A */
	default:
		s->scr = v;
		break;
	}
}

void serial8250_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial8250 *s = opaque;

	if (offset > 7)
		return;
	pthread_mutex_lock(&s->lock);
	if (is_write) {
		reg_write(s, (unsigned int)offset, data[0]);
	} else {
		memset(data, 0, len);
		data[0] = reg_read(s, (unsigned int)offset);
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

size_t serial8250_rx_room(struct serial8250 *s)
{
	size_t room;

	pthread_mutex_lock(&s->lock);
	room = s->mcr & UART_MCR_LOOP ? 0 : rx_capacity(s) - s->rx_count;
	pthread_mutex_unlock(&s->lock);
	return room;
}

size_t serial8250_receive(struct serial8250 *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	/* In loopback the line from outside is disconnected; hold input until it ends. */
	if (!(s->mcr & UART_MCR_LOOP)) {
		while (n < len && s->rx_count < rx_capacity(s))
			rx_push(s, buf[n++]);
		update_irq(s);
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Section SECTION_SERIAL8250, version 1. */
enum {
	UART_T_IER = 1,
	UART_T_LCR,
	UART_T_MCR,
	UART_T_LSR,
	UART_T_MSR,
	UART_T_SCR,
	UART_T_DLL,
	UART_T_DLM,
	UART_T_FCR,
	UART_T_THRI_PENDING,
	UART_T_FIFO_ENABLED,
	UART_T_RX, /* the bytes waiting in the receive FIFO, oldest first */
	UART_T_IRQ_LEVEL,
};

static int serial8250_save(void *dev, struct tlv_writer *w)
{
	struct serial8250 *s = dev;
	uint8_t rx[SERIAL8250_FIFO_SIZE];

	pthread_mutex_lock(&s->lock);
	tlv_put_u8(w, UART_T_IER, s->ier);
	tlv_put_u8(w, UART_T_LCR, s->lcr);
	tlv_put_u8(w, UART_T_MCR, s->mcr);
	tlv_put_u8(w, UART_T_LSR, s->lsr);
	tlv_put_u8(w, UART_T_MSR, s->msr);
	tlv_put_u8(w, UART_T_SCR, s->scr);
	tlv_put_u8(w, UART_T_DLL, s->dll);
	tlv_put_u8(w, UART_T_DLM, s->dlm);
	tlv_put_u8(w, UART_T_FCR, s->fcr);
	tlv_put_u8(w, UART_T_THRI_PENDING, s->thri_pending);
	tlv_put_u8(w, UART_T_FIFO_ENABLED, s->fifo_enabled);
	for (unsigned int i = 0; i < s->rx_count; i++)
		rx[i] = s->rx[(s->rx_head + i) % SERIAL8250_FIFO_SIZE];
	tlv_put(w, UART_T_RX, rx, s->rx_count);
	tlv_put_u8(w, UART_T_IRQ_LEVEL, (uint8_t)s->irq_level);
	pthread_mutex_unlock(&s->lock);
	return w->err;
}

static int serial8250_load(void *dev, const struct tlv_section *sec)
{
	struct serial8250 *s = dev;
	struct tlv_field f;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	ret |= tlv_get_u8(sec, UART_T_IER, &s->ier);
	ret |= tlv_get_u8(sec, UART_T_LCR, &s->lcr);
	ret |= tlv_get_u8(sec, UART_T_MCR, &s->mcr);
	ret |= tlv_get_u8(sec, UART_T_LSR, &s->lsr);
	ret |= tlv_get_u8(sec, UART_T_MSR, &s->msr);
	ret |= tlv_get_u8(sec, UART_T_SCR, &s->scr);
	ret |= tlv_get_u8(sec, UART_T_DLL, &s->dll);
	ret |= tlv_get_u8(sec, UART_T_DLM, &s->dlm);
	ret |= tlv_get_u8(sec, UART_T_FCR, &s->fcr);
	ret |= tlv_get_bool(sec, UART_T_THRI_PENDING, &s->thri_pending);
	ret |= tlv_get_bool(sec, UART_T_FIFO_ENABLED, &s->fifo_enabled);
	s->rx_head = s->rx_count = 0;
	if (tlv_find(sec, UART_T_RX, &f)) {
		if (f.len > SERIAL8250_FIFO_SIZE)
			ret = -EINVAL;
		else
			for (uint32_t i = 0; i < f.len; i++)
				s->rx[s->rx_count++] = f.data[i];
	}
	/* The interrupt line is raised again so the interrupt controller's idea of the line
	 * (loaded after the devices) matches the UART. */
	s->irq_level = 0;
	if (!ret)
		update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return ret ? -EINVAL : 0;
}

const struct device_ops serial8250_device_ops = {
	.name = "serial8250",
	.section_id = SECTION_SERIAL8250,
	.version = 1,
	.min_version = 1,
	.save = serial8250_save,
	.load = serial8250_load,
};
