// SPDX-License-Identifier: MIT
/* libFuzzer target for the state loader: the input is a state file body (TLV sections). It is
 * wrapped in a valid header with a correct CRC (otherwise the fuzzer would only ever exercise the
 * CRC check), parsed, and every section is offered to the device loads, which must refuse bad
 * fields without reading out of bounds. A raw copy of the input is also parsed as a whole state
 * file, header included. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/tlv.h"
#include "devices/pci.h"
#include "devices/platform.h"
#include "devices/rtc.h"
#include "devices/serial8250.h"
#include "fuzz_nop_ops.h"
#include "state/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state_header h = { .format_version = STATE_FORMAT_VERSION,
				  .arch = STATE_ARCH_X86_64,
				  .ram_size = 1 << 20 };
	struct state_header got;
	const uint8_t *body;
	uint8_t *file;
	size_t len, pos = 0;
	char err[256];
	struct tlv_section s;
	static struct serial8250 uart;
	static struct rtc rtc;
	static struct platform plat;
	static struct pci_bus pci;

	state_file_parse(data, size, &got, &body, err, sizeof(err));
	if (state_file_build(&h, data, size, &file, &len))
		return 0;
	if (state_file_parse(file, len, &got, &body, err, sizeof(err)) == 0) {
		serial8250_init(&uart, &uart_ops, NULL);
		rtc_init(&rtc);
		platform_init(&plat, &plat_ops, NULL);
		pci_bus_init(&pci);
		while (tlv_next_section(body, got.body_len, &pos, &s) == 1) {
			switch (s.id) {
			case SECTION_SERIAL8250:
				serial8250_device_ops.load(&uart, &s);
				break;
			case SECTION_RTC:
				rtc_device_ops.load(&rtc, &s);
				break;
			case SECTION_PLATFORM:
				platform_device_ops.load(&plat, &s);
				break;
			case SECTION_PCI_BUS:
				pci_bus_device_ops.load(&pci, &s);
				break;
			default: {
				struct tlv_field f;
				size_t fp = 0;
				uint64_t v;

				while (tlv_next_field(&s, &fp, &f) == 1)
					tlv_get_u64(&s, f.tag, &v);
				break;
			}
			}
		}
		serial8250_destroy(&uart);
	}
	free(file);
	return 0;
}
