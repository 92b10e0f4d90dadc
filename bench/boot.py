#!/usr/bin/env python3
"""Boot benchmark, side by side (printed, not pass/fail).

Boots the test guest (guest/build.sh: one kernel, built once, as a bzImage and as the PVH ELF
vmlinux, and one initramfs) to its ready marker with every VMM, alternately, N times each:

  vireo bzImage / pvh       build/vireo run --kernel bzImage|vmlinux --initrd ...
  qemu microvm bzImage/pvh  qemu-system-x86_64 -enable-kvm -cpu host -M microvm ...
  qemu pc bzImage / pvh     qemu-system-x86_64 -enable-kvm -cpu host -M pc ...
                            (QEMU boots a PVH ELF given to -kernel through its PVH entry)
  kvmtool bzImage           lkvm run --nodefaults -k bzImage -i initramfs.cpio ...
                            (kvmtool has no PVH/ELF loader)

All alike: the same kernel file and entry within a kernel kind, the same command line
(common.CMDLINE, vireo's default; nothing added by any VMM), 2 vCPUs, 256 MiB, no NIC, the
console on the emulated 8250 serial port read through a pipe. QEMU runs with -nodefaults (no
VGA, no default NIC) and microvm with auto-kernel-cmdline=off.

Per configuration: min and median of the time from process start to the ready marker
(VIREO_GUEST_READY, printed by the guest's login shell), to the first console byte and to the
first KVM_RUN (bench/first_kvm_run.c, LD_PRELOAD into every VMM). At the ready marker of each
run: the VMM's CPU time split into its own user time, kernel time and guest time
(/proc/PID/stat), its RSS, and KVM's exit counters for the VM (debugfs). Then one extra traced
boot per configuration: exits by reason, exits to user space by reason, port I/O by port and a
sampled profile of the guest (RIPs at host-interrupt exits, symbolized with the guest's
System.map), to show where the boot time goes.

Ratios: peer / vireo, median time to the ready marker, > 1 means vireo is faster; the headline
is QEMU's fastest configuration over vireo's fastest.

kvmtool is not part of the repository. To compare with it, build it from its source outside the
checkout: clone https://github.com/kvmtool/kvmtool into ~/.cache/vireo/peers/kvmtool and run
`make` there (x86 needs gcc, make and zlib only); bench/boot.py then finds
~/.cache/vireo/peers/kvmtool/lkvm by itself, or takes --lkvm PATH.

Without a usable /dev/kvm (none, or kvm_pvm) the benchmark runs itself in the nested KVM test
host (tests/kvm-host; $VIREO_KVM_HOST if set, else a fresh one). There every figure is taken
under software emulation: seconds where real hardware takes milliseconds. Only the ratios count.

Usage: bench/boot.py [--runs 3] [--trace-runs 1] [--vireo build/vireo] [--lkvm PATH]
                     [--only SUBSTRING] [--limit 300]
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import READY_MARKER, fmt, stats  # noqa: E402

STAT_KEYS = ("exits", "io_exits", "mmio_exits", "halt_exits", "irq_exits", "halt_wait_ns",
             "insn_emulation", "pf_taken")


def boot_once(cfg, a, tmp, trace=None):
    name, _, _, argv = cfg
    env = {}
    if cfg[1] == "kvmtool":
        # lkvm keeps its control sockets in $HOME/.lkvm; the nested host's $HOME is read-only
        env["HOME"] = tmp
    if trace:
        trace.start()
    v = common.Vmm(argv, tmp, name, env=env)
    r = {"name": name}
    try:
        r["ready"] = v.wait_for(READY_MARKER, a.limit)
        r["first_byte"] = v.first_byte
        if r["ready"] is not None:
            r["user"], r["sys"], r["guest"], r["rss"] = common.proc_times(v.proc.pid)
            r["ram_rss"] = common.guest_ram_rss(v.proc.pid, a.memory)
            r["kvm"] = common.kvm_vm_stats(v.proc.pid)
            if trace:
                r["trace"] = trace.read()
        else:
            r["why"] = v.tail()
    finally:
        if trace:
            trace.stop()
        v.kill()
    r["first_run"] = v.first_run()
    return r


def median_run(runs):
    ok = sorted((r for r in runs if r.get("ready") is not None), key=lambda r: r["ready"])
    return ok[len(ok) // 2] if ok else None


def print_results(cfgs, results, runs):
    print(f"\nTime from process start, {runs} runs each, alternating (s; min / median)")
    print(f"  {'configuration':<22}{'ready marker':>16}{'first console byte':>20}"
          f"{'first KVM_RUN ms':>18}{'setup CPU ms':>14}{'failed':>8}")
    for cfg in cfgs:
        rs = results[cfg[0]]
        rmin, rmed = stats([r.get("ready") for r in rs])
        bmin, bmed = stats([r.get("first_byte") for r in rs if r.get("ready")])
        fr = [r["first_run"] for r in rs if r.get("first_run")]
        _, kmed = stats([f["wall_ms"] for f in fr])
        _, cmed = stats([f["user_ms"] + f["sys_ms"] for f in fr])
        failed = sum(1 for r in rs if r.get("ready") is None)
        print(f"  {cfg[0]:<22}{fmt(rmin):>7} / {fmt(rmed):<6}{fmt(bmin):>9} / {fmt(bmed):<8}"
              f"{fmt(kmed, '.0f'):>18}{fmt(cmed, '.0f'):>14}{failed:>8}")
        for r in rs:
            if r.get("ready") is None:
                print(f"    did not reach the ready marker: {r.get('why')}")
    print("\nAt the ready marker (the median run): CPU time of the VMM process split by "
          "/proc/PID/stat, KVM's counters")
    print(f"  {'configuration':<22}{'VMM user s':>11}{'kernel s':>9}{'guest s':>8}{'RSS MiB':>8}"
          f"{'RSS-RAM':>8}{'exits':>8}{'io':>7}{'mmio':>7}{'halt':>7}{'irq':>7}{'halt wait s':>12}")
    for cfg in cfgs:
        r = median_run(results[cfg[0]])
        if not r:
            print(f"  {cfg[0]:<22} (no successful run)")
            continue
        k = r.get("kvm", {})
        hw = k.get("halt_wait_ns")
        print(f"  {cfg[0]:<22}{fmt(r['user']):>11}{fmt(r['sys']):>9}{fmt(r['guest']):>8}"
              f"{fmt(r['rss'], '.1f'):>8}"
              f"{fmt(r['rss'] - r['ram_rss'] if r.get('ram_rss') is not None else None, '.1f'):>8}"
              f"{k.get('exits', '-'):>8}{k.get('io_exits', '-'):>7}"
              f"{k.get('mmio_exits', '-'):>7}{k.get('halt_exits', '-'):>7}"
              f"{k.get('irq_exits', '-'):>7}{fmt(hw / 1e9 if hw else None):>12}")
    print("  (RSS-RAM: RSS less the resident part of the guest RAM mapping: the VMM's own "
          "memory;")
    print("   guest s: time in guest mode as the host's scheduler ticks saw it; kernel s: "
          "host kernel, KVM's exit handling included; halt wait: vCPUs idle in HLT)")


def print_ratios(cfgs, results):
    med = {}
    for cfg in cfgs:
        _, m = stats([r.get("ready") for r in results[cfg[0]]])
        if m is not None:
            med[cfg[0]] = m
    print("\nRatios, median time to the ready marker (peer / vireo; > 1: vireo is faster)")
    for kind in ("bzImage", "pvh"):
        v = med.get(f"vireo {kind}")
        for cfg in cfgs:
            if cfg[1] != "vireo" and cfg[2] == kind and cfg[0] in med and v:
                print(f"  {cfg[0]:<22} / vireo {kind:<8} = {med[cfg[0]] / v:.2f}")
    vireo = [(m, n) for n, m in med.items() if n.startswith("vireo")]
    qemu = [(m, n) for n, m in med.items() if n.startswith("qemu")]
    kvmtool = [(m, n) for n, m in med.items() if n.startswith("kvmtool")]
    if vireo and qemu:
        (vm, vn), (qm, qn) = min(vireo), min(qemu)
        print(f"  headline: QEMU's fastest ({qn}, {qm:.2f} s) / vireo's fastest ({vn}, "
              f"{vm:.2f} s) = {qm / vm:.2f}")
    if vireo and kvmtool:
        (vm, vn), (km, kn) = min(vireo), min(kvmtool)
        print(f"  kvmtool ({km:.2f} s) / vireo's fastest ({vn}, {vm:.2f} s) = {km / vm:.2f}")


def print_trace(cfgs, traced, syms, tracer):
    names = [c[0] for c in cfgs if traced.get(c[0])]
    if not names:
        return
    short = {n: n.replace("qemu ", "q-").replace("microvm", "mvm").replace("kvmtool", "kvmt")
             .replace("vireo ", "v-").replace("bzImage", "bz") for n in names}
    w = max(9, max(len(s) for s in short.values()) + 1)
    head = "".join(f"{short[n]:>{w}}" for n in names)

    def table(title, key, label, top=12, min_total=1):
        rows = {}
        for n in names:
            for k, hits in traced[n].get(key, {}).items():
                rows.setdefault(k, {})[n] = hits
        if not rows:
            return
        print(f"\n{title}")
        print(f"  {'':<28}{head}")
        order = sorted(rows, key=lambda k: -sum(rows[k].values()))
        for k in order[:top]:
            if sum(rows[k].values()) < min_total:
                continue
            print(f"  {label(k):<28}" + "".join(f"{rows[k].get(n, 0):>{w}}" for n in names))
        rest = order[top:]
        if rest:
            print(f"  {'(others)':<28}" + "".join(
                f"{sum(rows[k].get(n, 0) for k in rest):>{w}}" for n in names))
        print(f"  {'total':<28}" + "".join(
            f"{sum(r.get(n, 0) for r in rows.values()):>{w}}" for n in names))

    print("\nOne traced boot per configuration (KVM tracepoint histograms, process start to "
          "the ready marker)")
    print("  columns: " + ", ".join(f"{short[n]} = {n}" for n in names))
    table("Exits by reason", ("kvm_exit", "exit_reason"), lambda k: tracer.exit_name(k[0]))
    table("Exits to the VMM (user space) by reason", ("kvm_userspace_exit", "reason"),
          lambda k: common.USERSPACE_EXITS.get(k[0], str(k[0])))
    table("Port I/O by port (in-kernel devices included)", ("kvm_pio", "port"),
          lambda k: f"{k[0]:#x} {'out' if k[1] else 'in'}")
    table("MMIO by address", ("kvm_mmio", "gpa"),
          lambda k: f"{k[0]:#x} {['unsat-read', 'read', 'write'][k[1]] if k[1] < 3 else k[1]}",
          top=8)
    table("MSR accesses", ("kvm_msr", "ecx"), lambda k: f"{k[0]:#x} {'wr' if k[1] else 'rd'}",
          top=8)
    prof = {n: common.profile_by_function(traced[n].get(("kvm_exit", "guest_rip"), {}), syms)
            for n in names}
    rows = {}
    for n in names:
        for f, c in prof[n].items():
            rows.setdefault(f, {})[n] = c
    if rows:
        print("\nWhere the guest runs: RIPs at host-interrupt exits (time-random samples; "
              "share of each boot's samples, %)")
        print(f"  {'':<44}{head}")
        tot = {n: max(1, sum(prof[n].values())) for n in names}
        order = sorted(rows, key=lambda f: -sum(rows[f].get(n, 0) / tot[n] for n in names))
        for f in order[:25]:
            print(f"  {f[:43]:<44}" + "".join(
                f"{100 * rows[f].get(n, 0) / tot[n]:>{w}.1f}" for n in names))
        print(f"  {'samples':<44}" + "".join(f"{sum(prof[n].values()):>{w}}" for n in names))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vireo", default=os.path.join(common.TOP, "build", "vireo"))
    ap.add_argument("--lkvm", help=f"kvmtool's lkvm (default {common.DEFAULT_LKVM} if built)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--trace-runs", type=int, default=1, choices=(0, 1))
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory", type=int, default=256, help="MiB")
    ap.add_argument("--limit", type=int, default=300, help="seconds per boot")
    ap.add_argument("--only", action="append", help="configurations whose name contains this")
    a = ap.parse_args()
    common.in_kvm_host(__file__, sys.argv[1:])
    files = common.guest_files()
    lkvm = common.lkvm_path(a.lkvm)
    cfgs = common.configs(os.path.abspath(a.vireo), lkvm, files, a.cpus, a.memory)
    if a.only:
        cfgs = [c for c in cfgs if any(s in c[0] for s in a.only)]
    print(f"Boot to the ready marker: {a.cpus} vCPUs, {a.memory} MiB, no NIC, serial console, "
          f"command line {common.CMDLINE!r}")
    print(f"  guest: {os.path.dirname(files['pvh'])}")
    if not lkvm:
        print(f"  {common.KVMTOOL_HOWTO}")
    for c in cfgs:
        print(f"  {c[0]:<22}{' '.join(c[3])}")
    common.stage([cfgs[0][3][0] if cfgs else None, shutil.which(common.QEMU), lkvm])
    common.mount_debug_fs()
    results = {c[0]: [] for c in cfgs}
    with common.tmpdir("vireo-bench-boot-") as tmp:
        for i in range(a.runs):
            for c in cfgs:
                r = boot_once(c, a, tmp)
                results[c[0]].append(r)
                fr = r.get("first_run") or {}
                print(f"  run {i + 1} {c[0]:<22} ready {fmt(r.get('ready'))} s, first KVM_RUN "
                      f"{fmt(fr.get('wall_ms'), '.0f')} ms", flush=True)
        print_results(cfgs, results, a.runs)
        print_ratios(cfgs, results)
        tracer = common.KvmTrace()
        if a.trace_runs and tracer.ok:
            traced = {}
            for c in cfgs:
                r = boot_once(c, a, tmp, trace=tracer)
                traced[c[0]] = r.get("trace")
                print(f"  traced {c[0]:<22} ready {fmt(r.get('ready'))} s", flush=True)
            print_trace(cfgs, traced, common.Symbols(files["map"]), tracer)
        elif a.trace_runs:
            print("\n(no KVM tracepoints here: tracefs needs root; skipped the traced boots)")


if __name__ == "__main__":
    main()
