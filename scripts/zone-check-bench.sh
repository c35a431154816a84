#!/usr/bin/env bash
# Benchmark: how long `txtfailover check` takes on large generated zones.
#
# For each size it generates four zones and times `txtfailover check` (release
# build) on each:
#   valid      — A records, one in five names with a TXT record too
#   error-last — the same with a syntax error on the last line
#   cnames     — that many CNAMEs, all valid
#   out-of-zone — that many records outside the zone (every one a problem)
# and, when installed, `nsd-checkzone` (or `kzonecheck`) on the same file as a
# peer. Checking should grow linearly with the zone's size.
#
# Usage: scripts/zone-check-bench.sh [sizes...]   (default: 2000 10000 100000)
# Environment: BIN=path to use another txtfailover binary (e.g. an older
# build), TIMEOUT=seconds allowed per run (default 120).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(2000 10000 100000)
TIMEOUT=${TIMEOUT:-120}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/release/txtfailover"
fi

PEER=""
if command -v kzonecheck >/dev/null; then PEER=kzonecheck
elif command -v nsd-checkzone >/dev/null; then PEER=nsd-checkzone
fi

cat >"$WORK/txtfailover.toml" <<EOF
[server]
listen = ["127.0.0.1:15399"]
state_dir = "state"
[[zone]]
origin = "example.com"
file = "zone"
EOF

header() {
  printf '$ORIGIN example.com.\n$TTL 3600\n'
  printf '@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n'
}

# generate KIND N > file
generate() {
  local kind=$1 n=$2
  header
  case $kind in
    valid | error-last)
      local body=$((n - 3))
      if [ "$kind" = error-last ]; then body=$((body - 1)); fi
      awk -v n="$body" 'BEGIN {
        for (i = 0; i < n; i++) {
          if (i % 5 == 4) printf "               IN TXT \"v=spf1 -all %d\"\n", i;
          else printf "h%d IN A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256;
        }
      }'
      if [ "$kind" = error-last ]; then printf 'broken IN A 999.1.1.1\n'; fi
      ;;
    cnames)
      awk -v n="$((n - 3))" 'BEGIN { for (i = 0; i < n; i++) printf "c%d IN CNAME ns1\n", i }'
      ;;
    out-of-zone)
      awk -v n="$((n - 3))" 'BEGIN { for (i = 0; i < n; i++) printf "o%d.elsewhere.org. IN A 192.0.2.1\n", i }'
      ;;
  esac
}

# seconds (3 decimals) a command takes, or ">TIMEOUT" when it is stopped;
# the command's output goes to $WORK/out.
timed() {
  local start end status=0
  start=$(date +%s%N)
  timeout "$TIMEOUT" "$@" >"$WORK/out" 2>&1 || status=$?
  end=$(date +%s%N)
  if [ "$status" = 124 ]; then
    printf '>%s' "$TIMEOUT"
  else
    awk -v ns="$((end - start))" 'BEGIN { printf "%.3f", ns / 1e9 }'
  fi
}

printf '%-12s %8s %10s %-12s %10s %8s\n' kind records check_s result "${PEER:-peer}_s" ratio
for n in "${SIZES[@]}"; do
  for kind in valid error-last cnames out-of-zone; do
    generate "$kind" "$n" >"$WORK/zone"
    t=$(timed "$BIN" check --config "$WORK/txtfailover.toml")
    if [[ $t == '>'* ]]; then result=timeout
    elif grep -q "is valid" "$WORK/out"; then result=valid
    else result=$(grep -m1 -o 'zone:[0-9]*' "$WORK/out" || echo rejected)
    fi
    p=- ratio=-
    if [ -n "$PEER" ]; then
      if [ "$PEER" = kzonecheck ]; then p=$(timed kzonecheck -o example.com "$WORK/zone")
      else p=$(timed nsd-checkzone example.com "$WORK/zone")
      fi
      if [[ $t != '>'* && $p != '>'* ]]; then
        ratio=$(awk -v a="$t" -v b="$p" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }')
      fi
    fi
    printf '%-12s %8s %10s %-12s %10s %8s\n' "$kind" "$n" "$t" "$result" "$p" "$ratio"
  done
done
