// SPDX-License-Identifier: MIT
/*
 * TLS material for the TCP listener: the operator's PEM files, or a self-signed ECDSA P-256
 * certificate generated once into <state_dir>/tls/ (so clients can pin it with --cacert across
 * restarts). The certificate names localhost, 127.0.0.1, ::1 and the host name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "common/log.h"
#include "common/util.h"
#include "http_int.h"

#define PEM_MAX (64 * 1024)

static int read_pem(const char *path, char **out)
{
	uint8_t *data;
	size_t size;
	int ret = read_file(path, PEM_MAX, &data, &size);

	if (ret) {
		pr_err("vireod: cannot read %s: %s\n", path, strerror(-ret));
		return ret;
	}
	*out = realloc(data, size + 1);
	if (!*out) {
		free(data);
		return -ENOMEM;
	}
	(*out)[size] = '\0';
	return 0;
}

/* Writes data to path with mode, through a temporary file and rename. */
static int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[512];
	int fd, ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0)
		ret = errno ? -errno : -EIO;
	close(fd);
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

static int gen_names(gnutls_x509_crt_t crt)
{
	static const uint8_t lo4[4] = { 127, 0, 0, 1 };
	static const uint8_t lo6[16] = { [15] = 1 };
	char host[256];

	if (gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
						 GNUTLS_FSAN_APPEND) < 0 ||
	    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, lo4, 4,
						 GNUTLS_FSAN_APPEND) < 0 ||
	    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, lo6, 16,
						 GNUTLS_FSAN_APPEND) < 0)
		return -EIO;
	if (!gethostname(host, sizeof(host)) && strcmp(host, "localhost"))
		gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host, strlen(host),
						     GNUTLS_FSAN_APPEND);
	return 0;
}

/* Makes a key and a self-signed certificate valid for ten years, as PEM. */
static int generate(char **cert_pem, char **key_pem)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t kd = { 0 }, cd = { 0 };
	uint8_t serial[16];
	time_t now = time(NULL);
	int ret = -EIO;

	if (gnutls_x509_privkey_init(&key) < 0 || gnutls_x509_crt_init(&crt) < 0)
		goto out;
	if (gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
					 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0)
		goto out;
	if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0)
		goto out;
	serial[0] &= 0x7f; /* a positive serial number */
	if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
	    gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0 ||
	    gnutls_x509_crt_set_expiration_time(crt, now + 10 * 365 * 86400L) < 0 ||
	    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "vireod", 6) < 0 ||
	    gnutls_x509_crt_set_key(crt, key) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(crt, 1, -1) < 0 ||
	    gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE |
						       GNUTLS_KEY_KEY_CERT_SIGN) < 0 ||
	    gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) < 0 ||
	    gen_names(crt) || gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0)
		goto out;
	if (gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &kd) < 0 ||
	    gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cd) < 0)
		goto out;
	*key_pem = strndup((const char *)kd.data, kd.size);
	*cert_pem = strndup((const char *)cd.data, cd.size);
	ret = (*key_pem && *cert_pem) ? 0 : -ENOMEM;
out:
	gnutls_free(kd.data);
	gnutls_free(cd.data);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	return ret;
}

/* The generated pair: read it when both files are there, else make and store a new one. */
static int self_signed(const char *state_dir, char **cert, char **key)
{
	char dir[512], cpath[560], kpath[560];
	int ret;

	snprintf(dir, sizeof(dir), "%s/tls", state_dir);
	snprintf(cpath, sizeof(cpath), "%s/cert.pem", dir);
	snprintf(kpath, sizeof(kpath), "%s/key.pem", dir);
	if (!access(cpath, R_OK) && !access(kpath, R_OK)) {
		ret = read_pem(cpath, cert);
		if (!ret)
			ret = read_pem(kpath, key);
		return ret;
	}
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	ret = generate(cert, key);
	if (ret) {
		pr_err("vireod: cannot generate a TLS certificate\n");
		return ret;
	}
	ret = write_file_atomic(kpath, *key, strlen(*key), 0600);
	if (!ret)
		ret = write_file_atomic(cpath, *cert, strlen(*cert), 0644);
	if (ret) {
		pr_err("vireod: cannot write %s: %s\n", dir, strerror(-ret));
		return ret;
	}
	pr_info("vireod: generated a self-signed TLS certificate: %s\n", cpath);
	return 0;
}

int http_tls_load(const char *state_dir, const char *cert_path, const char *key_path, char **cert,
		  char **key)
{
	int ret;

	*cert = *key = NULL;
	if (!cert_path != !key_path) {
		pr_err("vireod: --tls-cert and --tls-key go together\n");
		return -EINVAL;
	}
	if (cert_path) {
		ret = read_pem(cert_path, cert);
		if (!ret)
			ret = read_pem(key_path, key);
	} else {
		ret = self_signed(state_dir, cert, key);
	}
	if (ret) {
		free(*cert);
		free(*key);
		*cert = *key = NULL;
	}
	return ret;
}
