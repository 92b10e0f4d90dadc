#!/usr/bin/env bash
# Quick start: installs what is missing, builds vireo and the test guest (cached), and boots the
# default VM (2 vCPUs, 256 MiB, the test guest) with its console on this terminal.
# Quit with Ctrl-A x, or `poweroff` in the guest. Extra arguments go to `vireo run`.
# Where this machine has no usable KVM (no /dev/kvm, or kvm_pvm), the VM runs inside the nested
# KVM host (tests/kvm-host/: a Linux VM under QEMU's software emulation with AMD-V), slowly.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
guest=$(guest/build.sh)
vm=(build/vireo run --kernel "$guest/vmlinux" --initrd "$guest/initramfs.cpio" --cpus 2
	--memory 256M "$@")
mode=$(tests/kvm-host/host.py mode)
if [ "${mode%%:*}" = direct ]; then
	exec "${vm[@]}"
fi
cat >&2 <<MSG
vireo: there is no usable KVM on this machine (${mode#*: }).
vireo: running the VM inside a nested KVM host under QEMU's software emulation (TCG):
vireo: everything is emulated, so expect about 15 s for that host and 10 s more for the guest.
vireo: Ctrl-A x quits; \`poweroff\` in the guest ends both.
MSG
exec tests/kvm-host/host.py console -- "${vm[@]}"
