#!/usr/bin/env bash
# The packet-path fuzz test of `cargo test` (src/dns/fuzz.rs), run longer:
# random and mutated messages through the UDP fast path, the UDP full path
# and the TCP path, checking that nothing panics, no UDP answer exceeds the
# requester's limit and the fast and full paths agree.
#
#   scripts/fuzz.sh [CASES] [SEED]     (default 2,000,000 cases, seed from the clock)
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-2000000}
seed=${2:-$(date +%s%N)}
echo "fuzzing $cases cases, seed $seed (re-run a failure with: $0 $cases $seed)"
TXTFAILOVER_FUZZ_CASES=$cases TXTFAILOVER_FUZZ_SEED=$seed \
  cargo test --release --quiet --lib dns::fuzz -- --nocapture 2>&1 | grep -E 'fuzz:|panicked|FAILED|test result'
