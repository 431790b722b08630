#!/usr/bin/env bash
# Syscalls and instructions per message, for each side of a stop-and-wait
# exchange of 16-byte messages on 127.0.0.1, plus an idle minute's wake-ups.
#
# Usage: [DUET_FLAGS=--plain] benches/syscalls.sh [N]
#                                       (default N=10000; needs strace,
#                                        valgrind and python3)
# - syscalls: `strace -f -c` over N messages, divided by N; and, where perf
#   has syscall tracepoints, counted at full speed (difference between N
#   and 2N messages);
# - instructions: `valgrind --tool=callgrind` total Ir at N and 2N messages
#   (receiver, bench, piped client, and the receiver's floor: the bare mio
#   echo with a display write from benches/e2e.rs); the difference divided
#   by N removes start-up and shut-down;
# - idle: `strace -f -c` on a server with a connected, silent client for
#   IDLE seconds (default 60): only heartbeats should show.
set -euo pipefail
cd "$(dirname "$0")/.."
# Encrypted by default; DUET_FLAGS=--plain measures protocol v1. Both
# sides keep their identity in a temporary DUET_HOME.
N=${1:-10000}
IDLE=${IDLE:-60}
cargo build --release -q
D=$PWD/target/release/duet
tmp=$(mktemp -d)
export DUET_HOME=$tmp/home
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits until something listens on the port, without connecting to it
# (a connection would be a chat, and these servers serve only one).
wait_port() { for _ in $(seq 200); do ss -ltn | grep -q ":$1 " && return; sleep 0.05; done; }
# Calls per message from an strace -c file: all calls, and the main ones.
per_msg() {
  python3 - "$1" "$2" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
calls = {}
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls[f[-1]] = int(f[3])
main = {k: v for k, v in calls.items() if v >= n // 2}
print("%.2f per message (%s)" % (sum(main.values()) / n,
      ", ".join("%s %.2f" % (k, v / n) for k, v in sorted(main.items(), key=lambda kv: -kv[1]))))
PY
}

echo "== syscalls per message, $N stop-and-wait 16 B messages"
p=$(free_port)
strace -f -c -o "$tmp/server.st" "$D" server ${DUET_FLAGS:-} --listen 127.0.0.1 --port "$p" --once \
  </dev/null >/dev/null 2>&1 &
wait_port "$p"
sleep 0.2
strace -f -c -o "$tmp/bench.st" "$D" bench ${DUET_FLAGS:-} "127.0.0.1:$p" -n "$N" -s 16 >/dev/null
wait
echo "receiver (duet server, text to /dev/null): $(per_msg "$tmp/server.st" "$N")"
echo "sender (duet bench):                       $(per_msg "$tmp/bench.st" "$N")"

p=$(free_port)
"$D" server ${DUET_FLAGS:-} --listen 127.0.0.1 --port "$p" --once </dev/null >/dev/null 2>&1 &
wait_port "$p"
sleep 0.2
# Feeds a piped `duet client --format jsonl`, run under the tracer given
# as the remaining arguments, one 16-byte line per ack.
drive_client() {
  python3 - "$D" "$1" "$2" "${@:3}" <<'PY'
import subprocess, sys
d, port, n, tracer = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
import os
flags = os.environ.get("DUET_FLAGS", "").split()
c = subprocess.Popen(tracer + [d, "client", "127.0.0.1:" + port, "--format", "jsonl"] + flags,
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
def until(word):
    while True:
        line = c.stdout.readline()
        assert line, "client ended"
        if word in line:
            return
until(b'"connected"')
for i in range(n):
    c.stdin.write(b"0123456789abcde\n")
    until(b'"event":"ack"')
c.stdin.close()
c.wait()
PY
}
drive_client "$p" "$N" strace -f -c -o "$tmp/client.st"
wait
echo "sender (duet client fed by a pipe, jsonl):  $(per_msg "$tmp/client.st" "$N")"

# strace stops the process at every syscall, which slows each message
# several times over; anything that happens per unit of time (the display
# hold's timer, at most once per 10 ms) then looks like more per message.
# perf's syscall tracepoints count at full speed.
if perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
  echo
  echo "== the same at full speed (perf stat, syscall tracepoints, difference between $N and $((2 * N)) messages)"
  ev=raw_syscalls:sys_enter
  for c in epoll_wait read write sendto recvfrom timerfd_settime; do ev="$ev,syscalls:sys_enter_$c"; done
  # Per message: the counts of a 2N run minus those of an N run, over N.
  per_msg_perf() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys
def counts(path):
    c = {}
    for line in open(path):
        f = line.strip().split(",")
        if len(f) > 2 and f[0].isdigit():
            c[f[2].replace("raw_syscalls:sys_enter", "all").replace("syscalls:sys_enter_", "")] = int(f[0])
    return c
a, b, n = counts(sys.argv[1]), counts(sys.argv[2]), int(sys.argv[3])
d = {k: (b.get(k, 0) - a.get(k, 0)) / n for k in b}
total = d.pop("all")
print("%.3f per message (%s)" % (total, ", ".join(
    "%s %.3f" % (k, v) for k, v in sorted(d.items(), key=lambda kv: -kv[1]) if v > 0)))
PY
  }
  for k in 1 2; do
    p=$(free_port)
    perf stat -x, -e "$ev" -o "$tmp/server.perf.$k" "$D" server ${DUET_FLAGS:-} --listen 127.0.0.1 --port "$p" --once \
      </dev/null >/dev/null 2>&1 &
    wait_port "$p"
    sleep 0.2
    perf stat -x, -e "$ev" -o "$tmp/bench.perf.$k" "$D" bench ${DUET_FLAGS:-} "127.0.0.1:$p" -n "$((k * N))" -s 16 >/dev/null
    wait
    p=$(free_port)
    "$D" server ${DUET_FLAGS:-} --listen 127.0.0.1 --port "$p" --once </dev/null >/dev/null 2>&1 &
    wait_port "$p"
    sleep 0.2
    drive_client "$p" "$((k * N))" perf stat -x, -e "$ev" -o "$tmp/client.perf.$k"
    wait
  done
  echo "receiver (duet server, text to /dev/null): $(per_msg_perf "$tmp/server.perf.1" "$tmp/server.perf.2" "$N")"
  echo "sender (duet bench):                       $(per_msg_perf "$tmp/bench.perf.1" "$tmp/bench.perf.2" "$N")"
  echo "sender (duet client fed by a pipe, jsonl):  $(per_msg_perf "$tmp/client.perf.1" "$tmp/client.perf.2" "$N")"
fi

if command -v valgrind >/dev/null; then
  echo
  echo "== instructions per message (callgrind, difference between $N and $((2 * N)) messages)"
  ir() { grep -o 'summary: [0-9]*' "$1" | grep -o '[0-9]*'; }
  for side in server bench client; do
    for k in 1 2; do
      n=$((k * N))
      p=$(free_port)
      if [ $side = client ]; then
        "$D" server ${DUET_FLAGS:-} --listen 127.0.0.1 --port "$p" --once </dev/null >/dev/null 2>&1 &
        wait_port "$p"; sleep 0.2
        drive_client "$p" "$n" valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$side.$k" 2>/dev/null
      elif [ $side = server ]; then
        valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$side.$k" \
          "$D" server ${DUET_FLAGS:-} --listen 127.0.0.1 --port "$p" --once </dev/null >/dev/null 2>/dev/null &
        wait_port "$p"; sleep 0.5
        "$D" bench ${DUET_FLAGS:-} "127.0.0.1:$p" -n "$n" -s 16 >/dev/null
      else
        "$D" server ${DUET_FLAGS:-} --listen 127.0.0.1 --port "$p" --once </dev/null >/dev/null 2>&1 &
        wait_port "$p"; sleep 0.2
        valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$side.$k" \
          "$D" bench ${DUET_FLAGS:-} "127.0.0.1:$p" -n "$n" -s 16 >/dev/null 2>/dev/null
      fi
      wait
    done
    a=$(ir "$tmp/cg.$side.1"); b=$(ir "$tmp/cg.$side.2")
    echo "$side: $(( (b - a) / N )) instructions per message (user space)"
  done
  # The receiver's floor for comparison: the bare mio echo with a display
  # write ("+display" in benches/e2e.rs), fed by a Python sender.
  e2e=$(cargo bench --bench e2e --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("target", {}).get("name") == "e2e" and m.get("executable"):
        print(m["executable"])')
  for k in 1 2; do
    exec 3< <(exec valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.floor.$k" \
      "$e2e" --mio-echo-shown 2>/dev/null)
    read -r addr <&3
    python3 - "$addr" "$((k * N))" <<'PY'
import socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i in range(1, int(sys.argv[2]) + 1):
    s.sendall(struct.pack(">IBQB", 25, 2, i, 1) + b"m" * 16)  # one 16 B DATA frame
    ack = b""
    while len(ack) < 13:
        ack += s.recv(13 - len(ack))
PY
    pkill -f "callgrind-out-file=$tmp/cg.floor.$k" || true
    cat <&3 >/dev/null
    exec 3<&-
  done
  a=$(ir "$tmp/cg.floor.1"); b=$(ir "$tmp/cg.floor.2")
  echo "floor (bare mio echo + display write): $(( (b - a) / N )) instructions per message (user space)"
fi

echo
echo "== idle: a server with a connected, silent client for $IDLE s (heartbeat 5 s)"
p=$(free_port)
strace -f -c -o "$tmp/idle.st" "$D" server ${DUET_FLAGS:-} --listen 127.0.0.1 --port "$p" </dev/null >/dev/null 2>&1 &
spid=$!
wait_port "$p"
sleep 0.2
mkfifo "$tmp/cin"
"$D" client ${DUET_FLAGS:-} "127.0.0.1:$p" <"$tmp/cin" >/dev/null 2>&1 &
exec 9>"$tmp/cin"
sleep "$IDLE"
exec 9>&-
sleep 0.5
pkill -INT -f "duet server.* --port $p" || true
wait "$spid" 2>/dev/null || true
echo "server syscalls in $IDLE s idle (including start, one connect and the exit):"
grep -E '^ *[0-9]' "$tmp/idle.st" | awk '{printf "  %-14s %s\n", $NF, $4}'
