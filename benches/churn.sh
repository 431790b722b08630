#!/usr/bin/env bash
# Room churn: `duet swarm --clients N --lifetime 1s..5s --duration D`
# against `duet server --room --plain`, with the hub's open descriptors
# and RSS before, at the end of the run, and once every member is gone.
#
# Usage: benches/churn.sh [N] [D]        (default N=1000, D=60s; python3)
# Prints the swarm's summary (connects, lost, errors, fan-out RTT), the
# connects per second it sustained, and the hub's fds / RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
D=${2:-60s}
cargo build --release -q
B=$PWD/target/release/duet
ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkfifo "$tmp/in"
"$B" server --room --plain --listen 127.0.0.1 --port 0 --max-peers $((2 * N)) \
  <"$tmp/in" >"$tmp/hub.out" 2>&1 &
hub=$!
exec 3>"$tmp/in"   # the hub's stdin stays open (and silent)
for _ in $(seq 100); do grep -q 'listening on' "$tmp/hub.out" && break; sleep 0.05; done
addr=$(grep -o 'listening on [^ ]*' "$tmp/hub.out" | head -1 | cut -d' ' -f3)
snap() { # fds RSS(KiB)
  echo "$(ls /proc/$hub/fd | wc -l) fds, $(awk '/VmRSS/ {print $2}' /proc/$hub/status) KiB RSS"
}
echo "hub before:        $(snap)"
"$B" swarm "$addr" --plain --clients "$N" --lifetime 1s..5s --duration "$D" \
  --format jsonl >"$tmp/swarm.json" || true
echo "hub at the end:    $(snap)"
for _ in $(seq 200); do
  [ "$(ls /proc/$hub/fd | wc -l)" -le 10 ] && break; sleep 0.05
done
echo "hub after leaves:  $(snap)"
sleep 12   # a quiet room gives free pages back at most every 10 s
echo "hub 12 s later:    $(snap)"
python3 - "$tmp/swarm.json" <<'PY'
import json, sys
v = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"clients {v['clients']}, {v['duration_s']:.1f} s: {v['connects']} connects "
      f"({v['connects'] / v['duration_s']:.0f}/s), {v['leaves']} planned leaves, "
      f"{v['received']} received, lost {v['lost']}, errors {v['errors_total']} "
      f"{ {k: n for k, n in v['errors'].items() if n} }, swarm peak RSS {v['peak_rss_kib']} KiB")
PY
