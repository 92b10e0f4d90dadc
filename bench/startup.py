#!/usr/bin/env python3
"""Start-up cost, side by side: process start to the first KVM_RUN (printed, not pass/fail).

Every VMM runs with bench/first_kvm_run.c preloaded, which ends the process at its first
KVM_RUN (before any guest instruction), so the same thing is measured for vireo, QEMU and
kvmtool, with the same kernel, initrd and machine as bench/boot.py:

1. natively, --runs times each: wall time from process start, CPU time (user / system), page
   faults, and the time spent inside each KVM ioctl;
2. once under `valgrind --tool=callgrind`: user-space instructions executed (Ir), which do not
   depend on the machine's load or speed. The profile is broken down by object (the VMM, libc,
   the dynamic linker, glib...) and by function, inclusive and exclusive, to show what
   dominates;
3. once under `perf record` (cpu-clock, kernel and user) for vireo, QEMU microvm and kvmtool:
   the CPU time instruction counts miss (page faults, system calls), when perf works here.

In the nested host, --unstaged runs (default 1) of each first read every file over its 9p root,
as an unprepared start there does; then the files are staged in memory (common.stage) for the
rest.

Plus the smallest start of each: vireo with the hello.bin payload, QEMU microvm without a
kernel (its qboot firmware only).

Ratios: peer / vireo with the same kernel entry (> 1: vireo starts with less).

Like bench/boot.py, runs itself in the nested KVM test host when /dev/kvm is not usable; only
ratios and instruction counts mean anything there (wall and CPU times are emulation times).

Usage: bench/startup.py [--runs 5] [--unstaged 1] [--no-callgrind] [--no-perf]
                        [--vireo build/vireo] [--lkvm PATH] [--only SUBSTRING] [--top 12]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import fmt, stats  # noqa: E402


def parse_callgrind(path):
    """{(object, function): [exclusive Ir, inclusive Ir]} and the total, from a callgrind
    output file (name compression, relative positions and calls= lines handled)."""
    names = {"ob": {}, "fn": {}}
    ob = fn = None
    cost = {}
    total = 0
    skip_next = False
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"^(c?)(ob|fn|fl|fi|fe)=(?:\((\d+)\))?\s*(.*)$", line)
        if m:
            kind, num, name = m.group(2), m.group(3), m.group(4)
            if kind in names:
                if num and name:
                    names[kind][num] = name
                val = names[kind].get(num, name) if num else name
                if not m.group(1):
                    if kind == "ob":
                        ob = val
                    elif kind == "fn":
                        fn = val
            continue
        if line.startswith("calls="):
            skip_next = True
            continue
        if line.startswith("totals:") or line.startswith("summary:"):
            total = int(line.split()[1])
            continue
        if not line or not (line[0].isdigit() or line[0] in "+-*"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        c = cost.setdefault((ob, fn), [0, 0])
        ir = int(parts[1])
        if skip_next:
            c[1] += ir  # a call's inclusive cost
            skip_next = False
        else:
            c[0] += ir
            c[1] += ir
    return cost, total


def short_ob(ob):
    return os.path.basename(ob or "?")


def run_native(cfg, runs, tmp, env):
    out = []
    for _ in range(runs):
        v = common.Vmm(cfg[3], tmp, cfg[0], env=env, exit_at_first_run=True)
        rc = v.wait(600)
        fr = v.first_run()
        if fr is None:
            print(f"  {cfg[0]}: no KVM_RUN (exit status {rc}): {v.tail()}")
        v.kill()
        if fr:
            out.append(fr)
    return out


def run_callgrind(cfg, tmp, env):
    outf = os.path.join(tmp, cfg[0].replace(" ", "-") + ".callgrind")
    v = common.Vmm(cfg[3], tmp, cfg[0], env=env, exit_at_first_run=True,
                   wrapper=["valgrind", "--tool=callgrind", f"--callgrind-out-file={outf}"])
    rc = v.wait(1800)
    fr = v.first_run()
    v.kill()
    if not fr or not os.path.exists(outf):
        print(f"  {cfg[0]}: callgrind run did not reach KVM_RUN (status {rc}): "
              f"{v.stderr_text()[-600:]}")
        return None, None, None
    cost, total = parse_callgrind(outf)
    return cost, total, outf


def unstaged(cfgs, runs, tmp, env):
    """The same first-KVM_RUN probe with every file read over the nested host's 9p root (no
    page cache): what a start costs there before common.stage()."""
    print(f"\nFiles on the nested host's 9p root (not staged), {runs} run(s) each, median")
    print(f"  {'configuration':<24}{'wall ms':>9}{'user ms':>9}{'sys ms':>8}{'minflt':>8}"
          f"{'majflt':>8}{'ioctl ms':>9}")
    for c in cfgs:
        if c[0] not in ("vireo payload", "vireo bzImage", "vireo pvh", "qemu microvm bzImage",
                        "qemu microvm pvh", "kvmtool bzImage"):
            continue
        nat = run_native(c, runs, tmp, env)
        med = lambda k: stats([f[k] for f in nat])[1]  # noqa: E731
        _, ti = stats([sum(v[1] for v in f["ioctls"].values()) for f in nat])
        print(f"  {c[0]:<24}{fmt(med('wall_ms'), '.0f'):>9}{fmt(med('user_ms'), '.0f'):>9}"
              f"{fmt(med('sys_ms'), '.0f'):>8}{fmt(med('minflt'), '.0f'):>8}"
              f"{fmt(med('majflt'), '.0f'):>8}{fmt(ti, '.1f'):>9}", flush=True)
    print()


def perf_profile(cfg, tmp, env, top):
    """perf record (cpu-clock, kernel and user) of process start -> first KVM_RUN: where the
    CPU time goes that instruction counts miss (page faults, system calls, KVM)."""
    out = os.path.join(tmp, cfg[0].replace(" ", "-") + ".perf")
    v = common.Vmm(cfg[3], tmp, cfg[0], env=env, exit_at_first_run=True,
                   wrapper=["perf", "record", "-q", "-F", "999", "-e", "cpu-clock", "-g",
                            "-o", out, "--"])
    v.wait(900)
    v.kill()
    if not os.path.exists(out):
        print(f"  {cfg[0]}: perf record failed: {v.stderr_text()[-300:]}")
        return
    rep = subprocess.run(["perf", "report", "-i", out, "--stdio", "--no-children", "-g", "none",
                          "--sort", "dso,sym", "--percent-limit", "1.5"],
                         capture_output=True, text=True).stdout
    kids = subprocess.run(["perf", "report", "-i", out, "--stdio", "--children", "-g", "none",
                           "--sort", "sym", "--percent-limit", "4"],
                          capture_output=True, text=True).stdout
    n = re.search(r"# Samples: (\d+)", rep)
    print(f"\n{cfg[0]}: perf, {n.group(1) if n else '?'} samples at 999 Hz "
          "(about one per ms of CPU), process start -> first KVM_RUN")
    print("  self (the function itself):")
    for line in [ln for ln in rep.splitlines() if ln.strip() and not ln.startswith("#")][:top]:
        print("   " + " ".join(line.split()))
    print("  with children, kernel entry points and callers (stacks are the kernel's):")
    lines = [ln for ln in kids.splitlines() if ln.strip() and not ln.startswith("#")]
    for line in [ln for ln in lines if "[k]" in ln][:top]:
        print("   " + " ".join(line.split()))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vireo", default=os.path.join(common.TOP, "build", "vireo"))
    ap.add_argument("--lkvm", help=f"kvmtool's lkvm (default {common.DEFAULT_LKVM} if built)")
    ap.add_argument("--payload", default=os.path.join(common.TOP, "build", "guest", "payloads",
                                                      "hello.bin"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--unstaged", type=int, default=1,
                    help="runs per configuration with the files on the nested host's 9p root "
                         "first (0: none)")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--no-perf", action="store_true", help="no perf profiles")
    ap.add_argument("--only", action="append", help="configurations whose name contains this")
    ap.add_argument("--keep", help="copy the callgrind output files into this directory")
    a = ap.parse_args()
    common.in_kvm_host(__file__, sys.argv[1:])
    files = common.guest_files()
    lkvm = common.lkvm_path(a.lkvm)
    vireo = os.path.abspath(a.vireo)
    cfgs = [("vireo payload", "vireo", "payload",
             [vireo, "run", "--payload", a.payload, "--cpus", "2", "--memory", "256M"])]
    cfgs += common.configs(vireo, lkvm, files)
    cfgs.insert(3, ("qemu microvm no kernel", "qemu", "payload",
                    [common.QEMU, "-enable-kvm", "-cpu", "host", "-M", "microvm", "-smp", "2",
                     "-m", "256", "-nodefaults", "-no-user-config", "-display", "none",
                     "-serial", "stdio", "-no-reboot"]))
    if a.only:
        cfgs = [c for c in cfgs if any(s in c[0] for s in a.only)]
    if not lkvm:
        print(f"  {common.KVMTOOL_HOWTO}")
    if not a.no_callgrind and not shutil.which("valgrind"):
        print("  valgrind is missing (apt-get install valgrind): no instruction counts")
        a.no_callgrind = True
    print(f"Start-up: process start to the first KVM_RUN ({a.runs} native runs each, median; "
          "one callgrind run each)")
    res = {}
    with common.tmpdir("vireo-bench-startup-") as tmp:
        env = {"HOME": tmp}  # kvmtool writes $HOME/.lkvm
        if os.environ.get("BENCH_IN_KVM_HOST") and not os.environ.get("BENCH_STAGED") \
                and a.unstaged:
            unstaged(cfgs, a.unstaged, tmp, env)
        common.stage([vireo, shutil.which(common.QEMU), lkvm])
        for c in cfgs:
            nat = run_native(c, a.runs, tmp, env)
            cg = (None, None, None) if a.no_callgrind else run_callgrind(c, tmp, env)
            res[c[0]] = (nat, cg)
            if a.keep and cg[2]:
                os.makedirs(a.keep, exist_ok=True)
                shutil.copy(cg[2], a.keep)
            _, w = stats([f["wall_ms"] for f in nat])
            print(f"  measured {c[0]:<24} {fmt(w, '.0f')} ms, "
                  f"{fmt(cg[1] / 1e6 if cg[1] else None, '.1f')} M instructions", flush=True)

    print(f"\n  {'configuration':<24}{'wall ms':>9}{'user ms':>9}{'sys ms':>8}{'minflt':>8}"
          f"{'majflt':>7}{'ioctls':>7}{'ioctl ms':>9}{'M instr':>9}{'ratio':>7}")
    base = {}
    for c in cfgs:
        nat, cg = res[c[0]]
        if c[1] == "vireo" and cg[1]:
            base[c[2]] = cg[1]
    for c in cfgs:
        nat, cg = res[c[0]]
        _, w = stats([f["wall_ms"] for f in nat])
        _, u = stats([f["user_ms"] for f in nat])
        _, s = stats([f["sys_ms"] for f in nat])
        _, mf = stats([f["minflt"] for f in nat])
        _, jf = stats([f["majflt"] for f in nat])
        _, ni = stats([sum(v[0] for v in f["ioctls"].values()) for f in nat])
        _, ti = stats([sum(v[1] for v in f["ioctls"].values()) for f in nat])
        ratio = cg[1] / base[c[2]] if cg[1] and base.get(c[2]) else None
        print(f"  {c[0]:<24}{fmt(w, '.0f'):>9}{fmt(u, '.0f'):>9}{fmt(s, '.0f'):>8}"
              f"{fmt(mf, '.0f'):>8}{fmt(jf, '.0f'):>7}{fmt(ni, '.0f'):>7}{fmt(ti, '.1f'):>9}"
              f"{fmt(cg[1] / 1e6 if cg[1] else None, '.2f'):>9}{fmt(ratio):>7}")
    print("  ratio: instructions / vireo's with the same kernel entry (payload: the smallest "
          "start of each)")

    print("\nTime inside KVM ioctls before the first KVM_RUN (median run; ms, count)")
    for c in cfgs:
        nat, _ = res[c[0]]
        if not nat:
            continue
        f = sorted(nat, key=lambda f: f["wall_ms"])[len(nat) // 2]
        top = sorted(f["ioctls"].items(), key=lambda kv: -kv[1][1])[:6]
        print(f"  {c[0]:<24}" + ", ".join(f"{k} {v[1]:.1f} ({v[0]})" for k, v in top))

    if not a.no_perf and shutil.which("perf") and subprocess.run(
            ["perf", "stat", "-e", "cpu-clock", "true"], capture_output=True).returncode == 0:
        with common.tmpdir("vireo-bench-perf-") as tmp:
            for c in cfgs:
                if c[0] in ("vireo bzImage", "vireo pvh", "qemu microvm bzImage",
                            "kvmtool bzImage"):
                    perf_profile(c, tmp, {"HOME": tmp}, a.top)

    for c in cfgs:
        cost, total = res[c[0]][1][:2]
        if not cost:
            continue
        print(f"\n{c[0]}: {total / 1e6:.2f} M instructions before the first KVM_RUN")
        by_ob = {}
        for (ob, _), v in cost.items():
            by_ob[short_ob(ob)] = by_ob.get(short_ob(ob), 0) + v[0]
        print("  by object: " + ", ".join(
            f"{o} {100 * n / total:.1f}%" for o, n in sorted(by_ob.items(), key=lambda x: -x[1])
            if n / total >= 0.01))
        excl = sorted(cost.items(), key=lambda kv: -kv[1][0])[:a.top]
        print("  exclusive (the function itself):")
        for (ob, fn), v in excl:
            print(f"    {v[0] / 1e6:8.2f} M {100 * v[0] / total:5.1f}%  {fn} [{short_ob(ob)}]")
        if c[1] != "qemu":
            # QEMU's binary is stripped: its inclusive tree is addresses; the objects say more.
            main_ob = [ob for (ob, _) in cost if ob and os.path.basename(ob) in
                       (os.path.basename(c[3][0]),)]
            incl = sorted(((k, v) for k, v in cost.items() if k[0] in main_ob),
                          key=lambda kv: -kv[1][1])[:a.top]
            print(f"  inclusive, {os.path.basename(c[3][0])}'s own functions (with all they "
                  "call):")
            for (ob, fn), v in incl:
                print(f"    {v[1] / 1e6:8.2f} M {100 * v[1] / total:5.1f}%  {fn}")


if __name__ == "__main__":
    main()
