/* SPDX-License-Identifier: MIT */
/* The migration connection: TLS 1.3 (GnuTLS) with a pre-shared key or X.509 certificates, or
 * plain TCP when the user asked for it by name (docs/migration.md: trust). */
#ifndef VIREO_VMM_MIGTLS_H
#define VIREO_VMM_MIGTLS_H

#include <stdbool.h>
#include <stddef.h>

enum mig_tls_kind {
	MIG_TLS_INSECURE, /* plain TCP: --insecure-migration, "insecure": true */
	MIG_TLS_PSK, /* psk=FILE: lines "IDENTITY:HEXKEY" (GnuTLS psktool's format) */
	MIG_TLS_X509, /* x509=DIR: ca-cert.pem, server-cert.pem/-key.pem, client-cert.pem/-key.pem
		       */
};

#define MIG_TLS_PATH_MAX 4096

struct mig_tls_opts {
	enum mig_tls_kind kind;
	char path[MIG_TLS_PATH_MAX];
};

/* Parses "psk=FILE" or "x509=DIR" (spec NULL: insecure). Returns 0 or -EINVAL with a message. */
int mig_tls_parse(const char *spec, struct mig_tls_opts *o, char *err, size_t errlen);

/* One connection. Owns fd from mig_chan_client/server on, success or not. */
struct mig_chan {
	int fd;
	void *session; /* gnutls_session_t, NULL for plain TCP */
	void *cred; /* the credentials the session uses */
	void *keys; /* psk: the key file's keys, wiped when freed */
	enum mig_tls_kind kind;
	bool server;
};

/* The source's side: TLS handshake on the connected fd, checking the destination's certificate
 * against host (x509). Returns 0 or -errno with the reason in err; c is closed on failure. */
int mig_chan_client(struct mig_chan *c, int fd, const struct mig_tls_opts *o, const char *host,
		    char *err, size_t errlen);
/* The destination's side: the handshake on an accepted fd (x509: the source must present a
 * certificate from the same CA). Returns 0, or -EPROTO (with the reason in err) for a peer that
 * failed to authenticate, or another -errno; c is closed on failure. */
int mig_chan_server(struct mig_chan *c, int fd, const struct mig_tls_opts *o, char *err,
		    size_t errlen);
/* Whole buffers; -ETIMEDOUT when the socket's timeout passed, -ECONNRESET at the peer's end. */
int mig_chan_send(struct mig_chan *c, const void *buf, size_t len);
int mig_chan_recv(struct mig_chan *c, void *buf, size_t len);
/* Says goodbye (TLS close_notify) when polite, frees the session and closes the fd. */
void mig_chan_close(struct mig_chan *c, bool polite);

#endif
