// SPDX-License-Identifier: MIT
/* Unit tests for src/vmm/vmcfg.c: a saved configuration section (a snapshot's, or a migration
 * source's) only shapes the machine; every host resource comes from the local command line, and
 * a command line that does not fit the saved machine is refused with the reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/tlv.h"
#include "common/util.h"
#include "devices/device.h"
#include "vmm/config.h"
#include "vmm/vmstate.h"

#define MAX_ARGS 32

static struct vm_config cfg;
static struct vmstate_config sc;
static char err[1024];
static char *args[MAX_ARGS + 1];
static int nargs;

/* A saved disk as vmstate_save_config writes it. */
static void put_disk(struct tlv_writer *w, unsigned int i, uint8_t fmt, uint8_t flags,
		     const char *serial, const char *name, const char *path)
{
	uint8_t buf[512], *p = buf;

	*p++ = fmt;
	*p++ = flags;
	*p++ = (uint8_t)strlen(serial);
	memcpy(p, serial, strlen(serial));
	p += strlen(serial);
	*p++ = (uint8_t)strlen(name);
	memcpy(p, name, strlen(name));
	p += strlen(name);
	memcpy(p, path, strlen(path));
	p += strlen(path);
	tlv_put(w, (uint16_t)(CFG_T_DISK + i), buf, (uint32_t)(p - buf));
}

static void put_str(struct tlv_writer *w, uint16_t tag, const char *s)
{
	tlv_put(w, tag, s, (uint32_t)strlen(s));
}

/* What a hostile source sends: a writable raw disk on the user's authorized_keys, a console
 * appending to their shell profile, vsock sockets in ~/.ssh and a port forward on every
 * address. opts: which of those to include (bit 0 disk, 1 console, 2 vsock, 3 net). */
static void hostile_config(struct tlv_writer *w, unsigned int opts)
{
	size_t start;

	tlv_writer_init(w);
	start = tlv_section_begin(w, SECTION_CONFIG, 0, 1, 1);
	tlv_put_u64(w, CFG_T_MEM_SIZE, 64 * MIB);
	tlv_put_u32(w, CFG_T_NCPUS, 2);
	tlv_put_u8(w, CFG_T_PVM_PROFILE, 0);
	tlv_put_u8(w, CFG_T_VIRTIO_RNG, 1);
	put_str(w, CFG_T_PAYLOAD, "/home/user/payload.bin");
	if (opts & 1)
		put_disk(w, 0, BLK_FORMAT_RAW, 0, "SER1", "keys",
			 "/home/user/.ssh/authorized_keys");
	if (opts & 2)
		put_str(w, CFG_T_VIRTIO_CONSOLE, "file:/home/user/.bashrc");
	if (opts & 4)
		put_str(w, CFG_T_VSOCK, "cid=7,uds=/home/user/.ssh/vsock");
	if (opts & 8)
		put_str(w, CFG_T_NET, "user,hostfwd=tcp:0.0.0.0:2222-:22,mac=02:00:00:00:00:09");
	tlv_section_end(w, start);
	assert_int_equal(w->err, 0);
}

/* config_parse_run strdups each --disk path: the process owns them, a test frees them. */
static void free_args(void)
{
	for (unsigned int i = 0; i < cfg.ndisks; i++)
		free((char *)cfg.disks[i].path);
	cfg.ndisks = 0;
	while (nargs > 0)
		free(args[--nargs]);
}

/* parse_read(w, "--disk", "x", NULL): `vireo run --restore DIR ...`, then the section. */
static int parse_read(struct tlv_writer *w, ...)
{
	va_list ap;
	const char *a;
	int ret;

	free_args();
	args[nargs++] = strdup("run");
	args[nargs++] = strdup("--restore");
	args[nargs++] = strdup("dir");
	va_start(ap, w);
	for (a = va_arg(ap, const char *); a; a = va_arg(ap, const char *)) {
		assert_true(nargs < MAX_ARGS);
		args[nargs++] = strdup(a);
	}
	va_end(ap);
	memset(err, 0, sizeof(err));
	ret = config_parse_run(nargs, args, &cfg, err, sizeof(err));
	if (ret)
		fail_msg("command line refused: %s", err);
	ret = vmstate_read_config(w->buf, w->len, &cfg, &sc, err, sizeof(err));
	free(sc.payload);
	free(sc.kernel);
	return ret;
}

static void assert_err_contains(const char *what)
{
	if (!strstr(err, what))
		fail_msg("error message '%s' does not mention '%s'", err, what);
}

static void test_hostile_paths_need_local_resources(void **state)
{
	struct tlv_writer w;

	(void)state;
	hostile_config(&w, 15);
	/* No --disk: the saved disk's path is quoted, never taken. */
	assert_int_equal(parse_read(&w, "--virtio-console", "file:/tmp/c", "--vsock", "cid=3",
				    "--net", "user", NULL),
			 -EINVAL);
	assert_err_contains("1 disk(s) and the command line gives 0");
	assert_err_contains("'/home/user/.ssh/authorized_keys'");
	/* No console backend. */
	assert_int_equal(parse_read(&w, "--disk", "/tmp/mine.raw", "--vsock", "cid=3", "--net",
				    "user", NULL),
			 -EINVAL);
	assert_err_contains("give --virtio-console");
	/* No vsock backend. */
	assert_int_equal(parse_read(&w, "--disk", "/tmp/mine.raw", "--virtio-console",
				    "file:/tmp/c", "--net", "user", NULL),
			 -EINVAL);
	assert_err_contains("give --vsock");
	/* No NIC. */
	assert_int_equal(parse_read(&w, "--disk", "/tmp/mine.raw", "--virtio-console",
				    "file:/tmp/c", "--vsock", "cid=3", NULL),
			 -EINVAL);
	assert_err_contains("1 NIC(s) and the command line gives 0");
	tlv_writer_free(&w);
}

static void test_local_resources_win(void **state)
{
	struct tlv_writer w;

	(void)state;
	hostile_config(&w, 15);
	assert_int_equal(parse_read(&w, "--disk", "/tmp/mine.raw", "--virtio-console",
				    "file:/tmp/c.log", "--vsock", "cid=3", "--net", "user", NULL),
			 0);
	/* The shape is the saved machine's. */
	assert_true(cfg.mem_size == 64 * MIB);
	assert_int_equal(cfg.ncpus, 2);
	assert_true(cfg.virtio_rng);
	/* Every host resource is the command line's. */
	assert_int_equal(cfg.ndisks, 1);
	assert_string_equal(cfg.disks[0].path, "/tmp/mine.raw");
	assert_false(cfg.disks[0].read_only);
	assert_int_equal(cfg.disks[0].format, BLK_FORMAT_AUTO);
	assert_string_equal(cfg.virtio_console, "file:/tmp/c.log");
	assert_string_equal(cfg.vsock, "cid=3");
	assert_int_equal(cfg.vsock_cid, 3);
	assert_string_equal(cfg.vsock_uds, "");
	assert_int_equal(cfg.nnet, 1);
	assert_string_equal(cfg.net[0], "user");
	/* Guest-visible: the serial; a file name stem for overlays. */
	assert_string_equal(cfg.disks[0].serial, "SER1");
	assert_string_equal(cfg.disks[0].name, "keys");
	tlv_writer_free(&w);
}

static void test_disk_mismatches(void **state)
{
	struct tlv_writer w;

	(void)state;
	hostile_config(&w, 1);
	assert_int_equal(parse_read(&w, "--disk", "/tmp/a,readonly", NULL), -EINVAL);
	assert_err_contains("writable");
	assert_int_equal(parse_read(&w, "--disk", "/tmp/a,format=qcow2", NULL), -EINVAL);
	assert_err_contains("was raw");
	assert_int_equal(parse_read(&w, "--disk", "/tmp/a,serial=OTHER", NULL), -EINVAL);
	assert_err_contains("serial 'SER1'");
	assert_int_equal(parse_read(&w, "--disk", "/tmp/a", "--disk", "/tmp/b", NULL), -EINVAL);
	assert_err_contains("gives 2");
	assert_int_equal(parse_read(&w, "--disk", "/tmp/a,format=raw,serial=SER1", NULL), 0);
	tlv_writer_free(&w);

	/* A device the saved machine lacks. */
	hostile_config(&w, 0);
	assert_int_equal(parse_read(&w, "--virtio-console", "socket:/tmp/s", NULL), -EINVAL);
	assert_err_contains("no virtio-console device");
	assert_int_equal(parse_read(&w, "--vsock", "cid=3", NULL), -EINVAL);
	assert_err_contains("no vsock device");
	assert_int_equal(parse_read(&w, "--net", "user", NULL), -EINVAL);
	assert_err_contains("0 NIC(s)");
	assert_int_equal(parse_read(&w, NULL), 0);
	assert_int_equal(cfg.ndisks, 0);
	assert_null(cfg.virtio_console);
	assert_null(cfg.vsock);
	tlv_writer_free(&w);
}

static void test_nic_mac(void **state)
{
	struct tlv_writer w;

	(void)state;
	hostile_config(&w, 8);
	assert_int_equal(parse_read(&w, "--net", "tap=t0,mac=02:00:00:00:00:01", NULL), -EINVAL);
	assert_err_contains("02:00:00:00:00:09");
	/* Another backend is fine: the MAC is what the guest knows. */
	assert_int_equal(parse_read(&w, "--net", "tap=t0,mac=02:00:00:00:00:09", NULL), 0);
	assert_string_equal(cfg.net[0], "tap=t0,mac=02:00:00:00:00:09");
	tlv_writer_free(&w);

	/* A saved option this vireo does not know still gives its MAC; none gives the default. */
	tlv_writer_init(&w);
	size_t start = tlv_section_begin(&w, SECTION_CONFIG, 0, 1, 1);
	tlv_put_u64(&w, CFG_T_MEM_SIZE, 64 * MIB);
	tlv_put_u32(&w, CFG_T_NCPUS, 1);
	put_str(&w, CFG_T_NET, "user,future=1,mac=02:00:00:00:00:07\ntap=t9");
	tlv_section_end(&w, start);
	assert_int_equal(parse_read(&w, "--net", "user,mac=02:00:00:00:00:07", "--net",
				    "user,mac=52:54:00:12:34:57", NULL),
			 0);
	assert_int_equal(
		parse_read(&w, "--net", "user", "--net", "user,mac=52:54:00:12:34:56", NULL),
		-EINVAL);
	assert_err_contains("NIC 1");
	tlv_writer_free(&w);
}

static void test_malformed_disks(void **state)
{
	static const char *const names[] = { "../x", ".", "..", "a/b" };
	struct tlv_writer w;
	size_t start;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		tlv_writer_init(&w);
		start = tlv_section_begin(&w, SECTION_CONFIG, 0, 1, 1);
		tlv_put_u64(&w, CFG_T_MEM_SIZE, 64 * MIB);
		tlv_put_u32(&w, CFG_T_NCPUS, 1);
		put_disk(&w, 0, BLK_FORMAT_RAW, 0, "", names[i], "/x");
		tlv_section_end(&w, start);
		assert_int_equal(parse_read(&w, "--disk", "/tmp/a", NULL), -EINVAL);
		assert_err_contains("malformed disk 0");
		tlv_writer_free(&w);
	}
	/* A serial with a control character. */
	tlv_writer_init(&w);
	start = tlv_section_begin(&w, SECTION_CONFIG, 0, 1, 1);
	tlv_put_u64(&w, CFG_T_MEM_SIZE, 64 * MIB);
	tlv_put_u32(&w, CFG_T_NCPUS, 1);
	put_disk(&w, 0, BLK_FORMAT_RAW, 0, "A\033B", "d", "/x");
	tlv_section_end(&w, start);
	assert_int_equal(parse_read(&w, "--disk", "/tmp/a", NULL), -EINVAL);
	tlv_writer_free(&w);
	/* Control characters in a quoted path are not copied into the message. */
	tlv_writer_init(&w);
	start = tlv_section_begin(&w, SECTION_CONFIG, 0, 1, 1);
	tlv_put_u64(&w, CFG_T_MEM_SIZE, 64 * MIB);
	tlv_put_u32(&w, CFG_T_NCPUS, 1);
	put_disk(&w, 0, BLK_FORMAT_RAW, 0, "", "d", "/x\033[2J\n");
	tlv_section_end(&w, start);
	assert_int_equal(parse_read(&w, NULL), -EINVAL);
	assert_err_contains("'/x?[2J?'");
	tlv_writer_free(&w);
}

static int teardown(void **state)
{
	(void)state;
	free_args();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile_paths_need_local_resources),
		cmocka_unit_test(test_local_resources_win),
		cmocka_unit_test(test_disk_mismatches),
		cmocka_unit_test(test_nic_mac),
		cmocka_unit_test(test_malformed_disks),
	};

	return cmocka_run_group_tests(tests, NULL, teardown);
}
