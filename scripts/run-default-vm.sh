#!/usr/bin/env bash
# Quick start: installs what is missing, builds vireo and the test guest (cached), and boots the
# default VM (2 vCPUs, 256 MiB, the test guest) with its console on this terminal.
# Quit with Ctrl-A x, or `poweroff` in the guest. Extra arguments go to `vireo run`.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
guest=$(guest/build.sh)
exec build/vireo run --kernel "$guest/vmlinux" --initrd "$guest/initramfs.cpio" \
	--cpus 2 --memory 256M "$@"
