// SPDX-License-Identifier: MIT
/* Unit tests for the state encoding: TLV sections and fields (src/common/tlv.c), the state file
 * container (src/state/snapshot.c) and device save/load round trips. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tlv.h"
#include "devices/pci.h"
#include "devices/platform.h"
#include "devices/rtc.h"
#include "devices/serial8250.h"
#include "state/snapshot.h"

static void one_section(struct tlv_writer *w, struct tlv_section *s)
{
	size_t pos = 0;

	assert_int_equal(w->err, 0);
	assert_int_equal(tlv_next_section(w->buf, w->len, &pos, s), 1);
	assert_int_equal(pos, w->len);
}

static void test_tlv_roundtrip(void **state)
{
	struct tlv_writer w;
	struct tlv_section s;
	uint8_t u8 = 0;
	uint16_t u16 = 0;
	uint32_t u32 = 0;
	uint64_t u64 = 0, missing = 77;
	uint8_t bytes[5];
	size_t start;

	(void)state;
	tlv_writer_init(&w);
	start = tlv_section_begin(&w, 42, 3, 2, 1);
	tlv_put_u8(&w, 1, 0xab);
	tlv_put_u16(&w, 2, 0xbeef);
	tlv_put_u32(&w, 3, 0xdeadbeef);
	tlv_put_u64(&w, 4, 0x0123456789abcdefULL);
	tlv_put(&w, 5, "hello", 5);
	tlv_put_u32(&w, 999, 1); /* a tag this reader does not know */
	tlv_section_end(&w, start);
	one_section(&w, &s);
	assert_int_equal(s.id, 42);
	assert_int_equal(s.instance, 3);
	assert_int_equal(s.version, 2);
	assert_int_equal(s.min_version, 1);
	assert_int_equal(tlv_get_u8(&s, 1, &u8), 0);
	assert_int_equal(tlv_get_u16(&s, 2, &u16), 0);
	assert_int_equal(tlv_get_u32(&s, 3, &u32), 0);
	assert_int_equal(tlv_get_u64(&s, 4, &u64), 0);
	assert_int_equal(tlv_get_bytes(&s, 5, bytes, 5), 0);
	assert_int_equal(u8, 0xab);
	assert_int_equal(u16, 0xbeef);
	assert_int_equal(u32, 0xdeadbeef);
	assert_true(u64 == 0x0123456789abcdefULL);
	assert_memory_equal(bytes, "hello", 5);
	/* Missing tags keep the default; a field of the wrong size is an error. */
	assert_int_equal(tlv_get_u64(&s, 50, &missing), 0);
	assert_true(missing == 77);
	assert_int_equal(tlv_get_u64(&s, 3, &u64), -EINVAL);
	assert_int_equal(tlv_get_bytes(&s, 5, bytes, 4), -EINVAL);
	tlv_writer_free(&w);
}

static void test_tlv_malformed(void **state)
{
	struct tlv_writer w;
	struct tlv_section s;
	size_t start, pos;

	(void)state;
	tlv_writer_init(&w);
	start = tlv_section_begin(&w, 1, 0, 1, 1);
	tlv_put_u64(&w, 1, 5);
	tlv_section_end(&w, start);
	/* Every truncation of the section is refused, never read past. */
	for (size_t len = 1; len < w.len; len++) {
		uint8_t *copy = malloc(len);

		memcpy(copy, w.buf, len);
		pos = 0;
		assert_int_equal(tlv_next_section(copy, len, &pos, &s), -EINVAL);
		free(copy);
	}
	/* A field length running past the section. */
	put_le32(w.buf + TLV_SECTION_HDR + 2, 100);
	pos = 0;
	assert_int_equal(tlv_next_section(w.buf, w.len, &pos, &s), -EINVAL);
	pos = 0;
	assert_int_equal(tlv_next_section(w.buf, 0, &pos, &s), 0);
	tlv_writer_free(&w);
}

static void test_state_file(void **state)
{
	struct state_header h = { .format_version = STATE_FORMAT_VERSION,
				  .arch = STATE_ARCH_X86_64,
				  .ram_size = 1 << 20,
				  .cpuid_fingerprint = 0x55 };
	struct state_header got;
	struct tlv_writer w;
	const uint8_t *body;
	uint8_t *file;
	size_t len, start;
	char err[256];

	(void)state;
	tlv_writer_init(&w);
	start = tlv_section_begin(&w, 1, 0, 1, 1);
	tlv_put_u32(&w, 1, 7);
	tlv_section_end(&w, start);
	assert_int_equal(state_file_build(&h, w.buf, w.len, &file, &len), 0);
	assert_int_equal(state_file_parse(file, len, &got, &body, err, sizeof(err)), 0);
	assert_true(got.ram_size == 1 << 20 && got.cpuid_fingerprint == 0x55);
	assert_int_equal(got.body_len, w.len);
	assert_memory_equal(body, w.buf, w.len);
	/* truncated */
	assert_int_equal(state_file_parse(file, len - 1, &got, &body, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "truncated"));
	/* every single bit flip is caught */
	for (size_t i = 0; i < len * 8; i++) {
		file[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_not_equal(state_file_parse(file, len, &got, &body, err, sizeof(err)), 0);
		file[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	free(file);
	/* a newer format version */
	h.format_version = STATE_FORMAT_VERSION + 1;
	assert_int_equal(state_file_build(&h, w.buf, w.len, &file, &len), 0);
	assert_int_equal(state_file_parse(file, len, &got, &body, err, sizeof(err)),
			 -EPROTONOSUPPORT);
	free(file);
	tlv_writer_free(&w);
}

static void test_sparse_write(void **state)
{
	char path[] = "/tmp/vireo-test-sparse-XXXXXX";
	int fd = mkstemp(path);
	size_t len = 4 << 20;
	uint8_t *ram = calloc(1, len), *back = malloc(len);
	uint64_t written = 0;

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	memset(ram + (1 << 20), 0xaa, 4096);
	ram[len - 1] = 1;
	assert_int_equal(state_write_sparse(fd, ram, len, &written), 0);
	assert_true(written <= 2 * 64 * 1024);
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)len);
	/* the start is a hole */
	assert_int_equal(lseek(fd, 0, SEEK_DATA), (off_t)(1 << 20));
	assert_int_equal(pread(fd, back, len, 0), (ssize_t)len);
	assert_memory_equal(back, ram, len);
	close(fd);
	free(ram);
	free(back);
}

static void nop_tx(void *o, uint8_t b)
{
	(void)o;
	(void)b;
}

static int irq_level;
static void record_irq(void *o, int level)
{
	(void)o;
	irq_level = level;
}

static const struct serial8250_ops uart_ops = { .tx = nop_tx, .set_irq = record_irq };

static void save_device(const struct device_ops *ops, void *dev, struct tlv_writer *w,
			struct tlv_section *s)
{
	size_t start;

	tlv_writer_init(w);
	start = tlv_section_begin(w, ops->section_id, 0, ops->version, ops->min_version);
	assert_int_equal(ops->save(dev, w), 0);
	tlv_section_end(w, start);
	one_section(w, s);
}

static void test_serial_roundtrip(void **state)
{
	struct serial8250 a, b;
	struct tlv_writer w;
	struct tlv_section s;
	uint8_t v;

	(void)state;
	serial8250_init(&a, &uart_ops, NULL);
	v = UART_MCR_OUT2;
	serial8250_io(&a, UART_MCR, &v, 1, true);
	v = UART_IER_RDI;
	serial8250_io(&a, UART_IER, &v, 1, true);
	v = 0x5a;
	serial8250_io(&a, UART_SCR, &v, 1, true);
	v = UART_FCR_ENABLE;
	serial8250_io(&a, UART_FCR, &v, 1, true);
	assert_int_equal(serial8250_receive(&a, (const uint8_t *)"xyz", 3), 3);
	serial8250_io(&a, UART_RBR, &v, 1, false); /* 'x' consumed: FIFO head moves */
	save_device(&serial8250_device_ops, &a, &w, &s);

	irq_level = 0;
	serial8250_init(&b, &uart_ops, NULL);
	assert_int_equal(serial8250_device_ops.load(&b, &s), 0);
	assert_int_equal(irq_level, 1); /* the line is raised again after a load */
	serial8250_io(&b, UART_SCR, &v, 1, false);
	assert_int_equal(v, 0x5a);
	serial8250_io(&b, UART_RBR, &v, 1, false);
	assert_int_equal(v, 'y');
	serial8250_io(&b, UART_RBR, &v, 1, false);
	assert_int_equal(v, 'z');
	/* An over-long FIFO in the state is refused. */
	tlv_writer_free(&w);
	{
		uint8_t big[SERIAL8250_FIFO_SIZE + 1] = { 0 };
		size_t start;

		tlv_writer_init(&w);
		start = tlv_section_begin(&w, SECTION_SERIAL8250, 0, 1, 1);
		tlv_put(&w, 12, big, sizeof(big));
		tlv_section_end(&w, start);
		one_section(&w, &s);
		assert_int_equal(serial8250_device_ops.load(&b, &s), -EINVAL);
	}
	tlv_writer_free(&w);
	serial8250_destroy(&a);
	serial8250_destroy(&b);
}

static void test_rtc_platform_pci_roundtrip(void **state)
{
	struct rtc r1, r2;
	struct platform p1, p2;
	struct pci_bus b1, b2;
	struct tlv_writer w;
	struct tlv_section s;
	uint8_t v;
	uint32_t d;

	(void)state;
	rtc_init(&r1);
	v = 0x40;
	rtc_io(&r1, 0, &v, 1, true);
	v = 0x99;
	rtc_io(&r1, 1, &v, 1, true);
	save_device(&rtc_device_ops, &r1, &w, &s);
	rtc_init(&r2);
	assert_int_equal(rtc_device_ops.load(&r2, &s), 0);
	assert_int_equal(r2.cmos[0x40], 0x99);
	tlv_writer_free(&w);

	platform_init(&p1, NULL, NULL);
	p1.pm1_en = 0x0100;
	p1.kbc_cmd_byte = 0x45;
	save_device(&platform_device_ops, &p1, &w, &s);
	platform_init(&p2, NULL, NULL);
	assert_int_equal(platform_device_ops.load(&p2, &s), 0);
	assert_int_equal(p2.pm1_en, 0x0100);
	assert_int_equal(p2.kbc_cmd_byte, 0x45);
	tlv_writer_free(&w);

	/* PCI: guest-writable bits come back, read-only IDs stay this build's. */
	pci_bus_init(&b1);
	b1.host_bridge.cfg[0x0c] = 0x10; /* cache line size: writable */
	b1.host_bridge.cfg[0x00] = 0x00; /* vendor: read-only */
	b1.config_address = 0x80000010;
	save_device(&pci_bus_device_ops, &b1, &w, &s);
	pci_bus_init(&b2);
	assert_int_equal(pci_bus_device_ops.load(&b2, &s), 0);
	assert_int_equal(b2.host_bridge.cfg[0x0c], 0x10);
	assert_int_equal(b2.host_bridge.cfg[0x00], 0x36);
	d = b2.config_address;
	assert_int_equal(d, 0x80000010);
	tlv_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tlv_roundtrip),
		cmocka_unit_test(test_tlv_malformed),
		cmocka_unit_test(test_state_file),
		cmocka_unit_test(test_sparse_write),
		cmocka_unit_test(test_serial_roundtrip),
		cmocka_unit_test(test_rtc_platform_pci_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
