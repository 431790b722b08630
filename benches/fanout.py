#!/usr/bin/env python3
"""Room fan-out: one 64-byte message from the hub's stdin to N members.

Usage: benches/fanout.py [N ...]          (default: 10 100 1000; needs strace)

For each N: `duet server --room --plain` on 127.0.0.1 and `duet swarm
--clients N --plain` against it (one process, one loop, every member
acknowledging). Then:
- latency: K messages one at a time, each written to the hub's stdin when
  the previous one's `✓ #id N/N` line is out; the figure is that line's
  RTT, the slowest recipient's (the hub's send to the last ACK in);
- throughput: M messages written at once; deliveries per second are
  M x N over the time from the first write to the last `✓` line;
- syscalls per delivery: `strace -c -f -p` attached to the hub for
  another M messages, all calls divided by M x N.
Prints one markdown table row per N.
"""

import os
import re
import resource
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DUET = os.path.join(ROOT, "target", "release", "duet")
MSG = b"m" * 64 + b"\n"
REACHED = re.compile(rb"\xe2\x9c\x93 #(\d+) (\d+)/(\d+) ([0-9.]+) ms")
DEADLINE = 120.0


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Lines:
    """Lines of a child's stdout, read with a deadline."""

    def __init__(self, f):
        self.f = f
        self.buf = b""

    def next(self, until):
        while b"\n" not in self.buf:
            left = until - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line before the deadline")
            import select

            r, _, _ = select.select([self.f], [], [], left)
            if r:
                chunk = os.read(self.f.fileno(), 1 << 20)
                if not chunk:
                    raise EOFError("the hub closed its stdout")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def run(n):
    k = 200 if n < 1000 else 100
    m = max(200, 200_000 // n)
    hub = subprocess.Popen(
        [DUET, "server", "--room", "--plain", "--listen", "127.0.0.1",
         "--port", "0", "--max-peers", str(n + 16)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = Lines(hub.stdout)
    until = time.monotonic() + DEADLINE
    port = None
    while port is None:
        mt = re.search(rb"listening on .*:(\d+)", out.next(until))
        port = mt and mt.group(1).decode()
    swarm = subprocess.Popen(
        [DUET, "swarm", f"127.0.0.1:{port}", "--plain", "--clients", str(n)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        joined = 0
        while joined < n:
            if b" joined from " in out.next(until):
                joined += 1

        def send_and_wait(count):
            # Written from a thread: the hub reads its stdin only a window
            # ahead of its members, and its stdout must be read meanwhile.
            def write():
                hub.stdin.write(MSG * count)
                hub.stdin.flush()

            writer = threading.Thread(target=write)
            writer.start()
            rtts, seen = [], 0
            while seen < count:
                mt = REACHED.search(out.next(until))
                if mt:
                    seen += 1
                    if mt.group(2) != mt.group(3) or int(mt.group(3)) != n:
                        raise RuntimeError(f"reached {mt.group(2)}/{mt.group(3)} of {n}")
                    rtts.append(float(mt.group(4)))
            writer.join()
            return rtts

        send_and_wait(10)  # warm-up
        lat = []
        for _ in range(k):
            lat += send_and_wait(1)
        t0 = time.monotonic()
        send_and_wait(m)
        took = time.monotonic() - t0
        trace = f"/tmp/fanout-{n}.strace"
        st = subprocess.Popen(["strace", "-c", "-f", "-o", trace, "-p", str(hub.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        st.stderr.readline()  # "strace: Process N attached"
        send_and_wait(m)
        st.send_signal(2)
        st.wait(timeout=30)
        calls = 0
        for line in open(trace):
            f = line.split()
            if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                calls += int(f[3])
        return {
            "n": n, "k": k, "m": m,
            "p50": percentile(lat, 50), "p99": percentile(lat, 99),
            "rate": m * n / took, "msgs": m / took,
            "syscalls": calls / (m * n),
        }
    finally:
        for p in (hub, swarm):
            if p.poll() is None:
                p.kill()
            p.wait()


def main():
    raise_nofile()
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    ns = [int(a) for a in sys.argv[1:]] or [10, 100, 1000]
    print("| members | all acks in, p50 | p99 | messages/s | deliveries/s | syscalls per delivery |")
    print("|---|---|---|---|---|---|")
    for n in ns:
        r = run(n)
        print(f"| {r['n']:,} | {r['p50']:.3f} ms | {r['p99']:.3f} ms | {r['msgs']:,.0f} "
              f"| {r['rate']:,.0f} | {r['syscalls']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
