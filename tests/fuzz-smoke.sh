#!/usr/bin/env bash
# The fuzz targets of fuzz/ (docs/security.md, "Fuzzing").
#
#   bash tests/fuzz-smoke.sh             # CI: every target's checks on the committed
#                                        # seeds (fuzz/seeds/*), plain cargo test, no libFuzzer
#   bash tests/fuzz-smoke.sh --fuzz 90   # libFuzzer: every target for 90 s each, then the
#                                        # figures docs/security.md records
#   bash tests/fuzz-smoke.sh --fuzz 90 outbox inbox   # only some targets
#
# Why CI replays instead of fuzzing: installing cargo-fuzz (~1.5 min) and
# building the instrumented targets (~3 min on 2 cores) cost more than CI's
# budget, while the replay reuses the main build and takes seconds. The
# replay runs exactly the functions the fuzz binaries call (fuzz/src/lib.rs),
# so a seed that a change breaks fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(code envelope outbox inbox age_header card)
# The fuzz crate takes the main crate's lockfile (and adds libFuzzer to it):
# the same versions as the tested build, never a stale second lockfile.
cp Cargo.lock fuzz/Cargo.lock

if [ "${1:-}" != "--fuzz" ]; then
  # The main target directory: the dependencies are already built there.
  out=$(mktemp)
  if CARGO_TARGET_DIR="$PWD/target" cargo test --manifest-path fuzz/Cargo.toml \
      --no-default-features -- --nocapture >"$out" 2>&1; then
    grep -E "replayed|accepted" "$out" || true
    rm -f "$out"
  else
    cat "$out"
    rm -f "$out"
    exit 1
  fi
  echo "fuzz seed replay: OK"
  exit 0
fi

seconds=${2:-60}
shift 2 || shift $#
[ "$#" -gt 0 ] && targets=("$@")
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz builds with AddressSanitizer (-Zsanitizer=address), a nightly
# flag; RUSTC_BOOTSTRAP lets the stable compiler accept it. Cargo caches the
# compiler's answers: drop a cache written without the variable.
export RUSTC_BOOTSTRAP=1
rm -f fuzz/target/.rustc_info.json
cargo fuzz build
summary=()
status=0
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  log=$(mktemp)
  start=$(date +%s)
  # New inputs go to corpus/ (ignored by git); the seeds are only read.
  # -timeout: an input taking more than 10 s counts as a crash (a hang).
  if cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    result="no crash"
  else
    result="CRASH, see fuzz/artifacts/$target/"
    status=1
    tail -40 "$log"
  fi
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
  summary+=("$(printf '| `%s` | %s s | %s | %s | %s | %s | %s |' \
    "$target" "$elapsed" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corpus" "$result")")
  rm -f "$log"
done
echo
echo "| target | time | executions | exec/s | coverage (edges) | corpus | result |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${summary[@]}"
exit "$status"
