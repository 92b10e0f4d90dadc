// SPDX-License-Identifier: MIT
/* libFuzzer target for the machine state loaders of src/vmm/vmstate.c: vmstate_load (every
 * device's load op, the VM section: PIT, PICs, IOAPIC, clock, and the vCPU sections: registers,
 * segments, XSAVE, XCRs, LAPIC, MSRs, debug registers, events) and vmstate_read_config (the
 * machine configuration: memory, vCPUs, CPU features, disks, NICs, console, balloon, vsock).
 * KVM is the stand-in of fuzz_kvm.h, which takes what is set. The machine has two vCPUs, the
 * legacy devices (UART, RTC, platform, PCI bus) and the six virtio devices of fuzz_virtio_dev.h.
 *
 * The input is a flags byte (bit 0: advance the clocks, as a migration does; bit 1: --net and
 * --vsock given on the command line; bits 2..7 make KVM refuse requests) and a state body: TLV
 * sections as vmstate_save writes them.
 *
 * Seeds come from vmstate_save itself: FUZZ_WRITE_SEED=PATH fuzz_vmstate writes the state of
 * the fake machine (with its virtio devices started and used) to PATH and exits. */
#include "fuzz_vm.h"

/* The state of the machine as vmstate_save writes it, after a flags byte, to path. */
static void write_seed(const char *path)
{
	struct tlv_writer cw, w;
	FILE *f;

	fz_vm_state(&cw, &w);
	f = fopen(path, "wb");
	FZ_CHECK(f && fputc(3, f) == 3 && fwrite(w.buf, 1, w.len, f) == w.len && !fclose(f));
	tlv_writer_free(&cw);
	tlv_writer_free(&w);
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_vm_init();
	if (getenv("FUZZ_WRITE_SEED"))
		write_seed(getenv("FUZZ_WRITE_SEED"));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmstate_config sc;
	struct vm_config c;
	char err[256];

	if (size < 1)
		return 0;
	fz_kvm.fail = (uint32_t)(data[0] >> 2) << 5;
	vmstate_load(&vm, data + 1, size - 1, data[0] & 1);

	memset(&c, 0, sizeof(c));
	/* Host resources come from the command line: with bit 1, one of each for the saved
	 * configuration to be matched against. */
	if (data[0] & 2) {
		c.nnet = 1;
		c.net[0] = "user";
		c.vsock = "cid=5";
		c.virtio_console = "file:/nonexistent/console";
		c.ndisks = 1;
		c.disks[0].path = "/nonexistent/disk";
	}
	vmstate_read_config(data + 1, size - 1, &c, &sc, err, sizeof(err));
	/* vireo keeps these for the life of the process; here they go after each input. */
	free(sc.payload);
	free(sc.kernel);
	/* Loads may leave devices mid-request: back to power-on for the next input. */
	for (unsigned int k = 0; k < DEV_COUNT; k++)
		fz_power_on(fz_devs[k]);
	return 0;
}
