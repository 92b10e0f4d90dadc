// SPDX-License-Identifier: MIT
/* Unit tests for src/common/util.c: size and number parsing, checksums, whole-file reads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

static void test_parse_size_suffixes(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(parse_size("256M", 1, &v), 0);
	assert_true(v == 256 * MIB);
	assert_int_equal(parse_size("1G", 1, &v), 0);
	assert_true(v == GIB);
	assert_int_equal(parse_size("4096K", 1, &v), 0);
	assert_true(v == 4 * MIB);
	assert_int_equal(parse_size("2T", 1, &v), 0);
	assert_true(v == 2048 * GIB);
	assert_int_equal(parse_size("1GiB", 1, &v), 0);
	assert_true(v == GIB);
	assert_int_equal(parse_size("8MB", 1, &v), 0);
	assert_true(v == 8 * MIB);
	assert_int_equal(parse_size("3m", 1, &v), 0);
	assert_true(v == 3 * MIB);
	assert_int_equal(parse_size("100B", MIB, &v), 0);
	assert_true(v == 100);
}

static void test_parse_size_default_unit(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(parse_size("256", MIB, &v), 0);
	assert_true(v == 256 * MIB);
	assert_int_equal(parse_size("1048576", 1, &v), 0);
	assert_true(v == 1048576);
	assert_int_equal(parse_size("4", KIB, &v), 0);
	assert_true(v == 4096);
	assert_int_equal(parse_size("0", MIB, &v), 0);
	assert_true(v == 0);
}

static void test_parse_size_bad(void **state)
{
	uint64_t v = 12345;

	(void)state;
	assert_int_equal(parse_size("", MIB, &v), -EINVAL);
	assert_int_equal(parse_size(NULL, MIB, &v), -EINVAL);
	assert_int_equal(parse_size("-1", MIB, &v), -EINVAL);
	assert_int_equal(parse_size(" 1", MIB, &v), -EINVAL);
	assert_int_equal(parse_size("12X", MIB, &v), -EINVAL);
	assert_int_equal(parse_size("1.5G", MIB, &v), -EINVAL);
	assert_int_equal(parse_size("G", MIB, &v), -EINVAL);
	assert_int_equal(parse_size("1Gx", MIB, &v), -EINVAL);
	assert_int_equal(parse_size("1BiB", MIB, &v), -EINVAL);
	/* Nothing is stored on failure. */
	assert_true(v == 12345);
}

static void test_parse_size_overflow(void **state)
{
	uint64_t v = 7;

	(void)state;
	/* 2^34 GiB = 2^64 bytes. */
	assert_int_equal(parse_size("17179869184G", 1, &v), -ERANGE);
	assert_int_equal(parse_size("17179869184", GIB, &v), -ERANGE);
	assert_int_equal(parse_size("99999999999999999999", 1, &v), -ERANGE);
	assert_true(v == 7);
	/* Just below: 2^34 - 1 GiB fits. */
	assert_int_equal(parse_size("17179869183G", 1, &v), 0);
	assert_true(v == (17179869183ULL << 30));
	assert_int_equal(parse_size("18446744073709551615", 1, &v), 0);
	assert_true(v == UINT64_MAX);
}

static void test_parse_u64(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(parse_u64("0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(parse_u64("12345", &v), 0);
	assert_true(v == 12345);
	assert_int_equal(parse_u64("0x1f", &v), 0);
	assert_true(v == 0x1f);
	assert_int_equal(parse_u64("0XFFFFFFFFFFFFFFFF", &v), 0);
	assert_true(v == UINT64_MAX);
	v = 99;
	assert_int_equal(parse_u64("", &v), -EINVAL);
	assert_int_equal(parse_u64(NULL, &v), -EINVAL);
	assert_int_equal(parse_u64("12abc", &v), -EINVAL);
	assert_int_equal(parse_u64("abc", &v), -EINVAL);
	assert_int_equal(parse_u64("-5", &v), -EINVAL);
	assert_int_equal(parse_u64(" 5", &v), -EINVAL);
	assert_int_equal(parse_u64("5 ", &v), -EINVAL);
	assert_int_equal(parse_u64("0x", &v), -EINVAL);
	assert_int_equal(parse_u64("0x10000000000000000", &v), -ERANGE);
	assert_true(v == 99);
}

static void test_checksum8(void **state)
{
	uint8_t buf[64] = { 0 };
	uint8_t sum = 0;

	(void)state;
	assert_int_equal(checksum8(buf, 0), 0);
	buf[0] = 0x01;
	assert_int_equal(checksum8(buf, 1), 0xff);
	buf[0] = 0x80;
	buf[1] = 0x80;
	assert_int_equal(checksum8(buf, 2), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	buf[10] = 0;
	buf[10] = checksum8(buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		sum = (uint8_t)(sum + buf[i]);
	assert_int_equal(sum, 0);
	assert_int_not_equal(buf[10], 0);
}

static void test_read_file(void **state)
{
	char path[] = "/tmp/vireo-test-util-XXXXXX";
	uint8_t content[5000];
	uint8_t *data = NULL;
	size_t size = 0;
	int fd;

	(void)state;
	for (size_t i = 0; i < sizeof(content); i++)
		content[i] = (uint8_t)(i ^ (i >> 8));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, sizeof(content)), (ssize_t)sizeof(content));
	close(fd);

	assert_int_equal(read_file(path, sizeof(content), &data, &size), 0);
	assert_non_null(data);
	assert_int_equal(size, sizeof(content));
	assert_memory_equal(data, content, sizeof(content));
	free(data);

	data = NULL;
	assert_int_equal(read_file(path, sizeof(content) - 1, &data, &size), -EFBIG);
	assert_null(data);

	unlink(path);
	assert_int_equal(read_file(path, 1 << 20, &data, &size), -ENOENT);
	assert_null(data);
}

static void test_map_file(void **state)
{
	char path[] = "/tmp/vireo-test-util-XXXXXX";
	uint8_t content[9000];
	const uint8_t *data = NULL;
	size_t size = 0;
	int fd;

	(void)state;
	for (size_t i = 0; i < sizeof(content); i++)
		content[i] = (uint8_t)(i * 7);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, sizeof(content)), (ssize_t)sizeof(content));
	assert_int_equal(map_file(path, sizeof(content), &data, &size), 0);
	assert_int_equal(size, sizeof(content));
	assert_memory_equal(data, content, sizeof(content));
	unmap_file(data, size);
	assert_int_equal(map_file(path, sizeof(content) - 1, &data, &size), -EFBIG);
	assert_int_equal(ftruncate(fd, 0), 0);
	close(fd);
	data = (const uint8_t *)"x";
	assert_int_equal(map_file(path, 100, &data, &size), 0);
	assert_null(data);
	assert_int_equal(size, 0);
	unmap_file(data, size);
	assert_int_equal(map_file("/tmp", 100, &data, &size), -EISDIR);
	unlink(path);
	assert_int_equal(map_file(path, 100, &data, &size), -ENOENT);
}

static void test_unix_listen(void **state)
{
	char dir[] = "/tmp/vireo-test-sock-XXXXXX";
	char path[128], longpath[200];
	int fd, fd2;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	fd = unix_listen(path, 1);
	assert_true(fd >= 0);
	close(fd);
	/* The socket file left behind is stale: a new listener replaces it. */
	fd2 = unix_listen(path, 1);
	assert_true(fd2 >= 0);
	close(fd2);
	unlink(path);
	/* Any other file is not ours to remove. */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(unix_listen(path, 1), -EEXIST);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(unix_listen(longpath, 1), -ENAMETOOLONG);
	rmdir(dir);
}

static void test_read_file_empty(void **state)
{
	char path[] = "/tmp/vireo-test-util-XXXXXX";
	uint8_t *data = NULL;
	size_t size = 99;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(read_file(path, 16, &data, &size), 0);
	assert_non_null(data);
	assert_int_equal(size, 0);
	free(data);
	unlink(path);
}

static void test_read_file_directory(void **state)
{
	uint8_t *data = NULL;
	size_t size = 0;

	(void)state;
	assert_int_equal(read_file("/tmp", 1 << 20, &data, &size), -EISDIR);
	assert_null(data);
	assert_int_equal(read_file("/nonexistent-dir/x", 1 << 20, &data, &size), -ENOENT);
}

static void test_macros(void **state)
{
	(void)state;
	assert_int_equal(ALIGN_UP(0x1001ULL, 0x1000), 0x2000);
	assert_int_equal(ALIGN_UP(0x1000ULL, 0x1000), 0x1000);
	assert_int_equal(ALIGN_DOWN(0x1fffULL, 0x1000), 0x1000);
	assert_int_equal(get_le16((const uint8_t *)"\x34\x12"), 0x1234);
	assert_int_equal(get_le32((const uint8_t *)"\x78\x56\x34\x12"), 0x12345678);
	assert_true(get_le64((const uint8_t *)"\x08\x07\x06\x05\x04\x03\x02\x01") ==
		    0x0102030405060708ULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_suffixes),
		cmocka_unit_test(test_parse_size_default_unit),
		cmocka_unit_test(test_parse_size_bad),
		cmocka_unit_test(test_parse_size_overflow),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_checksum8),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_map_file),
		cmocka_unit_test(test_unix_listen),
		cmocka_unit_test(test_read_file_empty),
		cmocka_unit_test(test_read_file_directory),
		cmocka_unit_test(test_macros),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
