#!/usr/bin/env bash
# Runs every test: unit tests (plain and under ASan/UBSan), lint, image interoperability and fuzz
# on this machine; then the suites that need KVM (payload guests, command line, control socket,
# snapshot/restore/migration, the Linux guest suites) either directly on /dev/kvm, on a host with
# hardware virtualization, or inside the nested KVM test host (tests/kvm-host/, a Linux VM under
# QEMU's software emulation whose CPU has AMD-V), booted once for the whole run.
# VIREO_TEST_KVM=direct|nested forces the choice. Installs what is missing first.
# Ends with one line "N passed, N failed, N skipped" (meson tests).
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
scripts/deps.sh || exit 1

setup() { # dir [meson options]
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null || return 1
	fi
	ninja -C "$dir" >/dev/null || ninja -C "$dir"
}
setup build || exit 1
setup build-san -Db_sanitize=address,undefined -Db_lundef=false || exit 1

mode=$(tests/kvm-host/host.py mode) || exit 1
echo "== KVM: ${mode%%:*} (${mode#*: })"
kvm_suites=(payload cli control state integration virtio net daemon)
suite_args=()
for s in "${kvm_suites[@]}"; do suite_args+=(--suite "$s"); done
nosuite_args=(--no-suite unit)
for s in "${kvm_suites[@]}"; do nosuite_args+=(--no-suite "$s"); done

# The test guest and the nested host's boot files are built (or found in the cache) before the
# clock of any test starts.
guest/build.sh >/dev/null || exit 1
rm -f build-san/meson-logs/*.json build/meson-logs/*.json

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
echo "== on this machine: unit (ASan/UBSan), lint, img, fuzz"
meson test -C build-san --suite unit --print-errorlogs --logbase host
meson test -C build "${nosuite_args[@]}" --print-errorlogs --logbase host

if [ "${mode%%:*}" = direct ]; then
	echo "== directly on /dev/kvm: ${kvm_suites[*]}"
	meson test -C build "${suite_args[@]}" --print-errorlogs --logbase kvm
else
	echo "== in the nested KVM test host: ${kvm_suites[*]}"
	if env=$(tests/kvm-host/host.py start); then
		eval "$env"
		export VIREO_KVM_HOST
		trap 'tests/kvm-host/host.py stop' EXIT
		# Emulated time: a test's own limits are for real hardware.
		meson test -C build "${suite_args[@]}" --print-errorlogs --logbase kvm \
			--timeout-multiplier 3 --wrapper "$top/tests/kvm-host/host.py exec --"
		tests/kvm-host/host.py stop
		trap - EXIT
		echo "== nested host console log: $VIREO_KVM_HOST/console.log"
		if [ -s "$VIREO_KVM_HOST/restarts.log" ]; then
			echo "== the nested host itself failed and was restarted $(wc -l < \
				"$VIREO_KVM_HOST/restarts.log") time(s); these tests ran again in a fresh one:"
			sed 's/^/   /' "$VIREO_KVM_HOST/restarts.log"
		fi
	else
		echo "== the nested KVM test host did not start: every KVM suite counts as failed"
		touch build/meson-logs/kvm-missing.json
	fi
fi

python3 - build-san build <<'PY'
import glob, json, sys
p = f = s = 0
for d in sys.argv[1:]:
    for log in sorted(glob.glob(f"{d}/meson-logs/*.json")):
        if log.endswith("kvm-missing.json"):
            f += 1
            continue
        for line in open(log).read().splitlines():
            r = json.loads(line)["result"]
            if r in ("OK", "EXPECTEDFAIL"):
                p += 1
            elif r == "SKIP":
                s += 1
            else:
                f += 1
print(f"{p} passed, {f} failed, {s} skipped")
sys.exit(1 if f else 0)
PY
