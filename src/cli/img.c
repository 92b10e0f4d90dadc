// SPDX-License-Identifier: MIT
/* `vireo img`: offline disk image tool (create, info, check, convert). Works on files directly,
 * without the daemon. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../block/block.h"
#include "../common/log.h"
#include "../common/util.h"
#include "img.h"

static const char img_usage[] =
	"Usage: vireo img COMMAND [OPTIONS] FILE...\n"
	"\n"
	"Commands:\n"
	"  create    create a raw or qcow2 image\n"
	"  info      describe an image and its backing chain\n"
	"  check     check qcow2 refcounts, optionally repair leaks\n"
	"  convert   copy an image to another file and format, leaving zeros unallocated\n"
	"\n"
	"vireo img COMMAND --help describes each command.\n";

static const char create_help[] =
	"NAME\n"
	"    vireo img create - create a disk image\n"
	"\n"
	"SYNOPSIS\n"
	"    vireo img create [-f raw|qcow2] [-b BACKING -F FMT] [-o OPTIONS] FILE [SIZE]\n"
	"\n"
	"DESCRIPTION\n"
	"    Creates FILE, which must not exist. SIZE takes K, M, G, T suffixes (bytes without).\n"
	"    With -b, SIZE defaults to the size of the backing file. A relative BACKING is\n"
	"    relative to the directory of FILE, and is stored as given.\n"
	"\n"
	"OPTIONS\n"
	"    -f FMT       image format: qcow2 (default) or raw\n"
	"    -b BACKING   backing file (qcow2 only)\n"
	"    -F FMT       format of the backing file, required with -b: it is recorded in FILE,\n"
	"                 so the backing file is never probed\n"
	"    --backing-dir DIR  allow BACKING's own backing files in DIR (see info)\n"
	"    -o OPTIONS   comma-separated: cluster_size=SIZE (512 to 2M, default 64K),\n"
	"                 refcount_bits=N (1 to 64, default 16)\n"
	"\n"
	"EXIT STATUS\n"
	"    0 on success, 1 on error, 2 on bad usage.\n";

static const char info_help[] =
	"NAME\n"
	"    vireo img info - describe a disk image\n"
	"\n"
	"SYNOPSIS\n"
	"    vireo img info [-f FMT] [--backing-dir DIR] [--json] FILE\n"
	"\n"
	"DESCRIPTION\n"
	"    Prints the format, virtual size, disk space used, cluster size, refcount width,\n"
	"    dirty and corrupt flags of FILE and of every image of its backing chain.\n"
	"\n"
	"OPTIONS\n"
	"    -f FMT     the format (raw or qcow2). Without it the format is probed, and a\n"
	"               probed qcow2 image that names a backing file without its format is\n"
	"               refused (a guest of a raw image could have written that header)\n"
	"    --json     print one JSON object: the top image, with \"backing-chain\" listing all\n"
	"    --backing-dir DIR\n"
	"               also allow backing files in the tree of DIR (repeatable; / allows\n"
	"               all). By default every backing file of the chain must lie in the\n"
	"               directory tree of FILE (symlinks resolved)\n"
	"\n"
	"EXIT STATUS\n"
	"    0 on success, 1 on error, 2 on bad usage.\n";

static const char check_help[] =
	"NAME\n"
	"    vireo img check - check the consistency of a qcow2 image\n"
	"\n"
	"SYNOPSIS\n"
	"    vireo img check [-f FMT] [-r leaks] [--json] FILE\n"
	"\n"
	"DESCRIPTION\n"
	"    Rebuilds every refcount from the header, L1, L2 and refcount tables and compares\n"
	"    them with the stored refcounts. A stored refcount above the rebuilt one is a leak\n"
	"    (space wasted, harmless); below it, or a misplaced table or flag, is a corruption.\n"
	"    Raw images are always clean.\n"
	"\n"
	"OPTIONS\n"
	"    -f FMT     the format; probed when absent, as for info\n"
	"    -r leaks   repair leaks (opens the image read-write)\n"
	"    --json     print the result as JSON\n"
	"\n"
	"EXIT STATUS\n"
	"    0 clean, 1 the check could not run, 2 corruptions found, 3 leaks found,\n"
	"    63 the check is not supported for this image.\n";

static const char convert_help[] =
	"NAME\n"
	"    vireo img convert - copy an image into a new file\n"
	"\n"
	"SYNOPSIS\n"
	"    vireo img convert [-f FMT] [--backing-dir DIR] [-O FMT] [-o OPTIONS] SOURCE DEST\n"
	"\n"
	"DESCRIPTION\n"
	"    Reads SOURCE through its whole backing chain and writes DEST (which must not\n"
	"    exist) without a backing file. Regions that read as zeros are not written: DEST\n"
	"    stays sparse (raw) or unallocated (qcow2).\n"
	"\n"
	"OPTIONS\n"
	"    -f FMT       format of SOURCE (probed when absent, with the limits of info)\n"
	"    --backing-dir DIR\n"
	"                 allow SOURCE's backing files in DIR, as for info\n"
	"    -O FMT       format of DEST: raw (default) or qcow2\n"
	"    -o OPTIONS   qcow2 creation options, as for create\n"
	"\n"
	"EXIT STATUS\n"
	"    0 on success, 1 on error, 2 on bad usage.\n";

enum {
	OPT_JSON = 256,
	OPT_HELP,
	OPT_BACKING_DIR,
};

static int usage_error(const char *help)
{
	fputs(help, stderr);
	return 2;
}

/* --backing-dir DIR: the image's backing files may also live there (docs/images.md). */
static int allow_dir(const char *dir)
{
	int ret = blk_allow_backing_dir(dir);

	if (ret)
		fprintf(stderr, "vireo img: --backing-dir %s: %s\n", dir, strerror(-ret));
	return ret;
}

static int parse_fmt(const char *s, enum blk_format *fmt)
{
	if (blk_parse_format(s, fmt)) {
		fprintf(stderr, "vireo img: unknown format '%s' (raw or qcow2)\n", s);
		return -EINVAL;
	}
	return 0;
}

/* "cluster_size=64K,refcount_bits=16" */
static int parse_create_opts(char *s, struct blk_create_opts *o)
{
	for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		uint64_t v;

		if (!eq || parse_size(eq + 1, 1, &v) || v > UINT32_MAX) {
			fprintf(stderr, "vireo img: bad option '%s'\n", tok);
			return -EINVAL;
		}
		*eq = '\0';
		if (!strcmp(tok, "cluster_size")) {
			o->cluster_size = (uint32_t)v;
		} else if (!strcmp(tok, "refcount_bits")) {
			o->refcount_bits = (uint32_t)v;
		} else {
			fprintf(stderr, "vireo img: unknown option '%s'\n", tok);
			return -EINVAL;
		}
	}
	return 0;
}

static const struct option common_opts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "backing-dir", required_argument, NULL, OPT_BACKING_DIR },
	{ NULL, 0, NULL, 0 },
};

/* Tells the user when the new image's backing file lies outside its directory tree, where
 * blk_open() will not follow it without --backing-dir. */
static void note_backing_outside(const char *file, const char *backing)
{
	char *fcopy = strdup(file), *dir = NULL, *full = NULL, *real = NULL;
	size_t n;

	if (fcopy)
		dir = realpath(dirname(fcopy), NULL);
	if (dir && asprintf(&full, "%s/%s", dir, backing) < 0)
		full = NULL;
	if (full)
		real = realpath(backing[0] == '/' ? backing : full, NULL);
	n = dir ? strlen(dir) : 0;
	if (real && strcmp(dir, "/") && (strncmp(real, dir, n) || real[n] != '/'))
		fprintf(stderr,
			"vireo img: note: the backing file %s is outside the directory tree of %s: "
			"opening %s will need --backing-dir (docs/images.md)\n",
			real, file, file);
	free(real);
	free(full);
	free(dir);
	free(fcopy);
}

static int cmd_create(int argc, char **argv)
{
	struct blk_create_opts o = { .format = BLK_FORMAT_QCOW2 };
	int c, ret;

	while ((c = getopt_long(argc, argv, "f:b:F:o:", common_opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (parse_fmt(optarg, &o.format))
				return 2;
			break;
		case 'b':
			o.backing = optarg;
			break;
		case 'F':
			if (parse_fmt(optarg, &o.backing_format))
				return 2;
			break;
		case 'o':
			if (parse_create_opts(optarg, &o))
				return 2;
			break;
		case OPT_BACKING_DIR:
			if (allow_dir(optarg))
				return 2;
			break;
		case OPT_HELP:
			fputs(create_help, stdout);
			return 0;
		default:
			return usage_error(create_help);
		}
	}
	if (argc - optind < 1 || argc - optind > 2 || (argc - optind == 1 && !o.backing))
		return usage_error(create_help);
	if (o.backing && o.backing_format == BLK_FORMAT_AUTO) {
		fprintf(stderr, "vireo img: -b needs -F raw|qcow2: the backing file's format is "
				"recorded, not probed\n");
		return 2;
	}
	if (argc - optind == 2 && parse_size(argv[optind + 1], 1, &o.size)) {
		fprintf(stderr, "vireo img: bad size '%s'\n", argv[optind + 1]);
		return 2;
	}
	ret = blk_create(argv[optind], &o);
	if (ret) {
		fprintf(stderr, "vireo img: cannot create %s: %s\n", argv[optind], strerror(-ret));
		return 1;
	}
	if (o.backing)
		note_backing_outside(argv[optind], o.backing);
	return 0;
}

static json_object *info_json(const struct blk_image_info *in)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "filename", json_object_new_string(in->path));
	json_object_object_add(o, "format", json_object_new_string(blk_format_name(in->format)));
	json_object_object_add(o, "virtual-size", json_object_new_int64((int64_t)in->virtual_size));
	json_object_object_add(o, "actual-size", json_object_new_int64((int64_t)in->disk_size));
	if (in->format == BLK_FORMAT_QCOW2) {
		json_object_object_add(o, "cluster-size", json_object_new_int(in->cluster_size));
		json_object_object_add(
			o, "compat",
			json_object_new_string(in->qcow2_version >= 3 ? "1.1" : "0.10"));
		json_object_object_add(o, "refcount-bits", json_object_new_int(in->refcount_bits));
		json_object_object_add(o, "dirty-flag", json_object_new_boolean(in->dirty));
		json_object_object_add(o, "corrupt", json_object_new_boolean(in->corrupt));
	}
	if (in->backing[0]) {
		json_object_object_add(o, "backing-filename", json_object_new_string(in->backing));
		if (in->backing_format != BLK_FORMAT_AUTO)
			json_object_object_add(
				o, "backing-filename-format",
				json_object_new_string(blk_format_name(in->backing_format)));
	}
	return o;
}

static void info_text(const struct blk_image_info *in)
{
	printf("image: %s\n", in->path);
	printf("file format: %s\n", blk_format_name(in->format));
	printf("virtual size: %" PRIu64 " bytes\n", in->virtual_size);
	printf("disk size: %" PRIu64 " bytes\n", in->disk_size);
	if (in->format == BLK_FORMAT_QCOW2) {
		printf("cluster_size: %u\n", in->cluster_size);
		printf("qcow2 version: %d\n", in->qcow2_version);
		printf("refcount bits: %u\n", in->refcount_bits);
		printf("dirty: %s\n", in->dirty ? "yes" : "no");
		printf("corrupt: %s\n", in->corrupt ? "yes" : "no");
	}
	if (in->backing[0]) {
		printf("backing file: %s\n", in->backing);
		if (in->backing_format != BLK_FORMAT_AUTO)
			printf("backing file format: %s\n", blk_format_name(in->backing_format));
	}
}

static int cmd_info(int argc, char **argv)
{
	enum blk_format fmt = BLK_FORMAT_AUTO;
	struct blk_image_info *in;
	bool json = false;
	struct blk *b;
	int c, ret;

	while ((c = getopt_long(argc, argv, "f:", common_opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (parse_fmt(optarg, &fmt))
				return 2;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_BACKING_DIR:
			if (allow_dir(optarg))
				return 2;
			break;
		case OPT_HELP:
			fputs(info_help, stdout);
			return 0;
		default:
			return usage_error(info_help);
		}
	}
	if (argc - optind != 1)
		return usage_error(info_help);
	ret = blk_open(argv[optind], fmt, 0, &b);
	if (ret)
		return 1;
	in = malloc(sizeof(*in));
	if (!in) {
		blk_close(b);
		return 1;
	}
	json_object *top = NULL, *chain = json_object_new_array();

	for (int i = 0; i < blk_chain_length(b); i++) {
		blk_get_info(b, i, in);
		if (json) {
			if (!top)
				top = info_json(in);
			json_object_array_add(chain, info_json(in));
		} else {
			if (i)
				printf("\n");
			info_text(in);
		}
	}
	if (json) {
		json_object_object_add(top, "backing-chain", chain);
		puts(json_object_to_json_string_ext(top, JSON_C_TO_STRING_PRETTY |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(top);
	} else {
		json_object_put(chain);
	}
	free(in);
	blk_close(b);
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	enum blk_format fmt = BLK_FORMAT_AUTO;
	struct blk_check_result r;
	bool json = false, repair = false;
	struct blk *b;
	int c, ret;

	while ((c = getopt_long(argc, argv, "f:r:", common_opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (parse_fmt(optarg, &fmt))
				return 2;
			break;
		case 'r':
			if (strcmp(optarg, "leaks")) {
				fprintf(stderr, "vireo img: only '-r leaks' is supported\n");
				return 2;
			}
			repair = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_BACKING_DIR:
			if (allow_dir(optarg))
				return 2;
			break;
		case OPT_HELP:
			fputs(check_help, stdout);
			return 0;
		default:
			return usage_error(check_help);
		}
	}
	if (argc - optind != 1)
		return usage_error(check_help);
	ret = blk_open(argv[optind], fmt, (repair ? BLK_OPEN_RDWR : 0) | BLK_OPEN_NO_BACKING, &b);
	if (ret)
		return 1;
	ret = blk_check(b, repair ? BLK_CHECK_REPAIR_LEAKS : 0, &r);
	blk_close(b);
	if (ret == -ENOTSUP)
		return 63;
	if (ret) {
		fprintf(stderr, "vireo img: check failed: %s\n", strerror(-ret));
		return 1;
	}
	if (json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "filename", json_object_new_string(argv[optind]));
		json_object_object_add(o, "corruptions",
				       json_object_new_int64((int64_t)r.corruptions));
		json_object_object_add(o, "leaks", json_object_new_int64((int64_t)r.leaks));
		json_object_object_add(o, "leaks-fixed",
				       json_object_new_int64((int64_t)r.leaks_fixed));
		json_object_object_add(o, "allocated-clusters",
				       json_object_new_int64((int64_t)r.allocated_clusters));
		json_object_object_add(o, "total-clusters",
				       json_object_new_int64((int64_t)r.total_clusters));
		json_object_object_add(o, "image-end-offset",
				       json_object_new_int64((int64_t)r.image_end_offset));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		json_object_put(o);
	} else {
		if (r.leaks_fixed)
			printf("%" PRIu64 " leaked clusters were repaired.\n", r.leaks_fixed);
		if (r.corruptions)
			printf("%" PRIu64 " errors were found on the image.\n"
			       "Data may be corrupted, or further writes to the image may corrupt "
			       "it.\n",
			       r.corruptions);
		if (r.leaks)
			printf("%" PRIu64 " leaked clusters were found on the image.\n"
			       "This means waste of disk space, but no harm to data.\n",
			       r.leaks);
		if (!r.corruptions && !r.leaks)
			printf("No errors were found on the image.\n");
		printf("%" PRIu64 " clusters allocated (%" PRIu64 " guest clusters).\n"
		       "Image end offset: %" PRIu64 "\n",
		       r.allocated_clusters, r.total_clusters, r.image_end_offset);
	}
	return r.corruptions ? 2 : r.leaks ? 3 : 0;
}

#define CONVERT_CHUNK (2 * MIB)
#define CONVERT_GRAIN (64 * KIB)

static bool is_zero(const uint8_t *p, uint64_t len)
{
	return len == 0 || (p[0] == 0 && !memcmp(p, p + 1, len - 1));
}

/* Writes the parts of buf that are not all zeros, a grain at a time, merging neighbours. */
static int write_nonzero(struct blk *dst, const uint8_t *buf, uint64_t len, uint64_t off)
{
	uint64_t i = 0;

	while (i < len) {
		uint64_t g = MIN(CONVERT_GRAIN, len - i), start;

		if (is_zero(buf + i, g)) {
			i += g;
			continue;
		}
		start = i;
		while (i < len && !is_zero(buf + i, MIN(CONVERT_GRAIN, len - i)))
			i += MIN(CONVERT_GRAIN, len - i);
		int ret = blk_pwrite(dst, buf + start, i - start, off + start);

		if (ret)
			return ret;
	}
	return 0;
}

static int cmd_convert(int argc, char **argv)
{
	struct blk_create_opts o = { .format = BLK_FORMAT_RAW };
	enum blk_format sfmt = BLK_FORMAT_AUTO;
	struct blk *src, *dst;
	uint8_t *buf;
	uint64_t size;
	int c, ret;

	while ((c = getopt_long(argc, argv, "f:O:o:", common_opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (parse_fmt(optarg, &sfmt))
				return 2;
			break;
		case 'O':
			if (parse_fmt(optarg, &o.format))
				return 2;
			break;
		case 'o':
			if (parse_create_opts(optarg, &o))
				return 2;
			break;
		case OPT_BACKING_DIR:
			if (allow_dir(optarg))
				return 2;
			break;
		case OPT_HELP:
			fputs(convert_help, stdout);
			return 0;
		default:
			return usage_error(convert_help);
		}
	}
	if (argc - optind != 2)
		return usage_error(convert_help);
	if (blk_open(argv[optind], sfmt, 0, &src))
		return 1;
	size = blk_size(src);
	o.size = size;
	ret = blk_create(argv[optind + 1], &o);
	if (ret) {
		blk_close(src);
		return 1;
	}
	ret = blk_open(argv[optind + 1], o.format, BLK_OPEN_RDWR, &dst);
	if (ret) {
		blk_close(src);
		return 1;
	}
	buf = malloc(CONVERT_CHUNK);
	ret = buf ? 0 : -ENOMEM;
	for (uint64_t off = 0; off < size && !ret;) {
		uint64_t n = MIN(CONVERT_CHUNK, size - off), pnum;
		int st = blk_block_status(src, off, n, &pnum);

		if (st == BLK_STATUS_ZERO) {
			off += pnum;
			continue;
		}
		if (st < 0) {
			ret = st;
			break;
		}
		ret = blk_pread(src, buf, n, off);
		if (!ret)
			ret = write_nonzero(dst, buf, n, off);
		off += n;
	}
	free(buf);
	if (!ret)
		ret = blk_close(dst);
	else
		blk_close(dst);
	blk_close(src);
	if (ret) {
		fprintf(stderr, "vireo img: convert failed: %s\n", strerror(-ret));
		return 1;
	}
	return 0;
}

int img_main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "create", cmd_create },
		{ "info", cmd_info },
		{ "check", cmd_check },
		{ "convert", cmd_convert },
	};

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(img_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (!strcmp(argv[1], cmds[i].name)) {
			optind = 1;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "vireo img: unknown command '%s'\n\n%s", argv[1], img_usage);
	return 2;
}
