"""Shared pieces of the side-by-side benchmarks (bench/boot.py, startup.py, state.py, all.py).

- in_kvm_host(): re-runs the calling script inside the nested KVM test host (tests/kvm-host)
  when this machine has no usable /dev/kvm, so one command works everywhere.
- prepare(): the test guest (guest/build.sh, cached) and the LD_PRELOAD probe
  (bench/first_kvm_run.c), built on this machine before entering the nested host.
- Vmm: one VMM process (vireo, QEMU or kvmtool) on pipes, with its console read in a thread,
  the probe's first-KVM_RUN record, its CPU times, RSS and KVM's per-VM counters.
- KvmTrace: KVM tracepoint histograms (exit reasons, port I/O, MMIO, userspace exits, and a
  profile of guest RIPs sampled by host interrupts) for one VMM process at a time.
- the peers: QEMU and kvmtool command lines, and where kvmtool is looked for.
"""
import bisect
import glob
import hashlib
import importlib.util
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from guest import READY_MARKER, build_guest  # noqa: E402

CACHE = os.environ.get("VIREO_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vireo")
HOST_PY = os.path.join(TOP, "tests", "kvm-host", "host.py")
QEMU = "qemu-system-x86_64"
DEFAULT_LKVM = os.path.join(CACHE, "peers", "kvmtool", "lkvm")
# vireo's default command line; given to every VMM (kvmtool with --nodefaults, so it adds none
# of its own options, QEMU microvm with auto-kernel-cmdline=off).
CMDLINE = "console=ttyS0 reboot=k panic=-1"


def _host_module():
    spec = importlib.util.spec_from_file_location("kvm_host", HOST_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def in_kvm_host(script, argv, timeout=None):
    """Returns when KVM is usable here (direct, or already inside the nested host). Otherwise
    runs `script argv` in the nested host: in $VIREO_KVM_HOST if set (host.py exec), else in
    a fresh one (host.py run: start, run, power off); exits with its status."""
    if os.environ.get("BENCH_IN_KVM_HOST"):
        return
    mode, why = _host_module().kvm_mode()
    if mode == "direct":
        print(f"== KVM: direct ({why})", flush=True)
        return
    prepare()  # built here, natively: the nested host only runs
    os.environ["BENCH_IN_KVM_HOST"] = "1"
    verb = "exec" if os.environ.get("VIREO_KVM_HOST") else "run"
    print(f"== KVM: nested ({why}): running {os.path.basename(script)} in "
          f"{'the nested host $VIREO_KVM_HOST' if verb == 'exec' else 'a new nested host'}; "
          "every figure is taken under software emulation (TCG): only ratios mean anything",
          flush=True)
    cmd = [sys.executable, HOST_PY, verb]
    if timeout:
        cmd += ["--timeout", str(timeout)]
    sys.exit(subprocess.call(cmd + ["--", sys.executable, os.path.abspath(script)] + argv))


def prepare():
    """Guest directory and probe library; cached in the environment for the nested run."""
    if not os.environ.get("BENCH_GUEST_DIR"):
        os.environ["BENCH_GUEST_DIR"] = build_guest(os.path.join(TOP, "guest", "build.sh"))
    if not os.environ.get("BENCH_PROBE"):
        src = os.path.join(HERE, "first_kvm_run.c")
        key = hashlib.sha256(open(src, "rb").read()).hexdigest()[:12]
        out = os.path.join(CACHE, "bench", f"first_kvm_run-{key}.so")
        if not os.path.exists(out):
            os.makedirs(os.path.dirname(out), exist_ok=True)
            tmp = out + f".{os.getpid()}"
            subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-o", tmp, src, "-ldl"],
                           check=True)
            os.rename(tmp, out)
        os.environ["BENCH_PROBE"] = out
    return os.environ["BENCH_GUEST_DIR"], os.environ["BENCH_PROBE"]


def _ldd(exe):
    out = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
    return set(re.findall(r"(/\S+) \(0x", out))


QEMU_FIRMWARE = ("/usr/share/qemu/bios-microvm.bin", "/usr/share/qemu/pvh.bin",
                 "/usr/share/qemu/kvmvapic.bin", "/usr/share/qemu/linuxboot_dma.bin",
                 "/usr/share/qemu/linuxboot.bin", "/usr/share/seabios/bios-256k.bin")


def stage(exes, files=()):
    """Serves every file a VMM reads at start from memory, as a real host's page cache would.

    The nested host's root is this machine's, over virtio-9p without a cache: there each page
    of an mmap()ed file (program, libraries, a mapped kernel image) costs a synchronous 9p round
    trip under emulation, seconds per start for a large program (QEMU maps 49 libraries). In the
    nested host only (as root), this process moves to a private mount namespace and bind-mounts
    a tmpfs copy over each file: the executables and their libraries (ldd), QEMU's firmware,
    the test guest's files and the probe. Paths stay the same. Returns whether it did."""
    if (os.environ.get("BENCH_STAGED") or not os.environ.get("BENCH_IN_KVM_HOST")
            or os.geteuid() != 0):
        return False
    import ctypes
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        print(f"  (no private mount namespace: {os.strerror(ctypes.get_errno())}; files stay "
              "on 9p)")
        return False
    libc.mount(b"none", b"/", None, 16384 | (1 << 18), None)  # MS_REC | MS_PRIVATE
    want = set()
    for exe in exes:
        if exe and os.path.exists(exe):
            want.add(exe)
            want |= _ldd(exe)
    want |= {f for f in QEMU_FIRMWARE if os.path.exists(f)}
    want |= {"/etc/ld.so.cache", prepare()[1]} | set(files)
    want |= set(guest_files().values())
    dst = tempfile.mkdtemp(prefix="bench-stage-", dir="/tmp")
    total = 0
    for i, f in enumerate(sorted({os.path.realpath(f) for f in want if os.path.isfile(f)})):
        copy = os.path.join(dst, str(i))
        with open(f, "rb") as src, open(copy, "wb") as out:
            data = src.read()
            out.write(data)
        total += len(data)
        os.chmod(copy, os.stat(f).st_mode & 0o7777)
        if libc.mount(copy.encode(), f.encode(), None, 4096, None) != 0:  # MS_BIND
            print(f"  (bind mount over {f}: {os.strerror(ctypes.get_errno())})")
    # The copies stay linked while this process runs (a deleted file's mappings show as
    # "(deleted)", and valgrind then finds no symbols); removed at exit.
    import atexit
    import shutil
    atexit.register(shutil.rmtree, dst, True)
    os.environ["BENCH_STAGED"] = "1"
    print(f"  staged {len(want)} files, {total >> 20} MiB, in memory (the nested host's 9p root "
          "has no cache)", flush=True)
    return True


def guest_files():
    g = prepare()[0]
    return {"bzImage": os.path.join(g, "bzImage"), "pvh": os.path.join(g, "vmlinux"),
            "initrd": os.path.join(g, "initramfs.cpio"), "map": os.path.join(g, "System.map")}


def lkvm_path(arg):
    """--lkvm PATH, else the cached build if it is there; None without kvmtool."""
    p = arg if arg else DEFAULT_LKVM
    return p if p and os.access(p, os.X_OK) else None


KVMTOOL_HOWTO = (f"kvmtool is not built: clone https://github.com/kvmtool/kvmtool (or git "
                 f"clone its mirror) into {os.path.dirname(DEFAULT_LKVM)}, run `make` there "
                 f"(x86 needs only gcc, make and zlib; libfdt-dev is for arm), then pass "
                 f"--lkvm or leave lkvm where it was built")


def vireo_argv(vireo, kind, files, cpus, mem_mib, extra=()):
    return [vireo, "run", "--kernel", files[kind], "--boot",
            "linux64" if kind == "bzImage" else "pvh", "--initrd", files["initrd"],
            "--cpus", str(cpus), "--memory", f"{mem_mib}M", "--cmdline", CMDLINE] + list(extra)


def qemu_argv(machine, kind, files, cpus, mem_mib, extra=()):
    m = "microvm,auto-kernel-cmdline=off" if machine == "microvm" else machine
    return [QEMU, "-enable-kvm", "-cpu", "host", "-M", m, "-smp", str(cpus), "-m", str(mem_mib),
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-no-reboot", "-kernel", files[kind], "-initrd", files["initrd"],
            "-append", CMDLINE] + list(extra)


def lkvm_argv(lkvm, files, cpus, mem_mib):
    # --nodefaults: no options of its own on the command line and no 9p root; -n mode=none:
    # no NIC (its default is a user-mode virtio-net).
    return [lkvm, "run", "--nodefaults", "-k", files["bzImage"], "-i", files["initrd"],
            "-c", str(cpus), "-m", str(mem_mib), "-p", CMDLINE, "--console", "serial",
            "-n", "mode=none"]


def configs(vireo, lkvm, files, cpus=2, mem=256, qemu_machines=("microvm", "pc")):
    """(name, vmm, kernel kind, argv) for every VMM and kernel entry compared."""
    out = [(f"vireo {k}", "vireo", k, vireo_argv(vireo, k, files, cpus, mem))
           for k in ("bzImage", "pvh")]
    for m in qemu_machines:
        for k in ("bzImage", "pvh"):
            out.append((f"qemu {m} {k}", "qemu", k, qemu_argv(m, k, files, cpus, mem)))
    if lkvm:
        out.append(("kvmtool bzImage", "kvmtool", "bzImage", lkvm_argv(lkvm, files, cpus, mem)))
    return out


def stats(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return min(xs), statistics.median(xs)


def mount_debug_fs():
    """debugfs and tracefs (the nested host mounts neither); quietly nothing without root."""
    for fs, path in (("debugfs", "/sys/kernel/debug"), ("tracefs", "/sys/kernel/tracing")):
        if not os.path.isdir(path) or os.path.ismount(path) or os.geteuid() != 0:
            continue
        subprocess.run(["mount", "-t", fs, fs, path], capture_output=True)


def kvm_vm_stats(pid):
    """KVM's counters for the VM of process pid (debugfs kvm/<pid>-<fd>/: vCPU counters are
    summed over the vCPUs), or {}."""
    out = {}
    for d in glob.glob(f"/sys/kernel/debug/kvm/{pid}-*"):
        for f in os.listdir(d):
            p = os.path.join(d, f)
            if os.path.isfile(p):
                try:
                    out[f] = out.get(f, 0) + int(open(p).read().split()[0])
                except (OSError, ValueError, IndexError):
                    pass
    return out


def proc_times(pid):
    """(user s without guest time, system s, guest s, RSS MiB) of a live process."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        utime, stime, gtime = int(f[11]) / tck, int(f[12]) / tck, int(f[40]) / tck
        rss = 0
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
        return utime - gtime, stime, gtime, rss
    except (OSError, IndexError, ValueError):
        return None, None, None, None


def guest_ram_rss(pid, mem_mib):
    """Resident MiB of the mappings exactly mem_mib large: guest RAM in all three VMMs."""
    size, rss = None, 0
    try:
        for line in open(f"/proc/{pid}/smaps"):
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = line.split()[0].split("-")
                size = int(hi, 16) - int(lo, 16)
            elif line.startswith("Rss:") and size == mem_mib << 20:
                rss += int(line.split()[1])
    except OSError:
        return None
    return rss / 1024


class Vmm:
    """One VMM process with its serial console on pipes and the first-KVM_RUN probe."""

    def __init__(self, argv, tmp, name, env=None, probe=True, exit_at_first_run=False,
                 wrapper=()):
        self.name = name
        self.buf = b""
        self.cond = threading.Condition()
        self.first_byte = None
        self.marks = {}
        self.probe_out = os.path.join(tmp, f"{name.replace(' ', '-')}-{time.monotonic_ns()}"
                                      ".first-run")
        e = dict(os.environ)
        e.update(env or {})
        if probe:
            e["LD_PRELOAD"] = prepare()[1]
            e["BENCH_FIRST_RUN_OUT"] = self.probe_out
            if exit_at_first_run:
                e["BENCH_FIRST_RUN_EXIT"] = "1"
        self.err_path = self.probe_out + ".stderr"
        self.err = open(self.err_path, "wb")
        self.t0 = time.monotonic()
        e["BENCH_T0_NS"] = str(time.monotonic_ns())
        self.proc = subprocess.Popen(list(wrapper) + list(argv), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, env=e,
                                     start_new_session=True)
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 65536)
            t = time.monotonic() - self.t0
            with self.cond:
                if not data:
                    self.cond.notify_all()
                    return
                if self.first_byte is None:
                    self.first_byte = t
                self.buf += data
                self.cond.notify_all()

    def wait_for(self, text, timeout):
        """Seconds from process start until text appeared on the console (None on timeout or
        exit)."""
        t = text.encode()
        deadline = time.monotonic() + timeout
        with self.cond:
            while t not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self.cond.wait(min(left, 0.5))
            if text not in self.marks:
                self.marks[text] = time.monotonic() - self.t0
        return self.marks[text]

    def wait_for_new(self, text, timeout, start):
        t = text.encode()
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.buf.find(t, start) < 0:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self.cond.wait(min(left, 0.5))
        return True

    def console_len(self):
        with self.cond:
            return len(self.buf)

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def first_run(self):
        try:
            return json.loads(open(self.probe_out).readline())
        except (OSError, ValueError):
            return None

    def tail(self, n=3):
        lines = self.buf.decode(errors="replace").strip().splitlines()[-n:]
        try:
            err = open(self.err_path, errors="replace").read().strip().splitlines()[-n:]
        except OSError:
            err = []
        return f"console: {lines}, stderr: {err}"

    def stderr_text(self):
        try:
            return open(self.err_path, errors="replace").read()
        except OSError:
            return ""

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait()
        self.err.close()


# SVM exit codes (AMD APM vol. 2, appendix C) and VMX basic exit reasons (SDM vol. 3C, app. C).
SVM_EXITS = {0x60: "INTR", 0x61: "NMI", 0x62: "SMI", 0x63: "INIT", 0x64: "VINTR",
             0x65: "CR0_SEL_WRITE", 0x6e: "RDTSC", 0x6f: "RDPMC", 0x70: "PUSHF", 0x71: "POPF",
             0x72: "CPUID", 0x74: "IRET", 0x76: "INVD", 0x77: "PAUSE", 0x78: "HLT",
             0x79: "INVLPG", 0x7a: "INVLPGA", 0x7b: "IOIO", 0x7c: "MSR", 0x7d: "TASK_SWITCH",
             0x7f: "SHUTDOWN", 0x80: "VMRUN", 0x81: "VMMCALL", 0x87: "RDTSCP", 0x89: "WBINVD",
             0x8a: "MONITOR", 0x8b: "MWAIT", 0x8d: "XSETBV", 0x8f: "EFER_WRITE_TRAP",
             0x400: "NPF", 0x401: "AVIC_INCOMPLETE_IPI", 0x402: "AVIC_NOACCEL"}
for _i in range(16):
    SVM_EXITS[_i] = f"READ_CR{_i}"
    SVM_EXITS[0x10 + _i] = f"WRITE_CR{_i}"
    SVM_EXITS[0x90 + _i] = f"CR{_i}_WRITE_TRAP"
for _i in range(32):
    SVM_EXITS[0x40 + _i] = f"EXCP{_i}"
VMX_EXITS = {0: "EXCEPTION_NMI", 1: "EXTERNAL_INTERRUPT", 2: "TRIPLE_FAULT", 7: "IRQ_WINDOW",
             10: "CPUID", 12: "HLT", 18: "VMCALL", 28: "CR_ACCESS", 30: "IO", 31: "MSR_READ",
             32: "MSR_WRITE", 40: "PAUSE", 44: "APIC_ACCESS", 45: "EOI_INDUCED",
             48: "EPT_VIOLATION", 49: "EPT_MISCONFIG", 52: "PREEMPTION_TIMER", 55: "XSETBV",
             56: "APIC_WRITE"}
USERSPACE_EXITS = {2: "IO", 5: "HLT", 6: "MMIO", 7: "IRQ_WINDOW_OPEN", 8: "SHUTDOWN",
                   9: "FAIL_ENTRY", 10: "INTR (signal)", 17: "INTERNAL_ERROR",
                   24: "SYSTEM_EVENT", 29: "X86_RDMSR", 30: "X86_WRMSR"}


class KvmTrace:
    """Histogram triggers on KVM's tracepoints, for one VM at a time (they count every VM on
    the host: run nothing else meanwhile). Needs root and tracefs."""

    def __init__(self):
        self.root = "/sys/kernel/tracing"
        self.svm = os.path.exists("/sys/module/kvm_amd")
        intr = 0x60 if self.svm else 1
        self.triggers = [
            ("kvm_exit", "hist:keys=exit_reason:size=512"),
            # An exit for a host interrupt happens at a time-random guest instruction (the
            # host's timer tick among them): a sampling profile of where the guest runs.
            ("kvm_exit", f"hist:keys=guest_rip.hex:size=16384 if exit_reason == {intr}"),
            ("kvm_userspace_exit", "hist:keys=reason:size=128"),
            ("kvm_pio", "hist:keys=port.hex,rw:size=1024"),
            ("kvm_mmio", "hist:keys=gpa.hex,type:size=4096"),
            ("kvm_msr", "hist:keys=ecx.hex,write:size=1024"),
        ]
        self.ok = os.path.isdir(os.path.join(self.root, "events", "kvm"))

    def _trig(self, event):
        return os.path.join(self.root, "events", "kvm", event, "trigger")

    def start(self):
        """Adds the triggers; one that the kernel refuses is left out (said once)."""
        if not self.ok:
            return False
        self.stop()
        for ev, spec in list(self.triggers):
            try:
                with open(self._trig(ev), "a") as f:
                    f.write(spec + "\n")
            except OSError as e:
                try:
                    log = open(os.path.join(self.root, "error_log")).read().strip()
                    log = log.splitlines()[-3:]
                except OSError:
                    log = ""
                print(f"  (KVM trace: {ev} {spec!r} refused: {e}; {log})")
                self.triggers.remove((ev, spec))
        self.ok = bool(self.triggers)
        return self.ok

    def stop(self):
        for ev, spec in self.triggers:
            try:
                with open(self._trig(ev), "a") as f:
                    f.write("!" + spec + "\n")
            except OSError:
                pass

    def read(self):
        """{(event, first key name): {key tuple: hits}}"""
        out = {}
        for ev in sorted({e for e, _ in self.triggers}):
            try:
                text = open(os.path.join(self.root, "events", "kvm", ev, "hist")).read()
            except OSError:
                continue
            cur, hexkeys = None, []
            for line in text.splitlines():
                m = re.match(r"# trigger info: hist:keys=([\w.,]+)", line)
                if m:
                    keys = m.group(1).split(",")
                    hexkeys = [k.endswith(".hex") for k in keys]
                    cur = out.setdefault((ev, keys[0].split(".")[0]), {})
                    continue
                m = re.match(r"\{(.*)\}\s+hitcount:\s+(\d+)", line)
                if m and cur is not None:
                    vals = [v for _, v in re.findall(r"(\w+):\s*([0-9a-fA-Fx]+)", m.group(1))]
                    key = tuple(int(v, 16 if i < len(hexkeys) and hexkeys[i] else 0)
                                for i, v in enumerate(vals))
                    cur[key] = cur.get(key, 0) + int(m.group(2))
        return out

    def exit_name(self, code):
        return (SVM_EXITS if self.svm else VMX_EXITS).get(code, hex(code))


class Symbols:
    """Guest kernel symbols (System.map) for sampled guest RIPs."""

    KERNEL_MAP = 0xffffffff80000000

    def __init__(self, path):
        self.addrs, self.names = [], []
        marks = {}
        for line in open(path):
            a, t, n = line.split()[:3]
            if t in "tTwW":
                self.addrs.append(int(a, 16))
                self.names.append(n)
            if n in ("_text", "_etext", "_sinittext", "_einittext"):
                marks[n] = int(a, 16)
        # the kernel's text and its init text (freed after boot: initramfs unpacking and
        # most of start_kernel run there)
        self.ranges = [(marks.get("_text", 0), marks.get("_etext", 0)),
                       (marks.get("_sinittext", 0), marks.get("_einittext", 0))]
        order = sorted(range(len(self.addrs)), key=self.addrs.__getitem__)
        self.addrs = [self.addrs[i] for i in order]
        self.names = [self.names[i] for i in order]

    def name(self, rip):
        for lo, hi in self.ranges:
            if lo - self.KERNEL_MAP <= rip < hi - self.KERNEL_MAP:  # before paging (PVH)
                rip += self.KERNEL_MAP
            if lo <= rip < hi:
                i = bisect.bisect_right(self.addrs, rip) - 1
                return self.names[i] if i >= 0 else "?"
        if rip < 0x100000:
            return "[real mode or firmware, below 1 MiB]"
        if 0xfff00000 <= rip < 0x100000000:
            return "[firmware ROM]"
        if rip < 0x100000000:
            return "[below 4 GiB, outside the kernel: decompressor or user space]"
        if rip < 0x800000000000:
            return "[guest user space]"
        return "[kernel, outside text]"


def profile_by_function(samples, syms):
    out = {}
    for (rip,), n in samples.items():
        name = syms.name(rip)
        out[name] = out.get(name, 0) + n
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tmpdir(prefix):
    base = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix=prefix, dir=base)


def fmt(x, spec=".2f", none="-"):
    return none if x is None else format(x, spec)
