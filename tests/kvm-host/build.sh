#!/usr/bin/env bash
# Builds the nested KVM test host's boot files (L1): Debian's stock linux-image-amd64 kernel and a
# small busybox initramfs holding the modules needed to reach the shared root (virtio_pci, 9p,
# 9pnet_virtio, virtio_net) and /dev/kvm (kvm, kvm_amd). Everything else L1 needs comes from this
# machine's root filesystem, shared read-only over virtio-9p, so L1 runs the same binaries, Python
# and libraries as the host and loads any further module with modprobe from /lib/modules.
#
# The stock kernel is used rather than one built from linux-source-6.1: it costs no build time,
# is the kernel users run, and its modules (kvm_amd, 9p) are already there.
#
# Cached in ${VIREO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vireo}/kvm-host/<key>/ where <key>
# hashes this script, the init script, and the kernel and busybox package versions. Prints that
# directory on stdout (vmlinuz, initrd.cpio, info); logs go to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { echo "kvm-host/build.sh: $*" >&2; }

# iproute2 and util-linux are what stage2.sh runs in L1 (from this machine's root).
"$here/../../scripts/deps.sh" qemu-system-x86 linux-image-amd64 busybox-static cpio kmod iproute2 \
	util-linux || exit 1

# The newest installed kernel that has its modules.
kver=
for k in $(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V -r); do
	if [ -f "/lib/modules/$k/modules.dep" ]; then
		kver=$k
		break
	fi
done
if [ -z "$kver" ]; then
	log "no /boot/vmlinuz-*-amd64 with modules in /lib/modules (install linux-image-amd64)"
	exit 1
fi
kpkg="linux-image-$kver"
if [ ! -r "/boot/vmlinuz-$kver" ]; then
	log "/boot/vmlinuz-$kver is not readable (it is root-only on Debian): run this once as root"
	exit 1
fi

cache_root=${VIREO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vireo}
key=$( {
	cat "$here/build.sh" "$here/init"
	dpkg-query -W "$kpkg" busybox-static
} | sha256sum | cut -c1-16)
out="$cache_root/kvm-host/$key"
if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi
mkdir -p "$cache_root/kvm-host"
work=$(mktemp -d "$cache_root/kvm-host/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

mods=(virtio_pci 9pnet_virtio 9p virtio_net kvm_amd)
list="$work/initrd.list"
{
	echo "dir /dev 0755 0 0"
	for d in /bin /proc /sys /mnt /mnt/root /lib /lib/modules; do
		echo "dir $d 0755 0 0"
	done
	echo "file /bin/busybox /bin/busybox 0755 0 0"
	echo "slink /bin/sh /bin/busybox 0777 0 0"
	echo "file /init $here/init 0755 0 0"
	echo "file /lib/modules/order $work/order 0644 0 0"
} > "$list"
: > "$work/order"
for m in "${mods[@]}"; do
	modprobe -S "$kver" --show-depends "$m" | while read -r cmd path _; do
		[ "$cmd" = insmod ] || continue
		name=$(basename "$path")
		grep -qx "$name" "$work/order" && continue
		echo "$name" >> "$work/order"
		echo "file /lib/modules/$name $path 0644 0 0" >> "$list"
	done
done
root="$work/root"
mkdir -p "$root"
while read -r kind a b mode _; do
	case "$kind" in
	dir) mkdir -p "$root$a" ;;
	file) install -m "$mode" "$b" "$root$a" ;;
	slink) ln -sf "$b" "$root$a" ;;
	esac
done < "$list"
# /dev/console comes from devtmpfs, which the kernel mounts before it runs /init.
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$work/initrd.cpio"
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"
mv "$work/initrd.cpio" "$out.tmp/"
{
	echo "key=$key"
	dpkg-query -W "$kpkg" busybox-static
	echo "modules: $(tr '\n' ' ' < "$work/order")"
} > "$out.tmp/info"
touch "$out.tmp/done"
rm -rf "$out"
mv "$out.tmp" "$out"
log "nested KVM host boot files ready in $out"
echo "$out"
