// SPDX-License-Identifier: MIT
/*
 * Test helper: runs I/O commands on an image through the vireo block layer, like qemu-io.
 *   blkio [-f FMT] [-r] FILE CMD...
 * Each CMD is one argument:
 *   "write PATTERN OFF LEN"   fill with the byte PATTERN
 *   "read PATTERN OFF LEN"    verify every byte is PATTERN (exit 1 otherwise)
 *   "zero OFF LEN", "discard OFF LEN", "flush"
 *   "overlay PATH"            blk_switch_to_overlay
 *   "dump OFF LEN PATH"       write the bytes read to PATH
 *   "crash"                   exit without closing (leaves a dirty image)
 * Sizes take K/M/G suffixes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "common/util.h"

static uint64_t num(const char *s)
{
	uint64_t v;

	if (parse_u64(s, &v) && parse_size(s, 1, &v)) {
		fprintf(stderr, "blkio: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static int run(struct blk *b, char *cmd)
{
	char *argv[8] = { 0 }, *save = NULL;
	int argc = 0, ret = 0;
	uint8_t *buf = NULL;

	for (char *t = strtok_r(cmd, " ", &save); t && argc < 8; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	if (!argc)
		return 0;
	if ((!strcmp(argv[0], "write") || !strcmp(argv[0], "read")) && argc == 4) {
		uint64_t pat = num(argv[1]), off = num(argv[2]), len = num(argv[3]);

		buf = malloc(len ? len : 1);
		if (!buf)
			return -ENOMEM;
		if (argv[0][0] == 'w') {
			memset(buf, (int)pat, len);
			ret = blk_pwrite(b, buf, len, off);
		} else {
			ret = blk_pread(b, buf, len, off);
			for (uint64_t i = 0; !ret && i < len; i++) {
				if (buf[i] != (uint8_t)pat) {
					fprintf(stderr, "blkio: byte %llu is 0x%02x, not 0x%02x\n",
						(unsigned long long)(off + i), buf[i],
						(unsigned)pat);
					ret = -EILSEQ;
				}
			}
		}
	} else if (!strcmp(argv[0], "zero") && argc == 3) {
		ret = blk_write_zeroes(b, num(argv[1]), num(argv[2]));
	} else if (!strcmp(argv[0], "discard") && argc == 3) {
		ret = blk_discard(b, num(argv[1]), num(argv[2]));
	} else if (!strcmp(argv[0], "flush") && argc == 1) {
		ret = blk_flush(b);
	} else if (!strcmp(argv[0], "overlay") && argc == 2) {
		ret = blk_switch_to_overlay(b, argv[1]);
	} else if (!strcmp(argv[0], "dump") && argc == 4) {
		uint64_t off = num(argv[1]), len = num(argv[2]);
		FILE *f = fopen(argv[3], "wb");

		buf = malloc(len ? len : 1);
		ret = f && buf ? blk_pread(b, buf, len, off) : -ENOMEM;
		if (!ret && fwrite(buf, 1, len, f) != len)
			ret = -EIO;
		if (f)
			fclose(f);
	} else if (!strcmp(argv[0], "crash") && argc == 1) {
		_exit(0);
	} else {
		fprintf(stderr, "blkio: bad command '%s'\n", argv[0]);
		exit(2);
	}
	free(buf);
	return ret;
}

int main(int argc, char **argv)
{
	enum blk_format fmt = BLK_FORMAT_AUTO;
	unsigned int flags = BLK_OPEN_RDWR;
	struct blk *b;
	int c, ret;

	while ((c = getopt(argc, argv, "f:r")) != -1) {
		if (c == 'f' && !blk_parse_format(optarg, &fmt))
			continue;
		if (c == 'r') {
			flags &= ~BLK_OPEN_RDWR;
			continue;
		}
		fprintf(stderr, "usage: blkio [-f FMT] [-r] FILE CMD...\n");
		return 2;
	}
	if (optind >= argc)
		return 2;
	ret = blk_open(argv[optind], fmt, flags, &b);
	if (ret) {
		fprintf(stderr, "blkio: open %s: %s\n", argv[optind], strerror(-ret));
		return 1;
	}
	for (int i = optind + 1; i < argc; i++) {
		ret = run(b, argv[i]);
		if (ret) {
			fprintf(stderr, "blkio: '%s' failed: %s\n", argv[i], strerror(-ret));
			blk_close(b);
			return 1;
		}
	}
	ret = blk_close(b);
	return ret ? 1 : 0;
}
