// SPDX-License-Identifier: MIT
/*
 * Console websockets (RFC 6455, server side): the handshake, then one thread per viewer that
 * moves console output (binary frames) to the client and the client's text or binary frames to
 * the VM's console through the console hub. Client frames must be masked and at most
 * WS_FRAME_MAX bytes; anything else ends the session with the close code the RFC gives.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "common/log.h"
#include "consolehub.h"
#include "http_int.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_FRAME_MAX (64 * 1024)

struct ws_session {
	MHD_socket sock;
	struct MHD_UpgradeResponseHandle *urh;
	struct console_viewer *viewer;
	pthread_t thread;
	int done; /* the thread has ended; stop_all joins it */
	struct ws_session *next;
	uint8_t *in; /* bytes received and not yet parsed */
	size_t in_len;
};

static pthread_mutex_t ws_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ws_session *ws_list;
static int ws_stopping;

/* Writes everything, waiting for the socket when it is full. */
static int send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			if (poll(&pfd, 1, 30000) <= 0)
				return -ETIMEDOUT;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int ws_send(int fd, int opcode, const void *data, size_t len)
{
	uint8_t hdr[10];
	size_t h = 0;

	hdr[h++] = (uint8_t)(0x80 | opcode); /* FIN: we never fragment */
	if (len < 126) {
		hdr[h++] = (uint8_t)len;
	} else if (len <= 0xffff) {
		hdr[h++] = 126;
		hdr[h++] = (uint8_t)(len >> 8);
		hdr[h++] = (uint8_t)len;
	} else {
		hdr[h++] = 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	if (send_all(fd, hdr, h))
		return -EPIPE;
	return len ? send_all(fd, data, len) : 0;
}

static void ws_close(int fd, unsigned code)
{
	uint8_t b[2] = { (uint8_t)(code >> 8), (uint8_t)code };

	ws_send(fd, 8, b, sizeof(b));
}

/* Parses the complete frames in s->in. Returns 0 to go on, or the close code to end with
 * (1000 when the client closed). */
static unsigned ws_parse(struct ws_session *s)
{
	size_t off = 0;
	unsigned ret = 0;

	while (!ret) {
		const uint8_t *p = s->in + off;
		size_t avail = s->in_len - off, h = 2;
		uint64_t len;
		uint8_t *payload;
		int opcode;

		if (avail < 2)
			break;
		opcode = p[0] & 0x0f;
		len = p[1] & 0x7f;
		if (!(p[1] & 0x80) || (p[0] & 0x70)) {
			ret = 1002; /* unmasked client frame or reserved bits: protocol error */
			break;
		}
		if (len == 126) {
			if (avail < 4)
				break;
			len = (uint64_t)p[2] << 8 | p[3];
			h = 4;
		} else if (len == 127) {
			if (avail < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | p[2 + i];
			h = 10;
		}
		if (len > WS_FRAME_MAX) {
			ret = 1009; /* too big */
			break;
		}
		if (avail < h + 4 + len)
			break;
		payload = s->in + off + h + 4;
		for (uint64_t i = 0; i < len; i++)
			payload[i] ^= p[h + (i & 3)];
		switch (opcode) {
		case 0: /* continuation: console input is a byte stream, its pieces go through */
		case 1:
		case 2:
			if (len && consolehub_viewer_write(s->viewer, payload, len) < 0)
				ret = 1001;
			break;
		case 8:
			ret = 1000;
			break;
		case 9:
			if (ws_send(s->sock, 10, payload, len))
				ret = 1001;
			break;
		case 10:
			break;
		default:
			ret = 1002;
		}
		off += h + 4 + len;
	}
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= off;
	return ret;
}

static void *ws_thread(void *arg)
{
	struct ws_session *s = arg;
	uint8_t buf[16384];
	unsigned code = 0;

	while (!code) {
		struct pollfd pfd[2] = {
			{ .fd = s->sock, .events = POLLIN },
			{ .fd = consolehub_viewer_fd(s->viewer), .events = POLLIN },
		};

		if (poll(pfd, 2, 1000) < 0 && errno != EINTR)
			break;
		if (__atomic_load_n(&ws_stopping, __ATOMIC_ACQUIRE)) {
			code = 1001; /* going away */
			break;
		}
		if (pfd[1].revents) {
			ssize_t n = consolehub_viewer_read(s->viewer, buf, sizeof(buf));

			if (n == -EPIPE)
				code = 1000; /* the VM's console ended */
			else if (n > 0 && ws_send(s->sock, 2, buf, (size_t)n))
				break;
		}
		if (pfd[0].revents && !code) {
			ssize_t n;

			if (s->in_len == 2 * WS_FRAME_MAX) {
				code = 1009;
				break;
			}
			n = recv(s->sock, s->in + s->in_len, 2 * WS_FRAME_MAX - s->in_len, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0)
				break;
			s->in_len += (size_t)n;
			code = ws_parse(s);
		}
	}
	if (code)
		ws_close(s->sock, code);
	consolehub_close(s->viewer);
	s->viewer = NULL;
	MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Joins and frees the sessions whose threads have ended; called with ws_lock held. */
static void ws_reap(int all)
{
	struct ws_session **pp = &ws_list;

	while (*pp) {
		struct ws_session *s = *pp;

		if (!all && !__atomic_load_n(&s->done, __ATOMIC_ACQUIRE)) {
			pp = &s->next;
			continue;
		}
		pthread_join(s->thread, NULL);
		*pp = s->next;
		free(s->in);
		free(s);
	}
}

static void ws_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra,
			size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct console_viewer **slot = cls, *viewer = *slot;
	struct ws_session *s = calloc(1, sizeof(*s));

	(void)conn, (void)con_cls;
	*slot = NULL; /* ours now, whatever happens below */
	if (s)
		s->in = malloc(2 * WS_FRAME_MAX);
	if (!s || !s->in || extra_len > 2 * WS_FRAME_MAX)
		goto err;
	s->sock = sock;
	s->urh = urh;
	s->viewer = viewer;
	memcpy(s->in, extra, extra_len);
	s->in_len = extra_len;
	pthread_mutex_lock(&ws_lock);
	ws_reap(0);
	/* The session runs on its own thread: with TLS, MHD forwards the bytes between the TLS
	 * connection and sock on this connection's thread once we return. */
	if (ws_stopping || pthread_create(&s->thread, NULL, ws_thread, s)) {
		pthread_mutex_unlock(&ws_lock);
		goto err;
	}
	s->next = ws_list;
	ws_list = s;
	pthread_mutex_unlock(&ws_lock);
	return;
err:
	if (s)
		free(s->in);
	free(s);
	consolehub_close(viewer);
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

static int header_has_token(const char *h, const char *token)
{
	size_t tl = strlen(token);

	while (h && *h) {
		h += strspn(h, " \t,");
		if (!strncasecmp(h, token, tl) && (h[tl] == '\0' || strchr(" \t,", h[tl])))
			return 1;
		h += strcspn(h, ",");
	}
	return 0;
}

static int accept_key(const char *key, char out[64])
{
	char cat[128];
	uint8_t sha[20];
	gnutls_datum_t in = { sha, sizeof(sha) }, b64 = { 0 };

	if (snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID) >= (int)sizeof(cat))
		return -EINVAL;
	if (gnutls_hash_fast(GNUTLS_DIG_SHA1, cat, strlen(cat), sha) < 0 ||
	    gnutls_base64_encode2(&in, &b64) < 0)
		return -EIO;
	snprintf(out, 64, "%.*s", (int)b64.size, (const char *)b64.data);
	gnutls_free(b64.data);
	return 0;
}

struct MHD_Response *http_ws_response(struct MHD_Connection *conn, const char *vm_id,
				      struct console_viewer **slot, int *status, const char **code,
				      const char **msg)
{
	const char *up = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade");
	const char *co = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection");
	const char *ver =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
	const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
	struct console_viewer *viewer;
	struct MHD_Response *r;
	char acc[64];

	*status = 400;
	*code = "bad_request";
	if (!up || !header_has_token(up, "websocket") || !header_has_token(co, "upgrade") || !key ||
	    strlen(key) != 24) {
		*msg = "the console is a websocket (Upgrade: websocket, Sec-WebSocket-Key)";
		return NULL;
	}
	if (!ver || strcmp(ver, "13")) {
		*msg = "Sec-WebSocket-Version must be 13";
		return NULL;
	}
	if (accept_key(key, acc)) {
		*msg = "bad Sec-WebSocket-Key";
		return NULL;
	}
	if (!consolehub_default() || consolehub_open(consolehub_default(), vm_id, &viewer)) {
		*status = 409;
		*code = "invalid_state";
		*msg = "the VM has no console: it is not running";
		return NULL;
	}
	r = MHD_create_response_for_upgrade(ws_upgraded, slot);
	if (!r) {
		consolehub_close(viewer);
		*status = 500;
		*code = "internal";
		*msg = "out of memory";
		return NULL;
	}
	MHD_add_response_header(r, "Upgrade", "websocket");
	MHD_add_response_header(r, "Connection", "Upgrade");
	MHD_add_response_header(r, "Sec-WebSocket-Accept", acc);
	*slot = viewer;
	*status = 101;
	return r;
}

void http_ws_stop_all(void)
{
	pthread_mutex_lock(&ws_lock);
	__atomic_store_n(&ws_stopping, 1, __ATOMIC_RELEASE);
	for (struct ws_session *s = ws_list; s; s = s->next)
		if (!__atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
			shutdown(s->sock, SHUT_RDWR);
	ws_reap(1);
	pthread_mutex_unlock(&ws_lock);
}
