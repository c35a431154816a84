#!/usr/bin/env python3
"""TCP exhaustion against txtfailover, on loopback only, bounded in time and count.

Starts txtfailover (release build) with its open-files limit at 1024 (soft
and hard, as systemd's default soft limit), two HTTP health checks against
endpoints this script serves, and one alias. Then opens 1,100 TCP connections
to its DNS port - a third idle, a third slowloris (one byte of a query every
second), a third keep-alive (a whole query every two seconds) - and holds them
for HOLD seconds (each reopened as soon as the server closes it) while it
measures:

- the alias's answer over UDP every 10 ms (latency p50/p99/max, and any
  answer other than the expected one),
- a new TCP client from 127.0.0.2 and the admin API's /healthz every 2 s,
- the checks (check_up in /metrics, and "to=Down" in the log),
- server CPU time and open file descriptors (from /proc).

Two HOLD-second phases: the 1,100 connections from one address (127.0.0.1),
then spread over 125 addresses (127.0.1.1-125, eight each, plus 100 from
127.0.0.1) so the total cap is reached too (there, new TCP clients compete
with the flood for room: how many were served is reported, not required). In
the second phase, after half
the hold, the primary's endpoint starts failing: the answer must move to the
standby once and its serial be persisted (state/serials.json) - probes and
state files still get file descriptors.

Usage: scripts/tcp-exhaust.py [HOLD_SECONDS] [BINARY]
       (default 60 s and target/release/txtfailover)
"""

import http.server
import multiprocessing
import os
import re
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HOLD = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "target/release/txtfailover")
CONNECTIONS = 1100
assert HOLD <= 600, "bounded: at most 10 minutes per phase"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(name, qid=0x1234):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + b"\x00\x10\x00\x01"


QUERY = query("desktop.example.com")
FRAMED = struct.pack(">H", len(QUERY)) + QUERY


def txt_of(reply):
    """The TXT string of a one-answer reply (enough for our own answers)."""
    rest = reply[len(QUERY):]
    # name pointer (2), type, class, ttl, rdlength (10), then the string
    if len(rest) < 13:
        return None
    n = rest[12]
    return rest[13:13 + n].decode(errors="replace")


class Endpoint:
    """A local HTTP endpoint answering 200, or 503 once told to fail."""

    def __init__(self):
        self.status = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(outer.status)
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"healthy")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/ping" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def start_server(workdir, pdx, iad):
    port, admin = free_port(), free_port()
    os.makedirs(os.path.join(workdir, "zones"), exist_ok=True)
    with open(os.path.join(workdir, "zones/example.com.zone"), "w") as f:
        f.write("$ORIGIN example.com.\n$TTL 3600\n"
                "@ IN SOA ns1 hostmaster ( 5 7200 3600 1209600 60 )\n"
                "@ IN NS ns1\nns1 IN A 127.0.0.1\n")
    check = 'kind = "http"\ninterval = "1s"\ntimeout = "500ms"\nfall = 2\nrise = 2\n'
    config = f"""[server]
listen = ["127.0.0.1:{port}"]
state_dir = "state"
udp_workers = 2
[admin]
listen = "127.0.0.1:{admin}"
[[zone]]
origin = "example.com"
file = "zones/example.com.zone"
[[check]]
name = "pdx"
url = "{pdx.url}"
{check}
[[check]]
name = "iad"
url = "{iad.url}"
{check}
[[alias]]
name = "desktop.example.com"
failback_after = "10m"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }},
  {{ region = "us-east-1", connection_id = "IAD2", checks = ["iad"] }},
]
"""
    path = os.path.join(workdir, "txtfailover.toml")
    with open(path, "w") as f:
        f.write(config)
    log = open(os.path.join(workdir, "serve.log"), "w")
    proc = subprocess.Popen(
        ["sh", "-c", 'ulimit -n 1024 && exec "$0" "$@"', BINARY, "serve", "--config", path],
        stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, RUST_LOG="info"))
    deadline = time.time() + 15
    while time.time() < deadline:
        if udp_txt(port, 0.2) == "PDX1":
            return proc, port, admin
        time.sleep(0.05)
    proc.kill()
    sys.exit("txtfailover did not answer; see " + log.name)


def udp_txt(port, timeout):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(QUERY, ("127.0.0.1", port))
        try:
            return txt_of(s.recv(4096))
        except OSError:
            return None


def tcp_txt(port, source):
    """One query over a new TCP connection from `source`: (answer, seconds)."""
    t = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2,
                                      source_address=(source, 0)) as s:
            s.settimeout(2)
            s.sendall(FRAMED)
            head = s.recv(2, socket.MSG_WAITALL)
            body = s.recv(struct.unpack(">H", head)[0], socket.MSG_WAITALL)
            return txt_of(body), time.monotonic() - t
    except (OSError, struct.error):
        return None, time.monotonic() - t


def http_get(admin, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (admin, path), timeout=2) as r:
            return r.status, r.read().decode()
    except OSError as e:
        return None, str(e)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Conn:
    """One attacking connection slot: reopened whenever the server closes it."""

    def __init__(self, src, kind):
        self.src, self.kind, self.sock, self.sent = src, kind, None, 0

    def open(self, port):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((self.src, 0))
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            s.close()
            return False
        self.sock, self.sent = s, 0
        return True

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def drive(self, rnd):
        """One round: idle (0) only checks it is open, slowloris (1) sends
        one byte of a 256-byte message, keep-alive (2) reads its answers
        and sends a whole query every other round."""
        try:
            try:
                while True:
                    data = self.sock.recv(4096)
                    if not data:
                        return self.close()
            except BlockingIOError:
                pass
            if self.kind == 1:
                self.sock.send(b"\x01" if self.sent == 0 else b"\x00")
                self.sent += 1
            elif self.kind == 2 and rnd % 2 == 0:
                self.sock.send(FRAMED)
        except OSError:
            self.close()


def phase(name, port, admin, proc, sources, pdx=None, flip_at=None):
    held = [Conn(src, i % 3) for i, src in enumerate(sources)]
    opened = sum(c.open(port) for c in held)
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    # UDP is measured from its own process, so this one's work (and GIL)
    # does not count as server latency.
    stop = multiprocessing.Event()
    results, sender = multiprocessing.Pipe(duplex=False)
    udp = multiprocessing.Process(target=udp_loop, args=(port, stop, sender))
    udp.start()
    tcp_ok = tcp_total = admin_ok = admin_total = 0
    tcp_times, fds, tcp_failed = [], [], []
    rnd, flipped, moved_at, persisted = 0, False, None, None
    while time.monotonic() - t0 < HOLD:
        rnd += 1
        for c in held:
            if c.sock is None:
                opened += c.open(port)
            else:
                c.drive(rnd)
        if rnd % 2 == 0:
            got, took = tcp_txt(port, "127.0.0.2")
            tcp_total += 1
            tcp_times.append(took)
            good = got == "PDX1" or (flipped and got == "IAD2")
            tcp_ok += good
            if not good:
                tcp_failed.append("%.0f s: %s after %.1f ms" % (time.monotonic() - t0, got, took * 1000))
            code, _ = http_get(admin, "/healthz")
            admin_total += 1
            admin_ok += code == 200
            fds.append(open_fds(proc.pid))
        if flip_at is not None and not flipped and time.monotonic() - t0 >= flip_at:
            pdx.status, flipped, flip_t = 503, True, time.monotonic()
        if flipped and moved_at is None and udp_txt(port, 1.0) == "IAD2":
            moved_at = time.monotonic() - flip_t
        time.sleep(max(0.0, t0 + rnd - time.monotonic()))
    stop.set()
    samples = results.recv()
    udp.join()
    lost = sum(1 for _, got, _ in samples if got is None)
    lat = [l for _, got, l in samples if got is not None]
    # Before the flip only PDX1 is right; after it, PDX1 until the move, then IAD2.
    wrong = [got for t, got, _ in samples if got is not None and got != "PDX1"
             and not (flipped and got == "IAD2" and t >= t0 + flip_at)]
    cpu = cpu_seconds(proc.pid) - cpu0
    elapsed = time.monotonic() - t0
    _, metrics = http_get(admin, "/metrics")
    if flipped:
        served = None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(1)
            soa = query("example.com")[:-4] + b"\x00\x06\x00\x01"
            u.sendto(soa, ("127.0.0.1", port))
            r = u.recv(4096)
            served = struct.unpack(">I", r[-20:-16])[0]
        try:
            with open(os.path.join(os.path.dirname(CONFIG), "state/serials.json")) as f:
                persisted = f.read()
        except OSError as e:
            persisted = str(e)
        persisted = (served, str(served) in persisted)
    for c in held:
        c.close()
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1000
    def metric(prefix):
        return sum(float(l.rsplit(" ", 1)[1]) for l in metrics.splitlines() if l.startswith(prefix))
    print(f"== {name}: {len(held)} connections kept open for {elapsed:.0f} s, "
          f"reopened as soon as closed: {opened} connects in all")
    print(f"   UDP: {len(lat)} answers, {lost} lost, {len(wrong)} unexpected answers; "
          f"latency p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms, max {lat[-1] * 1000:.2f} ms")
    print(f"   new TCP client from 127.0.0.2: {tcp_ok}/{tcp_total} served, "
          f"median {statistics.median(tcp_times) * 1000:.1f} ms, max {max(tcp_times) * 1000:.1f} ms"
          + ("; not served: " + ", ".join(tcp_failed) if tcp_failed else ""))
    print(f"   admin /healthz: {admin_ok}/{admin_total} answered 200")
    print(f"   server: CPU {cpu:.2f} s in {elapsed:.0f} s ({100 * cpu / elapsed:.1f} %), "
          f"open fds max {max(fds)} of 1024, TCP connections now {metric('txtfailover_tcp_connections '):.0f}")
    drops = {l.split('"')[1]: float(l.rsplit(" ", 1)[1]) for l in metrics.splitlines()
             if l.startswith("txtfailover_tcp_connections_dropped_total{")}
    print("   TCP connections refused/closed by us: " + ", ".join(f"{k} {v:.0f}" for k, v in drops.items() if v))
    print(f"   checks up: {metric('txtfailover_check_up{'):.0f} of 2; answer changes so far: "
          f"{metric('txtfailover_answer_changes_total{'):.0f}")
    if flipped:
        print(f"   primary failed at {flip_at:.0f} s: answer moved to IAD2 after "
              f"{moved_at if moved_at is None else round(moved_at, 1)} s; serial {persisted[0]} persisted: {persisted[1]}")
    changes = metric("txtfailover_answer_changes_total{")
    # From many sources reopening everything at once, a new client competes
    # with the flood for room: its share is reported, not required.
    return (not wrong and not lost and (flipped or tcp_ok == tcp_total)
            and admin_ok == admin_total
            and changes == (1 if flipped else 0) and (not flipped or persisted[1]))


CONFIG = None


def udp_loop(port, stop, sender):
    """A UDP query every 10 ms until `stop`: (time, answer, seconds) each."""
    samples = []
    while not stop.is_set():
        t = time.monotonic()
        got = udp_txt(port, 1.0)
        samples.append((t, got, time.monotonic() - t))
        time.sleep(0.01)
    sender.send(samples)


def main():
    global CONFIG
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    if not os.path.exists(BINARY):
        sys.exit(BINARY + " not found: cargo build --release")
    pdx, iad = Endpoint(), Endpoint()
    with tempfile.TemporaryDirectory() as workdir:
        CONFIG = os.path.join(workdir, "txtfailover.toml")
        proc, port, admin = start_server(workdir, pdx, iad)
        try:
            ok = phase("one source, 127.0.0.1", port, admin, proc, ["127.0.0.1"] * CONNECTIONS)
            spread = ["127.0.0.1"] * 100 + ["127.0.1.%d" % (i // 8 + 1) for i in range(1000)]
            ok &= phase("126 sources", port, admin, proc, spread, pdx, HOLD / 2)
            with open(os.path.join(workdir, "serve.log")) as f:
                log = f.read()
            log = re.sub(r"\x1b\[[0-9;]*m", "", log)
            print("   log: %d lines, checks gone down %d, 'Too many open files' %d, 'refused' lines %d"
                  % (log.count("\n"), log.count("to=Down"), log.count("Too many open files"),
                     log.count("TCP connection refused")))
        finally:
            proc.terminate()
            proc.wait(10)
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
