#!/usr/bin/env bash
# Builds the Vireo test guest: a minimal Linux kernel from Debian's linux-source-6.1 package and a
# busybox-static initramfs. Nothing is downloaded except Debian packages.
#
# The result is cached outside the checkout, in
#   ${VIREO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vireo}/guest/<key>/
# where <key> hashes every input (this script, the config fragment, the patches, the rootfs files,
# the package versions and the compiler version), so a changed input rebuilds and an unchanged one
# is reused. Prints the cache directory on stdout; logs go to stderr.
#
# Usage: guest/build.sh [--force]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
force=0
[ "${1:-}" = "--force" ] && force=1
log() { echo "guest/build.sh: $*" >&2; }

"$here/../scripts/deps.sh" linux-source-6.1 busybox-static bc flex bison libelf-dev libssl-dev cpio xz-utils lz4 gcc make || exit 1

src_tar=$(ls /usr/src/linux-source-6.1.tar.* | head -n1)
cache_root=${VIREO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vireo}
mkdir -p "$cache_root/guest" "$cache_root/kernel"

# The kernel and the initramfs are cached separately: changing the init scripts must not cost a
# kernel build. The kernel key covers everything the kernel build reads.
kkey=$( {
	sed -n '/^# BEGIN KERNEL BUILD/,/^# END KERNEL BUILD/p' "$here/build.sh"
	cat "$here/kernel.config" "$here"/patches/*.patch
	dpkg-query -W linux-source-6.1
	gcc --version | head -n1
} | sha256sum | cut -c1-16)
key=$( {
	echo "$kkey"
	sed -n '/^# BEGIN INITRAMFS/,/^# END INITRAMFS/p' "$here/build.sh"
	cat "$here"/rootfs/* "$here"/tools/*.c
	dpkg-query -W busybox-static
} | sha256sum | cut -c1-16)
kout="$cache_root/kernel/$kkey"
out="$cache_root/guest/$key"
if [ $force = 0 ] && [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi

work=$(mktemp -d "$cache_root/guest/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# BEGIN KERNEL BUILD
if [ $force = 1 ] || [ ! -f "$kout/done" ]; then
	log "building test guest kernel $kkey in $work (takes several minutes)"
	tar -C "$work" -xf "$src_tar"
	ksrc="$work/linux-source-6.1"
	for p in "$here"/patches/*.patch; do
		log "applying $(basename "$p")"
		patch -d "$ksrc" -p1 -s < "$p"
	done
	make -C "$ksrc" -s tinyconfig >&2
	"$ksrc/scripts/kconfig/merge_config.sh" -m -O "$ksrc" "$ksrc/.config" "$here/kernel.config" >&2
	make -C "$ksrc" -s olddefconfig >&2
	# Say which requested options did not stick (renamed or dependency missing).
	while IFS= read -r line; do
		case "$line" in CONFIG_*=*) ;; *) continue ;; esac
		opt=${line%%=*}
		val=${line#*=}
		if [ "$val" = n ]; then
			grep -q "^$opt=" "$ksrc/.config" && log "warning: $opt wanted off but is on"
		else
			grep -qx "$line" "$ksrc/.config" || log "warning: $line did not stick"
		fi
	done < "$here/kernel.config"
	make -C "$ksrc" -s -j"$(nproc)" vmlinux bzImage >&2
	rm -rf "$kout.tmp"
	mkdir -p "$kout.tmp"
	cp "$ksrc/vmlinux" "$ksrc/arch/x86/boot/bzImage" "$ksrc/System.map" "$ksrc/.config" \
		"$kout.tmp/"
	gcc -O2 -o "$kout.tmp/gen_init_cpio" "$ksrc/usr/gen_init_cpio.c"
	touch "$kout.tmp/done"
	rm -rf "$kout"
	mv "$kout.tmp" "$kout"
	rm -rf "$ksrc"
fi
# END KERNEL BUILD

# BEGIN INITRAMFS
# busybox-static, our init, inittab and profile, udhcpc's lease script, and vtest (guest/tools/vtest.c: vsock echo and
# memory toucher for the device tests; freestanding, so it is a few KiB and needs no libc).
gcc -static -nostdlib -Os -fno-stack-protector -ffreestanding -fno-pie -no-pie -s \
	-o "$work/vtest" "$here/tools/vtest.c"
list="$work/initramfs.list"
{
	echo "dir /dev 0755 0 0"
	echo "nod /dev/console 0600 0 0 c 5 1"
	for d in /bin /sbin /usr /usr/bin /usr/sbin /proc /sys /tmp /etc /root /mnt /run; do
		echo "dir $d 0755 0 0"
	done
	echo "file /bin/busybox /bin/busybox 0755 0 0"
	echo "file /init $here/rootfs/init 0755 0 0"
	echo "file /etc/inittab $here/rootfs/inittab 0644 0 0"
	echo "file /etc/profile $here/rootfs/profile 0644 0 0"
	echo "file /bin/vtest $work/vtest 0755 0 0"
	# Debian's busybox looks for udhcpc's script here (not /usr/share/udhcpc).
	echo "dir /etc/udhcpc 0755 0 0"
	echo "file /etc/udhcpc/default.script $here/rootfs/udhcpc.script 0755 0 0"
	# Debian's busybox shell runs applets without links (FEATURE_SH_STANDALONE, through
	# /proc/self/exe); only what is exec'd by path needs one. Every entry costs emulated
	# kernel time when unpacked.
	for a in /bin/sh /sbin/init /sbin/poweroff /sbin/reboot; do
		echo "slink $a /bin/busybox 0777 0 0"
	done
} > "$list"
"$kout/gen_init_cpio" "$list" > "$work/initramfs.cpio"
# END INITRAMFS

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$kout/vmlinux" "$kout/bzImage" "$kout/System.map" "$kout/.config" "$work/initramfs.cpio" \
	"$out.tmp/"
{
	echo "key=$key kernel=$kkey"
	dpkg-query -W linux-source-6.1 busybox-static
	date -u +built=%Y-%m-%dT%H:%M:%SZ
} > "$out.tmp/info"
touch "$out.tmp/done"
rm -rf "$out"
mv "$out.tmp" "$out"
log "test guest ready in $out"
echo "$out"
