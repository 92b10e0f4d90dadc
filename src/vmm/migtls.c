// SPDX-License-Identifier: MIT
/*
 * The migration connection (docs/migration.md: trust). A migration stream builds a machine and
 * fills its memory on the destination, and carries the guest's memory from the source: both ends
 * must know who they talk to and nobody else may read or change it. So the connection is TLS 1.3
 * through GnuTLS (as QEMU's tls-creds): with a pre-shared key, the key exchange is (EC)DHE-PSK so
 * a later leak of the key does not decrypt recorded streams; with X.509 both sides present a
 * certificate from the same CA and the source checks the destination's against the host it
 * dialled. Plain TCP only when the user named it (--insecure-migration, "insecure": true).
 *
 * GnuTLS rather than OpenSSL: its TLS 1.3 PSK interface is a plain identity/key callback, the
 * psktool key files it documents are the format we read, and QEMU's migration TLS, whose
 * credential layout (x509=DIR) we follow, is built on it.
 */
#include "migtls.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"

#define PSK_MAX_KEYS 16
#define PSK_MIN_KEY 16 /* bytes: 128 bits */
#define PSK_MAX_KEY 64
#define PSK_IDENT_MAX 128
#define PSK_FILE_MAX 65536

/* AES-GCM first: with AES-NI it is several times faster than ChaCha20, which GnuTLS would
 * otherwise pick on some CPUs, and a migration is bulk data. */
#define PRIO_BASE                                                 \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:" \
	"+AES-256-GCM:+CHACHA20-POLY1305"
static const char prio_psk[] = PRIO_BASE ":-KX-ALL:+ECDHE-PSK:+DHE-PSK";
static const char prio_x509[] = PRIO_BASE;

struct psk_key {
	char ident[PSK_IDENT_MAX + 1];
	uint8_t key[PSK_MAX_KEY];
	size_t len;
};

/* The keys of a psk= file; the server looks the client's identity up in it. */
struct psk_table {
	struct psk_key keys[PSK_MAX_KEYS];
	unsigned int n;
};

int mig_tls_parse(const char *spec, struct mig_tls_opts *o, char *err, size_t errlen)
{
	const char *path;

	memset(o, 0, sizeof(*o));
	if (!spec) {
		o->kind = MIG_TLS_INSECURE;
		return 0;
	}
	if (!strncmp(spec, "psk=", 4)) {
		o->kind = MIG_TLS_PSK;
		path = spec + 4;
	} else if (!strncmp(spec, "x509=", 5)) {
		o->kind = MIG_TLS_X509;
		path = spec + 5;
	} else {
		snprintf(err, errlen, "'%s': expected psk=FILE or x509=DIR", spec);
		return -EINVAL;
	}
	if (!*path || strlen(path) >= sizeof(o->path)) {
		snprintf(err, errlen, "'%s': empty or too long a path", spec);
		return -EINVAL;
	}
	strcpy(o->path, path);
	return 0;
}

/* One "IDENTITY:HEXKEY" line. */
static int parse_psk_line(char *line, struct psk_key *k)
{
	char *colon = strrchr(line, ':');
	size_t hl;

	if (!colon || colon == line || (size_t)(colon - line) > PSK_IDENT_MAX)
		return -EINVAL;
	*colon = '\0';
	hl = strlen(colon + 1);
	if (hl % 2 || hl / 2 < PSK_MIN_KEY || hl / 2 > PSK_MAX_KEY)
		return -EINVAL;
	for (size_t i = 0; i < hl / 2; i++) {
		int hi = hex_digit(colon[1 + 2 * i]), lo = hex_digit(colon[2 + 2 * i]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		k->key[i] = (uint8_t)(hi << 4 | lo);
	}
	k->len = hl / 2;
	snprintf(k->ident, sizeof(k->ident), "%s", line);
	return 0;
}

/* Reads a psk= file: not accessible to other users, one or more keys of 16..64 bytes. */
static int load_psk(const char *path, struct psk_table *t, char *err, size_t errlen)
{
	char *buf = calloc(1, PSK_FILE_MAX + 1), *line, *save = NULL;
	struct stat st;
	ssize_t n;
	int fd, ret = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "psk=%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_mode & 0007) {
		ret = -EACCES;
		snprintf(err, errlen, "psk=%s: %s", path,
			 S_ISREG(st.st_mode) ? "other users can access this key file (chmod o-rwx)"
					     : "not a regular file");
		goto out;
	}
	n = read(fd, buf, PSK_FILE_MAX);
	if (n < 0) {
		ret = -errno;
		snprintf(err, errlen, "psk=%s: %s", path, strerror(errno));
		goto out;
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		line[strcspn(line, "\r")] = '\0';
		if (!*line || *line == '#')
			continue;
		if (t->n == PSK_MAX_KEYS || parse_psk_line(line, &t->keys[t->n])) {
			ret = -EINVAL;
			break;
		}
		t->n++;
	}
	if (ret || !t->n) {
		ret = -EINVAL;
		snprintf(err, errlen,
			 "psk=%s: expected lines IDENTITY:HEXKEY with keys of 16 to 64 bytes (e.g. "
			 "psktool -u vireo -p FILE)",
			 path);
	}
out:
	if (fd >= 0)
		close(fd);
	explicit_bzero(buf, PSK_FILE_MAX);
	free(buf);
	return ret;
}

/* The server's lookup of the client's identity. The key is handed to GnuTLS, which frees it. */
static int psk_lookup(gnutls_session_t s, const char *ident, gnutls_datum_t *key)
{
	const struct psk_table *t = gnutls_session_get_ptr(s);

	for (unsigned int i = 0; t && i < t->n; i++) {
		if (strcmp(t->keys[i].ident, ident))
			continue;
		key->data = gnutls_malloc(t->keys[i].len);
		if (!key->data)
			return -1;
		memcpy(key->data, t->keys[i].key, t->keys[i].len);
		key->size = (unsigned int)t->keys[i].len;
		return 0;
	}
	return -1;
}

/* Without MSG_NOSIGNAL a peer that hung up would kill the process (the destination has not
 * ignored SIGPIPE yet when it accepts). */
static ssize_t push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
	return send((int)(intptr_t)p, data, len, MSG_NOSIGNAL);
}

static ssize_t pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	return recv((int)(intptr_t)p, data, len, 0);
}

static int x509_creds(struct mig_chan *c, const char *dir, bool server, char *err, size_t errlen)
{
	gnutls_certificate_credentials_t cred;
	char ca[MIG_TLS_PATH_MAX + 32], cert[MIG_TLS_PATH_MAX + 32], key[MIG_TLS_PATH_MAX + 32];
	const char *who = server ? "server" : "client";
	int r;

	snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
	snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, who);
	snprintf(key, sizeof(key), "%s/%s-key.pem", dir, who);
	r = gnutls_certificate_allocate_credentials(&cred);
	if (r < 0)
		goto err;
	c->cred = cred;
	r = gnutls_certificate_set_x509_trust_file(cred, ca, GNUTLS_X509_FMT_PEM);
	if (r <= 0) {
		snprintf(err, errlen, "x509=%s: %s: %s", dir, ca,
			 r == 0 ? "no certificate in it" : gnutls_strerror(r));
		return -EINVAL;
	}
	r = gnutls_certificate_set_x509_key_file(cred, cert, key, GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		snprintf(err, errlen, "x509=%s: %s and %s: %s", dir, cert, key, gnutls_strerror(r));
		return -EINVAL;
	}
	r = gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, cred);
	if (r >= 0)
		return 0;
err:
	snprintf(err, errlen, "TLS credentials: %s", gnutls_strerror(r));
	return -ENOMEM;
}

static int psk_creds(struct mig_chan *c, const char *path, bool server, char *err, size_t errlen)
{
	struct psk_table *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	c->keys = t;
	r = load_psk(path, t, err, errlen);
	if (r)
		return r;
	if (server) {
		gnutls_psk_server_credentials_t cred;

		r = gnutls_psk_allocate_server_credentials(&cred);
		if (r >= 0) {
			c->cred = cred;
			gnutls_psk_set_server_credentials_function(cred, psk_lookup);
			gnutls_session_set_ptr(c->session, t);
			r = gnutls_credentials_set(c->session, GNUTLS_CRD_PSK, cred);
		}
	} else {
		gnutls_psk_client_credentials_t cred;
		gnutls_datum_t k = { t->keys[0].key, (unsigned int)t->keys[0].len };

		r = gnutls_psk_allocate_client_credentials(&cred);
		if (r >= 0) {
			c->cred = cred;
			r = gnutls_psk_set_client_credentials(cred, t->keys[0].ident, &k,
							      GNUTLS_PSK_KEY_RAW);
		}
		if (r >= 0)
			r = gnutls_credentials_set(c->session, GNUTLS_CRD_PSK, cred);
	}
	if (r < 0) {
		snprintf(err, errlen, "TLS credentials: %s", gnutls_strerror(r));
		return -ENOMEM;
	}
	return 0;
}

static void free_creds(struct mig_chan *c)
{
	if (c->session)
		gnutls_deinit(c->session);
	c->session = NULL;
	if (c->cred) {
		if (c->kind == MIG_TLS_X509)
			gnutls_certificate_free_credentials(c->cred);
		else if (c->server)
			gnutls_psk_free_server_credentials(c->cred);
		else
			gnutls_psk_free_client_credentials(c->cred);
	}
	c->cred = NULL;
	if (c->keys) {
		explicit_bzero(c->keys, sizeof(struct psk_table));
		free(c->keys);
	}
	c->keys = NULL;
}

/* Sets up the session and runs the handshake. */
static int handshake(struct mig_chan *c, int fd, const struct mig_tls_opts *o, const char *host,
		     bool server, char *err, size_t errlen)
{
	gnutls_session_t s;
	int r, ret;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->kind = o->kind;
	c->server = server;
	if (o->kind == MIG_TLS_INSECURE)
		return 0;
	/* One connection per migration: no session tickets to resume from. */
	r = gnutls_init(&s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_TICKETS);
	c->session = r < 0 ? NULL : s;
	if (r < 0) {
		snprintf(err, errlen, "TLS: %s", gnutls_strerror(r));
		ret = -ENOMEM;
		goto err;
	}
	ret = o->kind == MIG_TLS_PSK ? psk_creds(c, o->path, server, err, errlen)
				     : x509_creds(c, o->path, server, err, errlen);
	if (ret)
		goto err;
	r = gnutls_priority_set_direct(c->session, o->kind == MIG_TLS_PSK ? prio_psk : prio_x509,
				       NULL);
	if (r < 0) {
		snprintf(err, errlen, "TLS priorities: %s", gnutls_strerror(r));
		ret = -EINVAL;
		goto err;
	}
	if (o->kind == MIG_TLS_X509) {
		if (server)
			gnutls_certificate_server_set_request(c->session, GNUTLS_CERT_REQUIRE);
		/* The destination checks the source's chain; the source also the name it dialled.
		 */
		gnutls_session_set_verify_cert(c->session, server ? NULL : host, 0);
	}
	gnutls_transport_set_ptr(c->session, (gnutls_transport_ptr_t)(intptr_t)fd);
	gnutls_transport_set_push_function(c->session, push);
	gnutls_transport_set_pull_function(c->session, pull);
	do {
		r = gnutls_handshake(c->session);
	} while (r == GNUTLS_E_INTERRUPTED);
	if (r < 0) {
		const char *why = r == GNUTLS_E_AGAIN ? "timed out" : gnutls_strerror(r);

		if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			gnutls_datum_t out = { NULL, 0 };
			unsigned int st = gnutls_session_get_verify_cert_status(c->session);

			if (gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &out,
									 0) == 0) {
				snprintf(err, errlen, "TLS handshake: %s", (char *)out.data);
				gnutls_free(out.data);
				ret = -EPROTO;
				goto err;
			}
		}
		snprintf(err, errlen, "TLS handshake: %s", why);
		ret = r == GNUTLS_E_AGAIN ? -ETIMEDOUT : -EPROTO;
		goto err;
	}
	{
		char *desc = gnutls_session_get_desc(c->session);

		pr_info("migration: TLS session %s", desc ? desc : "?");
		gnutls_free(desc);
	}
	return 0;
err:
	free_creds(c);
	close(fd);
	c->fd = -1;
	return ret;
}

int mig_chan_client(struct mig_chan *c, int fd, const struct mig_tls_opts *o, const char *host,
		    char *err, size_t errlen)
{
	return handshake(c, fd, o, host, false, err, errlen);
}

int mig_chan_server(struct mig_chan *c, int fd, const struct mig_tls_opts *o, char *err,
		    size_t errlen)
{
	return handshake(c, fd, o, NULL, true, err, errlen);
}

static int io_error(ssize_t r)
{
	if (r == GNUTLS_E_AGAIN)
		return -ETIMEDOUT;
	if (r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_PUSH_ERROR ||
	    r == GNUTLS_E_PULL_ERROR)
		return -ECONNRESET;
	return -EPROTO;
}

/* Moves all of len bytes one way, over TLS or the plain socket; recv treats EOF as a reset. */
static int chan_io(struct mig_chan *c, uint8_t *p, size_t len, bool out)
{
	while (len) {
		ssize_t n;

		if (c->session)
			n = out ? gnutls_record_send(c->session, p, len)
				: gnutls_record_recv(c->session, p, len);
		else
			n = out ? send(c->fd, p, len, MSG_NOSIGNAL) : recv(c->fd, p, len, 0);
		if (!c->session && n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0)
			return io_error(n);
		if (n == 0 && !out)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mig_chan_send(struct mig_chan *c, const void *buf, size_t len)
{
	/* chan_io only reads from p when sending. */
	return chan_io(c, (uint8_t *)(uintptr_t)buf, len, true);
}

int mig_chan_recv(struct mig_chan *c, void *buf, size_t len)
{
	return chan_io(c, buf, len, false);
}

void mig_chan_close(struct mig_chan *c, bool polite)
{
	if (c->session && polite)
		gnutls_bye(c->session, GNUTLS_SHUT_WR);
	free_creds(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
