#!/usr/bin/env bash
# Runs every test: unit tests (plain and under ASan/UBSan), lint, payload guests, command-line and
# bad-input cases, and the Linux guest integration test. Installs what is missing first.
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

# The test guest is built (or found in the cache) before the clock of any test starts.
guest/build.sh >/dev/null || exit 1

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
meson test -C build-san --suite unit --print-errorlogs
meson test -C build --no-suite unit --print-errorlogs

python3 - build-san build <<'PY'
import json, sys
p = f = s = 0
for d in sys.argv[1:]:
    try:
        lines = open(f"{d}/meson-logs/testlog.json").read().splitlines()
    except OSError:
        f += 1
        continue
    for line in lines:
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
