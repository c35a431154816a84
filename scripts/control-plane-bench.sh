#!/usr/bin/env bash
# Control-plane benchmark: how many probe results a second the engine takes in,
# what that costs, and how long a failed probe takes to move an answer, with
# many checks. Loopback only.
#
# Generates a config with CHECKS TCP checks (interval 1s, timeout 500ms,
# explicit fall and rise; `attempts = 1` when the binary knows that key) spread
# over a few local accept-and-close listeners, and CHECKS/2 aliases of two
# targets (one check each) in one zone. Runs the release binary, waits for
# /readyz, lets the probe phases spread, then over SECONDS measures:
#   rounds/s      probe results the engine processed (sum over checks of
#                 txtfailover_probe_duration_seconds_count), per second;
#   ratio         rounds/s over CHECKS/interval: 1.00 = every interval held,
#                 lower = intervals stretched;
#   process_cpu   the server's utime+stime over the window, % of one core;
#   engine_cpu    txtfailover_engine_busy_seconds_total over the window, % of
#                 one core ("n/a" when the binary has no such metric);
#   late          txtfailover_probe_rounds_late_total, when present;
#   rss           the server's resident memory at the end (and its peak).
# Then it closes the listener behind the primaries of a few aliases and polls
# their TXT answers over UDP until each moves to the standby. The F-th
# refused connection per check (F = fall) is seen on a raw socket (needs
# CAP_NET_RAW), so probe-to-answer = answer change - F-th failed probe; without
# the raw socket only stop-to-answer and its excess over fall x interval.
#
# The listeners reset each accepted connection (SO_LINGER 0) a second after
# accepting it: no TIME_WAIT is left behind at 10,000 connects a second, and
# the prober has long seen its connect succeed (an immediate reset can beat it
# to the result and fail the probe). The table shows the kernel's listen-queue
# overflows and TIME_WAIT count, so a listener that does not keep up is seen.
#
# Needs: python3, cargo. Usage:
#   [FALL=3] [RISE=2] [LISTENERS=4] [VICTIMS=5] [WARMUP=5] [MAX_WAIT=600] \
#     scripts/control-plane-bench.sh [CHECKS, default 10000] [SECONDS, default 30]
set -euo pipefail

CHECKS=${1:-10000}
WINDOW=${2:-30}
case "$CHECKS$WINDOW" in *[!0-9]*) echo "usage: $0 [CHECKS] [SECONDS]" >&2; exit 1 ;; esac
if [ "$CHECKS" -lt 2 ] || [ "$WINDOW" -lt 1 ]; then
  echo "control-plane-bench: CHECKS must be at least 2 and SECONDS at least 1" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "control-plane-bench: python3 is missing" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
cleanup() {
  # The Python driver records every process it starts; stop those (and only
  # those) if it did not get to do so itself.
  if [ -f "$WORK/pids" ]; then
    while read -r p; do kill "$p" 2>/dev/null || true; done < "$WORK/pids"
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# BIN=path/to/txtfailover measures another build (e.g. an older commit) the same way.
if [[ -z "${BIN:-}" ]]; then
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/release/txtfailover"
fi

cat > "$WORK/bench.py" <<'PY'
import collections
import ctypes
import os
import re
import resource
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

INTERVAL = 1.0  # seconds; the config says "1s"
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """Children end when the driver does, however it ends."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


HOLD = 1.0  # seconds an accepted connection is kept before the reset


def endpoint(addr, lifetime):
    """A listener that accepts connections as fast as it can and resets each
    one HOLD seconds later.

    The reset (SO_LINGER 0, inherited by accepted sockets) leaves no TIME_WAIT
    on either side. It waits because a reset that reaches the prober before it
    has looked at its connect's result turns the connect into ECONNRESET: a
    failed probe. SIGALRM bounds the listener's life."""
    die_with_parent()
    signal.alarm(lifetime)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cap = max(64, hard - 64)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.bind((addr, 0))
    s.listen(65535)  # capped by net.core.somaxconn
    print(s.getsockname()[1], flush=True)
    accept, close, now = s._accept, os.close, time.monotonic
    held = collections.deque()
    while True:
        try:
            fd, _ = accept()
        except OSError:  # out of descriptors: give back the oldest
            if held:
                close(held.popleft()[1])
            continue
        t = now()
        held.append((t, fd))
        while held and (t - held[0][0] > HOLD or len(held) > cap):
            close(held.popleft()[1])


if len(sys.argv) > 1 and sys.argv[1] == "endpoint":
    endpoint(sys.argv[2], int(sys.argv[3]))
    sys.exit(0)

BIN, WORK = sys.argv[1], sys.argv[2]
CHECKS, WINDOW = int(sys.argv[3]), int(sys.argv[4])
FALL = int(os.environ.get("FALL", "3"))
RISE = int(os.environ.get("RISE", "2"))
LISTENERS = max(1, int(os.environ.get("LISTENERS", "4")))
WARMUP = float(os.environ.get("WARMUP", "5"))
ALIASES = CHECKS // 2
VICTIMS = max(1, min(int(os.environ.get("VICTIMS", "5")), ALIASES, 200))
READY_DEADLINE = 180.0
MAX_WAIT = float(os.environ.get("MAX_WAIT", "600"))  # seconds for the failover
HZ = os.sysconf("SC_CLK_TCK")
STARTED = []  # Popen objects to stop at the end


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def record_pid(pid):
    with open(os.path.join(WORK, "pids"), "a") as f:
        f.write(f"{pid}\n")


def free_port(after=None):
    """A port below the ephemeral range (so no probe's source port can hold
    it when the server binds), free for TCP and UDP on 127.0.0.1."""
    first = after + 1 if after else 21000 + os.getpid() % 5000
    for port in range(first, 32000):
        try:
            with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind(("127.0.0.1", port))
                u.bind(("127.0.0.1", port))
                return port
        except OSError:
            continue
    sys.exit("control-plane-bench: no free port")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    return 0


def kernel_counters():
    """TCP counters of this network namespace (loopback traffic included)."""
    out = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        with open(path) as f:
            lines = f.read().splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            names, values = head.split()[1:], vals.split()[1:]
            prefix = head.split(":")[0]
            for n, v in zip(names, values):
                out[f"{prefix}.{n}"] = int(v)
    with open("/proc/net/sockstat") as f:
        m = re.search(r"TCP: .* tw (\d+)", f.read())
        out["time_wait"] = int(m.group(1)) if m else 0
    return out


def machine_ticks():
    """(busy, stolen, total) clock ticks of all CPUs, from /proc/stat; stolen
    is time a hypervisor gave to other guests."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (
            int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq, steal,
            user + nice + system + idle + iowait + irq + softirq + steal)


def http_get(url, timeout=60):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def metric_sums(text, names):
    """Sum of every sample of each metric name (any labels); None if absent."""
    sums = {n: None for n in names}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)", line)
        if m and m.group(1) in sums:
            sums[m.group(1)] = (sums[m.group(1)] or 0.0) + float(m.group(3))
    return sums


PROBES = "txtfailover_probe_duration_seconds_count"
BUSY = "txtfailover_engine_busy_seconds_total"
LATE = "txtfailover_probe_rounds_late_total"


def scrape(admin):
    t = time.monotonic()
    status, body = http_get(f"http://127.0.0.1:{admin}/metrics")
    took = time.monotonic() - t
    if status != 200:
        sys.exit(f"control-plane-bench: /metrics answered {status}")
    return t + took / 2, took, len(body), metric_sums(body.decode(), [PROBES, BUSY, LATE])


def query(name):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + wire + b"\x00\x10\x00\x01"


def answer(sock, port, q, ids):
    """Which of `ids` the TXT answer carries (None on timeout or neither)."""
    sock.sendto(q, ("127.0.0.1", port))
    try:
        reply = sock.recv(4096)
    except socket.timeout:
        return None
    for i in ids:
        if bytes([len(i)]) + i.encode() in reply[len(q):]:
            return i
    return None


def supports_attempts():
    """Does this binary know the check key `attempts`? Its `check` says."""
    d = os.path.join(WORK, "attempts-probe")
    os.makedirs(d)
    with open(os.path.join(d, "z.zone"), "w") as f:
        f.write(ZONE)
    with open(os.path.join(d, "t.toml"), "w") as f:
        f.write('[[zone]]\norigin = "example.com"\nfile = "z.zone"\n\n'
                '[[check]]\nname = "c"\nkind = "tcp"\naddress = "127.0.0.1:9"\n'
                'interval = "1s"\ntimeout = "500ms"\nattempts = 1\n')
    r = subprocess.run([BIN, "check", "--config", os.path.join(d, "t.toml")],
                       capture_output=True, text=True, timeout=60)
    if r.returncode == 0:
        return True
    if "attempts" in r.stderr:
        return False
    sys.exit(f"control-plane-bench: `check` of a one-check config failed:\n{r.stderr}")


ZONE = """$ORIGIN example.com.
$TTL 3600
@    IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 60
@    IN NS  ns1.example.com.
ns1  IN A   127.0.0.1
"""


class Victims:
    """The listener behind the first VICTIMS aliases' primaries: one socket
    per alias on 127.0.9.k, so a raw socket can tell their probes apart."""

    def __init__(self, n):
        self.socks = []
        for k in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.bind((f"127.0.9.{k + 1}", 0))
            s.listen(1024)
            s.setblocking(False)
            self.socks.append(s)
        self.addrs = [s.getsockname() for s in self.socks]
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        held = collections.deque()
        while self.running:
            ready, _, _ = select.select(self.socks, [], [], 0.05)
            for s in ready:
                try:
                    conn, _ = s.accept()
                    held.append((time.monotonic(), conn))
                except OSError:
                    pass
            while held and time.monotonic() - held[0][0] > HOLD:
                held.popleft()[1].close()
        for _, conn in held:
            conn.close()

    def stop(self):
        """Closes every socket: from now on connects are refused."""
        self.running = False
        self.thread.join(timeout=5)
        for s in self.socks:
            s.close()


class Sniffer:
    """Kernel-timestamped SYNs to 127.0.9.0/24 (the victims), from a raw
    socket with a BPF filter so no other packet reaches Python."""

    SO_ATTACH_FILTER = 26
    SO_TIMESTAMPNS = 35

    def __init__(self):
        self.syns = {}  # victim address -> [wall-clock times]
        self.error = None
        try:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        except OSError as e:
            self.error = str(e)
            return
        prog = [
            (0x20, 0, 0, 16),          # ld [16]: destination address
            (0x54, 0, 0, 0xFFFFFF00),  # and #0xffffff00
            (0x15, 0, 1, 0x7F000900),  # jeq 127.0.9.0
            (0x06, 0, 0, 128),         # ret: keep headers
            (0x06, 0, 0, 0),           # ret: drop
        ]
        self.filter = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
        fprog = struct.pack("HL", len(prog), ctypes.addressof(self.filter))
        self.sock.setsockopt(socket.SOL_SOCKET, self.SO_ATTACH_FILTER, fprog)
        self.sock.setsockopt(socket.SOL_SOCKET, self.SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.1)
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                data, anc, _, _ = self.sock.recvmsg(256, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 20:
                continue
            ihl = (data[0] & 0x0F) * 4
            if data[16] != 127 or data[17] != 0 or data[18] != 9 or len(data) < ihl + 14:
                continue
            flags = data[ihl + 13]
            if flags & 0x02 and not flags & 0x10:  # SYN without ACK: a new probe
                at = time.time()
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == self.SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", value[:16])
                        at = sec + nsec / 1e9
                dst = f"127.0.9.{data[19]}"
                self.syns.setdefault(dst, []).append(at)

    def close(self):
        if self.error is None:
            self.running = False
            self.thread.join(timeout=2)
            self.sock.close()


def start_endpoints(lifetime):
    ports = []
    for k in range(LISTENERS):
        addr = f"127.0.0.{11 + k}"
        p = subprocess.Popen([sys.executable, __file__, "endpoint", addr, str(lifetime)],
                             stdout=subprocess.PIPE, text=True)
        STARTED.append(p)
        record_pid(p.pid)
        line = p.stdout.readline().strip()
        if not line.isdigit():
            sys.exit(f"control-plane-bench: listener on {addr} did not start")
        ports.append((addr, int(line)))
    return ports


def write_config(dns, admin, endpoints, victims, attempts):
    with open(os.path.join(WORK, "example.com.zone"), "w") as f:
        f.write(ZONE)
    out = [f"""[server]
listen = ["127.0.0.1:{dns}"]
state_dir = "state"
udp_workers = 1

[admin]
listen = "127.0.0.1:{admin}"

[rrl]
exempt = ["127.0.0.0/8"]

[[zone]]
origin = "example.com"
file = "example.com.zone"
"""]
    extra = "attempts = 1\n" if attempts else ""
    for c in range(CHECKS):
        if c % 2 == 0 and c // 2 < len(victims.addrs):
            host, port = victims.addrs[c // 2]
        else:
            host, port = endpoints[c % len(endpoints)]
        out.append(f'[[check]]\nname = "c{c}"\nkind = "tcp"\naddress = "{host}:{port}"\n'
                   f'interval = "1s"\ntimeout = "500ms"\nfall = {FALL}\nrise = {RISE}\n{extra}\n')
    for a in range(ALIASES):
        out.append(f'[[alias]]\nname = "a{a}.example.com"\ntargets = [\n'
                   f'  {{ region = "us-west-2", connection_id = "P{a}", checks = ["c{2 * a}"] }},\n'
                   f'  {{ region = "us-east-1", connection_id = "S{a}", checks = ["c{2 * a + 1}"] }},\n]\n\n')
    path = os.path.join(WORK, "txtfailover.toml")
    with open(path, "w") as f:
        f.write("".join(out))
    return path


def main():
    attempts = supports_attempts()
    dns = free_port()
    admin = free_port(after=dns)
    # Listeners outlive any bounded run: warm-up, window, failover, slack.
    lifetime = int(READY_DEADLINE + WARMUP + WINDOW + MAX_WAIT + 300)
    endpoints = start_endpoints(lifetime)
    victims = Victims(VICTIMS)
    cfg = write_config(dns, admin, endpoints, victims, attempts)
    log(f"config: {CHECKS} tcp checks over {LISTENERS} listeners "
        f"({', '.join(f'{a}:{p}' for a, p in endpoints)}), {ALIASES} aliases, "
        f"fall={FALL} rise={RISE} attempts={'1' if attempts else 'n/a (key unknown)'}")

    errlog = open(os.path.join(WORK, "server.log"), "w")
    server = subprocess.Popen([BIN, "serve", "--config", cfg], cwd=WORK, stderr=errlog,
                              stdout=subprocess.DEVNULL, preexec_fn=die_with_parent,
                              env=dict(os.environ, RUST_LOG="warn"))
    STARTED.append(server)
    record_pid(server.pid)

    def server_log_tail():
        errlog.flush()
        with open(os.path.join(WORK, "server.log")) as f:
            return "".join(f.readlines()[-15:])

    start = time.monotonic()
    ready_at = None
    while time.monotonic() - start < READY_DEADLINE:
        if server.poll() is not None:
            sys.exit(f"control-plane-bench: server exited ({server.returncode}) before ready:\n"
                     + server_log_tail())
        status, _ = http_get(f"http://127.0.0.1:{admin}/readyz", timeout=2)
        if status == 200:
            ready_at = time.monotonic() - start
            break
        time.sleep(0.1)
    if ready_at is None:
        sys.exit(f"control-plane-bench: not ready within {READY_DEADLINE:.0f} s "
                 f"(cpu {cpu_ticks(server.pid) / HZ:.1f} s, rss {proc_status(server.pid, 'VmRSS') // 1024} MiB)\n"
                 + server_log_tail())
    log(f"ready after {ready_at:.2f} s; warm-up {WARMUP:g} s, window {WINDOW} s")
    time.sleep(WARMUP)

    # The scrapes sit outside the CPU window; rates run between their midpoints.
    t_a, took_a, size, m_a = scrape(admin)
    cpu_a, k_a = cpu_ticks(server.pid), kernel_counters()
    ep_a = sum(cpu_ticks(p.pid) for p in STARTED[:-1])
    mach_a = machine_ticks()
    w_a = time.monotonic()
    time.sleep(WINDOW)
    w_b = time.monotonic()
    cpu_b, k_b = cpu_ticks(server.pid), kernel_counters()
    ep_b = sum(cpu_ticks(p.pid) for p in STARTED[:-1])
    mach_b = machine_ticks()
    t_b, took_b, _, m_b = scrape(admin)

    if m_a[PROBES] is None or m_b[PROBES] is None:
        sys.exit(f"control-plane-bench: no {PROBES} in /metrics")
    rounds = (m_b[PROBES] - m_a[PROBES]) / (t_b - t_a)
    expected = CHECKS / INTERVAL
    span = w_b - w_a
    process_cpu = (cpu_b - cpu_a) / HZ / span * 100
    endpoint_cpu = (ep_b - ep_a) / HZ / span * 100
    engine_cpu = None
    if m_a[BUSY] is not None and m_b[BUSY] is not None:
        engine_cpu = (m_b[BUSY] - m_a[BUSY]) / (t_b - t_a) * 100
    late = m_b[LATE]
    rss, hwm = proc_status(server.pid, "VmRSS"), proc_status(server.pid, "VmHWM")
    accepts = (k_b["Tcp.PassiveOpens"] - k_a["Tcp.PassiveOpens"]) / span
    overflows = k_b["TcpExt.ListenOverflows"] - k_a["TcpExt.ListenOverflows"]
    drops = k_b["TcpExt.ListenDrops"] - k_a["TcpExt.ListenDrops"]
    # Everything else the machine ran in the window, in % of one core: a
    # shared machine shows here.
    ncpu = os.cpu_count() or 1
    total = max(1, mach_b[2] - mach_a[2])
    machine_busy = (mach_b[0] - mach_a[0]) / total * ncpu * 100
    stolen = (mach_b[1] - mach_a[1]) / total * ncpu * 100
    others = machine_busy - process_cpu - endpoint_cpu
    log(f"window: {rounds:.0f} rounds/s ({rounds / expected:.3f} of expected), "
        f"process cpu {process_cpu:.0f}%; now stopping the listener of {VICTIMS} primaries")

    # Failover: close the victims' listener at t0 and poll their answers.
    period = CHECKS / rounds if rounds > 0 else 600.0  # seconds between two probes of a check
    deadline = min(MAX_WAIT, (FALL + 2) * max(period, INTERVAL) * 1.5 + 10)
    # A check probed less often than (FALL + 1) times within the wait cannot
    # fail over in it: say so instead of waiting for nothing.
    skipped = (FALL + 1) * period > MAX_WAIT
    names = [f"a{k}.example.com" for k in range(VICTIMS)]
    qs = [query(n) for n in names]
    poll = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    poll.settimeout(1)
    before = [answer(poll, dns, q, [f"P{k}", f"S{k}"]) for k, q in enumerate(qs)]
    if before != [f"P{k}" for k in range(VICTIMS)]:
        odd = next(k for k in range(VICTIMS) if before[k] != f"P{k}")
        _, why = http_get(f"http://127.0.0.1:{admin}/v1/aliases/{names[odd]}")
        log(f"warning: victims answered {before} before the stop (want the primaries); "
            f"{names[odd]}: {why.decode()[:1500]}")
    if skipped:
        log(f"failover skipped: each check is probed every {period:.0f} s, "
            f"{FALL + 1} probes do not fit in MAX_WAIT={MAX_WAIT:g} s")
    sniffer = Sniffer() if not skipped else None
    time.sleep(0.2)
    t0 = time.time()
    victims.stop()
    changed = {}
    while not skipped and len(changed) < VICTIMS and time.time() - t0 < deadline:
        for k, q in enumerate(qs):
            if k in changed:
                continue
            sent = time.time()
            if answer(poll, dns, q, [f"S{k}"]) == f"S{k}":
                changed[k] = sent
        time.sleep(0.002)
    if sniffer:
        sniffer.close()
    totals = {k: changed[k] - t0 for k in changed}
    excess = {}
    for k, at in changed.items():
        syns = [s for s in sniffer.syns.get(f"127.0.9.{k + 1}", []) if s >= t0]
        if len(syns) >= FALL:
            excess[k] = at - syns[FALL - 1]

    for p in STARTED:
        p.terminate()
    for p in STARTED:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    errlog.close()

    # Report.
    rows = [
        ("checks", f"{CHECKS} tcp, interval 1s, timeout 500ms, fall {FALL}, rise {RISE}, "
                   f"attempts {'1' if attempts else 'n/a'}"),
        ("aliases", f"{ALIASES} (2 targets each), one zone"),
        ("ready after", f"{ready_at:.2f} s"),
        ("window", f"{span:.1f} s after {WARMUP:g} s warm-up"),
        ("probe rounds/s", f"{rounds:.0f} (expected {expected:.0f}: ratio {rounds / expected:.3f})"),
        ("process cpu", f"{process_cpu:.0f}% of one core"),
        ("engine cpu", "n/a" if engine_cpu is None else f"{engine_cpu:.0f}% of one core"),
        ("probe rounds late", "n/a" if late is None else f"{late:.0f} (total at the end)"),
        ("machine", f"{ncpu} cpus, {machine_busy:.0f}% of one core busy in the window, "
                    f"{max(0.0, others):.0f}% of it neither server nor listeners; "
                    f"{stolen:.0f}% stolen by the hypervisor"),
        ("rss", f"{rss / 1024:.0f} MiB (peak {hwm / 1024:.0f} MiB)"),
        ("/metrics scrape", f"{size / 1e6:.1f} MB in {took_a * 1000:.0f} / {took_b * 1000:.0f} ms"),
        ("listeners", f"{accepts:.0f} accepts/s, {endpoint_cpu:.0f}% cpu, listen overflows {overflows}, "
                      f"drops {drops}, time-wait sockets {k_b['time_wait']}"),
    ]
    if totals:
        t = list(totals.values())
        rows.append(("stop -> answer", f"{len(t)}/{VICTIMS} moved: p50 {statistics.median(t):.3f} s, "
                     f"max {max(t):.3f} s (fall x interval = {FALL * INTERVAL:.1f} s)"))
    if skipped:
        rows.append(("stop -> answer", f"skipped: a check is probed every {period:.0f} s, "
                     f"{FALL + 1} probes exceed MAX_WAIT={MAX_WAIT:g} s"))
    elif len(totals) < VICTIMS:
        rows.append(("not moved", f"{VICTIMS - len(totals)} aliases within {deadline:.0f} s"))
    if excess:
        e = list(excess.values())
        rows.append(("probe -> answer", f"p50 {statistics.median(e) * 1000:.1f} ms, max {max(e) * 1000:.1f} ms "
                     f"(answer change - refused probe #{FALL} after the stop; polls every ~2 ms)"))
    elif sniffer and sniffer.error:
        rows.append(("probe -> answer", f"n/a (raw socket: {sniffer.error})"))
    width = max(len(r[0]) for r in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print()
    if excess:
        e = list(excess.values())
        lat = f"p50/max probe-to-answer={statistics.median(e) * 1000:.0f}ms/{max(e) * 1000:.0f}ms"
    elif totals:
        t = list(totals.values())
        lat = (f"p50/max stop-to-answer={statistics.median(t):.2f}s/{max(t):.2f}s "
               f"(excess over fall x interval {statistics.median(t) - FALL * INTERVAL:+.2f}s/"
               f"{max(t) - FALL * INTERVAL:+.2f}s)")
    elif skipped:
        lat = f"probe-to-answer=skipped (a check is probed every {period:.0f}s)"
    else:
        lat = "probe-to-answer=none within deadline"
    print(f"checks={CHECKS} interval=1s rounds/s={rounds:.0f} ({rounds / expected:.3f} of expected) "
          f"process_cpu={process_cpu:.0f}% "
          f"engine_cpu={'n/a' if engine_cpu is None else f'{engine_cpu:.0f}%'} "
          f"late={'n/a' if late is None else f'{late:.0f}'} rss={rss / 1024:.0f}MiB {lat}")


try:
    main()
finally:
    for p in STARTED:
        if p.poll() is None:
            p.kill()
PY

python3 "$WORK/bench.py" "$BIN" "$WORK" "$CHECKS" "$WINDOW"
