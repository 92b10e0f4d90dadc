// SPDX-License-Identifier: MIT
/*
 * Reading the configuration section of a snapshot or a migration stream (docs/migration.md,
 * docs/snapshots.md: trust model). The section says what the machine looks like: RAM, vCPUs,
 * CPU features, and which devices it has with their guest-visible properties. It comes from a
 * peer or a file that may be hostile, so it never names a host resource this process uses: every
 * image, socket, console file, tap and port forward comes from the local command line, and the
 * command line must fit the saved machine (one --disk per saved disk, one --net per saved NIC,
 * a console or vsock backend exactly when the machine has that device). What does not fit is
 * refused with the reason. The paths the section carries are only quoted in those reasons.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tlv.h"
#include "../common/util.h"
#include "../devices/device.h"
#include "config.h"
#include "vmstate.h"

/* A disk as the section describes it. path is only ever quoted in messages. */
struct saved_disk {
	enum blk_format format;
	bool read_only;
	char serial[VM_DISK_SERIAL_MAX + 1];
	char name[VM_DISK_NAME_MAX];
	char path[128];
};

/* Copies text from the section for a message: at most len - 1 bytes, anything but printable
 * ASCII shown as '?', so a hostile peer cannot write control sequences into our logs. */
static void quote(char *dst, size_t len, const uint8_t *src, size_t n)
{
	size_t i;

	for (i = 0; i < n && i + 1 < len; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
	dst[i] = '\0';
}

/* Format, flags, serial, name stem, path (see CFG_T_DISK). Returns 0 or -EINVAL. */
static int get_disk(const struct tlv_field *f, struct saved_disk *d)
{
	const uint8_t *p = f->data, *end = f->data + f->len;
	size_t sl, nl;

	memset(d, 0, sizeof(*d));
	if (f->len < 5 || p[0] > BLK_FORMAT_QCOW2 || (p[1] & ~CFG_DISK_FLAG_READ_ONLY))
		return -EINVAL;
	d->format = (enum blk_format)p[0];
	d->read_only = p[1] & CFG_DISK_FLAG_READ_ONLY;
	sl = p[2];
	p += 3;
	if (sl > VM_DISK_SERIAL_MAX || (size_t)(end - p) < sl + 1)
		return -EINVAL;
	for (size_t i = 0; i < sl; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return -EINVAL;
	memcpy(d->serial, p, sl);
	p += sl;
	nl = *p++;
	if (nl >= sizeof(d->name) || (size_t)(end - p) < nl)
		return -EINVAL;
	memcpy(d->name, p, nl);
	p += nl;
	/* The stem names overlay files in a local directory: one plain file name component. */
	if (memchr(d->name, '/', nl) || strlen(d->name) != nl || !strcmp(d->name, ".") ||
	    !strcmp(d->name, ".."))
		return -EINVAL;
	quote(d->path, sizeof(d->path), p, (size_t)(end - p));
	return 0;
}

static const char *fmt_name(enum blk_format f)
{
	return f == BLK_FORMAT_QCOW2 ? "qcow2" : f == BLK_FORMAT_RAW ? "raw" : "probed";
}

/* The saved disks against the --disk options. The images are the command line's; the saved
 * ones give the guest-visible serial where the command line has none, and the overlay name
 * stem (a file name without a directory). */
static int match_disks(const struct tlv_section *s, struct vm_config *cfg, char *err, size_t errlen)
{
	struct saved_disk saved[VM_MAX_DISKS];
	unsigned int n = 0;
	struct tlv_field f;

	for (uint16_t tag = CFG_T_DISK; tag <= CFG_T_DISK_LAST && tlv_find(s, tag, &f); tag++) {
		if (get_disk(&f, &saved[n])) {
			snprintf(err, errlen, "malformed disk %u in the machine configuration", n);
			return -EINVAL;
		}
		n++;
	}
	if (cfg->ndisks != n) {
		int w = snprintf(err, errlen,
				 "the saved VM has %u disk(s) and the command line gives %u: give "
				 "one --disk PATH per disk, in order (the saved paths are never "
				 "opened",
				 n, cfg->ndisks);

		for (unsigned int i = 0; i < n && w > 0 && (size_t)w < errlen; i++)
			w += snprintf(err + w, errlen - (size_t)w, "%s disk %u was '%s'%s",
				      i ? ";" : ":", i, saved[i].path,
				      saved[i].read_only ? ", readonly" : "");
		if (w > 0 && (size_t)w < errlen)
			snprintf(err + w, errlen - (size_t)w, ")");
		return -EINVAL;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct vm_disk *d = &cfg->disks[i];
		const struct saved_disk *sd = &saved[i];

		if (d->read_only != sd->read_only) {
			snprintf(err, errlen, "disk %u: the saved VM's disk is %s, --disk %s is %s",
				 i, sd->read_only ? "read-only" : "writable", d->path,
				 d->read_only ? "readonly" : "not (add ,readonly)");
			return -EINVAL;
		}
		if (d->format && sd->format && d->format != sd->format) {
			snprintf(err, errlen,
				 "disk %u: the saved VM's image was %s, --disk %s says %s", i,
				 fmt_name(sd->format), d->path, fmt_name(d->format));
			return -EINVAL;
		}
		if (d->serial[0] && strcmp(d->serial, sd->serial)) {
			snprintf(err, errlen,
				 "disk %u: the saved VM's disk has serial '%s', not '%s'", i,
				 sd->serial, d->serial);
			return -EINVAL;
		}
		memcpy(d->serial, sd->serial, sizeof(d->serial));
		if (sd->name[0])
			memcpy(d->name, sd->name, sizeof(d->name));
	}
	return 0;
}

/* The MAC a saved --net option gave NIC index: its mac= (looked up alone, so that an option
 * this vireo does not know does not hide it), else the default. */
static void saved_mac(const char *spec, unsigned int index, uint8_t mac[6])
{
	const char *p = spec;

	net_default_mac(index, mac);
	while ((p = strstr(p, "mac="))) {
		char buf[24];

		if (p == spec || p[-1] == ',') {
			snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(p + 4, ","), p + 4);
			if (!net_parse_mac(buf, mac))
				return;
			net_default_mac(index, mac);
		}
		p += 4;
	}
}

/* The saved NICs against the --net options: as many, and a MAC given on the command line must
 * be the one the guest knows (the device's state keeps the saved MAC). The saved backends
 * (user networking with its port forwards, tap names) are not used. */
static int match_nets(const struct tlv_section *s, struct vm_config *cfg, char *err, size_t errlen)
{
	struct tlv_field f;
	char *saved = NULL, *p, msg[128];
	const char *nic[NET_MAX_NICS + 1];
	unsigned int n = 0;
	int ret = 0;

	if (tlv_find(s, CFG_T_NET, &f) && f.len) {
		saved = strndup((const char *)f.data, f.len);
		if (!saved)
			return -ENOMEM;
	}
	for (p = saved; p && *p && n <= NET_MAX_NICS; n++) {
		nic[n] = p;
		p = strchr(p, '\n');
		if (p)
			*p++ = 0;
	}
	if (n > NET_MAX_NICS) {
		snprintf(err, errlen, "more NICs saved than this vireo supports");
		ret = -EINVAL;
		goto out;
	}
	if (cfg->nnet != n) {
		snprintf(err, errlen,
			 "the saved VM has %u NIC(s) and the command line gives %u: give one --net "
			 "user[,hostfwd=...] or --net tap=NAME per NIC, in order (the saved "
			 "backends are never used)",
			 n, cfg->nnet);
		ret = -EINVAL;
		goto out;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct net_spec cur;
		uint8_t old[6];
		char a[18], b[18];

		if (net_parse_spec(cfg->net[i], &cur, msg, sizeof(msg)) || !cur.mac_set)
			continue;
		saved_mac(nic[i], i, old);
		if (memcmp(old, cur.mac, 6)) {
			net_format_mac(old, a);
			net_format_mac(cur.mac, b);
			snprintf(err, errlen,
				 "NIC %u: the saved VM's MAC address is %s, --net says %s", i, a,
				 b);
			ret = -EINVAL;
			goto out;
		}
	}
out:
	free(saved);
	return ret;
}

/* A device whose backend is a host resource: the command line gives one exactly when the saved
 * machine has the device. */
static int match_backend(const struct tlv_section *s, uint16_t tag, const char *given,
			 const char *opt, const char *form, char *err, size_t errlen)
{
	struct tlv_field f;
	bool saved = tlv_find(s, tag, &f);

	if (saved && !given) {
		snprintf(err, errlen, "the saved VM has a %s device: give %s %s for it", opt + 2,
			 opt, form);
		return -EINVAL;
	}
	if (!saved && given) {
		snprintf(err, errlen, "the saved VM has no %s device: %s does not fit it", opt + 2,
			 opt);
		return -EINVAL;
	}
	return 0;
}

static char *get_str(const struct tlv_section *s, uint16_t tag)
{
	struct tlv_field f;

	if (!tlv_find(s, tag, &f))
		return NULL;
	return strndup((const char *)f.data, f.len);
}

/* RAM, vCPUs, CPU features, PVM profile, TSC frequency, rng and balloon: the shape only. */
static int read_shape(const struct tlv_section *s, struct vm_config *cfg, struct vmstate_config *sc,
		      char *err, size_t errlen)
{
	uint64_t mem = 0;
	uint32_t ncpus = 0;
	uint8_t pvm = 0, rng = 0;
	struct tlv_field f;
	char *feats;
	int ret;

	if (tlv_get_u64(s, CFG_T_MEM_SIZE, &mem) || tlv_get_u32(s, CFG_T_NCPUS, &ncpus) ||
	    tlv_get_u8(s, CFG_T_PVM_PROFILE, &pvm) || tlv_get_u8(s, CFG_T_VIRTIO_RNG, &rng) ||
	    tlv_get_u32(s, CFG_T_TSC_KHZ, &sc->tsc_khz)) {
		snprintf(err, errlen, "malformed machine configuration");
		return -EINVAL;
	}
	if (mem < MIB || mem > 1024 * GIB || mem % (4 * KIB) || ncpus < 1 ||
	    ncpus > VM_MAX_CPUS_DEFAULT) {
		snprintf(err, errlen,
			 "implausible machine configuration (%" PRIu64 " bytes, %u vCPUs)", mem,
			 ncpus);
		return -EINVAL;
	}
	cfg->mem_size = mem;
	cfg->ncpus = ncpus;
	cfg->saved_tsc_khz = sc->tsc_khz;
	cfg->pvm = pvm ? PVM_ON : PVM_OFF;
	feats = get_str(s, CFG_T_CPU_FEATURES);
	cfg->ncpu_changes = 0;
	if (feats && *feats) {
		ret = cpuid_parse_features(feats, cfg->cpu_changes, CPUID_MAX_CHANGES, err, errlen);
		if (ret < 0) {
			free(feats);
			return ret;
		}
		cfg->ncpu_changes = (size_t)ret;
	}
	free(feats);
	/* Neither is opened: a restored or migrated guest is not booted. A payload only adds
	 * its exit port, so its name just says that the guest is one. */
	sc->payload = get_str(s, CFG_T_PAYLOAD);
	sc->kernel = get_str(s, CFG_T_KERNEL);
	cfg->payload = sc->payload;
	cfg->kernel = sc->payload ? NULL : sc->kernel;
	cfg->virtio_rng = rng;
	cfg->balloon = tlv_find(s, CFG_T_BALLOON, &f);
	cfg->balloon_flags = 0;
	if (tlv_get_u32(s, CFG_T_BALLOON, &cfg->balloon_flags)) {
		snprintf(err, errlen, "malformed machine configuration (balloon)");
		return -EINVAL;
	}
	return 0;
}

int vmstate_read_config(const uint8_t *body, size_t len, struct vm_config *cfg,
			struct vmstate_config *sc, char *err, size_t errlen)
{
	struct tlv_section s;
	size_t pos = 0;
	int ret;

	memset(sc, 0, sizeof(*sc));
	for (;;) {
		ret = tlv_next_section(body, len, &pos, &s);
		if (ret <= 0) {
			snprintf(err, errlen, "no machine configuration section");
			return -EINVAL;
		}
		if (s.id == SECTION_CONFIG)
			break;
	}
	if (s.min_version > 1) {
		snprintf(err, errlen, "machine configuration section version %u is too new",
			 s.version);
		return -EPROTONOSUPPORT;
	}
	ret = read_shape(&s, cfg, sc, err, errlen);
	if (!ret)
		ret = match_disks(&s, cfg, err, errlen);
	if (!ret)
		ret = match_nets(&s, cfg, err, errlen);
	/* The console's and vsock's backends (socket or file paths) are the command line's; the
	 * vsock CID may change too: the guest rereads it after the transport reset event. */
	if (!ret)
		ret = match_backend(&s, CFG_T_VIRTIO_CONSOLE, cfg->virtio_console,
				    "--virtio-console", "socket:PATH|file:PATH", err, errlen);
	if (!ret)
		ret = match_backend(&s, CFG_T_VSOCK, cfg->vsock, "--vsock", "cid=N[,uds=PATH]", err,
				    errlen);
	return ret;
}
