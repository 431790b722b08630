#!/usr/bin/env bash
# Encrypted (the default) against --plain, measured with `duet bench` in
# one run, variants interleaved: stop-and-wait RTT p50 at 16 B and 1 KiB
# on one CPU and on two, one 100 MB message's throughput, and the time
# from connect to the first message deliverable (the handshake).
#
# Usage: benches/encrypted.sh [ROUNDS] [N]   (defaults 3 rounds, 20000
#                                            messages; needs taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${2:-20000}
cargo build --release -q
D=$PWD/target/release/duet
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
export DUET_HOME_S=$tmp/server DUET_HOME_C=$tmp/client

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do ss -ltn | grep -q ":$1 " && return; sleep 0.02; done; }

# run MODE SCPU CCPU SIZE COUNT: prints the bench's summary.
run() {
  local mode=$1 scpu=$2 ccpu=$3 size=$4 count=$5 flag=()
  [ "$mode" = plain ] && flag=(--plain)
  local p; p=$(free_port)
  DUET_HOME=$DUET_HOME_S taskset -c "$scpu" "$D" server --listen 127.0.0.1 --port "$p" --once --max-message 128MiB "${flag[@]}" \
    </dev/null >/dev/null 2>&1 &
  wait_port "$p"
  DUET_HOME=$DUET_HOME_C taskset -c "$ccpu" "$D" bench "127.0.0.1:$p" -n "$count" -s "$size" \
    --max-message 128MiB "${flag[@]}" 2>&1
  wait
}

p50() { grep -o 'p50/p90/p99/p99.9 = [0-9.]*' | grep -o '[0-9.]*$'; }
mbs() { grep -o '[0-9.]* MB/s' | grep -o '^[0-9.]*'; }

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), Linux $(uname -r)"
for place in "one CPU:0:0" "two CPUs:1:0"; do
  IFS=: read -r name scpu ccpu <<<"$place"
  for size in 16 1KiB; do
    plain=(); enc=()
    for _ in $(seq "$ROUNDS"); do
      plain+=("$(run plain "$scpu" "$ccpu" "$size" "$N" | p50)")
      enc+=("$(run encrypted "$scpu" "$ccpu" "$size" "$N" | p50)")
    done
    python3 - "$name" "$size" "${plain[*]}" "${enc[*]}" <<'PY'
import statistics, sys
name, size, plain, enc = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
p, e = statistics.median(map(float, plain)), statistics.median(map(float, enc))
print(f"stop-and-wait p50, {name}, {size}: plain {p*1000:.1f} us, encrypted {e*1000:.1f} us, "
      f"ratio {e/p:.2f}  (rounds plain {plain}, encrypted {enc} ms)")
PY
  done
done
plain=(); enc=()
for _ in $(seq "$ROUNDS"); do
  plain+=("$(run plain 1 0 100MB 1 | mbs)")
  enc+=("$(run encrypted 1 0 100MB 1 | mbs)")
done
python3 - "${plain[*]}" "${enc[*]}" <<'PY'
import statistics, sys
plain, enc = sys.argv[1].split(), sys.argv[2].split()
p, e = statistics.median(map(float, plain)), statistics.median(map(float, enc))
print(f"one 100 MB message, two CPUs: plain {p:.0f} MB/s, encrypted {e:.0f} MB/s, ratio {e/p:.2f}"
      f"  (rounds plain {plain}, encrypted {enc})")
PY
# The handshake: connect to the first message deliverable, from the
# bench's own RTT of a one-message run against its plain twin.
for mode in plain encrypted; do
  t0=$(date +%s%N); run "$mode" 1 0 16 1 >/dev/null; t1=$(date +%s%N)
  echo "one 16 B message, whole run ($mode, includes process start): $(( (t1 - t0) / 1000 )) us"
done
