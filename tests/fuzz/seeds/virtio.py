#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz_virtio (tests/fuzz/fuzz_virtio.c describes the program
format): for each device, a driver that negotiates what the device offers and makes valid
requests. Usage: virtio.py OUTDIR"""
import os
import struct
import sys

BLK, NET, CONSOLE, RNG, BALLOON, VSOCK = range(6)
CHAIN, KICK, CONFIG, POLL, HOST, POKE, RESET, STATUS = range(8)
OFFERED = 1 << 63  # the driver takes what the device offers
_next_off = [0]


def prog(dev, *ops):
    return bytes([dev]) + struct.pack('<Q', OFFERED) + b''.join(ops)


def chain(q, *bufs):
    """bufs: (data bytes to read) or ('w', length to write)."""
    out = bytes([CHAIN, q, len(bufs) - 1])
    data = b''
    for b in bufs:
        off = _next_off[0]
        _next_off[0] += 0x400
        if isinstance(b, tuple):
            out += struct.pack('<BHH', 1, b[1], off)
        else:
            out += struct.pack('<BHH', 0, len(b), off)
            data += b
    return out + data


def host(what, data=b''):
    return struct.pack('<BBH', HOST, what, len(data)) + data


def config(off, length_idx, write=0, value=0):
    return struct.pack('<BBBBQ', CONFIG, off, length_idx, write, value)


def blk_hdr(t, sector=0):
    return struct.pack('<IIQ', t, 0, sector)


def vsock_hdr(op, dst_port, src_port=5000, length=0, flags=0, buf_alloc=65536, fwd=0):
    return struct.pack('<QQIIIHHIII', 3, 2, src_port, dst_port, length, 1, op, flags,
                       buf_alloc, fwd)


def seeds():
    s = {}
    s['blk-read-write'] = prog(
        BLK, chain(0, blk_hdr(1, 8), b'\xa5' * 512, ('w', 1)), POLL.to_bytes(1, 'little'),
        chain(0, blk_hdr(0, 8), ('w', 512), ('w', 1)), host(0x80))
    s['blk-flush-id-discard'] = prog(
        BLK, chain(0, blk_hdr(4), ('w', 1)), chain(0, blk_hdr(8), ('w', 20), ('w', 1)),
        chain(0, blk_hdr(11), struct.pack('<QII', 0, 16, 0), ('w', 1)),
        chain(0, blk_hdr(13), struct.pack('<QII', 16, 8, 1), ('w', 1)), config(0, 3),
        host(0x80))
    eth = bytes([0x53, 0x54, 0, 0x12, 0x34, 0x56]) + bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56]) + \
        b'\x08\x00' + b'\x45' + b'\x00' * 40
    s['net-tx-rx'] = prog(
        NET, chain(0, ('w', 1600)), chain(0, ('w', 1600)), chain(1, b'\x00' * 12 + eth),
        host(0, eth), config(0, 2), config(6, 1))
    s['console-tx-rx'] = prog(
        CONSOLE, chain(0, ('w', 64)), chain(1, b'hello, console\n'), host(0, b'typed\n'),
        chain(0, ('w', 64)), bytes([POLL]))
    s['rng'] = prog(RNG, chain(0, ('w', 64)), chain(0, ('w', 16), ('w', 16)))
    pfns = struct.pack('<8I', *range(0x200, 0x208))
    s['balloon-inflate-deflate'] = prog(
        BALLOON, host(0, struct.pack('<I', 64)), config(0, 2), config(4, 2, 1, 8),
        chain(0, pfns), chain(1, pfns[:8]), host(1), chain(2, struct.pack('<HQ', 0, 4096)),
        chain(3, ('w', 8192)))
    s['vsock-guest-connect'] = prog(
        VSOCK, chain(0, ('w', 4096)), chain(0, ('w', 4096)), config(0, 3),
        chain(1, vsock_hdr(1, 1234)), host(4), bytes([POLL]),
        chain(1, vsock_hdr(5, 1234, length=5) + b'hello'), host(4 | 3, b'reply'),
        chain(1, vsock_hdr(6, 1234)), chain(1, vsock_hdr(7, 1234)),
        chain(1, vsock_hdr(4, 1234, flags=3)), chain(1, vsock_hdr(3, 1234)))
    s['vsock-host-connect'] = prog(
        VSOCK, chain(0, ('w', 4096)), chain(0, ('w', 4096)), host(4, b'CONNECT 80\n'),
        bytes([POLL]), chain(1, vsock_hdr(2, 1 << 30, src_port=80)), host(4, b'data'),
        chain(0, ('w', 4096)), bytes([POLL]))
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
