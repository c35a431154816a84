#!/usr/bin/env python3
"""Time from a probe failure to the new answer on a Knot secondary.

Runs txtfailover (release build) as a hidden primary with a TCP check against
a listener this script owns, and Knot as its secondary (TSIG on NOTIFY and
transfers), all on loopback. Each run closes the listener (the probe failure,
t0) and polls `dig @primary` and `dig @knot` until both answer the standby
identifier, then reopens it and waits for the failback. Prints every run,
the median, and the NOTIFY/transfer messages each answer change cost, read
from txtfailover's /metrics and Knot's log.

Usage: scripts/secondary-failover.py [RUNS]   (default 7; needs knotd, dig)
"""

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 7
INTERVAL = "1s"  # probe interval: the bulk of the detection time
DEADLINE = 30.0
SECRET = "8wYnvRwlqkuWmMPmMq0Lr3HOAxyDmu7wXxUsSbMUWHE="
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(name):
    """A plain TXT query for `name`, as bytes."""
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + wire + b"\x00\x10\x00\x01"


QUERY = query("desktop.example.com")


def answers(port, want):
    """Does the alias answer `want` at `port`? A raw UDP query: polling with
    a process per query would blur the timings by milliseconds."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(QUERY, ("127.0.0.1", port))
        try:
            reply = s.recv(4096)
        except socket.timeout:
            return False
    return bytes([len(want)]) + want.encode() in reply[len(QUERY):]


def dig_txt(port):
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "desktop.example.com", "TXT",
         "+short", "+time=1", "+tries=1"],
        capture_output=True, text=True).stdout
    return out.strip().strip('"')


def wait(ports, want):
    """Seconds until every port answers `want`, per port; then dig must
    agree, as a user would check."""
    start, seen = time.monotonic(), {}
    while len(seen) < len(ports):
        for p in ports:
            if p not in seen and answers(p, want):
                seen[p] = time.monotonic() - start
        if time.monotonic() - start > DEADLINE:
            sys.exit(f"no {want} within {DEADLINE}s: {seen}")
        time.sleep(0.001)
    for p in ports:
        if dig_txt(p) != want:
            sys.exit(f"dig @127.0.0.1 -p {p} disagrees: {dig_txt(p)!r}, want {want}")
    return seen


class Endpoint:
    """The probed endpoint: accepts (and drops) connections while up, so its
    backlog never fills; `down()` closes the socket, `up()` reopens it."""

    def __init__(self):
        self.port = None
        self.up()

    def up(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port or 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
                conn.close()
            except (socket.timeout, OSError):
                pass

    def down(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def metrics(admin):
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    def total(pattern):
        return sum(float(m.group(1)) for m in re.finditer(pattern + r".* (\d+(?:\.\d+)?)$", text, re.M))
    return {
        "NOTIFY acknowledged": total(r'^txtfailover_notify_messages_total\{.*direction="sent",result="acknowledged"'),
        "NOTIFY unanswered (retried)": total(r'^txtfailover_notify_messages_total\{.*direction="sent",result="unanswered"'),
        "transfer requests": total(r'^txtfailover_transfers_total\{'),
        "transfer messages": total(r'^txtfailover_transfer_messages_total\{'),
    }


def main():
    for tool in ("dig", "knotd"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is needed (apt-get install bind9-dnsutils knot)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "txtfailover")
    knotd = shutil.which("knotd") or "/usr/sbin/knotd"
    work = tempfile.mkdtemp(prefix="txtfailover-secondary-")
    dns, knot_port, admin_port = free_port(), free_port(), free_port()
    target = Endpoint()
    target_port = target.port

    os.makedirs(f"{work}/zones")
    with open(f"{work}/zones/example.com.zone", "w") as f:
        f.write("$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n"
                "@ IN NS ns1\nns1 IN A 127.0.0.1\n")
    with open(f"{work}/txtfailover.toml", "w") as f:
        f.write(f"""[server]
listen = ["127.0.0.1:{dns}"]
state_dir = "state"
[admin]
listen = "127.0.0.1:{admin_port}"
[[key]]
name = "xfr"
algorithm = "hmac-sha256"
secret = "{SECRET}"
[[zone]]
origin = "example.com"
file = "zones/example.com.zone"
allow_transfer = [{{ from = ["127.0.0.1"], key = "xfr" }}]
notify = [{{ address = "127.0.0.1:{knot_port}", key = "xfr" }}]
[[check]]
name = "pdx"
kind = "tcp"
address = "127.0.0.1:{target_port}"
interval = "{INTERVAL}"
timeout = "500ms"
fall = 1
rise = 1
[[alias]]
name = "desktop.example.com"
failback_after = "0s"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }},
  {{ region = "us-east-1", connection_id = "IAD1" }},
]
""")
    os.makedirs(f"{work}/knot")
    with open(f"{work}/knot/knot.conf", "w") as f:
        f.write(f"""server:
    listen: 127.0.0.1@{knot_port}
    rundir: {work}/knot
log:
  - target: {work}/knot/knot.log
    any: info
database:
    storage: {work}/knot
key:
  - id: xfr
    algorithm: hmac-sha256
    secret: {SECRET}
remote:
  - id: primary
    address: 127.0.0.1@{dns}
    key: xfr
acl:
  - id: from_primary
    address: 127.0.0.1
    key: xfr
    action: notify
template:
  - id: default
    storage: {work}/knot
    zonefile-sync: -1
    zonefile-load: none
    journal-content: none
zone:
  - domain: example.com
    master: primary
    acl: from_primary
""")
    log = open(f"{work}/serve.log", "w")
    server = subprocess.Popen([binary, "serve", "--config", f"{work}/txtfailover.toml"],
                              stdout=subprocess.DEVNULL, stderr=log,
                              env=dict(os.environ, RUST_LOG="warn"))
    knot = subprocess.Popen([knotd, "-c", f"{work}/knot/knot.conf"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait([dns, knot_port], "PDX1")
        knot_log = f"{work}/knot/knot.log"
        results = []
        before = metrics(f"127.0.0.1:{admin_port}")
        def knot_transfers():
            text = open(knot_log).read()
            return len(re.findall(r"[AI]XFR, incoming, remote \S+, started", text))
        knot_lines = knot_transfers()
        for run in range(1, RUNS + 1):
            target.down()  # t0: the endpoint is gone; the next probe fails
            seen = wait([dns, knot_port], "IAD1")
            results.append((seen[dns], seen[knot_port]))
            print(f"run {run}: primary answers IAD1 after {seen[dns]*1000:7.1f} ms, "
                  f"Knot after {seen[knot_port]*1000:7.1f} ms "
                  f"(+{(seen[knot_port]-seen[dns])*1000:.1f} ms)")
            target.up()
            wait([dns, knot_port], "PDX1")
        after = metrics(f"127.0.0.1:{admin_port}")
        knot_after = knot_transfers()
        changes = 2 * RUNS
        primary = [r[0] for r in results]
        secondary = [r[1] for r in results]
        lag = [r[1] - r[0] for r in results]
        print(f"\n{RUNS} failovers, probe interval {INTERVAL}, fall 1")
        print(f"probe failure -> new answer on the primary: median {statistics.median(primary)*1000:.0f} ms")
        print(f"probe failure -> new answer on Knot:        median {statistics.median(secondary)*1000:.0f} ms "
              f"(min {min(secondary)*1000:.0f}, max {max(secondary)*1000:.0f})")
        print(f"primary -> Knot (NOTIFY + SOA + IXFR):       median {statistics.median(lag)*1000:.1f} ms")
        print(f"per answer change ({changes} changes, failovers and failbacks):")
        for k in before:
            print(f"  {k}: {(after[k] - before[k]) / changes:.2f}")
        print(f"  Knot incoming transfers: {(knot_after - knot_lines) / changes:.2f}")
    finally:
        server.terminate()
        knot.terminate()
        server.wait()
        knot.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
