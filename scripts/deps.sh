#!/usr/bin/env bash
# Installs the Debian 12 packages Vireo needs to build, test and boot its test guest, or the
# packages named as arguments (scripts/deps.sh PKG...).
# Runs apt-get as root (directly, or through sudo when available); otherwise says what to install.
set -euo pipefail

PKGS=(build-essential meson ninja-build pkg-config libcmocka-dev libjson-c-dev clang clang-format cppcheck
	python3 liburing-dev zlib1g-dev libslirp-dev libglib2.0-dev qemu-utils e2fsprogs linux-source-6.1 busybox-static bc flex bison libelf-dev libssl-dev cpio xz-utils lz4)
PKGS+=(libcurl4-openssl-dev) # vireo vm|task|token|host: the API client
PKGS+=(libsqlite3-dev libmicrohttpd-dev) # vireod
PKGS+=(libgnutls28-dev python3-yaml python3-jsonschema python3-websocket) # vireod TLS and vireo run's migration TLS; tests/api
PKGS+=(libseccomp-dev libcap-ng-dev) # vireo run's sandbox

[ $# -gt 0 ] && PKGS=("$@")
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
	SUDO=()
elif command -v sudo >/dev/null; then
	SUDO=(sudo)
else
	echo "vireo: missing packages: ${missing[*]}" >&2
	echo "vireo: install them as root: apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "vireo: installing ${missing[*]}" >&2
"${SUDO[@]}" apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends \
	"${missing[@]}" >&2
