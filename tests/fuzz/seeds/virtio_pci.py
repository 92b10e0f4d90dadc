#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz_virtio_pci (tests/fuzz/fuzz_virtio_pci.c describes the
format): for each device, a driver's initialisation through the register space with MSI-X,
one request, and reads of the ISR, PBA and device configuration. Usage: virtio_pci.py OUTDIR"""
import os
import struct
import sys

BAR_WRITE, BAR_READ, CFG_WRITE, CFG_READ, MSIX, REQUEST, HOST, POLL = range(8)
SIZE = {1: 0, 2: 1, 4: 2, 8: 3}
DESC, AVAIL, USED = 0x10000, 0x11000, 0x12000  # queue 0 of tests/unit/virtio_driver.h


def w(off, size, value):
    return struct.pack('<BHBQ', BAR_WRITE, off, SIZE[size], value)


def r(off, size):
    return struct.pack('<BHB', BAR_READ, off, SIZE[size])


def driver(dev, nq):
    p = bytes([dev]) + struct.pack('<BBBI', CFG_WRITE, 4, 1, 6)  # memory, bus master
    p += bytes([MSIX, 0x80])
    p += w(0x14, 1, 3) + w(0x00, 4, 0) + r(0x04, 4) + w(0x00, 4, 1) + r(0x04, 4)
    p += w(0x08, 4, 1) + w(0x0c, 4, 1) + w(0x14, 1, 0xb) + r(0x14, 1) + w(0x10, 2, 0)
    for q in range(nq):
        base = DESC + 0x4000 * q
        p += w(0x16, 2, q) + r(0x18, 2) + w(0x18, 2, 16) + w(0x1a, 2, q + 1) + r(0x1a, 2)
        p += w(0x20, 8, base) + w(0x28, 8, base + 0x1000) + w(0x30, 8, base + 0x2000)
        p += w(0x1c, 2, 1) + r(0x1e, 2)
    for v in range(nq + 1):
        e = 0x4000 + 16 * v
        p += w(e, 8, 0xfee00000) + w(e + 8, 4, 0x40 + v) + w(e + 12, 4, 0)
    p += w(0x14, 1, 0xf) + bytes([REQUEST, 0, POLL]) + r(0x6000, 8) + r(0x1000, 1)
    p += r(0x2000, 4) + r(0x2004, 2) + r(0x15, 1) + bytes([HOST, 1, POLL])
    return p


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    names = ['blk', 'net', 'console', 'rng', 'balloon', 'vsock']
    nqs = [1, 2, 2, 1, 4, 3]
    for dev, (name, nq) in enumerate(zip(names, nqs)):
        with open(os.path.join(out, name), 'wb') as f:
            f.write(driver(dev, nq))
    # INTx instead of MSI-X: the ISR read clears the interrupt.
    with open(os.path.join(out, 'rng-intx'), 'wb') as f:
        f.write(driver(3, 1).replace(bytes([MSIX, 0x80]), b'', 1))


if __name__ == '__main__':
    main()
