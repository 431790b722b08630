#!/usr/bin/env bash
# Small-message RTT while a 4 MB message flows the other way over a link of
# a given rate: a network namespace whose loopback is limited by TBF.
# Checks that the send queues (src/queue_limit.rs) stay small on a slow
# path, so that an ack does not wait behind more of our data.
#
# Usage: benches/rtt-on-a-slow-link.sh [RATE...]   (default: 20mbit 200mbit
#        2gbit; needs root, iproute2 and python3; DUET=path to use another
#        build)
# The client sends 40 short lines, 50 ms apart; meanwhile the server sends
# one 4 MB message to it. Prints the transfer time and the lines' RTTs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "needs root (a network namespace)" >&2
  exit 1
fi
if [ -z "${DUET:-}" ]; then
  cargo build --release -q
  DUET=$PWD/target/release/duet
fi
NS=duet-slow-$$
tmp=$(mktemp -d)
trap 'ip netns del "$NS" 2>/dev/null || true; rm -rf "$tmp"' EXIT
head -c 4000000 /dev/urandom > "$tmp/big"

run() {
  local rate=$1
  ip netns add "$NS"
  ip netns exec "$NS" ip link set lo up
  # TBF drops 64 KiB loopback packets: keep them to one MTU.
  ip netns exec "$NS" ip link set lo mtu 1500
  ip netns exec "$NS" ip link set lo gso_max_size 1500
  ip netns exec "$NS" tc qdisc add dev lo root tbf rate "$rate" burst 32kbit latency 400ms
  mkfifo "$tmp/sin"
  ip netns exec "$NS" "$DUET" server --port 7100 --listen 127.0.0.1 --once --format jsonl \
    --input whole --max-message 16MiB < "$tmp/sin" > "$tmp/s.jl" 2>/dev/null &
  exec 7>"$tmp/sin"
  until grep -q listening "$tmp/s.jl" 2>/dev/null; do sleep 0.05; done
  ( sleep 0.3; for i in $(seq 40); do echo "ping$i"; sleep 0.05; done ) 7>&- |
    ip netns exec "$NS" "$DUET" client 127.0.0.1:7100 --format jsonl --max-message 16MiB \
      --linger 60s 7>&- > "$tmp/c.jl" 2>/dev/null &
  sleep 0.5
  cat "$tmp/big" >&7
  exec 7>&-
  wait
  rm -f "$tmp/sin"
  ip netns del "$NS"
  python3 - "$tmp" "$rate" <<'PY'
import json, sys
d, rate = sys.argv[1], sys.argv[2]
c = [json.loads(l) for l in open(d + "/c.jl")]
s = [json.loads(l) for l in open(d + "/s.jl")]
back = [e for e in s if e["event"] == "ack"]
r = sorted(e["rtt_us"] / 1000 for e in c if e["event"] == "ack")
took = "%.0f ms" % (back[0]["rtt_us"] / 1000) if back else "not acknowledged"
print("%8s: 4 MB took %s; the 40 lines' RTT: p50 %.1f ms, p90 %.1f ms, max %.1f ms" % (
    rate, took, r[len(r) // 2], r[int(len(r) * 0.9)], r[-1]))
PY
}

for rate in "${@:-20mbit 200mbit 2gbit}"; do
  for r in $rate; do run "$r"; done
done
