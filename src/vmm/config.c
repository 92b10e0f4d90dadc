// SPDX-License-Identifier: MIT
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

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
	"                           while the VM runs and one snapshot can be restored many times\n"
	"      --force              with --restore: resume even if this host's CPUID differs from\n"
	"                           the one the snapshot was taken with (the guest may then "
	"crash)\n"
	"      --incoming tcp:HOST:PORT\n"
	"                           wait on HOST:PORT for a VM sent by another vireo's migrate\n"
	"                           command, then run it (see docs/migration.md)\n"
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
	"      --virtio-console socket:PATH|file:PATH\n"
	"                           virtio-console with one port (hvc0 in a Linux guest):\n"
	"                           socket: listens on a unix socket for one client, which\n"
	"                           sends and receives; file: guest output is appended to PATH.\n"
	"                           With --restore, PATH replaces the saved one\n"
	"      --net user[,hostfwd=RULE]...[,mac=MAC]\n"
	"      --net tap=NAME[,mac=MAC]\n"
	"                           virtio-net NIC (repeat for more, up to 8; see\n"
	"                           docs/network.md). user: user-mode networking (libslirp,\n"
	"                           no privileges): the guest gets 10.0.2.15 by DHCP, the\n"
	"                           gateway 10.0.2.2 is the host's loopback, DNS at 10.0.2.3.\n"
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
	"      --console stdio|file:PATH|socket:PATH|none\n"
	"                           where the serial console goes (default stdio: the terminal\n"
	"                           in raw mode; press Ctrl-A x to quit, Ctrl-A Ctrl-A to send\n"
	"                           Ctrl-A). socket: listens on a unix socket for one client.\n"
	"      --on-reboot exit|restart\n"
	"                           what a guest reboot does (default exit, status 0)\n"
	"      --api-sock PATH      control socket: JSON requests status, pause, resume, stop,\n"
	"                           reset, power-button, snapshot, migrate (see `vireo vmctl\n"
	"                           --help`)\n"
	"      --timeout SECONDS    stop the VM after SECONDS with exit status 124\n"
	"      --profile FILE       sample each vCPU's instruction pointer 100 times a second and\n"
	"                           write 'count rip' lines to FILE at exit (find where a slow\n"
	"                           guest spends its time: symbolize with the kernel's "
	"System.map)\n"
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
	OPT_NET,
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
	{ "net", required_argument, NULL, OPT_NET },
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

int config_parse_run(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen)
{
	uint64_t v;
	int c, n;
	const char *machine_opt = NULL; /* an option that shapes the machine or the boot */

	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_size = 256 * MIB;
	cfg->ncpus = 1;
	cfg->pvm = PVM_AUTO;
	cfg->console = CONSOLE_STDIO;
	cfg->on_reboot = REBOOT_EXIT;

	optind = 0; /* 0, not 1: also resets glibc's position inside a short-option cluster */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":k:i:c:m:vqh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			machine_opt = "--kernel";
			cfg->kernel = optarg;
			break;
		case 'i':
			machine_opt = "--initrd";
			cfg->initrd = optarg;
			break;
		case 'c':
			machine_opt = "--cmdline";
			cfg->cmdline = optarg;
			break;
		case OPT_PAYLOAD:
			machine_opt = "--payload";
			cfg->payload = optarg;
			break;
		case 'm':
			machine_opt = "--memory";
			if (parse_size(optarg, MIB, &v) < 0)
				return bad(err, errlen,
					   "--memory: '%s' is not a size (examples: 256M, 2G)",
					   optarg);
			if (v < 16 * MIB)
				return bad(err, errlen,
					   "--memory: '%s' is too small (at least 16M)", optarg);
			if (v > 1024 * GIB)
				return bad(err, errlen, "--memory: '%s' is too large (at most 1T)",
					   optarg);
			if (v % (4 * KIB))
				return bad(err, errlen, "--memory: '%s' is not a multiple of 4 KiB",
					   optarg);
			cfg->mem_size = v;
			break;
		case OPT_CPUS:
			machine_opt = "--cpus";
			if (parse_u64(optarg, &v) < 0)
				return bad(err, errlen, "--cpus: '%s' is not a number", optarg);
			if (v == 0)
				return bad(err, errlen, "--cpus: %s: a VM needs at least one vCPU",
					   optarg);
			if (v > VM_MAX_CPUS_DEFAULT)
				return bad(err, errlen,
					   "--cpus: %s: at most 254 vCPUs are supported", optarg);
			cfg->ncpus = (unsigned int)v;
			break;
		case OPT_HUGEPAGES:
			machine_opt = "--hugepages";
			cfg->hugepages = true;
			break;
		case OPT_CPU_FEATURES: {
			machine_opt = "--cpu-features";
			char msg[256];
			n = cpuid_parse_features(optarg, cfg->cpu_changes + cfg->ncpu_changes,
						 CPUID_MAX_CHANGES - cfg->ncpu_changes, msg,
						 sizeof(msg));
			if (n < 0)
				return bad(err, errlen, "--cpu-features: %s", msg);
			cfg->ncpu_changes += (size_t)n;
			break;
		}
		case OPT_PVM:
			machine_opt = "--pvm";
			if (choose(optarg, "--pvm", pvm_names, &n, err, errlen))
				return -EINVAL;
			cfg->pvm = (enum pvm_mode)n;
			break;
		case OPT_CONSOLE:
			if (!strcmp(optarg, "stdio")) {
				cfg->console = CONSOLE_STDIO;
			} else if (!strcmp(optarg, "none")) {
				cfg->console = CONSOLE_NONE;
			} else if (!strncmp(optarg, "file:", 5) && optarg[5]) {
				cfg->console = CONSOLE_FILE;
				cfg->console_path = optarg + 5;
			} else if (!strncmp(optarg, "socket:", 7) && optarg[7]) {
				cfg->console = CONSOLE_SOCKET;
				cfg->console_path = optarg + 7;
				if (strlen(cfg->console_path) >= 108)
					return bad(err, errlen,
						   "--console: socket path '%s' is too long",
						   cfg->console_path);
			} else {
				return bad(
					err, errlen,
					"--console: '%s': expected stdio, file:PATH, socket:PATH "
					"or none",
					optarg);
			}
			break;
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
		case OPT_BOOT:
			machine_opt = "--boot";
			if (choose(optarg, "--boot", boot_names, &n, err, errlen))
				return -EINVAL;
			cfg->boot = (enum boot_protocol)n;
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
		case OPT_RNG:
			machine_opt = "--rng";
			cfg->virtio_rng = true;
			break;
		case OPT_VIRTIO_CONSOLE:
			if ((strncmp(optarg, "socket:", 7) || !optarg[7]) &&
			    (strncmp(optarg, "file:", 5) || !optarg[5]))
				return bad(
					err, errlen,
					"--virtio-console: '%s': expected socket:PATH or file:PATH",
					optarg);
			if (!strncmp(optarg, "socket:", 7) && strlen(optarg + 7) >= 108)
				return bad(err, errlen,
					   "--virtio-console: socket path '%s' is too long",
					   optarg + 7);
			cfg->virtio_console = optarg;
			break;
		case OPT_NET:
			if (parse_net(optarg, cfg, err, errlen))
				return -EINVAL;
			break;
		case 'v':
			cfg->verbosity = cfg->verbosity < 0 ? 1 : cfg->verbosity + 1;
			break;
		case 'q':
			cfg->verbosity = -1;
			break;
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
	if (cfg->restore && cfg->incoming)
		return bad(err, errlen, "%s", "--restore and --incoming cannot be used together");
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
