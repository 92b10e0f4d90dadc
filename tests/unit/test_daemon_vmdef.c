// SPDX-License-Identifier: MIT
/* Unit tests for src/daemon/vmdef.c: strict parsing of VM definitions (every bad input refused
 * with the field named), JSON round trip, RFC 7396 merge patches, the `vireo run` argv. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/vmdef.h"

static const char *full_def =
	"{\"name\":\"web-1\",\"description\":\"d\",\"tags\":[\"web\",\"prod\"],\"vcpus\":2,"
	"\"memory_mib\":512,\"boot\":{\"kernel\":\"/k/bzImage\",\"initrd\":\"/k/initrd\","
	"\"cmdline\":\"console=ttyS0 quiet\"},"
	"\"disks\":[{\"path\":\"/img/a.qcow2\",\"format\":\"qcow2\",\"readonly\":false,"
	"\"serial\":\"d1\"},{\"path\":\"/img/b.raw\",\"readonly\":true}],"
	"\"nics\":[{\"type\":\"user\",\"mac\":\"52:54:00:12:34:56\","
	"\"hostfwd\":[\"tcp:127.0.0.1:2222-:22\"]},{\"type\":\"tap\",\"tap\":\"tap0\"}],"
	"\"devices\":{\"rng\":true,\"balloon\":true,\"vsock_cid\":3},"
	"\"autostart\":true,\"restart_policy\":\"on-failure\"}";

static int parse(const char *text, struct vm_def *d, struct derror *e)
{
	json_object *j = json_tokener_parse(text);
	int ret;

	assert_non_null(j);
	ret = vmdef_from_json(j, false, d, e);
	json_object_put(j);
	return ret;
}

static void test_full_round_trip(void **state)
{
	struct vm_def d, d2;
	struct derror e = { 0 };
	json_object *j;

	(void)state;
	assert_int_equal(parse(full_def, &d, &e), 0);
	assert_string_equal(d.name, "web-1");
	assert_int_equal(d.ntags, 2);
	assert_int_equal(d.vcpus, 2);
	assert_int_equal(d.memory_mib, 512);
	assert_int_equal(d.ndisks, 2);
	assert_true(d.disks[1].readonly);
	assert_int_equal(d.nnics, 2);
	assert_string_equal(d.nics[1].tap, "tap0");
	assert_int_equal(d.vsock_cid, 3);
	assert_int_equal(d.restart_policy, VM_RESTART_ON_FAILURE);
	j = vmdef_to_json(&d);
	assert_int_equal(vmdef_from_json(j, false, &d2, &e), 0);
	json_object *j2 = vmdef_to_json(&d2);
	assert_string_equal(json_object_to_json_string(j), json_object_to_json_string(j2));
	json_object_put(j);
	json_object_put(j2);
	vmdef_free(&d);
	vmdef_free(&d2);
}

static void test_defaults(void **state)
{
	struct vm_def d;
	struct derror e = { 0 };

	(void)state;
	assert_int_equal(parse("{\"name\":\"p\",\"boot\":{\"payload\":\"/x/hang.bin\"}}", &d, &e),
			 0);
	assert_int_equal(d.vcpus, 1);
	assert_int_equal(d.memory_mib, 256);
	assert_int_equal(d.vsock_cid, -1);
	assert_false(d.autostart);
	assert_int_equal(d.restart_policy, VM_RESTART_NO);
	vmdef_free(&d);
}

/* Each bad definition is refused with the expected code and a message naming the field. */
static void test_bad_input(void **state)
{
	static const struct {
		const char *json, *code, *mention;
	} cases[] = {
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"colour\":1}", "unknown_field",
		  "colour" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\",\"bios\":\"/b\"}}", "unknown_field",
		  "boot.bios" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"disks\":[{\"path\":\"/d\","
		  "\"cache\":\"none\"}]}",
		  "unknown_field", "disks[0].cache" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"id\":\"x\"}", "unknown_field",
		  "id" },
		{ "{\"name\":\"-a\",\"boot\":{\"payload\":\"/p\"}}", "invalid_value", "name" },
		{ "{\"name\":\"a b\",\"boot\":{\"payload\":\"/p\"}}", "invalid_value", "name" },
		{ "{\"boot\":{\"payload\":\"/p\"}}", "invalid_value", "name" },
		{ "{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
		  "\"boot\":{\"payload\":\"/p\"}}",
		  "invalid_value", "name" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"vcpus\":0}", "invalid_value",
		  "vcpus" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"vcpus\":65}", "invalid_value",
		  "vcpus" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"vcpus\":\"2\"}", "invalid_value",
		  "vcpus" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"memory_mib\":15}",
		  "invalid_value", "memory_mib" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"p\"}}", "invalid_value",
		  "boot.payload" },
		{ "{\"name\":\"a\",\"boot\":{\"kernel\":\"/k,format=raw\"}}", "invalid_value",
		  "boot.kernel" },
		{ "{\"name\":\"a\",\"boot\":{\"kernel\":\"/k\\n\"}}", "invalid_value",
		  "boot.kernel" },
		{ "{\"name\":\"a\",\"boot\":{}}", "invalid_value", "boot" },
		{ "{\"name\":\"a\",\"boot\":{\"kernel\":\"/k\",\"payload\":\"/p\"}}",
		  "invalid_value", "boot" },
		{ "{\"name\":\"a\"}", "invalid_value", "boot" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"tags\":[\"Web\"]}",
		  "invalid_value", "tags[0]" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"description\":1}",
		  "invalid_value", "description" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"restart_policy\":\"sometimes\"}",
		  "invalid_value", "restart_policy" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"nics\":[{\"type\":\"bridge\"}]}",
		  "invalid_value", "nics[0].type" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"nics\":[{\"type\":\"user\","
		  "\"mac\":\"52:54:00:12:34\"}]}",
		  "invalid_value", "nics[0].mac" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"nics\":[{\"type\":\"user\","
		  "\"hostfwd\":[\"tcp::1-:2,restrict=on\"]}]}",
		  "invalid_value", "hostfwd[0]" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"nics\":[{\"type\":\"tap\","
		  "\"tap\":\"t,ap\"}]}",
		  "invalid_value", "nics[0].tap" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"disks\":[{\"path\":\"/d\","
		  "\"format\":\"vmdk\"}]}",
		  "invalid_value", "disks[0].format" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"disks\":[{\"path\":\"/d\","
		  "\"serial\":\"a,b\"}]}",
		  "invalid_value", "disks[0].serial" },
		{ "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"devices\":{\"vsock_cid\":2}}",
		  "invalid_value", "vsock_cid" },
		{ "[1]", "invalid_value", "object" },
	};
	struct vm_def d;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct derror e = { 0 };
		if (parse(cases[i].json, &d, &e) != -EINVAL) {
			print_error("case %zu accepted: %s\n", i, cases[i].json);
			fail();
		}
		assert_non_null(e.code);
		if (strcmp(e.code, cases[i].code) || !strstr(e.message, cases[i].mention)) {
			print_error("case %zu: %s: %s\n", i, e.code, e.message);
			fail();
		}
	}
}

static void test_too_many_disks(void **state)
{
	char buf[4096] = "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"disks\":[";
	struct derror e = { 0 };
	struct vm_def d;

	(void)state;
	for (int i = 0; i < 17; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s{\"path\":\"/d%d\"}",
			 i ? "," : "", i);
	strcat(buf, "]}");
	assert_int_equal(parse(buf, &d, &e), -EINVAL);
	assert_non_null(strstr(e.message, "more than 16"));
}

static void test_readonly_fields(void **state)
{
	const char *text = "{\"name\":\"a\",\"boot\":{\"payload\":\"/p\"},\"id\":\"x\","
			   "\"state\":\"running\",\"generation\":3}";
	json_object *j = json_tokener_parse(text);
	struct derror e = { 0 };
	struct vm_def d;

	(void)state;
	assert_int_equal(vmdef_from_json(j, false, &d, &e), -EINVAL);
	assert_int_equal(vmdef_from_json(j, true, &d, &e), 0);
	vmdef_free(&d);
	json_object_put(j);
}

static void test_argv(void **state)
{
	struct derror e = { 0 };
	struct vm_def d;
	char **argv;
	char line[2048] = "";

	(void)state;
	assert_int_equal(parse(full_def, &d, &e), 0);
	assert_int_equal(vmdef_argv(&d, "/bin/vireo", "/s/vms/u/control.sock",
				    "/s/vms/u/console.sock", &argv),
			 0);
	for (int i = 0; argv[i]; i++)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s|", argv[i]);
	assert_string_equal(line,
			    "/bin/vireo|run|--cpus|2|--memory|512M|--kernel|/k/bzImage|"
			    "--initrd|/k/initrd|--cmdline|console=ttyS0 quiet|"
			    "--disk|/img/a.qcow2,format=qcow2,serial=d1|"
			    "--disk|/img/b.raw,readonly|"
			    "--net|user,hostfwd=tcp:127.0.0.1:2222-:22,mac=52:54:00:12:34:56|"
			    "--net|tap=tap0|--rng|--balloon|--vsock|cid=3,uds=/s/vms/u/vsock.sock|"
			    "--on-reboot|restart|--api-sock|/s/vms/u/"
			    "control.sock|--console|socket:/s/vms/u/console.sock|");
	vmdef_argv_free(argv);
	vmdef_free(&d);
}

/* RFC 7396 appendix A examples. */
static void test_merge_patch(void **state)
{
	static const char *const cases[][3] = {
		{ "{\"a\":\"b\"}", "{\"a\":\"c\"}", "{ \"a\": \"c\" }" },
		{ "{\"a\":\"b\"}", "{\"b\":\"c\"}", "{ \"a\": \"b\", \"b\": \"c\" }" },
		{ "{\"a\":\"b\"}", "{\"a\":null}", "{ }" },
		{ "{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{ \"b\": \"c\" }" },
		{ "{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{ \"a\": \"c\" }" },
		{ "{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
		  "{ \"a\": { \"b\": \"d\" } }" },
		{ "{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{ \"a\": [ 1 ] }" },
		{ "{\"e\":null}", "{\"a\":1}", "{ \"e\": null, \"a\": 1 }" },
		{ "{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{ \"a\": { \"bb\": { } } }" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_object *t = json_tokener_parse(cases[i][0]);
		json_object *p = json_tokener_parse(cases[i][1]);
		json_object *r = vmdef_merge_patch(t, p);
		assert_string_equal(json_object_to_json_string(r), cases[i][2]);
		assert_string_equal(json_object_to_json_string_ext(t, JSON_C_TO_STRING_PLAIN),
				    cases[i][0]);
		json_object_put(t);
		json_object_put(p);
		json_object_put(r);
	}
}

static void test_patch_is_live(void **state)
{
	json_object *live = json_tokener_parse("{\"tags\":[\"a\"],\"autostart\":true}");
	json_object *notlive = json_tokener_parse("{\"tags\":[\"a\"],\"vcpus\":2}");

	(void)state;
	assert_true(vmdef_patch_is_live(live));
	assert_false(vmdef_patch_is_live(notlive));
	json_object_put(live);
	json_object_put(notlive);
}

static void test_check_files(void **state)
{
	struct derror e = { 0 };
	struct vm_def d;

	(void)state;
	assert_int_equal(
		parse("{\"name\":\"a\",\"boot\":{\"payload\":\"/nonexistent/x.bin\"}}", &d, &e), 0);
	assert_int_equal(vmdef_check_files(&d, &e), -ENOENT);
	assert_string_equal(e.code, "unprocessable");
	assert_non_null(strstr(e.message, "/nonexistent/x.bin"));
	vmdef_free(&d);
	assert_int_equal(parse("{\"name\":\"a\",\"boot\":{\"payload\":\"/etc/hostname\"}}", &d, &e),
			 0);
	assert_int_equal(vmdef_check_files(&d, &e), 0);
	vmdef_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_round_trip), cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad_input),	cmocka_unit_test(test_too_many_disks),
		cmocka_unit_test(test_readonly_fields), cmocka_unit_test(test_argv),
		cmocka_unit_test(test_merge_patch),	cmocka_unit_test(test_patch_is_live),
		cmocka_unit_test(test_check_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
