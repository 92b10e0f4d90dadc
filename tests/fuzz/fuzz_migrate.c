// SPDX-License-Identifier: MIT
/* libFuzzer target for the receiving side of live migration (src/vmm/migrate.c): the bytes a
 * source sends, fed through a socketpair to migration_incoming_handshake (START, CONFIG with
 * the machine configuration) and migration_incoming_receive (PAGES into RAM, STATE loaded into
 * the fake machine of fuzz_vm.h, COMPLETE, ABANDON), as `vireo run --incoming` runs them. The
 * input is:
 *
 *   u8 flags: bit 0 the target fixes the CRCs of CONFIG and STATE messages (so the fuzzer gets
 *             past them; without it they are as given), bit 1 --force (another CPUID accepted)
 *   then the stream, messages of a 16-byte header (le32 type, le32 0, le64 length) and body.
 *
 * A thread writes the stream and closes its end, so a short stream ends in ECONNRESET. Seeds:
 * FUZZ_WRITE_SEED=PATH fuzz_migrate writes a whole migration of the fake machine, made with
 * vmstate_save_config and vmstate_save as the source makes it, and exits. */
#include <pthread.h>
#include <sanitizer/lsan_interface.h>
#include <zlib.h>

#include "fuzz_vm.h"
#include "vmm/migrate.h"

#define HDR 16
#define FINGERPRINT 0x5eedf00dULL

enum {
	MSG_START = 1,
	MSG_CONFIG = 2,
	MSG_PAGES = 3,
	MSG_STATE = 5,
	MSG_COMPLETE = 6
};

/* The source side of migrate.c uses these; the destination never does. */
int vm_set_memory_slots(struct vm *v, bool log_dirty)
{
	(void)v;
	(void)log_dirty;
	abort();
}

int vm_pause(struct vm *v)
{
	(void)v;
	abort();
}

int vm_resume(struct vm *v)
{
	(void)v;
	abort();
}

int vm_disks_release(struct vm *v)
{
	(void)v;
	abort();
}

void vm_disks_reacquire(struct vm *v)
{
	(void)v;
	abort();
}

void vm_request_stop(struct vm *v, enum stop_reason reason, int status)
{
	(void)v;
	(void)reason;
	(void)status;
	abort();
}

struct feed {
	int fd;
	const uint8_t *p;
	size_t n;
};

static void *writer(void *arg)
{
	struct feed *f = arg;
	size_t off = 0;

	while (off < f->n) {
		ssize_t k = send(f->fd, f->p + off, f->n - off, MSG_NOSIGNAL);

		if (k <= 0)
			break;
		off += (size_t)k;
	}
	shutdown(f->fd, SHUT_WR);
	return NULL;
}

static void fix_crcs(uint8_t *p, size_t n)
{
	size_t off = 0;

	while (n - off >= HDR) {
		uint32_t type = get_le32(p + off);
		uint64_t len = get_le64(p + off + 8);
		uint8_t *b = p + off + HDR;

		if (len > n - off - HDR)
			break;
		if (type == MSG_CONFIG && len >= 20)
			put_le32(b + 16, (uint32_t)crc32(0, b + 20, (uInt)(len - 20)));
		else if (type == MSG_STATE && len >= 4)
			put_le32(b, (uint32_t)crc32(0, b + 4, (uInt)(len - 4)));
		off += HDR + len;
	}
}

static void put_msg(FILE *f, uint32_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	uint8_t h[HDR] = { 0 };

	put_le32(h, type);
	put_le64(h + 8, alen + blen);
	FZ_CHECK(fwrite(h, 1, HDR, f) == HDR);
	FZ_CHECK(!alen || fwrite(a, 1, alen, f) == alen);
	FZ_CHECK(!blen || fwrite(b, 1, blen, f) == blen);
}

static void write_seed(const char *path)
{
	struct tlv_writer cw, sw;
	uint8_t start[16] = "VIREOMIG", cfghdr[20], crc[4], pages[8 + 2 * 4096] = { 0 };
	FILE *f = fopen(path, "wb");

	FZ_CHECK(f);
	fz_vm_state(&cw, &sw);
	put_le32(start + 8, MIG_PROTOCOL_VERSION);
	put_le32(start + 12, MIG_PROTOCOL_VERSION);
	put_le64(cfghdr, vm.mem.ram_size);
	put_le64(cfghdr + 8, FINGERPRINT);
	put_le32(cfghdr + 16, (uint32_t)crc32(0, cw.buf, (uInt)cw.len));
	put_le32(crc, (uint32_t)crc32(0, sw.buf, (uInt)sw.len));
	put_le64(pages, 0x100000);
	memset(pages + 8, 0xcc, 4096);
	FZ_CHECK(fputc(0, f) == 0);
	put_msg(f, MSG_START, start, sizeof(start), NULL, 0);
	put_msg(f, MSG_CONFIG, cfghdr, sizeof(cfghdr), cw.buf, cw.len);
	put_msg(f, MSG_PAGES, pages, sizeof(pages), NULL, 0);
	put_msg(f, MSG_STATE, crc, 4, sw.buf, sw.len);
	put_msg(f, MSG_COMPLETE, NULL, 0, NULL, 0);
	FZ_CHECK(fclose(f) == 0);
	tlv_writer_free(&cw);
	tlv_writer_free(&sw);
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_vm_init();
	vm.cpuid_fingerprint = FINGERPRINT;
	if (getenv("FUZZ_WRITE_SEED"))
		write_seed(getenv("FUZZ_WRITE_SEED"));
	return 0;
}

/* The strings of the configuration the destination builds its machine from: vireo keeps them
 * for the life of the process. */
static void free_config(struct vm_config *c)
{
	for (unsigned int i = 0; i < c->ndisks; i++)
		free((char *)c->disks[i].path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm_config c;
	struct mig_chan ch;
	struct feed feed;
	pthread_t t;
	uint64_t fp = 0;
	uint8_t *stream;
	int sv[2], ret;

	if (size < 1)
		return 0;
	stream = malloc(size);
	if (!stream)
		return 0;
	memcpy(stream, data + 1, size - 1);
	if (data[0] & 1)
		fix_crcs(stream, size - 1);
	cfg.force = data[0] & 2;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		free(stream);
		return 0;
	}
	feed = (struct feed){ sv[1], stream, size - 1 };
	FZ_CHECK(pthread_create(&t, NULL, writer, &feed) == 0);
	memset(&c, 0, sizeof(c));
	/* The handshake keeps the configuration's strings in a static struct for the process's
	 * lifetime; a second handshake in one process (only here) drops the first one's. */
	__lsan_disable();
	/* A plain-TCP channel: what an authenticated peer (or --insecure-migration) reaches. */
	ch = (struct mig_chan){ .fd = sv[0], .kind = MIG_TLS_INSECURE };
	ret = migration_incoming_handshake(&ch, &c, &fp);
	__lsan_enable();
	if (ret == 0)
		migration_incoming_receive(&vm, &ch, fp); /* closes sv[0] */
	else
		close(sv[0]);
	/* The writer may be blocked on a full socket: closing our end wakes it. */
	pthread_join(t, NULL);
	close(sv[1]);
	free_config(&c);
	free(stream);
	for (unsigned int k = 0; k < DEV_COUNT; k++)
		fz_power_on(fz_devs[k]);
	return 0;
}
