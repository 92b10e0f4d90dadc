// SPDX-License-Identifier: MIT
/* `vireo vm console NAME`: the VM's serial console over vireod's websocket (RFC 6455), with
 * this terminal in raw mode. The connection comes from libcurl (unix socket or TLS), used
 * as a plain byte stream through curl_easy_send/recv. */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

#include "client.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define QUIT_KEY 0x1d /* Ctrl-] */
#define FRAME_MAX (1u << 20)

struct ws {
	CURL *h;
	curl_socket_t fd;
	uint8_t *in;
	size_t inlen, incap;
};

static int wait_fd(curl_socket_t fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };

	return poll(&p, 1, 30000) > 0 ? 0 : -ETIMEDOUT;
}

static int ws_send_all(struct ws *w, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(w->h, p, len, &n);

		if (rc == CURLE_AGAIN) {
			if (wait_fd(w->fd, POLLOUT))
				return -ETIMEDOUT;
			continue;
		}
		if (rc != CURLE_OK)
			return -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

/* Reads what is available into w->in (at least one byte, waiting if block). 0, -EAGAIN, or
 * -EPIPE at the end of the stream. */
static int ws_fill(struct ws *w, bool block)
{
	for (;;) {
		size_t n = 0;
		CURLcode rc;

		if (w->incap - w->inlen < 4096) {
			uint8_t *nb = realloc(w->in, w->incap * 2);

			if (!nb)
				return -ENOMEM;
			w->in = nb;
			w->incap *= 2;
		}
		rc = curl_easy_recv(w->h, w->in + w->inlen, w->incap - w->inlen, &n);
		if (rc == CURLE_AGAIN) {
			if (!block)
				return -EAGAIN;
			if (wait_fd(w->fd, POLLIN))
				return -ETIMEDOUT;
			continue;
		}
		if (rc != CURLE_OK || n == 0)
			return -EPIPE;
		w->inlen += n;
		return 0;
	}
}

static void consume(struct ws *w, size_t n)
{
	memmove(w->in, w->in + n, w->inlen - n);
	w->inlen -= n;
}

/* A client frame: always masked (RFC 6455 5.3). */
static int ws_send_frame(struct ws *w, int opcode, const uint8_t *data, size_t len)
{
	uint8_t hdr[14], mask[4], *buf;
	size_t h = 0;
	int rc;

	if (getrandom(mask, sizeof(mask), 0) != sizeof(mask))
		return -EIO;
	hdr[h++] = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		hdr[h++] = (uint8_t)(0x80 | len);
	} else {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (uint8_t)(len >> 8);
		hdr[h++] = (uint8_t)len;
	}
	memcpy(hdr + h, mask, 4);
	h += 4;
	buf = malloc(h + len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, hdr, h);
	for (size_t i = 0; i < len; i++)
		buf[h + i] = data[i] ^ mask[i & 3];
	rc = ws_send_all(w, buf, h + len);
	free(buf);
	return rc;
}

static int handshake(struct client *c, struct ws *w, const char *vm)
{
	uint8_t key_raw[16], digest[EVP_MAX_MD_SIZE];
	char key[32], accept_want[64], req[2048], esc[256], cat[128];
	unsigned int dlen = 0;
	char *end, *acc;

	if (getrandom(key_raw, sizeof(key_raw), 0) != sizeof(key_raw) ||
	    client_escape(vm, esc, sizeof(esc)))
		return CLIENT_EXIT_FAILED;
	EVP_EncodeBlock((unsigned char *)key, key_raw, sizeof(key_raw));
	snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
	EVP_Digest(cat, strlen(cat), digest, &dlen, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)accept_want, digest, (int)dlen);
	snprintf(req, sizeof(req),
		 "GET /api/v1/vms/%s/console HTTP/1.1\r\nHost: localhost\r\n"
		 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		 "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
		 esc, key, c->token[0] ? "Authorization: Bearer " : "", c->token,
		 c->token[0] ? "\r\n" : "");
	if (ws_send_all(w, req, strlen(req)))
		return CLIENT_EXIT_CONNECT;
	while (!(end = memmem(w->in, w->inlen, "\r\n\r\n", 4))) {
		if (w->inlen > 16384 || ws_fill(w, true)) {
			fprintf(stderr,
				"vireo: the console connection ended during the handshake\n");
			return CLIENT_EXIT_CONNECT;
		}
	}
	*end = 0;
	if (strncmp((char *)w->in, "HTTP/1.1 101", 12)) {
		char *body = end + 4, *nl = strchr((char *)w->in, '\r');
		int code = atoi((char *)w->in + 9);

		if (nl)
			*nl = 0;
		fprintf(stderr, "vireo: console refused: %s\n", (char *)w->in);
		if (w->in + w->inlen > (uint8_t *)body)
			fprintf(stderr, "vireo: %.*s\n", (int)(w->in + w->inlen - (uint8_t *)body),
				body);
		return code == 404		    ? CLIENT_EXIT_NOT_FOUND
		       : code == 401 || code == 403 ? CLIENT_EXIT_AUTH
		       : code == 409		    ? CLIENT_EXIT_CONFLICT
						    : CLIENT_EXIT_FAILED;
	}
	acc = strcasestr((char *)w->in, "\r\nSec-WebSocket-Accept:");
	if (!acc || !strstr(acc, accept_want)) {
		fprintf(stderr, "vireo: the server's websocket accept key is wrong\n");
		return CLIENT_EXIT_FAILED;
	}
	consume(w, (size_t)(end + 4 - (char *)w->in));
	return 0;
}

/* Handles every complete frame in w->in. Returns 1 when the server closed, 0, or -errno. */
static int ws_drain(struct ws *w)
{
	while (w->inlen >= 2) {
		uint8_t op = w->in[0] & 0x0f;
		bool masked = w->in[1] & 0x80;
		uint64_t len = w->in[1] & 0x7f;
		size_t h = 2;

		if (len == 126) {
			if (w->inlen < 4)
				return 0;
			len = (uint64_t)w->in[2] << 8 | w->in[3];
			h = 4;
		} else if (len == 127) {
			if (w->inlen < 10)
				return 0;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | w->in[2 + i];
			h = 10;
		}
		if (len > FRAME_MAX)
			return -EMSGSIZE;
		if (w->inlen < h + (masked ? 4 : 0) + len)
			return 0;
		uint8_t *payload = w->in + h + (masked ? 4 : 0);

		if (masked)
			for (uint64_t i = 0; i < len; i++)
				payload[i] ^= w->in[h + (i & 3)];
		if (op == 0x8)
			return 1;
		if (op == 0x9 && ws_send_frame(w, 0xA, payload, (size_t)len))
			return -EIO;
		if ((op == 0x1 || op == 0x2 || op == 0x0) && len &&
		    write(STDOUT_FILENO, payload, (size_t)len) < 0)
			return -errno;
		consume(w, h + (masked ? 4 : 0) + (size_t)len);
	}
	return 0;
}

static int pump(struct ws *w, bool tty)
{
	struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
			       { .fd = w->fd, .events = POLLIN } };
	bool stdin_open = true;

	for (;;) {
		int rc = ws_drain(w);

		if (rc)
			return rc > 0 ? 0 : rc;
		p[0].fd = stdin_open ? STDIN_FILENO : -1;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents) {
			uint8_t buf[1024];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

			if (n <= 0) {
				/* End of input: say goodbye; output still flows until the close. */
				stdin_open = false;
				if (ws_send_frame(w, 0x8, (const uint8_t *)"\x03\xe8", 2))
					return -EIO;
			} else {
				uint8_t *q = tty ? memchr(buf, QUIT_KEY, (size_t)n) : NULL;

				if (ws_send_frame(w, 0x2, buf, q ? (size_t)(q - buf) : (size_t)n))
					return -EIO;
				if (q) {
					ws_send_frame(w, 0x8, (const uint8_t *)"\x03\xe8", 2);
					return 0;
				}
			}
		}
		if (p[1].revents) {
			rc = ws_fill(w, false);
			if (rc == -EPIPE)
				return 0;
			if (rc && rc != -EAGAIN)
				return rc;
		}
	}
}

int wsconsole_run(struct client *c, const char *vm)
{
	struct ws w = { 0 };
	struct termios saved, raw;
	bool tty = isatty(STDIN_FILENO);
	curl_socket_t sock = CURL_SOCKET_BAD;
	int rc;

	rc = client_connect_raw(c, (void **)&w.h);
	if (rc)
		return rc;
	curl_easy_getinfo(w.h, CURLINFO_ACTIVESOCKET, &sock);
	w.fd = sock;
	w.incap = 65536;
	w.in = malloc(w.incap);
	if (!w.in || sock == CURL_SOCKET_BAD) {
		fprintf(stderr, "vireo: console: no connection to use\n");
		rc = CLIENT_EXIT_FAILED;
		goto out;
	}
	rc = handshake(c, &w, vm);
	if (rc)
		goto out;
	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
		fprintf(stderr, "vireo: console of %s (Ctrl-] quits)\r\n", vm);
	} else {
		tty = false;
	}
	rc = pump(&w, tty);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
		fputc('\n', stderr);
	}
	if (rc < 0) {
		fprintf(stderr, "vireo: console: %s\n", strerror(-rc));
		rc = CLIENT_EXIT_FAILED;
	}
out:
	free(w.in);
	curl_easy_cleanup(w.h);
	return rc;
}
