#!/usr/bin/env bash
# Small-message RTT while a 100 MB message flows the other way.
# Usage: benches/rtt-during-transfer.sh [runs]   (needs python3)
# A client sends 300 short lines, 10 ms apart; meanwhile the server sends
# one 100 MB message to it. Prints the 100 MB transfer rate and the RTT of
# the small messages acknowledged while it was in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
D=target/release/duet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 100000000 /dev/urandom > "$tmp/100m.bin"

run() {
  mkfifo "$tmp/srvin"
  $D server --port 0 --listen 127.0.0.1 --once --format jsonl --input whole --max-message 128MiB \
    < "$tmp/srvin" > "$tmp/s.jl" 2>/dev/null &
  exec 7>"$tmp/srvin"
  until grep -q listening "$tmp/s.jl" 2>/dev/null; do sleep 0.05; done
  port=$(grep -o '"addr":"[^"]*"' "$tmp/s.jl" | grep -o '[0-9]*"$' | tr -d '"')
  ( sleep 0.3; for i in $(seq 300); do echo "ping$i"; sleep 0.01; done ) 7>&- |
    $D client "127.0.0.1:$port" --format jsonl --max-message 128MiB 7>&- > "$tmp/c.jl" &
  cpid=$!
  until grep -q connected "$tmp/c.jl" 2>/dev/null; do sleep 0.05; done
  sleep 0.5
  cat "$tmp/100m.bin" >&7
  exec 7>&-
  wait $cpid
  wait
  rm -f "$tmp/srvin"
  python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
c = [json.loads(l) for l in open(d + "/c.jl")]
s = [json.loads(l) for l in open(d + "/s.jl")]
big = [e for e in c if e["event"] == "message"][0]
back = [e for e in s if e["event"] == "ack"][0]
t1 = big["mono_ns"]; t0 = t1 - int(back["rtt_us"] * 1000)
all_ = sorted(e["rtt_us"] for e in c if e["event"] == "ack")
during = sorted(e["rtt_us"] for e in c if e["event"] == "ack" and t0 <= e["mono_ns"] <= t1)
k = len(during)
print("100 MB in %.0f ms (%.0f MB/s); small-message RTT during it: n=%d p50=%.0f us max=%.0f us; all %d: p50=%.0f us max=%.0f us" % (
    back["rtt_us"] / 1000, 100 / (back["rtt_us"] / 1e6), k, during[k // 2] if k else 0, during[-1] if k else 0,
    len(all_), all_[len(all_) // 2], all_[-1]))
worst = max((e for e in c if e["event"] == "ack"), key=lambda e: e["rtt_us"])
print("  slowest ack decoded %+.0f ms after the 100 MB message was rendered" % ((worst["mono_ns"] - t1) / 1e6))
PY
}
for _ in $(seq "${1:-3}"); do run; done
