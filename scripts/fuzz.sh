#!/usr/bin/env bash
# Runs the coverage-guided fuzz targets in fuzz/ (cargo-fuzz + libFuzzer, nightly Rust),
# one after the other, each for N minutes, and prints per target: executions, executions
# per second, coverage (edges), corpus size and whether it crashed.
#
#   scripts/fuzz.sh [--minutes N | --seconds N] [target...]   (default: 1 minute, every target)
#
# Each target starts from its committed seeds (fuzz/seeds/<target>, see
# scripts/fuzz-corpus.sh) and the corpus earlier runs grew (fuzz/corpus/<target>, not
# committed). A crash leaves its input in fuzz/artifacts/<target>/; replay it with
#   cargo +nightly fuzz run -s none <target> <that file>
# The script exits non-zero when any target crashed. FUZZ_NICE sets its niceness (10).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
targets=()
while (($#)); do
    case "$1" in
        --minutes) seconds=$(($2 * 60)); shift 2 ;;
        --minutes=*) seconds=$((${1#*=} * 60)); shift ;;
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly); libFuzzer needs it" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz missing (cargo install cargo-fuzz --locked)" >&2
    exit 2
fi
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# No AddressSanitizer: the parsers are safe Rust (no `unsafe` in src/), so it would only
# halve the executions. Debug assertions stay on, so an arithmetic overflow is a crash.
fuzz=(nice -n "${FUZZ_NICE:-10}" cargo +nightly fuzz)
flags=(-s none --debug-assertions)
"${fuzz[@]}" build "${flags[@]}"

logs="fuzz/logs"
mkdir -p "$logs"
summary=()
crashed=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log="$logs/$target.log"
    echo "== $target: $seconds s"
    status=0
    "${fuzz[@]}" run "${flags[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
    stat() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}'; }
    execs="$(stat number_of_executed_units)"
    rate="$(stat average_exec_per_sec)"
    last="$(grep -E '^#[0-9]+' "$log" | tail -1)"
    cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
    corpus="$(sed -nE 's/.* corp: ([0-9]+\/[0-9A-Za-z]+).*/\1/p' <<<"$last")"
    if ((status != 0)); then
        crashed=1
        artifact="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | cut -d' ' -f5)"
        result="CRASH ${artifact:-(see $log)}"
        grep -m3 -E "panicked at|ERROR: libFuzzer" "$log" | sed 's/^/   /' || true
    else
        result="ok"
    fi
    summary+=("$(printf '%-13s %6s s %13s execs %9s exec/s %6s edges  corpus %-12s %s' \
        "$target" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${corpus:-?}" "$result")")
done

echo
printf '%s\n' "${summary[@]}"
exit "$crashed"
