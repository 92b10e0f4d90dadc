// SPDX-License-Identifier: MIT
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../common/capfile.h"
#include "../common/util.h"

static const char usage[] =
	"Usage: vireo run [OPTIONS] --kernel FILE\n"
	"       vireo run [OPTIONS] --payload FILE\n"
	"       vireo run [OPTIONS] --restore DIR\n"
	"       vireo run [OPTIONS] --incoming tcp:HOST:PORT\n"
	"\n"
	"Boot one virtual machine on /dev/kvm and attach its serial console to the terminal.\n"
	"\n"
	"Guest:\n"
	"  -k, --kernel FILE        Linux kernel: bzImage (64-bit boot protocol) or ELF vmlinux\n"
	"  -i, --initrd FILE        initial ramdisk (cpio archive, optionally compressed)\n"
	"  -c, --cmdline STRING     kernel command line (default: \"" VM_DEFAULT_CMDLINE "\")\n"
	"      --boot auto|pvh|linux64\n"
	"                           entry protocol: pvh uses the ELF note "
	"XEN_ELFNOTE_PHYS32_ENTRY\n"
	"                           (32-bit entry, hvm_start_info), linux64 the 64-bit boot\n"
	"                           protocol (boot_params); auto: pvh when the note exists\n"
	"      --payload FILE       freestanding test payload: a flat binary loaded at 0x8000 and\n"
	"                           started in real mode at 0000:8000; port 0xf4 ends the VM with\n"
	"                           exit status = the byte written\n"
	"      --restore DIR        resume the VM saved in snapshot directory DIR (made by the\n"
	"                           control socket's snapshot command). The machine (RAM, vCPUs,\n"
	"                           CPU features, devices) comes from the snapshot; RAM is mapped\n"
	"                           copy-on-write from DIR/memory.raw, so DIR must stay in place\n"
	"                           while the VM runs and one snapshot can be restored many "
	"times.\n"
	"                           Host resources never come from DIR: give one --disk (the\n"
	"                           snapshot's frozen image) per saved disk, one --net per NIC,\n"
	"                           and --virtio-console / --vsock if the VM has those devices\n"
	"      --force              with --restore: resume even if this host's CPUID differs from\n"
	"                           the one the snapshot was taken with (the guest may then "
	"crash)\n"
	"      --incoming tcp:HOST:PORT\n"
	"                           wait on HOST:PORT for a VM sent by another vireo's migrate\n"
	"                           command, then run it (see docs/migration.md). As with\n"
	"                           --restore, the images, NIC backends, console and vsock\n"
	"                           sockets are this command line's, one per device the VM has\n"
	"      --migration-tls psk=FILE|x509=DIR\n"
	"                           TLS 1.3 for migrations: with --incoming, only a source with\n"
	"                           the same key (FILE: lines IDENTITY:HEXKEY, as psktool makes)\n"
	"                           or a certificate of the CA in DIR (ca-cert.pem, server-*.pem,\n"
	"                           client-*.pem) is accepted; otherwise the default credentials\n"
	"                           of this VM's migrate commands\n"
	"      --insecure-migration with --incoming: accept a source over plain TCP instead,\n"
	"                           unauthenticated and unencrypted (a trusted network only)\n"
	"\n"
	"Machine:\n"
	"  -m, --memory SIZE        guest RAM, e.g. 256M, 2G (default 256M; bare number = MiB)\n"
	"      --cpus N             number of vCPUs (default 1)\n"
	"      --hugepages          back guest RAM with 2 MiB huge pages (MAP_HUGETLB)\n"
	"      --cpu-features LIST  change CPUID features: -name hides, +name shows,\n"
	"                           e.g. -smap,-pcid (names as in /proc/cpuinfo)\n"
	"      --pvm auto|on|off    compatibility profile for PVM-style nested KVM hosts\n"
	"                           (kvm_pvm): hides CPU features the host cannot run and adds\n"
	"                           matching guest kernel options (default auto: when detected)\n"
	"\n"
	"Virtio devices (virtio 1.x over PCI, see docs/virtio.md):\n"
	"      --rng                virtio-rng: an entropy source filled from the host's\n"
	"                           getrandom() (/dev/hwrng in a Linux guest)\n"
	"      --virtio-console socket:PATH|file:PATH[,max-size=SIZE]\n"
	"                           virtio-console with one port (hvc0 in a Linux guest):\n"
	"                           socket: listens on a unix socket (mode 0600) for one client\n"
	"                           of this user or root, which sends and receives; file: guest\n"
	"                           output is appended to PATH (created 0600). When PATH\n"
	"                           reaches max-size (default 16M, 0: none) it becomes PATH.1\n"
	"                           and PATH starts afresh. With --restore, PATH replaces the\n"
	"                           saved one\n"
	"      --balloon[=deflate-on-oom]\n"
	"                           virtio-balloon: `vireo vmctl balloon MIB` sets its target;\n"
	"                           inflated and free-reported guest pages go back to the host;\n"
	"                           memory statistics with `vireo vmctl balloon-stats`.\n"
	"                           deflate-on-oom lets the guest take pages back under memory\n"
	"                           pressure (its MemTotal then stays the same)\n"
	"      --vsock cid=N[,uds=PATH]\n"
	"                           virtio-vsock with guest CID N (3 and up). Host programs\n"
	"                           connect to the unix socket PATH and send \"CONNECT PORT\\n\"\n"
	"                           to reach a guest listener; guest connections to CID 2 port\n"
	"                           P go to the unix socket PATH_P. With --restore, replaces the\n"
	"                           saved value (connections are reset either way)\n"
	"      --disk PATH[,format=qcow2|raw][,readonly][,serial=ID]\n"
	"                           virtio-blk disk backed by a qcow2 or raw image (vda, vdb, ...\n"
	"                           in a Linux guest, in the order given; up to 16). format:\n"
	"                           default probes the qcow2 magic (a probed raw image refuses\n"
	"                           guest writes of a qcow2 magic to its first sector, a probed\n"
	"                           qcow2 one must record its backing file's format: give\n"
	"                           format= for raw disks); readonly: the guest cannot\n"
	"                           write (VIRTIO_BLK_F_RO); serial: up to 20 characters the\n"
	"                           guest reads as the disk's ID (/sys/block/vda/serial). PATH\n"
	"                           cannot contain a comma. Repeatable\n"
	"      --overlay-dir DIR    where the qcow2 overlays vireo creates go: the running VM's\n"
	"                           new top image at each snapshot, and the private overlay a\n"
	"                           restored VM writes to (default: next to the image they sit\n"
	"                           on). See docs/snapshots.md\n"
	"      --backing-dir DIR    also allow qcow2 backing files in the tree of DIR (default:\n"
	"                           only in the directory tree of each --disk image, symlinks\n"
	"                           resolved; / allows all). Repeatable. See docs/images.md\n"
	"      --net user[,hostfwd=RULE]...[,host-loopback=on][,restrict=on][,mac=MAC]\n"
	"      --net tap=NAME[,mac=MAC]\n"
	"                           virtio-net NIC (repeat for more, up to 8; see\n"
	"                           docs/network.md). user: user-mode networking (libslirp,\n"
	"                           no privileges): the guest gets 10.0.2.15 by DHCP, the\n"
	"                           gateway is 10.0.2.2, DNS at 10.0.2.3. host-loopback=on:\n"
	"                           10.0.2.2 leads to the host's 127.0.0.1 (default off: the\n"
	"                           guest cannot reach the host's loopback services).\n"
	"                           restrict=on: no connection out of the guest at all\n"
	"                           (hostfwd still works).\n"
	"                           hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT\n"
	"                           forwards a host port (on 127.0.0.1 unless HOSTADDR is\n"
	"                           given) to the guest (10.0.2.15 unless GUESTADDR is\n"
	"                           given), e.g. hostfwd=tcp::2222-:22; repeatable.\n"
	"                           tap: attach to the host tap device NAME (needs\n"
	"                           CAP_NET_ADMIN, or a tap made for this user with `ip tuntap\n"
	"                           add dev NAME mode tap user USER`). mac: the NIC's address\n"
	"                           (default 52:54:00:12:34:56, then :57... by NIC number).\n"
	"                           With --restore or --incoming, the same number of --net\n"
	"                           options replaces the saved backends (the MACs stay)\n"
	"\n"
	"Console and lifetime:\n"
	"      --console stdio|file:PATH[,max-size=SIZE]|socket:PATH|none\n"
	"                           where the serial console goes (default stdio: the terminal\n"
	"                           in raw mode; press Ctrl-A x to quit, Ctrl-A Ctrl-A to send\n"
	"                           Ctrl-A). file: PATH is created 0600 and rotated to PATH.1\n"
	"                           at max-size (default 16M, 0: none). socket: listens on a\n"
	"                           unix socket (mode 0600) for one client of this user or root.\n"
	"      --on-reboot exit|restart\n"
	"                           what a guest reboot or triple fault does: exit (default;\n"
	"                           status 0 after a reboot, 3 after a triple fault) or restart\n"
	"                           the same VM afresh (same kernel, initrd and command line)\n"
	"      --api-sock PATH      control socket: JSON requests status, pause, resume, stop,\n"
	"                           reset, power-button, snapshot, migrate (see `vireo vmctl\n"
	"                           --help`). Created 0600; only this user and root may use it.\n"
	"                           A socket PATH a running program listens on is not taken\n"
	"                           over, and a file that is not a stale socket is not removed\n"
	"      --timeout SECONDS    stop the VM after SECONDS with exit status 124\n"
	"      --profile FILE       sample each vCPU's instruction pointer 100 times a second and\n"
	"                           write 'count rip' lines to FILE at exit (find where a slow\n"
	"                           guest spends its time: symbolize with the kernel's "
	"System.map)\n"
	"\n"
	"Sandbox (see docs/security.md):\n"
	"      --seccomp kill|log|off\n"
	"                           per-thread system call allow-lists. kill (default): a\n"
	"                           forbidden call is named on stderr and the VMM dies of\n"
	"                           SIGSYS; log: it runs and the kernel logs it\n"
	"      --user USER, --group GROUP\n"
	"                           run as USER (name or uid) and GROUP (default: USER's group)\n"
	"                           once /dev/kvm, images, taps and sockets are open\n"
	"      --cgroup PATH        move vireo into the cgroup v2 directory PATH first\n"
	"      --cgroup-create      with --cgroup: create PATH if it does not exist\n"
	"      --jail DIR           run in new mount, PID, IPC and UTS namespaces (and network\n"
	"                           without --net and --incoming), as root, with a tmpfs on DIR\n"
	"                           as the root holding only the files this VM uses (bind-\n"
	"                           mounted at their own paths), /dev/kvm, /dev/urandom and\n"
	"                           /dev/net/tun for taps. Whether jailed or not, vireo drops\n"
	"                           every capability, sets NoNewPrivs and filters its system\n"
	"                           calls once the machine is built\n"
	"\n"
	"  -v, --verbose            more messages (repeat for debug)\n"
	"  -q, --quiet              only errors\n"
	"  -h, --help               this text\n"
	"\n"
	"Exit status: 0 guest powered off (or rebooted with --on-reboot exit), 1 error,\n"
	"2 bad arguments, 3 guest crashed (triple fault or unrecoverable emulation failure),\n"
	"124 timeout, 128+N killed by signal N.\n";

const char *config_run_usage(void)
{
	return usage;
}

enum {
	OPT_PAYLOAD = 256,
	OPT_CPUS,
	OPT_HUGEPAGES,
	OPT_CPU_FEATURES,
	OPT_PVM,
	OPT_CONSOLE,
	OPT_ON_REBOOT,
	OPT_TIMEOUT,
	OPT_PROFILE,
	OPT_BOOT,
	OPT_API_SOCK,
	OPT_RESTORE,
	OPT_FORCE,
	OPT_INCOMING,
	OPT_RNG,
	OPT_VIRTIO_CONSOLE,
	OPT_BALLOON,
	OPT_VSOCK,
	OPT_DISK,
	OPT_OVERLAY_DIR,
	OPT_BACKING_DIR,
	OPT_NET,
	OPT_MIGRATION_TLS,
	OPT_INSECURE_MIGRATION,
	OPT_SECCOMP,
	OPT_USER,
	OPT_GROUP,
	OPT_CGROUP,
	OPT_CGROUP_CREATE,
	OPT_JAIL,
};

static const struct option long_opts[] = {
	{ "kernel", required_argument, NULL, 'k' },
	{ "initrd", required_argument, NULL, 'i' },
	{ "cmdline", required_argument, NULL, 'c' },
	{ "payload", required_argument, NULL, OPT_PAYLOAD },
	{ "memory", required_argument, NULL, 'm' },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "hugepages", no_argument, NULL, OPT_HUGEPAGES },
	{ "cpu-features", required_argument, NULL, OPT_CPU_FEATURES },
	{ "pvm", required_argument, NULL, OPT_PVM },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "on-reboot", required_argument, NULL, OPT_ON_REBOOT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "profile", required_argument, NULL, OPT_PROFILE },
	{ "boot", required_argument, NULL, OPT_BOOT },
	{ "api-sock", required_argument, NULL, OPT_API_SOCK },
	{ "restore", required_argument, NULL, OPT_RESTORE },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "incoming", required_argument, NULL, OPT_INCOMING },
	{ "rng", no_argument, NULL, OPT_RNG },
	{ "virtio-console", required_argument, NULL, OPT_VIRTIO_CONSOLE },
	{ "balloon", optional_argument, NULL, OPT_BALLOON },
	{ "vsock", required_argument, NULL, OPT_VSOCK },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "overlay-dir", required_argument, NULL, OPT_OVERLAY_DIR },
	{ "backing-dir", required_argument, NULL, OPT_BACKING_DIR },
	{ "net", required_argument, NULL, OPT_NET },
	{ "migration-tls", required_argument, NULL, OPT_MIGRATION_TLS },
	{ "insecure-migration", no_argument, NULL, OPT_INSECURE_MIGRATION },
	{ "seccomp", required_argument, NULL, OPT_SECCOMP },
	{ "user", required_argument, NULL, OPT_USER },
	{ "group", required_argument, NULL, OPT_GROUP },
	{ "cgroup", required_argument, NULL, OPT_CGROUP },
	{ "cgroup-create", no_argument, NULL, OPT_CGROUP_CREATE },
	{ "jail", required_argument, NULL, OPT_JAIL },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int bad(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg);
	return -EINVAL;
}

/* "PATH[,max-size=SIZE]" of a console file: a path and a cap of at least 4K (0: none). */
static int check_file_spec(const char *opt, const char *spec, char *err, size_t errlen)
{
	size_t len;
	uint64_t max;

	if (capfile_parse_spec(spec, &len, &max)) {
		snprintf(err, errlen,
			 "%s: '%s': max-size wants a size of at least 4K, or 0 for none", opt,
			 spec);
		return -EINVAL;
	}
	if (!len) {
		snprintf(err, errlen, "%s: '%s': the file path is missing", opt, spec);
		return -EINVAL;
	}
	return 0;
}

/* Keyword values of options, indexed by their enum value. */
static const char *const pvm_names[] = { "auto", "on", "off", NULL };
static const char *const reboot_names[] = { "exit", "restart", NULL };
static const char *const boot_names[] = { "auto", "pvh", "linux64", NULL };
_Static_assert(PVM_OFF == 2 && REBOOT_RESTART == 1 && BOOT_LINUX64 == 2,
	       "the name tables follow the enums");

/* Looks arg up in names (NULL-terminated); on failure lists the choices in err. */
static int choose(const char *arg, const char *opt, const char *const *names, int *out, char *err,
		  size_t errlen)
{
	size_t off;

	for (int i = 0; names[i]; i++) {
		if (!strcmp(arg, names[i])) {
			*out = i;
			return 0;
		}
	}
	off = (size_t)snprintf(err, errlen, "%s: '%s': expected", opt, arg);
	for (int i = 0; names[i] && off < errlen; i++)
		off += (size_t)snprintf(err + off, errlen - off, "%s %s", i ? "," : "", names[i]);
	return -EINVAL;
}

int config_parse_vsock(const char *spec, uint32_t *cid, char *uds, size_t udslen, char *err,
		       size_t errlen)
{
	const char *p = spec;
	bool have_cid = false;
	uint64_t v;

	uds[0] = '\0';
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char num[24];

		if (n > 4 && !strncmp(p, "cid=", 4)) {
			if (n - 4 >= sizeof(num))
				goto bad_cid;
			memcpy(num, p + 4, n - 4);
			num[n - 4] = '\0';
			/* 0, 1 and 2 are the hypervisor, local and host; -1 is "any". */
			if (parse_u64(num, &v) < 0 || v < 3 || v >= 0xffffffffULL)
				goto bad_cid;
			*cid = (uint32_t)v;
			have_cid = true;
		} else if (!strncmp(p, "uds=", 4)) {
			/* Last, so the path may hold commas; room for "_PORT" is checked too. */
			n = strlen(p);
			end = NULL;
			if (n == 4 || n - 4 + 11 >= udslen) {
				snprintf(err, errlen, "uds=PATH: empty or too long ('%s')", p + 4);
				return -EINVAL;
			}
			memcpy(uds, p + 4, n - 4);
			uds[n - 4] = '\0';
		} else {
			snprintf(err, errlen, "'%s': expected cid=N[,uds=PATH]", spec);
			return -EINVAL;
		}
		p += n + (end ? 1 : 0);
	}
	if (have_cid)
		return 0;
bad_cid:
	snprintf(err, errlen, "'%s': needs cid=N with N from 3 to 4294967294", spec);
	return -EINVAL;
}

void config_disk_name(const char *path, char *name, size_t len)
{
	const char *base = strrchr(path, '/');
	char *dot;

	base = base ? base + 1 : path;
	snprintf(name, len, "%s", *base ? base : "disk");
	/* "disk.qcow2" -> "disk"; a leading dot is part of the name. */
	dot = strrchr(name, '.');
	if (dot && dot != name)
		*dot = '\0';
}

/* PATH[,format=qcow2|raw][,readonly][,serial=ID] */
static int parse_disk(const char *arg, struct vm_disk *d, char *err, size_t errlen)
{
	const char *comma = strchr(arg, ',');
	size_t plen = comma ? (size_t)(comma - arg) : strlen(arg);
	char *path;

	memset(d, 0, sizeof(*d));
	if (!plen)
		return bad(err, errlen, "--disk '%s': no image path", arg);
	/* Lives as long as the process, as optarg strings do. */
	path = strndup(arg, plen);
	if (!path)
		return bad(err, errlen, "--disk '%s': out of memory", arg);
	d->path = path;
	config_disk_name(path, d->name, sizeof(d->name));
	while (comma) {
		const char *opt = comma + 1, *end = strchr(opt, ',');
		size_t olen = end ? (size_t)(end - opt) : strlen(opt);

		comma = end;
		if (olen == 8 && !strncmp(opt, "readonly", 8)) {
			d->read_only = true;
		} else if (olen > 7 && !strncmp(opt, "format=", 7)) {
			char fmt[16];

			snprintf(fmt, sizeof(fmt), "%.*s", (int)(olen - 7), opt + 7);
			if (blk_parse_format(fmt, &d->format))
				return bad(err, errlen, "--disk '%s': format must be qcow2 or raw",
					   arg);
		} else if (olen > 7 && !strncmp(opt, "serial=", 7)) {
			if (olen - 7 > VM_DISK_SERIAL_MAX)
				return bad(err, errlen,
					   "--disk '%s': serial longer than 20 characters", arg);
			for (size_t i = 7; i < olen; i++)
				if (opt[i] < 0x21 || opt[i] > 0x7e)
					return bad(err, errlen,
						   "--disk '%s': serial must be printable ASCII "
						   "without spaces",
						   arg);
			memcpy(d->serial, opt + 7, olen - 7);
			d->serial[olen - 7] = '\0';
		} else {
			return bad(err, errlen,
				   "--disk '%s': unknown option (expected format=qcow2|raw, "
				   "readonly, serial=ID)",
				   arg);
		}
	}
	return 0;
}

/* One --net option: checked now, opened when the machine is built. */
static int parse_net(const char *arg, struct vm_config *cfg, char *err, size_t errlen)
{
	struct net_spec spec, other;
	char msg[256];

	if (cfg->nnet == NET_MAX_NICS)
		return bad(err, errlen, "--net %s: at most 8 NICs", arg);
	if (net_parse_spec(arg, &spec, msg, sizeof(msg)))
		return bad(err, errlen, "--net %s", msg);
	for (unsigned int i = 0; i < cfg->nnet; i++) {
		net_parse_spec(cfg->net[i], &other, msg, sizeof(msg));
		if (spec.kind == NET_TAP && other.kind == NET_TAP &&
		    !strcmp(spec.ifname, other.ifname))
			return bad(err, errlen, "--net %s: that tap is already used by another NIC",
				   arg);
		if (spec.mac_set && other.mac_set && !memcmp(spec.mac, other.mac, 6))
			return bad(err, errlen, "--net %s: two NICs with the same MAC address",
				   arg);
	}
	cfg->net[cfg->nnet++] = arg;
	return 0;
}

/* Returned by the option groups below for an option that is not theirs. */
#define NOT_MINE 1

/* Options that shape the machine or its boot; they name themselves in *machine_opt, which
 * --restore and --incoming refuse (the machine comes from the saved VM). */
static int parse_machine_opt(int c, struct vm_config *cfg, const char **machine_opt, char *err,
			     size_t errlen)
{
	uint64_t v;
	int n;

	switch (c) {
	case 'k':
		*machine_opt = "--kernel";
		cfg->kernel = optarg;
		break;
	case 'i':
		*machine_opt = "--initrd";
		cfg->initrd = optarg;
		break;
	case 'c':
		*machine_opt = "--cmdline";
		cfg->cmdline = optarg;
		break;
	case OPT_PAYLOAD:
		*machine_opt = "--payload";
		cfg->payload = optarg;
		break;
	case 'm':
		*machine_opt = "--memory";
		if (parse_size(optarg, MIB, &v) < 0)
			return bad(err, errlen, "--memory: '%s' is not a size (examples: 256M, 2G)",
				   optarg);
		if (v < 16 * MIB)
			return bad(err, errlen, "--memory: '%s' is too small (at least 16M)",
				   optarg);
		if (v > 1024 * GIB)
			return bad(err, errlen, "--memory: '%s' is too large (at most 1T)", optarg);
		if (v % (4 * KIB))
			return bad(err, errlen, "--memory: '%s' is not a multiple of 4 KiB",
				   optarg);
		cfg->mem_size = v;
		break;
	case OPT_CPUS:
		*machine_opt = "--cpus";
		if (parse_u64(optarg, &v) < 0)
			return bad(err, errlen, "--cpus: '%s' is not a number", optarg);
		if (v == 0)
			return bad(err, errlen, "--cpus: %s: a VM needs at least one vCPU", optarg);
		if (v > VM_MAX_CPUS_DEFAULT)
			return bad(err, errlen, "--cpus: %s: at most 254 vCPUs are supported",
				   optarg);
		cfg->ncpus = (unsigned int)v;
		break;
	case OPT_HUGEPAGES:
		*machine_opt = "--hugepages";
		cfg->hugepages = true;
		break;
	case OPT_CPU_FEATURES: {
		*machine_opt = "--cpu-features";
		char msg[256];
		n = cpuid_parse_features(optarg, cfg->cpu_changes + cfg->ncpu_changes,
					 CPUID_MAX_CHANGES - cfg->ncpu_changes, msg, sizeof(msg));
		if (n < 0)
			return bad(err, errlen, "--cpu-features: %s", msg);
		cfg->ncpu_changes += (size_t)n;
		break;
	}
	case OPT_PVM:
		*machine_opt = "--pvm";
		if (choose(optarg, "--pvm", pvm_names, &n, err, errlen))
			return -EINVAL;
		cfg->pvm = (enum pvm_mode)n;
		break;
	case OPT_BOOT:
		*machine_opt = "--boot";
		if (choose(optarg, "--boot", boot_names, &n, err, errlen))
			return -EINVAL;
		cfg->boot = (enum boot_protocol)n;
		break;
	case OPT_RNG:
		*machine_opt = "--rng";
		cfg->virtio_rng = true;
		break;
	case OPT_BALLOON:
		*machine_opt = "--balloon";
		cfg->balloon = true;
		if (optarg && !strcmp(optarg, "deflate-on-oom"))
			cfg->balloon_flags |= 1u; /* BALLOON_DEFLATE_ON_OOM */
		else if (optarg)
			return bad(err, errlen,
				   "--balloon: '%s': the only option is deflate-on-oom", optarg);
		break;
	default:
		return NOT_MINE;
	}
	return 0;
}

/* The host side of devices: console, virtio-console and vsock endpoints, disk images and their
 * directories, networks. Given again with --restore and --incoming. */
static int parse_device_opt(int c, struct vm_config *cfg, char *err, size_t errlen)
{
	switch (c) {
	case OPT_CONSOLE:
		if (!strcmp(optarg, "stdio")) {
			cfg->console = CONSOLE_STDIO;
		} else if (!strcmp(optarg, "none")) {
			cfg->console = CONSOLE_NONE;
		} else if (!strncmp(optarg, "file:", 5) && optarg[5]) {
			cfg->console = CONSOLE_FILE;
			cfg->console_path = optarg + 5;
			if (check_file_spec("--console", optarg + 5, err, errlen))
				return -EINVAL;
		} else if (!strncmp(optarg, "socket:", 7) && optarg[7]) {
			cfg->console = CONSOLE_SOCKET;
			cfg->console_path = optarg + 7;
			if (strlen(cfg->console_path) >= 108)
				return bad(err, errlen, "--console: socket path '%s' is too long",
					   cfg->console_path);
		} else {
			return bad(err, errlen,
				   "--console: '%s': expected stdio, file:PATH, socket:PATH "
				   "or none",
				   optarg);
		}
		break;
	case OPT_VIRTIO_CONSOLE:
		if ((strncmp(optarg, "socket:", 7) || !optarg[7]) &&
		    (strncmp(optarg, "file:", 5) || !optarg[5]))
			return bad(err, errlen,
				   "--virtio-console: '%s': expected socket:PATH or file:PATH",
				   optarg);
		if (!strncmp(optarg, "socket:", 7) && strlen(optarg + 7) >= 108)
			return bad(err, errlen, "--virtio-console: socket path '%s' is too long",
				   optarg + 7);
		if (!strncmp(optarg, "file:", 5) &&
		    check_file_spec("--virtio-console", optarg + 5, err, errlen))
			return -EINVAL;
		cfg->virtio_console = optarg;
		break;
	case OPT_VSOCK: {
		char msg[200];

		if (config_parse_vsock(optarg, &cfg->vsock_cid, cfg->vsock_uds,
				       sizeof(cfg->vsock_uds), msg, sizeof(msg)))
			return bad(err, errlen, "--vsock: %s", msg);
		cfg->vsock = optarg;
		break;
	}
	case OPT_DISK:
		/* Not a machine option: with --restore and --incoming the images come
		 * from here too, one per saved disk (vmstate_read_config). */
		if (cfg->ndisks >= VM_MAX_DISKS)
			return bad(err, errlen, "--disk %s: at most 16 disks", optarg);
		if (parse_disk(optarg, &cfg->disks[cfg->ndisks], err, errlen))
			return -EINVAL;
		cfg->ndisks++;
		break;
	case OPT_OVERLAY_DIR:
		if (!*optarg)
			return bad(err, errlen, "%s", "--overlay-dir: empty directory name");
		cfg->overlay_dir = optarg;
		break;
	case OPT_BACKING_DIR:
		if (blk_allow_backing_dir(optarg))
			return bad(err, errlen, "--backing-dir: %s", blk_last_error());
		break;
	case OPT_NET:
		if (parse_net(optarg, cfg, err, errlen))
			return -EINVAL;
		break;
	default:
		return NOT_MINE;
	}
	return 0;
}

/* How the VMM runs: reboot action, timeout, control socket, profile, restore, migration,
 * verbosity. */
static int parse_lifecycle_opt(int c, struct vm_config *cfg, char *err, size_t errlen)
{
	uint64_t v;
	int n;

	switch (c) {
	case OPT_ON_REBOOT:
		if (choose(optarg, "--on-reboot", reboot_names, &n, err, errlen))
			return -EINVAL;
		cfg->on_reboot = (enum reboot_action)n;
		break;
	case OPT_TIMEOUT:
		if (parse_u64(optarg, &v) < 0 || v == 0 || v > 7 * 24 * 3600)
			return bad(err, errlen,
				   "--timeout: '%s' is not a number of seconds (1..604800)",
				   optarg);
		cfg->timeout_s = (unsigned int)v;
		break;
	case OPT_API_SOCK:
		cfg->api_sock = optarg;
		break;
	case OPT_PROFILE:
		cfg->profile = optarg;
		break;
	case OPT_RESTORE:
		cfg->restore = optarg;
		break;
	case OPT_FORCE:
		cfg->force = true;
		break;
	case OPT_INCOMING:
		if (strncmp(optarg, "tcp:", 4) || !strchr(optarg + 4, ':'))
			return bad(err, errlen,
				   "--incoming: '%s': expected tcp:HOST:PORT (e.g. "
				   "tcp:0.0.0.0:4444)",
				   optarg);
		cfg->incoming = optarg;
		break;
	case OPT_MIGRATION_TLS:
		if ((strncmp(optarg, "psk=", 4) || !optarg[4]) &&
		    (strncmp(optarg, "x509=", 5) || !optarg[5]))
			return bad(err, errlen,
				   "--migration-tls: '%s': expected psk=FILE or x509=DIR", optarg);
		cfg->migration_tls = optarg;
		break;
	case OPT_INSECURE_MIGRATION:
		cfg->insecure_migration = true;
		break;
	case 'v':
		cfg->verbosity = cfg->verbosity < 0 ? 1 : cfg->verbosity + 1;
		break;
	case 'q':
		cfg->verbosity = -1;
		break;
	default:
		return NOT_MINE;
	}
	return 0;
}

/* The VMM's own confinement (docs/security.md). */
static int parse_sandbox_opt(int c, struct vm_config *cfg, char *err, size_t errlen)
{
	switch (c) {
	case OPT_SECCOMP:
		if (sandbox_parse_seccomp(optarg, &cfg->sandbox.seccomp))
			return bad(err, errlen, "--seccomp: '%s': expected kill, log or off",
				   optarg);
		cfg->sandbox.seccomp_given = true;
		break;
	case OPT_USER:
		cfg->sandbox.user = optarg;
		break;
	case OPT_GROUP:
		cfg->sandbox.group = optarg;
		break;
	case OPT_CGROUP:
		if (optarg[0] != '/')
			return bad(err, errlen,
				   "--cgroup: '%s': expected an absolute path (e.g. "
				   "/sys/fs/cgroup/vireo/vm1)",
				   optarg);
		cfg->sandbox.cgroup = optarg;
		break;
	case OPT_CGROUP_CREATE:
		cfg->sandbox.cgroup_create = true;
		break;
	case OPT_JAIL:
		if (optarg[0] != '/')
			return bad(err, errlen, "--jail: '%s': expected an absolute path", optarg);
		cfg->jail = optarg;
		break;
	default:
		return NOT_MINE;
	}
	return 0;
}

/* What the options say together, once all are read; sets what follows from them. */
static int check_run_config(struct vm_config *cfg, const char *machine_opt, char *err,
			    size_t errlen)
{
	if (cfg->sandbox.cgroup_create && !cfg->sandbox.cgroup)
		return bad(err, errlen, "%s", "--cgroup-create needs --cgroup PATH");
	cfg->sandbox.allow_exec = cfg->on_reboot == REBOOT_RESTART;
	if (cfg->restore && cfg->incoming)
		return bad(err, errlen, "%s", "--restore and --incoming cannot be used together");
	if (cfg->insecure_migration && !cfg->incoming)
		return bad(err, errlen, "%s",
			   "--insecure-migration only applies to --incoming (a source says "
			   "\"insecure\" on its migrate command)");
	if (cfg->incoming && cfg->insecure_migration && cfg->migration_tls)
		return bad(err, errlen, "%s",
			   "--incoming: give --migration-tls or --insecure-migration, not both");
	if (cfg->incoming && !cfg->insecure_migration && !cfg->migration_tls)
		return bad(err, errlen, "%s",
			   "--incoming needs --migration-tls psk=FILE|x509=DIR (only a source with "
			   "those credentials is accepted), or --insecure-migration to accept "
			   "anyone over plain TCP");
	if (cfg->force && !cfg->restore && !cfg->incoming)
		return bad(err, errlen, "%s", "--force only applies to --restore and --incoming");
	if (cfg->restore || cfg->incoming) {
		if (machine_opt)
			return bad(err, errlen,
				   "%s cannot be used with --restore or --incoming: the machine "
				   "comes from the saved VM",
				   machine_opt);
		cfg->no_boot = true;
		return 0;
	}
	if (!cfg->kernel && !cfg->payload)
		return bad(err, errlen, "%s",
			   "no guest given: use --kernel FILE (or --payload FILE)");
	if (cfg->kernel && cfg->payload)
		return bad(err, errlen, "%s", "--kernel and --payload cannot be used together");
	if (cfg->payload && (cfg->initrd || cfg->cmdline))
		return bad(err, errlen, "%s",
			   "--initrd and --cmdline need --kernel, not --payload");
	return 0;
}

int config_parse_run(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen)
{
	int c, ret;
	const char *machine_opt = NULL; /* an option that shapes the machine or the boot */

	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_size = 256 * MIB;
	cfg->ncpus = 1;
	cfg->pvm = PVM_AUTO;
	cfg->console = CONSOLE_STDIO;
	cfg->on_reboot = REBOOT_EXIT;
	cfg->sandbox.seccomp = SANDBOX_SECCOMP_DEFAULT;

	optind = 0; /* 0, not 1: also resets glibc's position inside a short-option cluster */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":k:i:c:m:vqh", long_opts, NULL)) != -1) {
		ret = parse_machine_opt(c, cfg, &machine_opt, err, errlen);
		if (ret == NOT_MINE)
			ret = parse_device_opt(c, cfg, err, errlen);
		if (ret == NOT_MINE)
			ret = parse_lifecycle_opt(c, cfg, err, errlen);
		if (ret == NOT_MINE)
			ret = parse_sandbox_opt(c, cfg, err, errlen);
		if (ret != NOT_MINE) {
			if (ret)
				return ret;
			continue;
		}
		switch (c) {
		case 'h':
			return 1;
		case ':':
			return bad(err, errlen, "option '%s' needs a value", argv[optind - 1]);
		default:
			/* For a short option inside a cluster argv[optind - 1] is not it. */
			if (optopt) {
				snprintf(err, errlen,
					 "unknown option '-%c' (see `vireo run --help`)", optopt);
				return -EINVAL;
			}
			return bad(err, errlen, "unknown option '%s' (see `vireo run --help`)",
				   argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad(err, errlen, "unexpected argument '%s' (see `vireo run --help`)",
			   argv[optind]);
	return check_run_config(cfg, machine_opt, err, errlen);
}
