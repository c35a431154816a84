#!/usr/bin/env bash
# Build the container images from ./Dockerfile and test them for real, with no
# Docker engine and no image registry: Debian's package archive and crates.io
# are the only sources.
#
#   scripts/container-test.sh          (as root on Debian 12; .ci/run calls it)
#
# What it does:
#   1. Installs what is missing: buildah, podman, runc, mmdebstrap, iptables
#      (podman's port publishing), dig, python3 (the health endpoints).
#   2. Makes the two base images the Dockerfile names, locally:
#      debian:bookworm-slim is a minbase Debian from mmdebstrap; rust:1-bookworm
#      is that plus gcc, with this machine's Rust toolchain and cargo
#      registry (filled by `cargo fetch`) bind-mounted into the build, which
#      runs with cargo's net.offline set. The Dockerfile itself is not changed.
#   3. Builds the default image and the `minimal` target (buildah, vfs storage,
#      chroot isolation) in a temporary store, and prints their sizes.
#   4. For each image:
#      - runs it with podman as the README shows (ports published on
#        127.0.0.1, config and zones as volumes, state in a named volume) and
#        asks for the TXT record over UDP and TCP;
#      - checks that the server process runs as uid 10053, not root;
#      - runs it again with --network host, serving on a loopback port, with
#        its two Regions' checks probing two HTTP endpoints on 127.0.0.1 that
#        this script runs; stops the primary's endpoint and waits (with a
#        deadline) for the answer to move to the second Region, and for
#        `txtfailover status` inside the container to say so;
#      - stops each container with `podman stop` and requires exit status 0
#        (SIGTERM handled, not killed).
#   Every address used is on loopback or inside a container's own network
#   namespace. Containers, volumes and the image store are removed on exit.
#
# Environment: KEEP=1 keeps the temporary store (its path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
step() { printf '\n== container-test [%3ds] %s\n' "$((SECONDS - t0))" "$*"; }
die() {
  printf '\ncontainer-test: FAILED: %s\n' "$*" >&2
  exit 1
}

# --- tools -------------------------------------------------------------------
missing=()
for tool_pkg in buildah:buildah podman:podman runc:runc mmdebstrap:mmdebstrap \
  iptables:iptables dig:bind9-dnsutils python3:python3; do
  command -v "${tool_pkg%%:*}" >/dev/null || missing+=("${tool_pkg#*:}")
done
if ((${#missing[@]})); then
  ((EUID == 0)) || die "missing ${missing[*]}; install them or run as root"
  step "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
((EUID == 0)) || die "buildah and podman run here as root (chroot isolation, vfs storage)"
command -v cargo >/dev/null || die "cargo is needed (its toolchain is mounted into the build)"

# --- temporary store and cleanup ---------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/txtfailover-container.XXXXXX")
store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
buildah=(buildah "${store[@]}")
# runc: crun refuses hosts with a hybrid cgroup v1/v2 hierarchy.
podman=(podman "${store[@]}" --runtime runc)
# podman asks for RLIMIT_NOFILE 1048576 by default, which fails where the hard
# limit is lower and the process may not raise it: ask for what we have.
hard_nofile=$(ulimit -Hn)
[[ $hard_nofile == unlimited ]] && hard_nofile=65536
((hard_nofile > 65536)) && hard_nofile=65536
hard_nproc=$(ulimit -Hu)
[[ $hard_nproc == unlimited ]] && hard_nproc=4096
((hard_nproc > 4096)) && hard_nproc=4096
limits=(--ulimit "nofile=$hard_nofile:$hard_nofile" --ulimit "nproc=$hard_nproc:$hard_nproc")

containers=()
endpoint_pids=()
# podman's default network is a bridge it creates on first use; remove it
# afterwards if this run created it.
bridge_before=0
if command -v ip >/dev/null && ip link show cni-podman0 >/dev/null 2>&1; then bridge_before=1; fi
cleanup() {
  local status=$? c p
  for p in "${endpoint_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for c in "${containers[@]}"; do
    if ((status != 0)); then
      echo "--- podman logs $c (last 20 lines)" >&2
      "${podman[@]}" logs "$c" 2>&1 | tail -n 20 >&2 || true
    fi
    "${podman[@]}" rm -f -v "$c" >/dev/null 2>&1 || true
  done
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "kept: $work (podman ${store[*]} --runtime runc images)"
  else
    "${podman[@]}" volume prune -f >/dev/null 2>&1 || true
    "${buildah[@]}" rm --all >/dev/null 2>&1 || true
    "${podman[@]}" rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$work" 2>/dev/null || { chmod -R u+w "$work" && rm -rf "$work"; } || true
  fi
  if ((!bridge_before)) && command -v ip >/dev/null && ip link show cni-podman0 >/dev/null 2>&1; then
    ip link delete cni-podman0 || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- base images -------------------------------------------------------------
step "debian:bookworm-slim: a minbase Debian from mmdebstrap, without docs, man pages, locales"
# Made like Debian's official slim image, so that the sizes measured here are
# close to what a normal `docker build` gives. The same dpkg path exclusions:
excludes=()
for p in '/usr/share/doc/*' '/usr/share/man/*' '/usr/share/locale/*' '/usr/share/info/*' \
  '/usr/share/groff/*' '/usr/share/lintian/*'; do
  excludes+=(--dpkgopt="path-exclude=$p")
done
# merged-usr: /usr merged by symlinks, as in Debian's images, instead of the
# usrmerge package and the 50 MB of perl it pulls in. No apt package caches
# after `apt-get update`, as Debian's images configure apt.
mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  "${excludes[@]}" --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --aptopt='Dir::Cache::pkgcache ""' --aptopt='Dir::Cache::srcpkgcache ""' \
  bookworm "$work/slim.tar" >"$work/mmdebstrap.log" 2>&1 || {
  cat "$work/mmdebstrap.log" >&2
  die "mmdebstrap failed (it needs Debian's package archive)"
}
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
"${podman[@]}" import --quiet --change "ENV PATH=$path" \
  "$work/slim.tar" docker.io/library/debian:bookworm-slim >/dev/null
rm -f "$work/slim.tar"

step "rust:1-bookworm: the slim base plus gcc; the toolchain is bind-mounted at build time"
c=$("${buildah[@]}" from --pull=never docker.io/library/debian:bookworm-slim)
"${buildah[@]}" run --isolation chroot "$c" -- sh -c \
  'apt-get update -qq \
   && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        ca-certificates gcc libc6-dev >/dev/null \
   && rm -rf /var/lib/apt/lists/* \
   && mkdir -p /usr/local/rust /usr/local/cargo/registry' || die "installing gcc in the build base failed"
"${buildah[@]}" config --env "PATH=/usr/local/cargo/bin:/usr/local/rust/bin:$path" \
  --env CARGO_HOME=/usr/local/cargo "$c"
"${buildah[@]}" commit --quiet --rm "$c" docker.io/library/rust:1-bookworm >/dev/null

# --- images ------------------------------------------------------------------
step "crates into this machine's cargo registry (cargo fetch)"
cargo fetch --locked --quiet
registry="${CARGO_HOME:-$HOME/.cargo}/registry"
[[ -d $registry ]] || die "no cargo registry at $registry"
sysroot=$(rustc --print sysroot)
printf '[net]\noffline = true\n' >"$work/cargo-offline.toml"

build=("${buildah[@]}" bud --quiet --pull=never --isolation chroot --layers
  -v "$sysroot:/usr/local/rust:ro"
  -v "$registry:/usr/local/cargo/registry"
  -v "$work/cargo-offline.toml:/usr/local/cargo/config.toml:ro")

step "buildah bud: the default image (Debian slim)"
t_build=$SECONDS
"${build[@]}" -t localhost/txtfailover:test . >/dev/null || die "building the default image failed"
build_default=$((SECONDS - t_build))
step "buildah bud --target minimal (reuses the compiled build stage)"
t_build=$SECONDS
"${build[@]}" --target minimal -t localhost/txtfailover:test-minimal . >/dev/null ||
  die "building the minimal image failed"
build_minimal=$((SECONDS - t_build))
size() { "${podman[@]}" image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.1f MB", $1 / 1e6 }'; }
size_default=$(size localhost/txtfailover:test)
size_minimal=$(size localhost/txtfailover:test-minimal)
echo "image sizes: default $size_default, minimal $size_minimal"

# --- helpers -----------------------------------------------------------------
# A port free for both TCP and UDP on 127.0.0.1.
free_port() {
  python3 - <<'EOF'
import socket
while True:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break
EOF
}

# wait_txt PORT WANT SECONDS [dig options]: poll until the TXT answer is WANT.
wait_txt() {
  local port=$1 want=$2 limit=$3 got=""
  shift 3
  local deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    got=$(dig @127.0.0.1 -p "$port" desktop.example.com TXT +short +time=1 +tries=1 "$@" 2>/dev/null) || got=""
    [[ $got == "$want" ]] && return 0
    sleep 0.2
  done
  die "dig ${*:-(UDP)} on 127.0.0.1:$port: wanted $want within ${limit}s, last answer: '${got:-none}'"
}

# run_ctr NAME ARGS...: podman run -d, remembered for cleanup.
run_ctr() {
  local name=$1
  shift
  containers+=("$name")
  "${podman[@]}" run -d --name "$name" "${limits[@]}" "$@" >/dev/null || die "podman run $name failed"
}

# not_root NAME: the server process and `id -u` (where the image has id) are 10053.
not_root() {
  local name=$1 pid uids
  pid=$("${podman[@]}" inspect --format '{{.State.Pid}}' "$name")
  uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
  [[ $uids == "10053 10053 10053 10053" ]] || die "$name: server runs with uids '$uids', not 10053"
  echo "$name: server process uid 10053 (real, effective, saved, fs)"
  if "${podman[@]}" exec "$name" /usr/bin/id -u >"$work/id" 2>/dev/null; then
    [[ $(<"$work/id") == 10053 ]] || die "$name: podman exec id -u says $(<"$work/id")"
    echo "$name: podman exec id -u: 10053"
  fi
}

# stop_clean NAME: SIGTERM via podman stop; the server must exit 0 by itself.
stop_clean() {
  local name=$1 code
  "${podman[@]}" stop -t 10 "$name" >/dev/null || die "podman stop $name failed"
  code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
  [[ $code == 0 ]] || die "$name exited with status $code after SIGTERM (137: it had to be killed)"
  echo "$name: podman stop -> exit status 0"
}

mkdir -p "$work/zones"
cp zones/example.com.zone "$work/zones/"

# Published ports: the config the README shows for the image. The two checks
# are external (pushed through the admin API, never probed), so nothing leaves
# the container; with no report yet they count as healthy.
mkdir -p "$work/published"
cat >"$work/published/txtfailover.toml" <<'EOF'
[server]
listen = ["0.0.0.0:5353"]
state_dir = "/var/lib/txtfailover"

[[zone]]
origin = "example.com"
file = "../zones/example.com.zone"

[[check]]
name = "pdx"
kind = "external"

[[check]]
name = "iad"
kind = "external"

[[alias]]
name = "desktop.example.com"
targets = [
  { region = "us-west-2", connection_id = "PDXexampleConnId0001", checks = ["pdx"] },
  { region = "us-east-1", connection_id = "IADexampleConnId0002", checks = ["iad"] },
]
EOF

test_published() {
  local image=$1 name=$2 port
  port=$(free_port)
  step "$image: podman run -p 127.0.0.1:$port:5353/udp+tcp, dig"
  run_ctr "$name" -p "127.0.0.1:$port:5353/udp" -p "127.0.0.1:$port:5353/tcp" \
    -v "$work/published:/etc/txtfailover/config:ro" \
    -v "$work/zones:/etc/txtfailover/zones:ro" \
    -v "$name-state:/var/lib/txtfailover" "$image"
  wait_txt "$port" '"PDXexampleConnId0001"' 30
  echo "$name: dig UDP: $(dig @127.0.0.1 -p "$port" desktop.example.com TXT +short)"
  wait_txt "$port" '"PDXexampleConnId0001"' 10 +tcp
  echo "$name: dig TCP: $(dig @127.0.0.1 -p "$port" desktop.example.com TXT +short +tcp)"
  not_root "$name"
  # Serials persist in the named volume, which the non-root user can write.
  "${podman[@]}" exec "$name" txtfailover status >/dev/null ||
    die "$name: txtfailover status failed inside the container"
  stop_clean "$name"
}

# Start an HTTP endpoint on 127.0.0.1:PORT serving /ping = "healthy"; prints nothing.
start_endpoint() {
  local port=$1 dir="$work/endpoint-$1" deadline
  mkdir -p "$dir"
  echo healthy >"$dir/ping"
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$dir" >"$dir.log" 2>&1 &
  endpoint_pids+=($!)
  deadline=$((SECONDS + 10))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    ((SECONDS < deadline)) || die "endpoint on 127.0.0.1:$port did not start"
    sleep 0.1
  done
}

test_failover() {
  local image=$1 name=$2 dns admin pdx iad pdx_pid out
  dns=$(free_port)
  admin=$(free_port)
  pdx=$(free_port)
  iad=$(free_port)
  step "$image: --network host, DNS 127.0.0.1:$dns, checks on 127.0.0.1:$pdx and :$iad; failover"
  start_endpoint "$pdx"
  pdx_pid=${endpoint_pids[-1]}
  start_endpoint "$iad"
  mkdir -p "$work/$name"
  cat >"$work/$name/txtfailover.toml" <<EOF
[server]
listen = ["127.0.0.1:$dns"]
state_dir = "/var/lib/txtfailover"

[admin]
listen = "127.0.0.1:$admin"

[rrl]
exempt = ["127.0.0.0/8"]

[[zone]]
origin = "example.com"
file = "../zones/example.com.zone"

[[check]]
name = "pdx"
kind = "http"
url = "http://127.0.0.1:$pdx/ping"
interval = "200ms"
timeout = "100ms"
attempts = 1
fall = 2
rise = 1
expect_body = "healthy"

[[check]]
name = "iad"
kind = "http"
url = "http://127.0.0.1:$iad/ping"
interval = "200ms"
timeout = "100ms"
attempts = 1
fall = 2
rise = 1
expect_body = "healthy"

[[alias]]
name = "desktop.example.com"
targets = [
  { region = "us-west-2", connection_id = "PDXexampleConnId0001", checks = ["pdx"] },
  { region = "us-east-1", connection_id = "IADexampleConnId0002", checks = ["iad"] },
]
EOF
  run_ctr "$name" --network host \
    -v "$work/$name:/etc/txtfailover/config:ro" \
    -v "$work/zones:/etc/txtfailover/zones:ro" \
    -v "$name-state:/var/lib/txtfailover" "$image"
  wait_txt "$dns" '"PDXexampleConnId0001"' 30
  echo "$name: answer with both endpoints up: PDXexampleConnId0001 (us-west-2)"
  not_root "$name"

  kill "$pdx_pid"
  wait "$pdx_pid" 2>/dev/null || true
  echo "$name: stopped the us-west-2 endpoint (127.0.0.1:$pdx)"
  wait_txt "$dns" '"IADexampleConnId0002"' 20
  wait_txt "$dns" '"IADexampleConnId0002"' 5 +tcp
  echo "$name: answer over UDP and TCP moved to IADexampleConnId0002 (us-east-1)"

  out=$("${podman[@]}" exec "$name" txtfailover status --admin "http://127.0.0.1:$admin") ||
    die "$name: txtfailover status failed inside the container"
  printf '    %s\n' "${out//$'\n'/$'\n    '}"
  grep -q 'us-east-1' <<<"$out" || die "$name: txtfailover status does not name us-east-1"
  out=$("${podman[@]}" exec "$name" txtfailover why desktop.example.com \
    --admin "http://127.0.0.1:$admin") || die "$name: txtfailover why failed inside the container"
  echo "$out" | head -n 2 | sed 's/^/    /'
  head -n 1 <<<"$out" | grep -q 'answers IADexampleConnId0002 (us-east-1)' ||
    die "$name: txtfailover why does not say the answer is us-east-1"
  stop_clean "$name"
}

test_published localhost/txtfailover:test ctr-test-published
test_failover localhost/txtfailover:test ctr-test-failover
test_published localhost/txtfailover:test-minimal ctr-test-minimal-published
test_failover localhost/txtfailover:test-minimal ctr-test-minimal-failover

step "passed: images built in ${build_default}s (default) and ${build_minimal}s (minimal target),
  sizes $size_default and $size_minimal; total $((SECONDS - t0))s"
