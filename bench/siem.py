#!/usr/bin/env python3
"""Benchmark: the audit log's append rate with SIEM forwarding off and on, and how far
the SIEM lags behind. Each audit entry is a refused request of an authenticated viewer
(one entry each); the SIEM is a syslog receiver in this process (RFC 5425 octet
counting over plain TCP on loopback, allow_plaintext) that notes when each entry
arrives. Prints entries/s for both runs, their ratio and the lag (arrival time minus
the entry's own time, p50/p99/max, and the time to drain after the last append); the
last line is `siem on/off = R` (higher is better; goal >= 0.9). Never fails on speed.

    bench/siem.py [--n 5000] [--threads 4] [--build build/release]
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time

from benchlib import TOP, Api, pct, start_quelld, stop_proc, work_dir


class Receiver:
    """A syslog server on 127.0.0.1: reads octet-counted frames and keeps, per audit
    seq, the first arrival time (ms since the epoch) and the entry's own time."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.arrived = {}
        self.frames = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            c, _ = self.ls.accept()
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        buf = b""
        while True:
            d = c.recv(1 << 16)
            if not d:
                return
            buf += d
            now = time.time() * 1000
            while True:
                sp = buf.find(b" ")
                if sp < 0:
                    break
                n = int(buf[:sp])
                if len(buf) < sp + 1 + n:
                    break
                msg, buf = buf[sp + 1:sp + 1 + n], buf[sp + 1 + n:]
                m = re.search(rb' seq="(\d+)" time="(\d+)"', msg)
                with self.lock:
                    self.frames += 1
                    self.arrived.setdefault(int(m[1]), (now, int(m[2])))


def conf(work, extra=""):
    return f"""[server]
listen = 127.0.0.1:0
workers = 8
node_id = bench
[store]
path = {work}/quell.db
{extra}"""


def viewer_token(build, work):
    return subprocess.run([os.path.join(build, "src", "daemon", "quelld"), "-c",
                           os.path.join(work, "quelld.conf"), "token", "create", "--name",
                           "viewer", "--role", "viewer"], check=True, capture_output=True,
                          text=True).stdout.strip()


def run(build, n, threads, siem_port=None):
    """Appends n entries with threads clients; (entries/s, seconds, quelld's
    Api, process)."""
    with work_dir("siem") as work:
        extra = ""
        if siem_port:
            extra = (f'[siem "bench"]\nhost = 127.0.0.1\nport = {siem_port}\n'
                     "protocol = tcp\nallow_plaintext = yes\n")
        proc, admin = start_quelld(build, work, conf(work, extra))
        try:
            api = Api(admin.port, viewer_token(build, work))
            per = n // threads

            def go():
                for _ in range(per):
                    st, _ = api.call("GET", "/api/v1/tokens")
                    assert st == 403, st
            ts = [threading.Thread(target=go) for _ in range(threads)]
            t0 = time.monotonic()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            secs = time.monotonic() - t0
            end_ms = time.time() * 1000
            return per * threads / secs, secs, end_ms, proc
        finally:
            if not siem_port:
                stop_proc(proc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--build", default=os.path.join(TOP, "build", "release"))
    a = ap.parse_args()

    off, secs_off, _, _ = run(a.build, a.n, a.threads)
    print(f"forwarding off: {a.n} entries in {secs_off:.2f} s = {off:.0f} entries/s")
    rx = Receiver()
    on, secs_on, end_ms, proc = run(a.build, a.n, a.threads, rx.port)
    try:
        # Drained: every entry up to the last one (plus the token's own) arrived.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with rx.lock:
                if len(rx.arrived) >= a.n:
                    break
            time.sleep(0.01)
        with rx.lock:
            got = dict(rx.arrived)
            frames = rx.frames
    finally:
        stop_proc(proc)
    lags = sorted(arr - t for arr, t in got.values())
    drain = max(arr for arr, _ in got.values()) - end_ms
    print(f"forwarding on:  {a.n} entries in {secs_on:.2f} s = {on:.0f} entries/s; "
          f"{len(got)} entries received ({frames - len(got)} duplicates)")
    print(f"lag (arrival - entry time): p50 {pct(lags, 50):.1f} ms, p99 "
          f"{pct(lags, 99):.1f} ms, max {lags[-1]:.1f} ms; drained {max(drain, 0):.1f} ms "
          "after the last append returned")
    if len(got) < a.n:
        print(f"warning: only {len(got)} of {a.n} entries arrived", file=sys.stderr)
    print(f"siem on/off = {on / off:.2f}")


if __name__ == "__main__":
    main()
