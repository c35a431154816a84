#!/usr/bin/env bash
# Benchmark: txtfailover vs Knot serving the same zone, in the same run.
#
# Each server runs pinned to CPU 0, dnsperf to CPU 1, for a bounded time per
# query kind, on loopback only. Prints queries per second and server CPU
# microseconds per query (utime+stime from /proc over queries answered), and
# txtfailover's ratio to Knot.
#
# Response rate limiting is on by default, and dnsperf's queries all come from
# loopback, so RRL=... picks what is measured:
#   exempt  (default) loopback is in [rrl] exempt: the answer path as such;
#   checked every response goes through the limiter, at a rate (1,000,000/s)
#           no flow reaches: what the limiter costs an answered query;
#   active  the default 200/s, not exempt, against Knot with mod-rrl at the
#           same rate and slip: most responses are dropped or slipped, so CPU
#           is per query sent rather than per query answered.
#
# Needs: dnsperf, knot (Debian packages), taskset, dig. Usage:
#   [RRL=exempt|checked|active] scripts/bench.sh [seconds-per-run, default 10]
set -euo pipefail

SECONDS_PER_RUN=${1:-10}
RRL=${RRL:-exempt}
KNOT_RRL=''
KNOT_RRL_USE=''
case "$RRL" in
  exempt) RRL_TOML='[rrl]
exempt = ["127.0.0.0/8"]' ;;
  checked) RRL_TOML='[rrl]
responses_per_second = 1000000' ;;
  active) RRL_TOML=''
    KNOT_RRL='mod-rrl:
  - id: default
    rate-limit: 200
    slip: 2'
    KNOT_RRL_USE='    global-module: mod-rrl/default' ;;
  *) echo "bench: RRL must be exempt, checked or active" >&2; exit 1 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in dnsperf knotd taskset dig; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install dnsperf knot util-linux bind9-dnsutils)" >&2; exit 1; }
done

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/txtfailover"

PORT_TF=15353
PORT_KNOT=15354
ID=PDXexampleConnId0001

mkdir -p "$WORK/tf/zones" "$WORK/knot/run" "$WORK/knot/db"
ZONE='$ORIGIN example.com.
$TTL 3600
@    IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 60
@    IN NS  ns1.example.com.
ns1  IN A   127.0.0.1
www  IN A   192.0.2.10'
printf '%s\n' "$ZONE" > "$WORK/tf/zones/example.com.zone"
printf '%s\ndesktop 30 IN TXT "%s"\n' "$ZONE" "$ID" > "$WORK/knot/example.com.zone"

cat > "$WORK/tf/txtfailover.toml" <<EOF
[server]
listen = ["127.0.0.1:$PORT_TF"]
state_dir = "state"
udp_workers = 1

[admin]
listen = "127.0.0.1:18053"

$RRL_TOML

[[zone]]
origin = "example.com"
file = "zones/example.com.zone"

[[alias]]
name = "desktop.example.com"
ttl = 30
targets = [ { region = "us-west-2", connection_id = "$ID" } ]
EOF

cat > "$WORK/knot/knot.conf" <<EOF
server:
    rundir: "$WORK/knot/run"
    listen: 127.0.0.1@$PORT_KNOT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$WORK/knot/db"
log:
  - target: stderr
    any: warning
$KNOT_RRL
template:
  - id: default
    storage: "$WORK/knot"
    journal-content: none
$KNOT_RRL_USE
zone:
  - domain: example.com
    file: "example.com.zone"
EOF

echo "desktop.example.com TXT" > "$WORK/txt.queries"
for i in $(seq 1 20000); do echo "nx$i.example.com A"; done > "$WORK/nx.queries"

wait_ready() { # port
  for _ in $(seq 1 100); do
    if [ "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$1" desktop.example.com TXT 2>/dev/null)" = "\"$ID\"" ]; then return 0; fi
    sleep 0.1
  done
  echo "bench: server on port $1 did not answer" >&2; exit 1
}

cpu_ticks() { # pid -> utime+stime in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

TICK=$(getconf CLK_TCK)
declare -A QPS CPU

measure() { # name pid port kind
  local name=$1 pid=$2 port=$3 kind=$4 before after out done_
  before=$(cpu_ticks "$pid")
  # Dropped answers hold dnsperf's slots until its timeout: a short timeout,
  # and many slots, to keep the server busy anyway.
  local timeout=5 outstanding=200
  [ "$RRL" = active ] && timeout=0.2 outstanding=10000
  out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/$kind.queries" -l "$SECONDS_PER_RUN" -c 8 -q "$outstanding" -T 1 -t "$timeout" 2>&1)
  after=$(cpu_ticks "$pid")
  if [ "$RRL" = active ]; then
    done_=$(echo "$out" | awk '/Queries sent:/ {print $3}')
  else
    done_=$(echo "$out" | awk '/Queries completed:/ {print $3}')
  fi
  QPS[$name.$kind]=$(echo "$out" | awk '/Queries per second:/ {printf "%d", $4}')
  CPU[$name.$kind]=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$done_" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
  lost=$(echo "$out" | awk '/Queries lost:/ {print $3}')
  echo "  $name $kind: sent $(echo "$out" | awk '/Queries sent:/ {print $3}'), completed $(echo "$out" | awk '/Queries completed:/ {print $3}'), lost $lost, ${QPS[$name.$kind]} qps, ${CPU[$name.$kind]} us/query" >&2
}

echo "running txtfailover ($SECONDS_PER_RUN s per query kind, RRL=$RRL)" >&2
(cd "$WORK/tf" && RUST_LOG=warn exec taskset -c 0 "$BIN" serve --config txtfailover.toml 2>"$WORK/tf.log") &
# The subshell execs taskset, which execs the server: $! is the server itself
# (a pgrep by command line could pick another instance, e.g. a test's).
TF_PID=$!
PIDS+=("$TF_PID")
wait_ready $PORT_TF
measure txtfailover "$TF_PID" $PORT_TF txt
measure txtfailover "$TF_PID" $PORT_TF nx

echo "running knot ($(knotd --version | head -1))" >&2
taskset -c 0 knotd -c "$WORK/knot/knot.conf" 2>"$WORK/knot.log" &
PIDS+=($!)
KNOT_PID=$!
wait_ready $PORT_KNOT
measure knot "$KNOT_PID" $PORT_KNOT txt
measure knot "$KNOT_PID" $PORT_KNOT nx

printf '\n%-14s %-9s %12s %14s\n' server query qps "cpu_us/query"
for s in txtfailover knot; do
  for k in txt nx; do
    printf '%-14s %-9s %12s %14s\n' "$s" "$k" "${QPS[$s.$k]}" "${CPU[$s.$k]}"
  done
done
echo
for k in txt nx; do
  awk -v a="${CPU[txtfailover.$k]}" -v b="${CPU[knot.$k]}" -v k="$k" \
    'BEGIN { printf "ratio txtfailover/knot cpu per query (%s): %.2f  (<= 1.00 means at or below Knot)\n", k, a / b }'
done
