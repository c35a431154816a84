#!/usr/bin/env python3
"""Memory of txtfailover under unauthenticated admin API clients.

Starts `txtfailover serve` on loopback with a token file, then opens CLIENTS
connections at once, each sending `PUT /v1/overrides/...` without a token,
Content-Length BYTES, and then all of the body but its last byte, and holds
the connection. Prints the server's resident memory (VmRSS from
/proc/PID/status) before, at its peak, while every client holds its
connection, and after they closed, plus how the clients were answered.

    scripts/admin-flood.py [--binary target/debug/txtfailover] [--clients 200] [--bytes 1048576]

Loopback only; everything it starts it stops. Bounded: CLIENTS x BYTES bytes
in all (at most 1000 x 4 MiB), each client gives up after 20 s.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ZONE = """$ORIGIN example.com.
$TTL 3600
@ IN SOA ns1 hostmaster ( 1 7200 3600 1209600 60 )
@ IN NS ns1
ns1 IN A 127.0.0.1
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def client(port, size, sent, release, results, lock):
    """Sends all of a BYTES body but its last byte, waits for `release`."""
    head = (
        "PUT /v1/overrides/desktop.example.com HTTP/1.1\r\nHost: admin\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    chunk = b"x" * 65536
    outcome = "?"
    s = None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.sendall(head)
        left = size - 1
        while left > 0:
            n = min(len(chunk), left)
            s.sendall(chunk[:n])
            left -= n
    except OSError as e:
        outcome = type(e).__name__
    try:
        sent.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass
    release.wait(timeout=60)
    if s is not None:
        try:
            s.settimeout(0.5)
            reply = s.recv(64)
            outcome = reply.split(b" ")[1].decode() if reply else "closed"
        except socket.timeout:
            outcome = "no answer (still reading the body)"
        except OSError as e:
            outcome = type(e).__name__
        s.close()
    with lock:
        results[outcome] = results.get(outcome, 0) + 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default="target/debug/txtfailover")
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--bytes", type=int, default=1 << 20)
    a = p.parse_args()
    if not (1 <= a.clients <= 1000 and 1 <= a.bytes <= 4 << 20):
        sys.exit("--clients must be 1..1000 and --bytes 1..4194304")
    with tempfile.TemporaryDirectory() as d:
        dns, admin = free_port(), free_port()
        with open(os.path.join(d, "example.com.zone"), "w") as f:
            f.write(ZONE)
        with open(os.path.join(d, "tokens"), "w") as f:
            f.write("alice 0123456789abcdef0123\n")
        with open(os.path.join(d, "txtfailover.toml"), "w") as f:
            f.write(
                f'[server]\nlisten = ["127.0.0.1:{dns}"]\nstate_dir = "state"\nudp_workers = 1\n'
                f'[admin]\nlisten = "127.0.0.1:{admin}"\ntoken_file = "tokens"\n'
                '[[zone]]\norigin = "example.com"\nfile = "example.com.zone"\n'
                '[[alias]]\nname = "desktop.example.com"\n'
                'targets = [{ region = "us-west-2", connection_id = "PDX1" }]\n'
            )
        log = open(os.path.join(d, "serve.log"), "w")
        server = subprocess.Popen(
            [a.binary, "serve", "--config", os.path.join(d, "txtfailover.toml")],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            deadline = time.time() + 20
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", admin), timeout=1) as s:
                        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                        if b" 200 " in s.recv(64):
                            break
                except OSError:
                    pass
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("the server did not become ready")
                time.sleep(0.05)
            time.sleep(0.5)
            before = rss_kib(server.pid)
            results, lock = {}, threading.Lock()
            sent, release = threading.Barrier(a.clients + 1), threading.Event()
            threads = [
                threading.Thread(
                    target=client, args=(admin, a.bytes, sent, release, results, lock)
                )
                for _ in range(a.clients)
            ]
            for t in threads:
                t.start()
            peak = before
            waiter = threading.Thread(target=lambda: sent.wait(timeout=60))
            waiter.start()
            while waiter.is_alive():
                peak = max(peak, rss_kib(server.pid))
                time.sleep(0.02)
            time.sleep(0.5)
            held = rss_kib(server.pid)
            peak = max(peak, held)
            release.set()
            for t in threads:
                t.join()
            time.sleep(0.5)
            after = rss_kib(server.pid)
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait()
    print(f"binary: {a.binary}")
    print(f"clients: {a.clients} without a token, {a.bytes} body bytes each")
    print(f"answers: {dict(sorted(results.items()))}")
    print(f"VmRSS before: {before / 1024:.1f} MiB")
    print(f"VmRSS peak:   {peak / 1024:.1f} MiB")
    print(f"VmRSS held:   {held / 1024:.1f} MiB (every client holding its connection)")
    print(f"VmRSS after:  {after / 1024:.1f} MiB")
    print(f"server still running: {alive}")


if __name__ == "__main__":
    main()
