#!/usr/bin/env bash
# Network faults that need root: a peer whose packets are silently dropped,
# random packet loss, a blackholed address (connect timeout), a name that
# does not resolve, and a chat over IPv6 link-local addresses. Everything
# runs inside network namespaces this script creates, with their own
# loopback and a veth pair between two of them; nothing leaves the machine.
#
# Usage: tests/netns.sh        (from .ci/run; skips, saying why, when it
#                              cannot create a namespace)
set -uo pipefail
cd "$(dirname "$0")/.."

skip() { echo "netns: SKIP: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "not root"
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"

NS="duet-test-$$"
PEER_NS="duet-peer-$$"
ip netns add "$NS" 2>/dev/null || skip "cannot create a network namespace"
tmp=$(mktemp -d)
# Each run has its own identity and known_peers (the chats are encrypted).
export DUET_HOME="$tmp/home"
cleanup() {
  for ns in "$NS" "$PEER_NS"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$tmp" "/etc/netns/$NS"
}
trap cleanup EXIT
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up

if ! command -v nft >/dev/null; then
  echo "netns: installing nftables"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables) >/dev/null 2>&1 \
    || skip "cannot install nftables"
fi

cargo build -q || exit 1
DUET="$PWD/target/debug/duet"
failures=0
pass() { echo "netns: PASS: $*"; }
fail() { echo "netns: FAIL: $*"; failures=$((failures + 1)); }
ms_now() { date +%s%3N; }

# Start a server in the namespace on $1; sets SPID. Output in $tmp/s.jl.
start_server() {
  in_ns "$DUET" server --listen 127.0.0.1 --port "$1" --format jsonl "${@:2}" \
    < /dev/null > "$tmp/s.jl" 2> "$tmp/s.err" &
  SPID=$!
  for _ in $(seq 100); do grep -q listening "$tmp/s.jl" 2>/dev/null && return; sleep 0.05; done
  fail "server did not start: $(cat "$tmp/s.err")"
}
stop_server() { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; }

in_ns nft add table inet duet
in_ns nft add chain inet duet in '{ type filter hook input priority 0; }'

# 1. A silent peer: after the handshake, every packet is dropped. Both ends
# must notice through heartbeats: heartbeat x (dead_after + 1) = 600 ms.
start_server 7001 --heartbeat 200ms --dead-after 2
mkfifo "$tmp/cin"
in_ns "$DUET" client 127.0.0.1:7001 --format jsonl --heartbeat 200ms --dead-after 2 \
  < "$tmp/cin" > "$tmp/c.jl" 2> "$tmp/c.err" &
CPID=$!
exec 8>"$tmp/cin"
for _ in $(seq 100); do grep -q connected "$tmp/c.jl" 2>/dev/null && break; sleep 0.05; done
t0=$(ms_now)
in_ns nft add rule inet duet in tcp dport 7001 drop
in_ns nft add rule inet duet in tcp sport 7001 drop
wait "$CPID"; code=$?
took=$(( $(ms_now) - t0 ))
exec 8>&-
if [ "$code" = 1 ] && grep -q "did not answer 2 heartbeats" "$tmp/c.err" && [ "$took" -lt 5000 ]; then
  pass "silently dropped peer detected by the client in ${took} ms (bound 600 ms + slack)"
else
  fail "silent peer: exit $code after ${took} ms: $(cat "$tmp/c.err")"
fi
for _ in $(seq 100); do grep -q '"closed"' "$tmp/s.jl" && break; sleep 0.05; done
if grep -q 'did not answer 2 heartbeats' "$tmp/s.jl"; then
  pass "the server detected it too and went back to waiting"
else
  fail "server did not detect the silent peer: $(tail -2 "$tmp/s.jl")"
fi
stop_server
in_ns nft flush chain inet duet in

# 2. Random loss of 10% of packets: every message still arrives, in order,
# and is acknowledged.
start_server 7002
in_ns nft add rule inet duet in tcp dport 7002 numgen random mod 100 '<' 10 drop
in_ns nft add rule inet duet in tcp sport 7002 numgen random mod 100 '<' 10 drop
seq 1 300 | in_ns "$DUET" client 127.0.0.1:7002 --format jsonl --linger 60s > "$tmp/c.jl" 2> "$tmp/c.err"
code=$?
got=$(grep -c '"event":"message"' "$tmp/s.jl")
acked=$(grep -o '"acked":[0-9]*' "$tmp/c.jl" | head -1)
if [ "$code" = 0 ] && [ "$got" = 300 ] && [ "$acked" = '"acked":300' ]; then
  pass "10% random loss: 300 of 300 messages delivered and acknowledged"
else
  fail "random loss: exit $code, $got received, $acked: $(cat "$tmp/c.err")"
fi
stop_server
in_ns nft flush chain inet duet in

# 3. A blackholed address: SYNs vanish, so only the connect timeout ends it.
in_ns nft add rule inet duet in tcp dport 7003 drop
t0=$(ms_now)
in_ns "$DUET" client 127.0.0.1:7003 --connect-timeout 500ms < /dev/null > /dev/null 2> "$tmp/c.err"
code=$?
took=$(( $(ms_now) - t0 ))
if [ "$code" = 1 ] && grep -q "cannot connect to 127.0.0.1:7003: timed out" "$tmp/c.err" && [ "$took" -ge 450 ]; then
  pass "blackholed address: '$(cat "$tmp/c.err")' after ${took} ms (timeout 500 ms)"
else
  fail "blackhole: exit $code after ${took} ms: $(cat "$tmp/c.err")"
fi
in_ns nft flush chain inet duet in

# 4. A name that does not resolve (the namespace has no route to a resolver).
in_ns "$DUET" client no-such-host.invalid < /dev/null > /dev/null 2> "$tmp/c.err"
code=$?
if [ "$code" = 1 ] && grep -q "^duet: cannot resolve no-such-host.invalid" "$tmp/c.err"; then
  pass "unresolvable name: '$(cat "$tmp/c.err")'"
else
  fail "unresolvable name: exit $code: $(cat "$tmp/c.err")"
fi

# 5. IPv6 link-local: the address needs its zone (the interface) to mean
# anything. A veth pair joins this namespace (fe80::a on duet-a) to a second
# one (fe80::b on duet-b); DAD is skipped so the addresses work at once.
in_peer() { ip netns exec "$PEER_NS" "$@"; }
veth_ok=no
ip netns add "$PEER_NS" \
  && ip link add duet-a netns "$NS" type veth peer name duet-b netns "$PEER_NS" \
  && in_ns ip link set duet-a up && in_peer ip link set duet-b up \
  && in_ns ip addr add fe80::a/64 dev duet-a nodad \
  && in_peer ip addr add fe80::b/64 dev duet-b nodad \
  && veth_ok=yes
[ "$veth_ok" = yes ] || echo "netns: SKIP: link-local: cannot set up a veth pair"
for listen in "" "--listen fe80::b%duet-b"; do
  [ "$veth_ok" = yes ] || break
  # shellcheck disable=SC2086 # $listen is two words or none
  in_peer "$DUET" server --port 7005 --once --format jsonl $listen \
    < /dev/null > "$tmp/s.jl" 2> "$tmp/s.err" &
  SPID=$!
  for _ in $(seq 100); do grep -q listening "$tmp/s.jl" 2>/dev/null && break; sleep 0.05; done
  printf 'over link-local\n' \
    | in_ns "$DUET" client '[fe80::b%duet-a]:7005' --format jsonl > "$tmp/c.jl" 2> "$tmp/c.err"
  code=$?
  wait "$SPID"
  if [ "$code" = 0 ] && grep -q '"acked":1' "$tmp/c.jl" \
    && grep -q '"text":"over link-local"' "$tmp/s.jl"; then
    pass "link-local chat to [fe80::b%duet-a] (server ${listen:-on [::]})"
  else
    fail "link-local (server ${listen:-on [::]}): exit $code: $(cat "$tmp/c.err" "$tmp/s.err")"
  fi
done

# 6. A name whose lookup hangs: the resolver's packets are dropped. A
# signal ends the client at once, not when the lookup gives up (10 s here).
# (`ip netns exec` puts /etc/netns/NAME/resolv.conf in place of the host's.)
if mkdir -p "/etc/netns/$NS" 2>/dev/null \
  && printf 'nameserver 127.0.0.53\noptions timeout:5 attempts:2\n' > "/etc/netns/$NS/resolv.conf"; then
  in_ns nft add rule inet duet in udp dport 53 counter drop
  in_ns nft add rule inet duet in tcp dport 53 drop
  # Not through in_ns: a function run in the background is a subshell, and
  # the signal must reach duet itself (ip netns exec execs it, same pid).
  ip netns exec "$NS" "$DUET" client slow.example < /dev/null > /dev/null 2> "$tmp/c.err" &
  CPID=$!
  # The lookup is under way once its first query has been dropped.
  for _ in $(seq 100); do
    in_ns nft list chain inet duet in | grep -q 'udp dport 53 counter packets [1-9]' && break
    sleep 0.05
  done
  t0=$(ms_now)
  kill -TERM "$CPID"
  wait "$CPID"; code=$?
  took=$(( $(ms_now) - t0 ))
  # Killed by the signal (143), not "cannot resolve" (exit 1) once the
  # lookup gave up, which is what a handler installed too early gives.
  if [ "$code" = 143 ]; then
    pass "SIGTERM during a hanging name lookup ends the client (in ${took} ms)"
  else
    fail "hanging lookup: exit $code after ${took} ms: $(cat "$tmp/c.err")"
  fi
  in_ns nft flush chain inet duet in
  rm -rf "/etc/netns/$NS"
else
  echo "netns: SKIP: hanging lookup: cannot write /etc/netns/$NS/resolv.conf"
fi

[ "$failures" = 0 ] || { echo "netns: $failures failure(s)"; exit 1; }
echo "netns: all passed"
