// SPDX-License-Identifier: MIT
/* Live migration, both ends. The stream is a series of messages {u32 type, u32 flags, u64 len}
 * + len bytes; docs/migration.md has the state machine. The source copies all RAM while the
 * guest runs, then rounds of the pages KVM's dirty log (and the VMM's own writes) report, until
 * what is left fits the allowed downtime at the measured bandwidth; then it pauses the guest,
 * sends the last pages and the device state (the snapshot sections), and exits once the
 * destination says it has loaded them. On any failure before that answer, the source resumes
 * its guest and keeps running. */
#include "migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../common/log.h"
#include "../common/tlv.h"
#include "../common/util.h"
#include "vm.h"
#include "vcpu.h"
#include "vmdisk.h"
#include "migtls.h"
#include "vmstate.h"

#define MIG_MAGIC "VIREOMIG"
#define MIG_HDR 16
#define PAGE ((uint64_t)4096)
#define BATCH_PAGES 256 /* 1 MiB per PAGES message */
#define IO_TIMEOUT_S 10 /* without progress; the guest may be paused meanwhile */
#define MAX_CONFIG (1u << 20)
#define REPLY_MAX 512 /* text of a REPLY */

enum mig_msg {
	MSG_START = 1,
	MSG_CONFIG = 2,
	MSG_PAGES = 3,
	MSG_STATE = 5,
	MSG_COMPLETE = 6,
	MSG_ABANDON = 7,
	MSG_REPLY = 100,
};

static const char *const phase_names[] = { "none",	"setup",  "precopy",  "stopcopy",
					   "completed", "failed", "cancelled" };

const char *mig_phase_name(enum mig_phase p)
{
	return (unsigned int)p < ARRAY_SIZE(phase_names) ? phase_names[p] : "?";
}

/* ---- framing ---- */

static int send_msg(struct mig_chan *fd, uint32_t type, const void *a, size_t alen, const void *b,
		    size_t blen)
{
	uint8_t h[MIG_HDR];
	int ret;

	put_le32(h, type);
	put_le32(h + 4, 0);
	put_le64(h + 8, alen + blen);
	ret = mig_chan_send(fd, h, sizeof(h));
	if (!ret && alen)
		ret = mig_chan_send(fd, a, alen);
	if (!ret && blen)
		ret = mig_chan_send(fd, b, blen);
	return ret;
}

static int recv_hdr(struct mig_chan *fd, uint32_t *type, uint64_t *len)
{
	uint8_t h[MIG_HDR];
	int ret = mig_chan_recv(fd, h, sizeof(h));

	if (ret)
		return ret;
	*type = get_le32(h);
	*len = get_le64(h + 8);
	return 0;
}

/* REPLY: u32 status (0 or a positive errno) + message text. */
static int send_reply(struct mig_chan *fd, int status, const char *msg)
{
	uint8_t s[4];

	put_le32(s, (uint32_t)(status < 0 ? -status : status));
	/* The source takes answers of up to 512 bytes. */
	return send_msg(fd, MSG_REPLY, s, 4, msg, MIN(strlen(msg), REPLY_MAX));
}

static int wait_reply(struct mig_chan *fd, char *err, size_t errlen)
{
	uint8_t buf[4 + REPLY_MAX];
	uint64_t len;
	uint32_t type, status;
	int ret = recv_hdr(fd, &type, &len);

	if (ret) {
		snprintf(err, errlen, "no answer from the destination: %s", strerror(-ret));
		return ret;
	}
	if (type != MSG_REPLY || len < 4 || len > sizeof(buf)) {
		snprintf(err, errlen, "the destination sent something else than an answer");
		return -EPROTO;
	}
	ret = mig_chan_recv(fd, buf, len);
	if (ret) {
		snprintf(err, errlen, "answer cut short: %s", strerror(-ret));
		return ret;
	}
	status = get_le32(buf);
	if (status) {
		snprintf(err, errlen, "the destination refused: %.*s", (int)(len - 4),
			 (const char *)buf + 4);
		return -(int)MIN(status, 4095u);
	}
	return 0;
}

static void set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int parse_uri(const char *uri, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon;

	if (strncmp(uri, "tcp:", 4))
		return -EINVAL;
	uri += 4;
	colon = strrchr(uri, ':');
	if (!colon || colon == uri || !colon[1] || (size_t)(colon - uri) >= hlen ||
	    strlen(colon + 1) >= plen)
		return -EINVAL;
	memcpy(host, uri, (size_t)(colon - uri));
	host[colon - uri] = 0;
	strcpy(port, colon + 1);
	/* [::1]:4444 */
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	return 0;
}

/* ---- source ---- */

void migration_init(struct migration *m)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->fd = -1;
}

static void set_phase(struct migration *m, enum mig_phase p)
{
	pthread_mutex_lock(&m->lock);
	m->status.phase = p;
	pthread_mutex_unlock(&m->lock);
}

static bool cancelled(struct migration *m)
{
	return __atomic_load_n(&m->cancel, __ATOMIC_ACQUIRE);
}

/* Sends the pages set in bitmap (bit i = page first + i), batching contiguous runs. skip_zero:
 * pages that read as zero are left out (the destination's RAM starts zeroed). */
static int send_pages(struct vm *vm, struct mig_chan *fd, const uint64_t *bitmap, uint64_t first,
		      uint64_t npages, bool skip_zero, uint64_t *sent)
{
	static const uint8_t zero[PAGE];
	struct migration *m = &vm->migration;
	uint8_t off[8];

	for (uint64_t i = 0; i < npages;) {
		uint64_t j;

		if (!(bitmap[i / 64] >> (i % 64) & 1)) {
			if (!bitmap[i / 64] && i % 64 == 0)
				i += 64;
			else
				i++;
			continue;
		}
		if (skip_zero && !memcmp(vm->mem.base + (first + i) * PAGE, zero, PAGE)) {
			i++;
			continue;
		}
		for (j = i + 1;
		     j < npages && j - i < BATCH_PAGES && (bitmap[j / 64] >> (j % 64) & 1); j++)
			if (skip_zero && !memcmp(vm->mem.base + (first + j) * PAGE, zero, PAGE))
				break;
		put_le64(off, (first + i) * PAGE);
		if (cancelled(m))
			return -ECANCELED;
		int ret = send_msg(fd, MSG_PAGES, off, 8, vm->mem.base + (first + i) * PAGE,
				   (j - i) * PAGE);
		if (ret)
			return ret;
		*sent += (j - i) * PAGE + MIG_HDR + 8;
		i = j;
	}
	return 0;
}

/* Collects KVM's dirty log of every RAM slot plus the VMM's own marks into bitmap (one bit per
 * page of linear RAM). Returns the number of dirty pages or -errno. */
static int64_t collect_dirty(struct vm *vm, uint64_t *bitmap, uint64_t *scratch)
{
	uint64_t first = 0;
	int64_t count = 0;

	for (int s = 0; s < vm->mem.nregions; s++) {
		uint64_t npages = vm->mem.regions[s].size / PAGE;
		uint64_t words = (npages + 63) / 64;
		struct kvm_dirty_log log = { .slot = (uint32_t)s, .dirty_bitmap = scratch };

		memset(scratch, 0, words * 8);
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return -errno;
		/* Slot sizes are multiples of 2 MiB below the hole and of 4 KiB above; the low
		 * slot's page count is a multiple of 64 whenever a high slot exists (3 GiB). */
		for (uint64_t w = 0; w < words; w++) {
			uint64_t v = scratch[w];

			if (w == words - 1 && npages % 64)
				v &= (1ULL << (npages % 64)) - 1;
			bitmap[first / 64 + w] = v;
		}
		first += npages;
	}
	{
		uint64_t total = vm->mem.ram_size / PAGE, words = (total + 63) / 64;
		uint64_t *user = scratch;

		memory_dirty_take(&vm->mem, 0, words * 64, user);
		for (uint64_t w = 0; w < words; w++) {
			bitmap[w] |= user[w];
			count += __builtin_popcountll(bitmap[w]);
		}
	}
	return count;
}

static void fail(struct vm *vm, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct vm *vm, int err, const char *fmt, ...)
{
	struct migration *m = &vm->migration;
	va_list ap;

	pthread_mutex_lock(&m->lock);
	if (!m->status.error[0]) {
		va_start(ap, fmt);
		vsnprintf(m->status.error, sizeof(m->status.error), fmt, ap);
		va_end(ap);
	}
	m->status.phase = err == -ECANCELED ? MIG_CANCELLED : MIG_FAILED;
	pthread_mutex_unlock(&m->lock);
}

static int connect_to(struct migration *m, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai, *a;
	int fd = -1, r;

	r = getaddrinfo(m->host, m->port, &hints, &ai);
	if (r) {
		snprintf(err, errlen, "%.100s:%s: %s", m->host, m->port, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		set_timeouts(fd);
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		r = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %.100s:%s: %s", m->host, m->port,
			 strerror(r ? -r : ECONNREFUSED));
		return r ? r : -ECONNREFUSED;
	}
	return fd;
}

/* Connects, sets up the channel (TLS unless insecure) and exchanges START. *connected says
 * whether an ABANDON can be sent on failure. Returns 0 or -errno with the reason in err. */
static int session_start(struct migration *m, struct mig_chan *ch, bool *connected, char *err,
			 size_t errlen)
{
	uint8_t start[16];
	int fd, ret;

	fd = connect_to(m, err, errlen);
	if (fd < 0)
		return fd;
	m->fd = fd;
	ret = mig_chan_client(ch, fd, &m->tls, m->host, err, errlen);
	if (ret) {
		m->fd = -1; /* closed: migrate-cancel must not shut down a reused number */
		/* A refused handshake: wrong key or certificate, or a destination without TLS. */
		if (ret == -EPROTO) {
			size_t l = strlen(err);

			snprintf(err + l, errlen - l,
				 " (a wrong key or certificate, or a destination that does not "
				 "use the same --migration-tls)");
		}
		return ret;
	}
	*connected = true;
	memcpy(start, MIG_MAGIC, 8);
	put_le32(start + 8, MIG_PROTOCOL_VERSION);
	put_le32(start + 12, MIG_PROTOCOL_VERSION);
	ret = send_msg(ch, MSG_START, start, sizeof(start), NULL, 0);
	if (!ret)
		ret = wait_reply(ch, err, errlen);
	if (ret && !err[0])
		snprintf(err, errlen, "greeting the destination: %s", strerror(-ret));
	if (ret && ret != -ETIMEDOUT && !strstr(err, "refused")) {
		size_t l = strlen(err);

		/* A TLS destination drops what is not a handshake; in TLS 1.3 it checks our
		 * certificate after we consider the handshake done. */
		snprintf(err + l, errlen - l, "%s",
			 m->tls.kind == MIG_TLS_INSECURE
				 ? " (does the destination use --migration-tls?)"
				 : " (did the destination refuse our TLS credentials?)");
	}
	return ret;
}

/* CONFIG and the destination's answer. Returns 0 or -errno with the reason in err. */
static int send_config(struct vm *vm, struct mig_chan *ch, struct tlv_writer *w, char *err,
		       size_t errlen)
{
	uint8_t cfghdr[20];
	int ret;

	/* CONFIG: RAM size, CPUID fingerprint, CRC, then the configuration section. */
	ret = vmstate_save_config(vm, w);
	if (ret) {
		snprintf(err, errlen, "cannot encode the configuration");
		return ret;
	}
	put_le64(cfghdr, vm->mem.ram_size);
	put_le64(cfghdr + 8, vm->cpuid_fingerprint);
	put_le32(cfghdr + 16, (uint32_t)crc32(0, w->buf, (uInt)w->len));
	ret = send_msg(ch, MSG_CONFIG, cfghdr, sizeof(cfghdr), w->buf, w->len);
	if (!ret)
		ret = wait_reply(ch, err, errlen);
	return ret;
}

/* The pre-copy rounds, the guest running: every resident page, then what it dirtied, until
 * the rest fits in the allowed downtime or MIG_MAX_ROUNDS. bitmap holds the pages dirtied
 * since the last round sent. Returns 0 or -errno with the reason in err. */
static int precopy(struct vm *vm, struct mig_chan *ch, uint64_t *bitmap, uint64_t *scratch,
		   uint64_t *sent, char *err, size_t errlen)
{
	struct migration *m = &vm->migration;
	uint64_t total_pages = vm->mem.ram_size / PAGE, words = (total_pages + 63) / 64;
	double bw = 0;
	int64_t dirty;
	int ret;

	for (unsigned int round = 1;; round++) {
		double tr = mono_ms(), dt;
		uint64_t before = *sent;

		if (round == 1) {
			/* Pages the guest never touched are not even resident: skip them
			 * without reading (mincore), and zero pages. */
			unsigned char *vec = malloc(total_pages);

			if (vec && !vm->ram_from_file && !vm->mem.hugepages &&
			    mincore(vm->mem.base, vm->mem.ram_size, vec) == 0) {
				for (uint64_t p = 0; p < total_pages; p++)
					if (vec[p] & 1)
						bitmap[p / 64] |= 1ULL << (p % 64);
			} else {
				memset(bitmap, 0xff, words * 8);
			}
			free(vec);
			ret = send_pages(vm, ch, bitmap, 0, total_pages, true, sent);
		} else {
			ret = send_pages(vm, ch, bitmap, 0, total_pages, false, sent);
		}
		if (ret) {
			snprintf(err, errlen, "sending memory: %s", strerror(-ret));
			return ret;
		}
		dt = mono_ms() - tr;
		if (dt > 0.5 && *sent - before > 1 * MIB)
			bw = (double)(*sent - before) / (dt / 1e3);
		else if (bw == 0)
			bw = 1e9; /* too little sent to measure: assume 1 GB/s */
		dirty = collect_dirty(vm, bitmap, scratch);
		if (dirty < 0) {
			ret = (int)dirty;
			snprintf(err, errlen, "KVM_GET_DIRTY_LOG: %s", strerror(-ret));
			return ret;
		}
		pthread_mutex_lock(&m->lock);
		m->status.rounds = round;
		m->status.transferred_bytes = *sent;
		m->status.remaining_bytes = (uint64_t)dirty * PAGE;
		m->status.dirty_pages_per_s = dt > 0 ? (uint64_t)((double)dirty / (dt / 1e3)) : 0;
		m->status.bandwidth_mib_s = bw / (double)MIB;
		m->status.expected_downtime_ms = (double)dirty * PAGE / bw * 1e3;
		pthread_mutex_unlock(&m->lock);
		pr_debug("migrate: round %u: %" PRIu64 " KiB in %.1f ms, %" PRId64
			 " pages dirty, expected downtime %.1f ms",
			 round, (*sent - before) >> 10, dt, dirty, (double)dirty * PAGE / bw * 1e3);
		if ((double)dirty * PAGE / bw * 1e3 <= m->max_downtime_ms)
			return 0;
		if (round >= MIG_MAX_ROUNDS) {
			pr_warn("migrate: the guest dirties memory faster than it can be sent; "
				"stopping it after %u rounds with %" PRId64 " KiB left",
				round, dirty * 4);
			return 0;
		}
		if (cancelled(m)) {
			snprintf(err, errlen, "cancelled");
			return -ECANCELED;
		}
	}
}

/* Stop-copy, the guest paused and its disks released: the pages left and the ones dirtied
 * since, the machine state, COMPLETE, and the destination's answer. Returns 0 or -errno with
 * the reason in err. */
static int send_rest(struct vm *vm, struct mig_chan *ch, struct tlv_writer *w, uint64_t *bitmap,
		     uint64_t *scratch, uint64_t *sent, char *err, size_t errlen)
{
	uint64_t total_pages = vm->mem.ram_size / PAGE, words = (total_pages + 63) / 64;
	int ret;

	{
		/* What the last round left plus what the guest dirtied since. */
		uint64_t *last = calloc(words, 8);
		int64_t more = last ? collect_dirty(vm, last, scratch) : -ENOMEM;

		if (more < 0) {
			free(last);
			ret = (int)more;
			snprintf(err, errlen, "KVM_GET_DIRTY_LOG: %s", strerror(-ret));
			return ret;
		}
		for (uint64_t i = 0; i < words; i++)
			bitmap[i] |= last[i];
		free(last);
	}
	ret = send_pages(vm, ch, bitmap, 0, total_pages, false, sent);
	if (ret) {
		snprintf(err, errlen, "sending memory: %s", strerror(-ret));
		return ret;
	}
	tlv_writer_free(w);
	ret = vmstate_save(vm, w);
	if (ret) {
		snprintf(err, errlen, "saving the machine state failed");
		return ret;
	}
	{
		uint8_t crc[4];

		put_le32(crc, (uint32_t)crc32(0, w->buf, (uInt)w->len));
		ret = send_msg(ch, MSG_STATE, crc, 4, w->buf, w->len);
	}
	if (!ret)
		ret = send_msg(ch, MSG_COMPLETE, NULL, 0, NULL, 0);
	if (ret) {
		snprintf(err, errlen, "sending the machine state: %s", strerror(-ret));
		return ret;
	}
	*sent += w->len;
	return wait_reply(ch, err, errlen);
}

static void *migration_thread(void *arg)
{
	struct vm *vm = arg;
	struct migration *m = &vm->migration;
	uint64_t total_pages = vm->mem.ram_size / PAGE, words = (total_pages + 63) / 64;
	uint64_t *bitmap = calloc(words, 8), *scratch = calloc(words, 8);
	struct tlv_writer w;
	char err[256] = "";
	double t0 = mono_ms(), t_pause = 0;
	bool logging = false, paused = false, released = false;
	uint64_t sent = 0;
	struct mig_chan chan = { .fd = -1 }, *ch = &chan;
	bool connected = false;
	int ret;

	sandbox_enter_thread(SANDBOX_MIGRATION);
	tlv_writer_init(&w);
	if (!bitmap || !scratch) {
		ret = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	ret = session_start(m, ch, &connected, err, sizeof(err));
	if (ret)
		goto out;

	ret = send_config(vm, ch, &w, err, sizeof(err));
	if (ret)
		goto out;

	/* Round 1: everything, with the dirty log on from before the first page is read. */
	ret = memory_dirty_start(&vm->mem);
	if (!ret)
		ret = vm_set_memory_slots(vm, true);
	if (ret) {
		snprintf(err, sizeof(err), "cannot turn on dirty page logging: %s", strerror(-ret));
		goto out;
	}
	logging = true;
	set_phase(m, MIG_PRECOPY);
	ret = precopy(vm, ch, bitmap, scratch, &sent, err, sizeof(err));
	if (ret)
		goto out;

	/* Stop-copy. */
	set_phase(m, MIG_STOPCOPY);
	t_pause = mono_ms();
	ret = vm_pause(vm);
	if (ret) {
		snprintf(err, sizeof(err), "could not pause the guest");
		goto out;
	}
	paused = true;
	/* Shared storage: the destination opens the images once it has the state, so this side
	 * flushes and closes them now (paused, the disks are drained). */
	ret = vm_disks_release(vm);
	if (ret) {
		snprintf(err, sizeof(err), "cannot flush and close the disk images: %s",
			 strerror(-ret));
		goto out;
	}
	released = true;
	ret = send_rest(vm, ch, &w, bitmap, scratch, &sent, err, sizeof(err));
	if (ret)
		goto out;

	/* The destination runs the guest now: this side must never run it again. */
	pthread_mutex_lock(&m->lock);
	m->status.phase = MIG_COMPLETED;
	m->status.transferred_bytes = sent;
	m->status.remaining_bytes = 0;
	m->status.downtime_ms = mono_ms() - t_pause;
	m->status.total_ms = mono_ms() - t0;
	pthread_mutex_unlock(&m->lock);
	pr_info("migration completed: %" PRIu64 " MiB sent in %.0f ms, %u rounds, guest paused "
		"%.1f ms",
		sent >> 20, mono_ms() - t0, m->status.rounds, m->status.downtime_ms);
	vm_request_stop(vm, STOP_MIGRATED, EXIT_GUEST_OFF);
	goto done;
out:
	if (connected && ret != -EPIPE && ret != -ECONNRESET) {
		const char *why = err[0] ? err : "source failure";

		send_msg(ch, MSG_ABANDON, why, strlen(why), NULL, 0);
	}
	if (logging) {
		vm_set_memory_slots(vm, false);
		memory_dirty_stop(&vm->mem);
		logging = false;
	}
	fail(vm, ret, "%s", err[0] ? err : strerror(-ret));
	pthread_mutex_lock(&m->lock);
	m->status.total_ms = mono_ms() - t0;
	if (paused)
		m->status.downtime_ms = mono_ms() - t_pause;
	pthread_mutex_unlock(&m->lock);
	if (released)
		vm_disks_reacquire(vm);
	if (paused)
		vm_resume(vm);
	pr_err("migration %s: %s; the VM keeps running here",
	       ret == -ECANCELED ? "cancelled" : "failed", err[0] ? err : strerror(-ret));
done:
	if (logging)
		memory_dirty_stop(&vm->mem);
	m->fd = -1;
	if (chan.fd >= 0)
		mig_chan_close(ch, connected);
	tlv_writer_free(&w);
	free(bitmap);
	free(scratch);
	return NULL;
}

/* The credentials a migration uses: the command's, else `vireo run --migration-tls`; plain TCP
 * only when asked for by name. */
static int choose_tls(struct vm *vm, const char *tls, bool insecure, struct mig_tls_opts *o,
		      char *err, size_t errlen)
{
	char path[MIG_TLS_PATH_MAX + 16];

	if (tls && insecure) {
		snprintf(err, errlen, "give tls or insecure, not both");
		return -EINVAL;
	}
	if (!tls && !insecure)
		tls = vm->cfg->migration_tls;
	if (!tls && !insecure) {
		snprintf(err, errlen,
			 "migrations are encrypted and authenticated: give \"tls\": "
			 "\"psk=FILE\" or \"x509=DIR\" (or start the VM with --migration-tls), or "
			 "\"insecure\": true for plain TCP on a network you trust");
		return -EINVAL;
	}
	if (mig_tls_parse(tls, o, err, errlen))
		return -EINVAL;
	/* Checked now so that a typo is refused at once, not later in migrate-status. */
	snprintf(path, sizeof(path), "%s%s", o->path,
		 o->kind == MIG_TLS_X509 ? "/ca-cert.pem" : "");
	if (o->kind != MIG_TLS_INSECURE && access(path, R_OK) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

int migration_start(struct vm *vm, const char *uri, unsigned int max_downtime_ms, const char *tls,
		    bool insecure, char *err, size_t errlen)
{
	struct migration *m = &vm->migration;
	enum mig_phase p;
	int ret;

	pthread_mutex_lock(&m->lock);
	p = m->status.phase;
	pthread_mutex_unlock(&m->lock);
	if (p == MIG_SETUP || p == MIG_PRECOPY || p == MIG_STOPCOPY) {
		snprintf(err, errlen, "a migration is already running");
		return -EBUSY;
	}
	if (p == MIG_COMPLETED) {
		snprintf(err, errlen, "this VM has migrated away");
		return -EBUSY;
	}
	if (parse_uri(uri, m->host, sizeof(m->host), m->port, sizeof(m->port))) {
		snprintf(err, errlen, "'%s': expected tcp:HOST:PORT", uri);
		return -EINVAL;
	}
	ret = choose_tls(vm, tls, insecure, &m->tls, err, errlen);
	if (ret)
		return ret;
	if (m->thread_started) {
		pthread_join(m->thread, NULL);
		m->thread_started = false;
	}
	pthread_mutex_lock(&m->lock);
	memset(&m->status, 0, sizeof(m->status));
	m->status.phase = MIG_SETUP;
	m->status.ram_bytes = vm->mem.ram_size;
	pthread_mutex_unlock(&m->lock);
	m->cancel = false;
	m->max_downtime_ms = max_downtime_ms ? max_downtime_ms : MIG_DEFAULT_MAX_DOWNTIME_MS;
	ret = pthread_create(&m->thread, NULL, migration_thread, vm);
	if (ret) {
		set_phase(m, MIG_FAILED);
		snprintf(err, errlen, "cannot start the migration thread: %s", strerror(ret));
		return -ret;
	}
	m->thread_started = true;
	pr_info("migrating to %s:%s (max downtime %u ms, %s)", m->host, m->port, m->max_downtime_ms,
		m->tls.kind == MIG_TLS_PSK    ? "TLS 1.3 with a pre-shared key"
		: m->tls.kind == MIG_TLS_X509 ? "TLS 1.3 with X.509 certificates"
					      : "plain TCP (insecure)");
	return 0;
}

int migration_cancel(struct vm *vm)
{
	struct migration *m = &vm->migration;
	enum mig_phase p;

	pthread_mutex_lock(&m->lock);
	p = m->status.phase;
	pthread_mutex_unlock(&m->lock);
	if (p != MIG_SETUP && p != MIG_PRECOPY && p != MIG_STOPCOPY)
		return -ENOENT;
	__atomic_store_n(&m->cancel, true, __ATOMIC_RELEASE);
	/* Wakes a send or receive that is blocked on the peer. */
	if (m->fd >= 0)
		shutdown(m->fd, SHUT_RDWR);
	return 0;
}

void migration_get_status(struct vm *vm, struct mig_status *st)
{
	pthread_mutex_lock(&vm->migration.lock);
	*st = vm->migration.status;
	pthread_mutex_unlock(&vm->migration.lock);
}

bool migration_busy(struct vm *vm)
{
	enum mig_phase p;

	pthread_mutex_lock(&vm->migration.lock);
	p = vm->migration.status.phase;
	pthread_mutex_unlock(&vm->migration.lock);
	return p == MIG_SETUP || p == MIG_PRECOPY || p == MIG_STOPCOPY;
}

void migration_finish(struct vm *vm)
{
	if (vm->migration.thread_started) {
		migration_cancel(vm);
		pthread_join(vm->migration.thread, NULL);
		vm->migration.thread_started = false;
	}
}

/* ---- destination ---- */

static int listen_on(const char *uri)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE },
			*ai, *a;
	char host[256], port[16];
	int fd = -1, one = 1, r;

	if (parse_uri(uri, host, sizeof(host), port, sizeof(port))) {
		pr_err("--incoming %s: expected tcp:HOST:PORT", uri);
		return -EINVAL;
	}
	r = getaddrinfo(host, port, &hints, &ai);
	if (r) {
		pr_err("--incoming %s: %s", uri, gai_strerror(r));
		return -EINVAL;
	}
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1) == 0)
			break;
		r = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		pr_err("--incoming %s: cannot listen: %s", uri, strerror(r));
		return -r;
	}
	return fd;
}

/* One connection's handshake: START, then CONFIG. Returns 0, or -EPROTO for a peer that is not
 * a vireo source (the caller waits for another), or another -errno. */
int migration_incoming_handshake(struct mig_chan *fd, struct vm_config *cfg, uint64_t *fp)
{
	static struct vmstate_config sc; /* strings live as long as the process (cfg points) */
	uint8_t start[16], *buf = NULL;
	uint64_t len;
	uint32_t type, ver, minv;
	char err[1024];
	int ret;

	ret = recv_hdr(fd, &type, &len);
	if (ret)
		return ret == -ECONNRESET || ret == -ETIMEDOUT ? -EPROTO : ret;
	if (type != MSG_START || len != sizeof(start) || mig_chan_recv(fd, start, sizeof(start)) ||
	    memcmp(start, MIG_MAGIC, 8)) {
		pr_warn("--incoming: a connection that is not a vireo migration; waiting for "
			"another");
		return -EPROTO;
	}
	ver = get_le32(start + 8);
	minv = get_le32(start + 12);
	if (minv > MIG_PROTOCOL_VERSION) {
		snprintf(
			err, sizeof(err),
			"migration protocol version %u (at least %u) is newer than this vireo's %u",
			ver, minv, MIG_PROTOCOL_VERSION);
		pr_err("--incoming: %s", err);
		send_reply(fd, EPROTONOSUPPORT, err);
		return -EPROTO;
	}
	ret = send_reply(fd, 0, "ready");
	if (ret)
		return ret;
	ret = recv_hdr(fd, &type, &len);
	if (ret)
		return ret;
	if (type != MSG_CONFIG || len < 20 || len > MAX_CONFIG) {
		pr_err("--incoming: expected the configuration, got message %u", type);
		return -EPROTO;
	}
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	ret = mig_chan_recv(fd, buf, len);
	if (ret)
		goto out;
	*fp = get_le64(buf + 8);
	if (get_le32(buf + 16) != (uint32_t)crc32(0, buf + 20, (uInt)(len - 20))) {
		snprintf(err, sizeof(err), "configuration CRC mismatch");
		ret = -EINVAL;
	} else {
		ret = vmstate_read_config(buf + 20, len - 20, cfg, &sc, err, sizeof(err));
		if (!ret && get_le64(buf) != cfg->mem_size) {
			snprintf(err, sizeof(err), "RAM size disagrees with the configuration");
			ret = -EINVAL;
		}
	}
	if (ret) {
		pr_err("--incoming: %s", err);
		send_reply(fd, -ret, err);
	}
out:
	free(buf);
	return ret;
}

/* The peer's address, for messages. */
static void peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char host[128], port[16];

	if (getpeername(fd, (struct sockaddr *)&sa, &sl) ||
	    getnameinfo((struct sockaddr *)&sa, sl, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%s port %s", host, port);
}

int migration_incoming_accept(struct vm_config *cfg, uint64_t *fp, struct mig_chan *ch)
{
	struct mig_tls_opts tls;
	char err[512], peer[160];
	int lfd, fd, ret;

	if (mig_tls_parse(cfg->migration_tls, &tls, err, sizeof(err))) {
		pr_err("--migration-tls %s", err);
		return -EINVAL;
	}
	lfd = listen_on(cfg->incoming);
	if (lfd < 0)
		return lfd;
	pr_info("waiting for a migration on %s (%s)", cfg->incoming + 4,
		tls.kind == MIG_TLS_INSECURE ? "plain TCP: anyone who reaches it can send a VM"
					     : "TLS 1.3");
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			ret = -errno;
			pr_err("--incoming: accept: %s", strerror(errno));
			break;
		}
		set_timeouts(fd);
		peer_name(fd, peer, sizeof(peer));
		ret = mig_chan_server(ch, fd, &tls, err, sizeof(err));
		if (ret == -EPROTO || ret == -ETIMEDOUT) {
			/* Not authenticated: nothing it sent is looked at. */
			pr_warn("--incoming: refused %s: %s; waiting for another source", peer,
				err);
			continue;
		}
		if (ret) {
			pr_err("--incoming: %s", err);
			break;
		}
		ret = migration_incoming_handshake(ch, cfg, fp);
		if (ret == 0) {
			pr_info("--incoming: migration from %s", peer);
			close(lfd);
			return 0;
		}
		mig_chan_close(ch, false);
		if (ret != -EPROTO)
			break;
	}
	close(lfd);
	return ret;
}

int migration_incoming_receive(struct vm *vm, struct mig_chan *fd, uint64_t fp)
{
	char err[256] = "";
	uint8_t *state = NULL;
	uint64_t len, pages = 0;
	uint32_t type;
	double t_state = 0;
	int ret;

	if (fp != vm->cpuid_fingerprint && !vm->cfg->force) {
		snprintf(err, sizeof(err),
			 "this host's CPUID differs from the source's (use --force on the "
			 "destination to accept)");
		ret = -EINVAL;
		goto out;
	}
	ret = send_reply(fd, 0, "configured");
	if (ret)
		goto out_quiet;
	for (;;) {
		ret = recv_hdr(fd, &type, &len);
		if (ret) {
			snprintf(err, sizeof(err), "the source went away: %s", strerror(-ret));
			goto out_quiet;
		}
		if (type == MSG_PAGES) {
			uint8_t off[8];
			uint64_t o;

			if (len < 8 + PAGE || (len - 8) % PAGE) {
				snprintf(err, sizeof(err), "malformed memory message");
				ret = -EPROTO;
				goto out;
			}
			ret = mig_chan_recv(fd, off, 8);
			o = get_le64(off);
			if (!ret &&
			    (o % PAGE || o > vm->mem.ram_size || len - 8 > vm->mem.ram_size - o)) {
				snprintf(err, sizeof(err), "memory message outside RAM");
				ret = -EPROTO;
				goto out;
			}
			if (!ret)
				ret = mig_chan_recv(fd, vm->mem.base + o, len - 8);
			if (ret) {
				snprintf(err, sizeof(err), "receiving memory: %s", strerror(-ret));
				goto out_quiet;
			}
			pages += (len - 8) / PAGE;
		} else if (type == MSG_STATE) {
			if (len < 4 || len > STATE_MAX_SIZE || state) {
				snprintf(err, sizeof(err), "malformed state message");
				ret = -EPROTO;
				goto out;
			}
			state = malloc(len);
			if (!state) {
				ret = -ENOMEM;
				goto out;
			}
			ret = mig_chan_recv(fd, state, len);
			if (ret) {
				snprintf(err, sizeof(err), "receiving state: %s", strerror(-ret));
				goto out_quiet;
			}
			if (get_le32(state) != (uint32_t)crc32(0, state + 4, (uInt)(len - 4))) {
				snprintf(err, sizeof(err), "state CRC mismatch");
				ret = -EINVAL;
				goto out;
			}
			{
				size_t pos = 0;
				struct tlv_section s;
				int r;

				while ((r = tlv_next_section(state + 4, len - 4, &pos, &s)) == 1)
					;
				if (r < 0) {
					snprintf(err, sizeof(err), "malformed state sections");
					ret = -EINVAL;
					goto out;
				}
			}
			t_state = mono_ms();
			ret = vmstate_load(vm, state + 4, len - 4, true);
			if (ret) {
				snprintf(err, sizeof(err), "the machine state could not be loaded");
				goto out;
			}
		} else if (type == MSG_COMPLETE) {
			if (!state) {
				snprintf(err, sizeof(err), "completed without machine state");
				ret = -EPROTO;
				goto out;
			}
			break;
		} else if (type == MSG_ABANDON) {
			char why[256];
			size_t n = MIN(len, sizeof(why) - 1);

			if (mig_chan_recv(fd, why, n) == 0) {
				why[n] = 0;
				snprintf(err, sizeof(err),
					 "the source abandoned the migration: %.200s", why);
			} else {
				snprintf(err, sizeof(err), "the source abandoned the migration");
			}
			ret = -ECANCELED;
			goto out_quiet;
		} else {
			snprintf(err, sizeof(err), "unexpected message type %u", type);
			ret = -EPROTO;
			goto out;
		}
	}
	ret = send_reply(fd, 0, "running");
	if (ret) {
		/* The source did not hear that the guest runs here, so it will resume its own
		 * copy: this one must not run. */
		snprintf(err, sizeof(err), "could not confirm to the source: %s", strerror(-ret));
		goto out_quiet;
	}
	pr_info("migration received: %" PRIu64 " MiB of memory, state loaded in %.1f ms",
		pages * PAGE >> 20, mono_ms() - t_state);
	free(state);
	mig_chan_close(fd, true);
	return 0;
out:
	send_reply(fd, ret, err[0] ? err : strerror(-ret));
out_quiet:
	pr_err("incoming migration failed: %s", err[0] ? err : strerror(-ret));
	free(state);
	mig_chan_close(fd, false);
	return ret ? ret : -EPROTO;
}
