#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz_exits (tests/fuzz/fuzz_exits.c describes the format): the
instructions vcpu_handle_emulation_failure completes or names, in 64-, 32- and 16-bit mode, with
bytes from kvm_run or fetched from guest memory. Usage: exits.py OUTDIR"""
import os
import struct
import sys

LONG = 1 | 2  # EFER.LMA, CS.L
PROT32 = 4
PAGING = 8
IN_RUN = 16
DIRTY = 32


def seed(flags, insn, rip=0x40, rax=0x100, rbx=0x200, fs=0, xor=0, limit=0xffffffff, cpl=0,
         pte=0x87, bits=3):
    gprs = [rax, 0x8, 0x10, rbx, 0x800, 0x900, 0x300, 0x340] + [0x20 * i for i in range(8)]
    ram = bytearray(0x4000)
    ram[rip:rip + len(insn)] = insn
    ram[0x100:0x104] = struct.pack('<I', 0x1f80)
    cr3, cr4 = 0, 0
    if flags & PAGING:
        # 4-level (or PAE) tables at 0x1000: the first 2 MiB identity-mapped, user, writable.
        cr3, cr4 = 0x1000, 0x20
        ram[0x1000:0x1008] = struct.pack('<Q', 0x2007)
        ram[0x2000:0x2008] = struct.pack('<Q', 0x3007 if flags & 1 else 0x3001)
        ram[0x3000:0x3008] = struct.pack('<Q', pte)
    return (struct.pack('<HQ', flags, rip) + struct.pack('<16Q', *gprs) +
            struct.pack('<Q', 0x202) + struct.pack('<6I', 0, 0, 0, 0, fs, 0) +
            struct.pack('<II', xor, limit) + struct.pack('<IIHB', cr3, cr4, 8 | cpl, bits) +
            insn.ljust(15, b'\x90')[:15] + bytes(ram))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    s = {
        'ldmxcsr-rax-64': seed(LONG | DIRTY, b'\x0f\xae\x10'),
        'stmxcsr-riprel-64': seed(LONG | PAGING | DIRTY, b'\x0f\xae\x1d\x00\x01\x00\x00'),
        'stmxcsr-sib-disp8': seed(LONG | IN_RUN, b'\x0f\xae\x5c\x8b\x10'),
        'stmxcsr-sib-nobase': seed(LONG, b'\x0f\xae\x1c\x25\x00\x01\x00\x00'),
        'vstmxcsr-vex': seed(LONG, b'\xc5\xf8\xae\x18'),
        'ldmxcsr-fs-rex': seed(LONG | PAGING, b'\x64\x41\x0f\xae\x90\x00\x01\x00\x00', fs=0x40),
        'ldmxcsr-32bit-disp32': seed(PROT32, b'\x0f\xae\x15\x00\x01\x00\x00'),
        'ldmxcsr-addr32-in-64': seed(LONG, b'\x67\x0f\xae\x10'),
        'ldmxcsr-16bit-addr32': seed(0, b'\x67\x0f\xae\x10'),
        'stmxcsr-unmapped': seed(LONG | PAGING, b'\x0f\xae\x18', rax=0x200000, limit=0x1000),
        'stmxcsr-readonly-page': seed(LONG | PAGING, b'\x0f\xae\x18', pte=0x85),
        'ldmxcsr-user-supervisor-page': seed(LONG | PAGING, b'\x0f\xae\x10', cpl=3, pte=0x83),
        'ldmxcsr-pae32': seed(PROT32 | PAGING, b'\x0f\xae\x10'),
        'ldmxcsr-split-page': seed(LONG | PAGING, b'\x0f\xae\x10', rax=0xffe),
        'ldmxcsr-noncanonical': seed(LONG | PAGING, b'\x0f\xae\x10', rax=0x800000000000),
        'int3': seed(LONG | IN_RUN, b'\xcc'),
        'fwait-prefixes': seed(PROT32, b'\x66\xf3\x2e\x9b'),
        'ud2': seed(LONG, b'\x0f\x0b'),
        'clac': seed(LONG, b'\x0f\x01\xca'),
        'stac': seed(PROT32 | IN_RUN, b'\x0f\x01\xcb'),
        'xsave-named': seed(LONG | 0x4000, b'\x48\x0f\xae\x20'),
        'cmpxchg16b-named': seed(LONG, b'\xf0\x48\x0f\xc7\x0e'),
        'cpuid-named': seed(LONG, b'\x0f\xa2'),
        'evex-named': seed(LONG, b'\x62\xf1\x7c\x48\x10\x00'),
    }
    for name, data in s.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
