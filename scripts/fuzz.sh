#!/usr/bin/env bash
# A short run of every fuzz target in fuzz/ (cargo-fuzz, libFuzzer), as CI does:
#   scripts/fuzz.sh            # 20 s each
#   scripts/fuzz.sh 600        # longer, by hand
# A crash stops the run with the input that caused it under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet

# cargo-fuzz passes flags only nightly compilers take (-Zsanitizer...); this
# machine has one stable toolchain, and RUSTC_BOOTSTRAP lets it take them.
export RUSTC_BOOTSTRAP=1
# No AddressSanitizer: the crate has no unsafe code for it to watch, and it
# triples the build; libFuzzer's coverage guidance and Rust's own checks
# (overflow, bounds, panics) find what there is to find.
for target in $(cargo fuzz list); do
  dict=()
  [ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
  echo "fuzz.sh: $target for ${seconds}s"
  cargo fuzz run --sanitizer none "$target" -- -max_total_time="$seconds" "${dict[@]}" 2>&1 | tail -n 3
done
