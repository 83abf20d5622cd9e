#!/usr/bin/env bash
# A short run of every fuzz target in fuzz/ (cargo-fuzz, libFuzzer), as CI does:
#   scripts/fuzz.sh            # 20 s each
#   scripts/fuzz.sh 600        # longer, by hand (a release build: more inputs a second)
# A crash stops the run with the input that caused it under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
# Targets run side by side, one per core: each still gets its full time, and
# the whole run takes a fraction of running them one after another.
jobs=${FUZZ_JOBS:-$(nproc)}

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet

# cargo-fuzz passes flags only nightly compilers take (-Zsanitizer...); this
# machine has one stable toolchain, and RUSTC_BOOTSTRAP lets it take them.
export RUSTC_BOOTSTRAP=1
# No AddressSanitizer: the targets reach no unsafe code (the crate's few unsafe
# blocks are in packet-ring and TUN I/O), and it triples the build; libFuzzer's
# coverage guidance and Rust's own checks (overflow, bounds, panics) find what
# there is to find.
build=(--sanitizer none)
# A short run spends more time building than fuzzing. A debug build (the same
# overflow and debug checks, no optimisation) builds from scratch in half the
# time of a release one (90 s against 190 s on 2 cores) and runs about 6x fewer
# inputs a second; a long run by hand is worth the release build.
if ((seconds <= 60)); then
  build+=(--dev)
fi
# One build of every target first, so the runs below only run.
cargo fuzz build "${build[@]}" >/dev/null

mkdir -p fuzz/target
run() {
  local target=$1 dict=() log="fuzz/target/$1.log"
  [ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
  if cargo fuzz run "${build[@]}" "$target" -- -max_total_time="$seconds" "${dict[@]}" >"$log" 2>&1; then
    echo "fuzz.sh: $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -n 1)"
  else
    tail -n 40 "$log" >&2
    echo "fuzz.sh: $target failed; the input is under fuzz/artifacts/$target/, the whole log in $log" >&2
    return 1
  fi
}

failed=0
running=0
for target in $(cargo fuzz list); do
  if ((running >= jobs)); then
    wait -n || failed=1
    running=$((running - 1))
  fi
  run "$target" &
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
exit "$failed"
