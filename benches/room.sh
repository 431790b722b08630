#!/usr/bin/env bash
# A room with idle members: the hub's (`duet server --room --plain`)
# memory and CPU with N plain members that only answer heartbeats
# (benches/idle_peers.py). For each N: the server's VmRSS and VmHWM once
# every member has joined and SETTLE seconds have passed (heartbeats have
# gone round), and its CPU (utime + stime from /proc/PID/stat) over a
# WINDOW-second idle window, as a percentage of one CPU ("load CPU%" is
# its CPU from start-up until every member joined, over that time).
#
# Usage: benches/room.sh [N...]   (default: 1000 10000)
#   DUET=path/to/duet   the binary to measure (default: a release build)
#   SETTLE=10 WINDOW=30 MAX_MESSAGE=0 (what the members accept; 0 keeps the
#   room's join notices, n²/2 of them, off the wire)
set -euo pipefail
cd "$(dirname "$0")/.."
SETTLE=${SETTLE:-10}
WINDOW=${WINDOW:-30}
MAX_MESSAGE=${MAX_MESSAGE:-0}
COUNTS=("$@")
[ ${#COUNTS[@]} -eq 0 ] && COUNTS=(1000 10000)
if [ -z "${DUET:-}" ]; then
  cargo build --release -q
  DUET=$PWD/target/release/duet
fi
# One descriptor per member on each side, and a few more.
ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
hz=$(getconf CLK_TCK)

# cpu_ticks PID: utime + stime (fields 14 and 15 after the command's name).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), Linux $(uname -r)"
echo "binary: $DUET; members accept messages up to $MAX_MESSAGE bytes; settle ${SETTLE}s, window ${WINDOW}s"
printf '%8s %12s %12s %10s %10s %12s\n' peers "VmRSS MiB" "VmHWM MiB" "KiB/peer" "idle CPU%" "load CPU%"
for n in "${COUNTS[@]}"; do
  fifo=$tmp/stdin-$n
  mkfifo "$fifo"
  # The fifo is held open for writing so the hub's stdin stays open.
  sleep infinity >"$fifo" &
  holder=$!
  "$DUET" server --room --plain --listen 127.0.0.1 --port 0 --format jsonl \
    --max-peers "$n" <"$fifo" >"$tmp/server-$n.out" 2>"$tmp/server-$n.err" &
  server=$!
  for _ in $(seq 200); do
    [ -s "$tmp/server-$n.out" ] && break
    sleep 0.05
  done
  addr=$(head -1 "$tmp/server-$n.out" | sed 's/.*"addr":"\([^"]*\)".*/\1/')
  base_kb=$(status_kb "$server" VmRSS)
  start=$(date +%s.%N)
  python3 benches/idle_peers.py "$addr" --clients "$n" --max-message "$MAX_MESSAGE" \
    >"$tmp/peers-$n.out" 2>"$tmp/peers-$n.err" &
  peers=$!
  until grep -qs '^ready' "$tmp/peers-$n.out"; do
    if ! kill -0 "$peers" 2>/dev/null; then
      echo "idle_peers.py failed:" >&2
      cat "$tmp/peers-$n.out" "$tmp/peers-$n.err" >&2
      exit 1
    fi
    sleep 0.2
  done
  joined=$(date +%s.%N)
  load_ticks=$(cpu_ticks "$server")
  sleep "$SETTLE"
  t0=$(cpu_ticks "$server")
  sleep "$WINDOW"
  t1=$(cpu_ticks "$server")
  rss=$(status_kb "$server" VmRSS)
  hwm=$(status_kb "$server" VmHWM)
  closed=$(grep -c '^closed' "$tmp/peers-$n.out" || true)
  awk -v n="$n" -v rss="$rss" -v hwm="$hwm" -v base="$base_kb" -v t0="$t0" -v t1="$t1" \
    -v hz="$hz" -v w="$WINDOW" -v lt="$load_ticks" -v s="$start" -v j="$joined" 'BEGIN {
      printf "%8d %12.1f %12.1f %10.2f %10.2f %12.1f\n", n, rss / 1024, hwm / 1024,
        (rss - base) / n, 100 * (t1 - t0) / hz / w, 100 * lt / hz / (j - s)
    }'
  [ "$closed" -eq 0 ] || echo "  ($closed members were closed; see $tmp/peers-$n.out)"
  kill "$peers" "$server" "$holder" 2>/dev/null || true
  wait "$peers" "$server" "$holder" 2>/dev/null || true
done
