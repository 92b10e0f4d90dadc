#!/usr/bin/env bash
# Builds a libFuzzer target with clang in build-fuzz/ and runs it for a short while
# (FUZZ_SECONDS, default 25) on its seed corpus. Usage: run.sh [TARGET] (qcow2, state, virtio, ...;
# default qcow2): the program is tests/fuzz/fuzz_TARGET, the corpus
# tests/fuzz/corpus/TARGET. Exit status 0 when no crash was found, 77 when clang's libFuzzer is
# not available, 1 otherwise. Crash inputs are left in build-fuzz/. The target's own error
# messages are hidden (-close_fd_mask=2); libFuzzer's and the sanitizers' reports are kept.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bdir="$top/build-fuzz"
secs=${FUZZ_SECONDS:-${FUZZ_DEFAULT_SECONDS:-25}}
target=${1:-qcow2}
prog=fuzz_$target

if ! command -v clang >/dev/null; then
	echo "SKIP: clang not installed"
	exit 77
fi
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
	clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
	echo "SKIP: clang has no libFuzzer (apt-get install libclang-rt-dev)"
	exit 77
fi
if [ ! -f "$bdir/build.ninja" ]; then
	CC=clang meson setup "$bdir" "$top" -Dfuzz=true -Db_lundef=false >/dev/null || exit 1
fi
exe=tests/fuzz/$prog
ninja -C "$bdir" -j2 "$exe" >/dev/null || ninja -C "$bdir" -j2 "$exe" || exit 1

# libFuzzer adds what it finds to the first corpus directory: work on a copy.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$top"/tests/fuzz/corpus/"$target"/* "$work/"
cd "$bdir" || exit 1
# Room for the largest seed (saved machine states are bigger than most inputs).
maxlen=$(find "$work" -type f -printf '%s\n' | sort -n | tail -1)
[ "${maxlen:-0}" -gt 16384 ] || maxlen=16384
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
"$bdir/$exe" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -close_fd_mask=2 \
	-rss_limit_mb=1024 -print_final_stats=1 "$work" 2>"$work/log"
status=$?
grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY)" "$work/log"
if [ $status -ne 0 ]; then
	tail -n 60 "$work/log"
	echo "FAIL: $prog found a problem (exit $status); the input is in $bdir"
	exit 1
fi
echo "ok: $prog ran ${secs}s without findings"
