#!/usr/bin/env python3
"""Benchmark: a normal client's latency while one address floods quelld with idle and
slow-header connections (issue 12, hole 3).

The attacker (127.0.0.1) keeps --conns connections open: half send nothing, half send
a request line and then one header line every second, never finishing the headers;
each one the server closes is opened again (at most twice a second per slot). The
client (127.0.0.2, so it is another address) sends GET /api/v1/whoami and GET / (the
console) in turn on a fresh connection each.

Measured in the same run: the client's latency without the attack (baseline), then
with it. Prints p50/p99 of both and the ratio of the p99s; the last line is
`conn_flood p99_ms = X ratio = Y` (goal: p99 under 100 ms). Never fails on speed; it
fails only when a request of the client is not answered 200. Bounded: --requests per
phase, the attack stops after --max-seconds at the latest. Loopback only; 127.0.0.2
must be usable (Linux routes all of 127/8 to lo; in a fresh network namespace run
`ip link set lo up` first).

    bench/conn_flood.py [--conns 2000] [--requests 400] [--build DIR]
"""
import argparse
import http.client
import os
import resource
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import TOP, pct, start_quelld, stop_proc, work_dir  # noqa: E402

CLIENT_ADDR = "127.0.0.2"


def raise_fd_limit(need):
    """Enough descriptors for the attacker's sockets; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        soft = min(hard, max(need, soft)) if hard != resource.RLIM_INFINITY else need
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


class Flood:
    """n connections from 127.0.0.1 to port, half idle and half slow-header, kept open
    (reopened when the server closes them) until stop() or max_s. closed_by_server
    counts the connections the server ended; slow_cut those of them that were
    slow-header connections it had kept for two header lines or more (cut by a header
    deadline, not refused at once by a connection limit)."""

    def __init__(self, port, n, max_s=120.0):
        self.port, self.n, self.max_s = port, n, max_s
        self.socks = [None] * n        # slot -> socket
        self.slot_of = {}              # socket -> slot
        self.lines = [0] * n           # slot -> header lines its socket sent
        self.next_open = [0.0] * n     # slot -> earliest reopen time
        self.opened = 0
        self.closed_by_server = 0
        self.slow_cut = 0
        self.refused = 0
        self._sel = selectors.DefaultSelector()   # epoll: more than 1024 fds
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(30)
        for s in self.socks:
            if s is not None:
                s.close()
        self._sel.close()
        self.socks = [None] * self.n

    def _open(self, i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind(("127.0.0.1", 0))
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            self.refused += 1
            self.next_open[i] = time.monotonic() + 0.5
            return
        self.socks[i] = s
        self.slot_of[s] = i
        self._sel.register(s, selectors.EVENT_READ)
        self.lines[i] = 0
        self.opened += 1
        if i % 2 == 1:                 # slow-header: the request line now
            try:
                s.send(b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                pass

    def _run(self):
        end = time.monotonic() + self.max_s
        last_line = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < end:
            now = time.monotonic()
            for i in range(self.n):
                if self.socks[i] is None and now >= self.next_open[i]:
                    self._open(i)
            for key, _ in self._sel.select(0.05):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    i = self.slot_of.pop(s)
                    self.closed_by_server += 1
                    self.slow_cut += i % 2 == 1 and self.lines[i] >= 2
                    self._sel.unregister(s)
                    s.close()
                    self.socks[i] = None
                    self.next_open[i] = time.monotonic() + 0.5
            if now - last_line >= 1.0:  # one more header line, never the last
                last_line = now
                for i in range(1, self.n, 2):
                    if self.socks[i] is not None:
                        try:
                            self.socks[i].send(b"X-Slow: 1\r\n")
                            self.lines[i] += 1
                        except OSError:
                            pass


def client_request(port, path, token, timeout=30):
    """(status, seconds) of one request from CLIENT_ADDR on a connection of its own."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                   source_address=(CLIENT_ADDR, 0))
    t0 = time.perf_counter()
    try:
        c.request("GET", path, headers={"Authorization": "Bearer " + token}
                  if path.startswith("/api/") else {})
        r = c.getresponse()
        r.read()
        return r.status, time.perf_counter() - t0
    finally:
        c.close()


def phase(port, token, n, min_s=0.0):
    """Latencies (s) of at least n client requests, for at least min_s; exits on a
    request not answered 200."""
    out = []
    end = time.monotonic() + min_s
    k = 0
    while k < n or time.monotonic() < end:
        k += 1
        path = "/api/v1/whoami" if k % 2 == 0 else "/"
        st, dt = client_request(port, path, token)
        if st != 200:
            sys.exit(f"conn_flood: {path} answered {st}")
        out.append(dt)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--min-seconds", type=float, default=12,
                    help="the flooded phase lasts this long at least (past the "
                    "5 s header timeout, so slow headers are cut and come back)")
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--build", default=os.path.join(TOP, "build", "release"))
    a = ap.parse_args()
    raise_fd_limit(a.conns + 512)
    with work_dir("conn_flood") as work:
        conf = f"""[server]
listen = 127.0.0.1:0
node_id = bench

[store]
path = {os.path.join(work, "quell.db")}
"""
        proc, api = start_quelld(a.build, work, conf)
        try:
            phase(api.port, api.token, 20)          # warm up
            base = phase(api.port, api.token, a.requests)
            flood = Flood(api.port, a.conns, a.max_seconds).start()
            while flood.opened < a.conns:            # every slot tried once
                time.sleep(0.05)
            under = phase(api.port, api.token, a.requests, a.min_seconds)
            flood.stop()
        finally:
            stop_proc(proc)
    b99, u99 = pct(base, 99) * 1000, pct(under, 99) * 1000
    print(f"baseline: p50 {pct(base, 50) * 1000:.2f} ms, p99 {b99:.2f} ms "
          f"({len(base)} requests)")
    print(f"flooded:  p50 {pct(under, 50) * 1000:.2f} ms, p99 {u99:.2f} ms "
          f"({len(under)} requests; {a.conns} attacker slots, {flood.opened} connects, "
          f"{flood.closed_by_server} closed by quelld, {flood.slow_cut} of them "
          f"slow-header)")
    print(f"conn_flood p99_ms = {u99:.2f} ratio = {u99 / b99 if b99 else 0:.2f}")


if __name__ == "__main__":
    main()
