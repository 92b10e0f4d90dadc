// SPDX-License-Identifier: MIT
/* Unit tests without KVM for memory_discard (anonymous and file-backed RAM), virtio-balloon and
 * virtio-vsock, driven through the virtio-pci transport by a small fake driver. RAM is an
 * anonymous mapping (discards need real pages, and ASan still sees stray host accesses). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/tlv.h"
#include "common/util.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "virtio/devices.h"
#include "virtio/pci.h"
#include "mem/memory.h"

#include "virtio_driver.h"

/* ---- memory_discard ---- */

static void test_discard_anonymous(void **state)
{
	struct guest_mem mem;
	uint8_t *p;

	(void)state;
	assert_int_equal(memory_alloc(&mem, 16 * MIB, false), 0);
	p = memory_gpa_ptr(&mem, 0, 16 * MIB);
	memset(p, 0xaa, 5 * 4096);
	/* Only whole pages inside the range: 0x800..0x3800 discards pages 1 and 2. */
	assert_int_equal(memory_discard(&mem, 0x800, 0x3000), 2 * 4096);
	assert_int_equal(p[0x7ff], 0xaa);
	assert_int_equal(p[0x1000], 0);
	assert_int_equal(p[0x2fff], 0);
	assert_int_equal(p[0x3000], 0xaa);
	assert_int_equal(memory_discard(&mem, 0x100, 0x200), 0);
	assert_int_equal(memory_discard(&mem, 16 * MIB - 4096, 8192), -EINVAL);
	assert_int_equal(memory_discard(&mem, UINT64_MAX - 4095, 8192), -EINVAL);
	memory_free(&mem);
}

/* After --restore RAM is a private file mapping: a discarded page must read as zero, not as
 * the snapshot's content, and its neighbours keep theirs. */
static void test_discard_file_backed(void **state)
{
	char path[] = "/tmp/vireo-discard-XXXXXX";
	int fd = mkstemp(path);
	static uint8_t page[4096];
	struct guest_mem mem;
	uint8_t *p;

	(void)state;
	assert_true(fd >= 0);
	memset(page, 0x5a, sizeof(page));
	for (int i = 0; i < 16 * 256; i++)
		assert_int_equal(write(fd, page, sizeof(page)), sizeof(page));
	assert_int_equal(memory_map_fd(&mem, fd, 16 * MIB), 0);
	assert_true(mem.file_backed);
	p = memory_gpa_ptr(&mem, 0, 16 * MIB);
	p[0x2000] = 1; /* a private copy of page 2 */
	assert_int_equal(memory_discard(&mem, 0x1000, 0x2000), 0x2000);
	assert_int_equal(p[0x1000], 0);
	assert_int_equal(p[0x2000], 0);
	assert_int_equal(p[0x2fff], 0);
	assert_int_equal(p[0x0fff], 0x5a);
	assert_int_equal(p[0x3000], 0x5a);
	/* The fresh pages are ordinary private memory. */
	p[0x1000] = 7;
	assert_int_equal(p[0x1000], 7);
	memory_free(&mem);
	close(fd);
	unlink(path);
}

/* Discards show up in the migration's dirty bitmap (the destination must see them too). */
static void test_discard_marks_dirty(void **state)
{
	struct guest_mem mem;
	uint64_t bits[64];

	(void)state;
	assert_int_equal(memory_alloc(&mem, 16 * MIB, false), 0);
	assert_int_equal(memory_dirty_start(&mem), 0);
	assert_int_equal(memory_discard(&mem, 0x41000, 0x2000), 0x2000);
	memory_dirty_take(&mem, 0, 64 * 64, bits);
	assert_int_equal(bits[1], 3ULL << 1); /* pages 0x41 and 0x42 */
	memory_dirty_stop(&mem);
	memory_free(&mem);
}

/* ---- virtio-balloon ---- */

#define B_STATS_VQ 1
#define B_DEFLATE_ON_OOM 2
#define B_REPORTING 5

static int balloon_setup(void **state)
{
	struct drv *d = drv_new();

	assert_int_equal(virtio_balloon_create(&d->vp, &d->host, &d->mem, &d->pci, &d->mmio, 10,
					       BALLOON_DEFLATE_ON_OOM),
			 0);
	drv_attach(d);
	*state = d;
	return 0;
}

static void test_balloon_features_config(void **state)
{
	struct drv *d = *state;
	uint32_t offered;

	drv_bar_write(d, 0x00, 0, 4);
	offered = (uint32_t)drv_bar_read(d, 0x04, 4);
	assert_int_equal(offered & 0xff,
			 (1u << B_STATS_VQ) | (1u << B_DEFLATE_ON_OOM) | (1u << B_REPORTING));
	assert_int_equal(drv_bar_read(d, 0x12, 2), 4); /* num_queues */
	assert_int_equal(virtio_balloon_set_target(d->vp, 2 * MIB), 0);
	assert_int_equal(drv_cfg_read(d, 0, 4), 2 * MIB / 4096);
	assert_int_equal(virtio_balloon_set_target(d->vp, DRV_RAM_SIZE + 4096), -ERANGE);
	/* The driver writes actual; num_pages is the device's. */
	drv_cfg_write(d, 4, 100, 4);
	drv_cfg_write(d, 0, 5, 4);
	assert_int_equal(drv_cfg_read(d, 4, 4), 100);
	assert_int_equal(drv_cfg_read(d, 0, 4), 2 * MIB / 4096);
	drv_cfg_write(d, 5, 1, 1); /* byte-wise, as some drivers do */
	assert_int_equal(drv_cfg_read(d, 4, 4), 100 + 256);
}

static void test_balloon_inflate(void **state)
{
	struct drv *d = *state;
	struct balloon_status st;
	uint8_t *pfns = d->ram + DRV_BUF_GPA;
	const uint32_t list[] = { 0x103, 0x101, 0x102, 0x7fffff, 0x180 };

	drv_start(d, (1ULL << B_STATS_VQ) | (1ULL << B_REPORTING), 4);
	memset(d->ram + 0x100000, 0xcc, 0x100000);
	for (unsigned int i = 0; i < ARRAY_SIZE(list); i++)
		put_le32(pfns + 4 * i, list[i]);
	drv_add1(d, 0, DRV_BUF_GPA, sizeof(list), false);
	drv_kick(d, 0);
	assert_int_equal(drv_used_idx(d, 0), 1);
	assert_false(drv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	/* Pages 0x101..0x103 and 0x180 are zero now; 0x100 and 0x104 kept their bytes; the
	 * page outside RAM was skipped and counted. */
	assert_int_equal(d->ram[0x100fff], 0xcc);
	assert_int_equal(d->ram[0x101000], 0);
	assert_int_equal(d->ram[0x103fff], 0);
	assert_int_equal(d->ram[0x104000], 0xcc);
	assert_int_equal(d->ram[0x180000], 0);
	virtio_balloon_get_status(d->vp, &st);
	assert_int_equal(st.inflated_pages, 5);
	assert_int_equal(st.discarded_bytes, 4 * 4096);
	assert_int_equal(st.bad_pfns, 1);
	/* Deflate is only counted. */
	drv_add1(d, 1, DRV_BUF_GPA, 8, false);
	drv_kick(d, 1);
	assert_int_equal(drv_used_idx(d, 1), 1);
	virtio_balloon_get_status(d->vp, &st);
	assert_int_equal(st.deflated_pages, 2);
}

static void test_balloon_bad_chains(void **state)
{
	struct drv *d = *state;

	drv_start(d, 0, 2);
	/* A PFN list of 6 bytes is not a list of le32. */
	drv_add1(d, 0, DRV_BUF_GPA, 6, false);
	drv_kick(d, 0);
	assert_true(drv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	drv_reset(d);
	drv_start(d, 0, 2);
	/* A writable PFN buffer is the wrong shape. */
	drv_add1(d, 1, DRV_BUF_GPA, 8, true);
	drv_kick(d, 1);
	assert_true(drv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	/* The stats queue does not exist without STATS_VQ: a notification for it is ignored
	 * by the transport (the queue was never enabled). */
}

static void put_stat(uint8_t *p, uint16_t tag, uint64_t v)
{
	put_le16(p, tag);
	put_le64(p + 2, v);
}

static void test_balloon_stats_and_reporting(void **state)
{
	struct drv *d = *state;
	struct balloon_status st;
	uint8_t *s = d->ram + DRV_BUF_GPA;

	/* Without STATS_VQ the reporting queue is queue 2. */
	drv_start(d, 1ULL << B_REPORTING, 3);
	assert_int_equal(virtio_balloon_request_stats(d->vp), -ENOTSUP);
	memset(d->ram + 0x140000, 0xee, 0x40000);
	drv_add1(d, 2, 0x140000, 0x40000, true);
	drv_kick(d, 2);
	assert_int_equal(drv_used_idx(d, 2), 1);
	assert_int_equal(d->ram[0x140000], 0);
	assert_int_equal(d->ram[0x17ffff], 0);
	virtio_balloon_get_status(d->vp, &st);
	assert_int_equal(st.reported_bytes, 0x40000);

	drv_reset(d);
	drv_start(d, (1ULL << B_STATS_VQ) | (1ULL << B_REPORTING), 4);
	assert_int_equal(virtio_balloon_request_stats(d->vp), -EAGAIN); /* no buffer yet */
	put_stat(s, 4, 1000); /* free */
	put_stat(s + 10, 5, 2000); /* total */
	put_stat(s + 20, 99, 7); /* unknown: skipped */
	drv_add1(d, 2, DRV_BUF_GPA, 30, false);
	drv_kick(d, 2);
	/* Held, not used, until the host asks. */
	assert_int_equal(drv_used_idx(d, 2), 0);
	virtio_balloon_get_status(d->vp, &st);
	assert_int_equal(st.stats_mask, (1u << 4) | (1u << 5));
	assert_int_equal(st.stats[4], 1000);
	assert_int_equal(st.stats[5], 2000);
	assert_int_equal(st.stats_updates, 1);
	assert_int_equal(virtio_balloon_request_stats(d->vp), 0);
	assert_int_equal(drv_used_idx(d, 2), 1);
	assert_int_equal(virtio_balloon_request_stats(d->vp), -EAGAIN);
	/* Reporting moved to queue 3 with STATS_VQ. */
	drv_add1(d, 3, 0x140000, 0x1000, true);
	drv_kick(d, 3);
	assert_int_equal(drv_used_idx(d, 3), 1);
}

static void test_balloon_save_load(void **state)
{
	struct drv *d = *state, *e;
	struct balloon_status st;
	struct tlv_writer w;
	struct tlv_section s;
	size_t pos = 0, start;
	uint8_t *b = d->ram + DRV_BUF_GPA;

	drv_start(d, 1ULL << B_STATS_VQ, 3);
	assert_int_equal(virtio_balloon_set_target(d->vp, 4 * MIB), 0);
	drv_cfg_write(d, 4, 512, 4);
	put_stat(b, 6, 12345);
	drv_add1(d, 2, DRV_BUF_GPA, 10, false);
	drv_kick(d, 2);

	tlv_writer_init(&w);
	start = tlv_section_begin(&w, virtio_balloon_device_ops.section_id, 0, 1, 1);
	assert_int_equal(virtio_balloon_device_ops.save(d->vp, &w), 0);
	tlv_section_end(&w, start);
	assert_int_equal(tlv_next_section(w.buf, w.len, &pos, &s), 1);

	e = drv_new_sharing(d);
	assert_int_equal(virtio_balloon_create(&e->vp, &e->host, &e->mem, &e->pci, &e->mmio, 10, 0),
			 0);
	drv_attach(e);
	assert_int_equal(virtio_balloon_device_ops.load(e->vp, &s), 0);
	virtio_balloon_get_status(e->vp, &st);
	assert_int_equal(st.target_bytes, 4 * MIB);
	assert_int_equal(st.actual_bytes, 2 * MIB);
	assert_int_equal(st.stats[6], 12345);
	/* The held stats buffer survives: asking gives it back to the driver. */
	assert_int_equal(virtio_balloon_request_stats(e->vp), 0);
	assert_int_equal(drv_used_idx(d, 2), 1);
	drv_free(e);
	tlv_writer_free(&w);
}

/* ---- virtio-vsock ---- */

#include <sys/socket.h>
#include <sys/un.h>

#include "virtio/vsock_proto.h"

#define CID 3
#define TXQ 1
#define RXQ 0
#define EVQ 2
#define RX_BUF_GPA 0x200000 /* rx buffer i at RX_BUF_GPA + 0x1000 * head */
#define TX_BUF_GPA 0x100000

struct vfix {
	struct drv *d;
	char dir[64], uds[96];
	unsigned int rx_seen;
	unsigned int tx_slot;
};

static int vsock_setup(void **state)
{
	struct vfix *v = calloc(1, sizeof(*v));

	snprintf(v->dir, sizeof(v->dir), "/tmp/vireo-vsock-XXXXXX");
	assert_non_null(mkdtemp(v->dir));
	snprintf(v->uds, sizeof(v->uds), "%s/v.sock", v->dir);
	v->d = drv_new();
	assert_int_equal(virtio_vsock_create(&v->d->vp, &v->d->host, &v->d->pci, &v->d->mmio, 10,
					     CID, v->uds),
			 0);
	drv_attach(v->d);
	drv_start(v->d, 0, 3);
	*state = v;
	return 0;
}

static int vsock_teardown(void **state)
{
	struct vfix *v = *state;
	char path[128];

	virtio_vsock_destroy(v->d->vp);
	v->d->vp = NULL;
	drv_free(v->d);
	for (int p = 0; p < 3; p++) {
		snprintf(path, sizeof(path), "%s_%d", v->uds, 1000 + p);
		unlink(path);
	}
	rmdir(v->dir);
	free(v);
	return 0;
}

/* Offers n receive buffers of 4 KiB, as Linux does. */
static void rx_post(struct vfix *v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint16_t head = (uint16_t)(v->d->next_desc[RXQ] % DRV_QSIZE);

		drv_add1(v->d, RXQ, RX_BUF_GPA + 0x1000 * (uint64_t)head, 0x1000, true);
	}
	drv_kick(v->d, RXQ);
}

/* The next packet the device sent: 1 with h and up to 4 KiB of payload, 0 when none. */
static int rx_next(struct vfix *v, struct vsock_hdr *h, uint8_t *payload)
{
	uint32_t id, len;
	uint8_t *p;

	if (drv_used_idx(v->d, RXQ) == (uint16_t)v->rx_seen)
		return 0;
	id = drv_used_id(v->d, RXQ, v->rx_seen);
	len = drv_used_len(v->d, RXQ, v->rx_seen);
	v->rx_seen++;
	p = v->d->ram + RX_BUF_GPA + 0x1000 * (uint64_t)id;
	assert_true(len >= VSOCK_HDR_LEN);
	vsock_hdr_decode(h, p);
	assert_int_equal(len, VSOCK_HDR_LEN + h->len);
	if (payload && h->len)
		memcpy(payload, p + VSOCK_HDR_LEN, h->len);
	return 1;
}

/* The guest sends one packet: header and payload in separate descriptors. */
static void tx_send(struct vfix *v, uint32_t src_port, uint32_t dst_port, uint16_t op,
		    uint32_t flags, uint32_t buf_alloc, uint32_t fwd_cnt, const void *data,
		    uint32_t len)
{
	struct vsock_hdr h = { .src_cid = CID,
			       .dst_cid = VSOCK_HOST_CID,
			       .src_port = src_port,
			       .dst_port = dst_port,
			       .len = len,
			       .type = VSOCK_TYPE_STREAM,
			       .op = op,
			       .flags = flags,
			       .buf_alloc = buf_alloc,
			       .fwd_cnt = fwd_cnt };
	uint64_t gpa = TX_BUF_GPA + 0x20000 * (uint64_t)(v->tx_slot++ % 4);
	struct drv_buf b[2] = { { gpa, VSOCK_HDR_LEN, false }, { gpa + 0x1000, len, false } };

	vsock_hdr_encode(&h, v->d->ram + gpa);
	if (len)
		memcpy(v->d->ram + gpa + 0x1000, data, len);
	drv_add(v->d, TXQ, b, len ? 2 : 1);
	drv_kick(v->d, TXQ);
}

static int host_listen(struct vfix *v, unsigned int port)
{
	char path[128];

	snprintf(path, sizeof(path), "%s_%u", v->uds, port);
	return unix_listen(path, 4);
}

static int host_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void test_vsock_proto(void **state)
{
	struct vsock_hdr h = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, g;
	uint8_t raw[VSOCK_HDR_LEN];

	(void)state;
	vsock_hdr_encode(&h, raw);
	assert_int_equal(get_le16(raw + 30), 7);
	vsock_hdr_decode(&g, raw);
	assert_memory_equal(&g, &h, sizeof(h));
	assert_int_equal(vsock_credit(4096, 0, 0), 4096);
	assert_int_equal(vsock_credit(4096, 100, 4000), 196);
	assert_int_equal(vsock_credit(4096, 0, 4096), 0);
	/* Free-running counters wrap. */
	assert_int_equal(vsock_credit(4096, 0xfffffff0u, 0x10), 4064);
	/* A peer claiming to have consumed more than was sent grants nothing extra. */
	assert_int_equal(vsock_credit(4096, 50, 10), 0);
}

static void test_vsock_config(void **state)
{
	struct vfix *v = *state;

	assert_int_equal(drv_pci_read(v->d, 0x02, 2), 0x1040 + 19);
	assert_int_equal(drv_cfg_read(v->d, 0, 8), CID);
	assert_int_equal(drv_bar_read(v->d, 0x12, 2), 3);
}

/* Guest to host: REQUEST, RESPONSE, data both ways with credit, shutdown, RST. */
static void test_vsock_guest_connect(void **state)
{
	struct vfix *v = *state;
	int lfd = host_listen(v, 1000), fd;
	static uint8_t big[6000], got[8192];
	struct vsock_hdr h;
	uint32_t total = 0;
	bool credit_req = false;

	assert_true(lfd >= 0);
	rx_post(v, 8);
	tx_send(v, 5000, 1000, VSOCK_OP_REQUEST, 0, 4096, 0, NULL, 0);
	assert_int_equal(rx_next(v, &h, NULL), 1);
	assert_int_equal(h.op, VSOCK_OP_RESPONSE);
	assert_int_equal(h.src_cid, VSOCK_HOST_CID);
	assert_int_equal(h.dst_cid, CID);
	assert_int_equal(h.src_port, 1000);
	assert_int_equal(h.dst_port, 5000);
	assert_int_equal(h.buf_alloc, VSOCK_BUF_ALLOC);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);

	tx_send(v, 5000, 1000, VSOCK_OP_RW, 0, 4096, 0, "hello", 5);
	assert_int_equal(recv(fd, got, sizeof(got), 0), 5);
	assert_memory_equal(got, "hello", 5);
	/* The write freed our buffer: a credit update tells the guest. */
	assert_int_equal(rx_next(v, &h, NULL), 1);
	assert_int_equal(h.op, VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(h.fwd_cnt, 5);

	/* Host to guest: 6000 bytes, but the guest has 4096 of credit. */
	memset(big, 'x', sizeof(big));
	assert_int_equal(send(fd, big, sizeof(big), 0), sizeof(big));
	virtio_vsock_poll(v->d->vp);
	while (rx_next(v, &h, got)) {
		if (h.op == VSOCK_OP_RW)
			total += h.len;
		else if (h.op == VSOCK_OP_CREDIT_REQUEST)
			credit_req = true;
	}
	assert_int_equal(total, 4096);
	assert_true(credit_req);
	/* The guest read it all and says so: the rest comes. */
	rx_post(v, 8);
	tx_send(v, 5000, 1000, VSOCK_OP_CREDIT_UPDATE, 0, 4096, 4096, NULL, 0);
	virtio_vsock_poll(v->d->vp);
	while (rx_next(v, &h, got))
		if (h.op == VSOCK_OP_RW)
			total += h.len;
	assert_int_equal(total, 6000);

	/* The guest closes: RST back, the host sees EOF. */
	tx_send(v, 5000, 1000, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND, 4096,
		6000, NULL, 0);
	assert_int_equal(rx_next(v, &h, NULL), 1);
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(recv(fd, got, sizeof(got), 0), 0);
	assert_false(drv_status(v->d) & VIRTIO_STATUS_NEEDS_RESET);
	close(fd);
	close(lfd);
}

/* Host to guest through the unix socket handshake; bytes sent right after the CONNECT line
 * wait for the guest to accept. The host hanging up becomes a SHUTDOWN. */
static void test_vsock_host_connect(void **state)
{
	struct vfix *v = *state;
	int fd = host_connect(v->uds);
	struct vsock_hdr h;
	uint8_t got[64];
	char line[32];
	uint32_t port;

	rx_post(v, 8);
	assert_int_equal(send(fd, "CONNECT 80\nearly", 16, 0), 16);
	virtio_vsock_poll(v->d->vp); /* accept */
	virtio_vsock_poll(v->d->vp); /* the line */
	assert_int_equal(rx_next(v, &h, NULL), 1);
	assert_int_equal(h.op, VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 80);
	assert_true(h.src_port >= 1u << 30);
	port = h.src_port;
	assert_int_equal(rx_next(v, &h, NULL), 0); /* nothing before the guest accepts */
	tx_send(v, 80, port, VSOCK_OP_RESPONSE, 0, 4096, 0, NULL, 0);
	snprintf(line, sizeof(line), "OK %u\n", port);
	assert_int_equal(recv(fd, got, strlen(line), MSG_WAITALL), strlen(line));
	assert_memory_equal(got, line, strlen(line));
	virtio_vsock_poll(v->d->vp);
	assert_int_equal(rx_next(v, &h, got), 1);
	assert_int_equal(h.op, VSOCK_OP_RW);
	assert_int_equal(h.len, 5);
	assert_memory_equal(got, "early", 5);
	shutdown(fd, SHUT_WR);
	virtio_vsock_poll(v->d->vp);
	assert_int_equal(rx_next(v, &h, NULL), 1);
	assert_int_equal(h.op, VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VSOCK_SHUTDOWN_SEND);
	/* The guest may still send; then it resets. */
	tx_send(v, 80, port, VSOCK_OP_RW, 0, 4096, 5, "bye", 3);
	assert_int_equal(recv(fd, got, 3, MSG_WAITALL), 3);
	tx_send(v, 80, port, VSOCK_OP_RST, 0, 4096, 5, NULL, 0);
	assert_int_equal(recv(fd, got, sizeof(got), 0), 0);
	close(fd);

	while (rx_next(v, &h, NULL)) /* the credit update for "bye" */
		assert_int_equal(h.op, VSOCK_OP_CREDIT_UPDATE);
	/* A bad handshake is closed without bothering the guest. */
	fd = host_connect(v->uds);
	assert_int_equal(send(fd, "HELLO\n", 6, 0), 6);
	virtio_vsock_poll(v->d->vp);
	virtio_vsock_poll(v->d->vp);
	assert_int_equal(recv(fd, got, sizeof(got), 0), 0);
	assert_int_equal(rx_next(v, &h, NULL), 0);
	close(fd);
}

/* Refusals and protocol errors: no listener, unknown connection, credit overrun, a header
 * that does not fit, a writable transmit buffer. */
static void test_vsock_errors(void **state)
{
	struct vfix *v = *state;
	int lfd = host_listen(v, 1001), fd;
	static uint8_t big[VSOCK_BUF_ALLOC + 1];
	struct vsock_hdr h;

	rx_post(v, 8);
	tx_send(v, 6000, 1002, VSOCK_OP_REQUEST, 0, 4096, 0, NULL, 0);
	assert_int_equal(rx_next(v, &h, NULL), 1);
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(h.src_port, 1002);
	assert_int_equal(h.dst_port, 6000);
	tx_send(v, 6000, 1001, VSOCK_OP_RW, 0, 4096, 0, "x", 1);
	assert_int_equal(rx_next(v, &h, NULL), 1);
	assert_int_equal(h.op, VSOCK_OP_RST);

	tx_send(v, 6001, 1001, VSOCK_OP_REQUEST, 0, 4096, 0, NULL, 0);
	assert_int_equal(rx_next(v, &h, NULL), 1);
	assert_int_equal(h.op, VSOCK_OP_RESPONSE);
	fd = accept(lfd, NULL, NULL);
	tx_send(v, 6001, 1001, VSOCK_OP_RW, 0, 4096, 0, big, sizeof(big));
	assert_int_equal(rx_next(v, &h, NULL), 1);
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(recv(fd, big, 16, 0), 0);
	close(fd);
	close(lfd);
	assert_false(drv_status(v->d) & VIRTIO_STATUS_NEEDS_RESET);

	/* A chain shorter than a header. */
	drv_add1(v->d, TXQ, TX_BUF_GPA, 20, false);
	drv_kick(v->d, TXQ);
	assert_true(drv_status(v->d) & VIRTIO_STATUS_NEEDS_RESET);
	drv_reset(v->d);
	drv_start(v->d, 0, 3);
	drv_add1(v->d, TXQ, TX_BUF_GPA, 64, true);
	drv_kick(v->d, TXQ);
	assert_true(drv_status(v->d) & VIRTIO_STATUS_NEEDS_RESET);
}

/* Restored or migrated: the driver gets TRANSPORT_RESET in its event buffer. */
static void test_vsock_event_after_load(void **state)
{
	struct vfix *v = *state;
	struct drv *e;
	struct tlv_writer w;
	struct tlv_section s;
	size_t pos = 0, start;

	memset(v->d->ram + 0x300000, 0xff, 8);
	drv_add1(v->d, EVQ, 0x300000, 8, true);
	drv_kick(v->d, EVQ);
	assert_int_equal(drv_used_idx(v->d, EVQ), 0); /* nothing to say yet */

	tlv_writer_init(&w);
	start = tlv_section_begin(&w, virtio_vsock_device_ops.section_id, 0, 1, 1);
	assert_int_equal(virtio_vsock_device_ops.save(v->d->vp, &w), 0);
	tlv_section_end(&w, start);
	assert_int_equal(tlv_next_section(w.buf, w.len, &pos, &s), 1);

	e = drv_new_sharing(v->d);
	assert_int_equal(virtio_vsock_create(&e->vp, &e->host, &e->pci, &e->mmio, 10, 4, NULL), 0);
	drv_attach(e);
	assert_int_equal(virtio_vsock_device_ops.load(e->vp, &s), 0);
	drv_kick(e, EVQ); /* what the transport's kick after loading does with KVM */
	assert_int_equal(drv_used_idx(v->d, EVQ), 1);
	assert_int_equal(drv_used_len(v->d, EVQ, 0), 4);
	assert_int_equal(get_le32(v->d->ram + 0x300000), 0);
	/* The new CID is what the driver reads back after the event. */
	assert_int_equal(drv_cfg_read(e, 0, 8), 4);
	virtio_vsock_destroy(e->vp);
	e->vp = NULL;
	drv_free(e);
	tlv_writer_free(&w);
}

#define T(name, setup) cmocka_unit_test_setup_teardown(name, setup, drv_teardown)
#define V(name) cmocka_unit_test_setup_teardown(name, vsock_setup, vsock_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discard_anonymous),
		cmocka_unit_test(test_discard_file_backed),
		cmocka_unit_test(test_discard_marks_dirty),
		T(test_balloon_features_config, balloon_setup),
		T(test_balloon_inflate, balloon_setup),
		T(test_balloon_bad_chains, balloon_setup),
		T(test_balloon_stats_and_reporting, balloon_setup),
		T(test_balloon_save_load, balloon_setup),
		cmocka_unit_test(test_vsock_proto),
		V(test_vsock_config),
		V(test_vsock_guest_connect),
		V(test_vsock_host_connect),
		V(test_vsock_errors),
		V(test_vsock_event_after_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
