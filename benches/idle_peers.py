#!/usr/bin/env python3
"""Idle room members for benches/room.sh: opens N plain duet v1
connections to a hub, sends each one's HELLO, answers the hub's room PING
(`DUETROOM`) and every heartbeat PING with PONG, acknowledges any message,
and otherwise holds the connections open until killed.

Prints `ready N` on stdout once every connection has answered the room's
greeting, then one line per connection that ends (`closed NAME: ...`).
Standard library only. Frame layout: docs/PROTOCOL.md, "Frames".

Usage: idle_peers.py HOST:PORT [--clients N] [--max-message BYTES]

`--max-message 0` (the default) announces that the peer takes only empty
messages, so the hub refuses it the room's notices (`* X joined`), whose
number grows with the square of the room's size; a larger value receives
and acknowledges them.
"""

import argparse
import selectors
import socket
import struct
import sys
import time

HELLO, DATA, ACK, BYE, PING, PONG = 1, 2, 3, 4, 5, 6
ROOM_PROBE = b"DUETROOM"


def frame(kind, body):
    return struct.pack(">IB", len(body), kind) + body


def hello(name, max_message):
    body = b"DUET" + struct.pack(">HQB", 1, max_message, len(name)) + name
    return frame(HELLO, body)


class Peer:
    __slots__ = ("sock", "name", "buf", "out", "joined")

    def __init__(self, sock, name):
        self.sock = sock
        self.name = name
        self.buf = bytearray()
        self.out = bytearray()
        self.joined = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--max-message", type=int, default=0)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    host, _, port = args.addr.rpartition(":")
    target = (host, int(port))
    sel = selectors.DefaultSelector()
    peers = set()
    # Connections whose answers did not all fit in the socket.
    backlog = set()
    joined = 0
    opened = 0
    announced = False

    def service(p):
        nonlocal joined
        try:
            while True:
                chunk = p.sock.recv(65536)
                if not chunk:
                    close(p, "end of stream")
                    return
                p.buf += chunk
                if len(chunk) < 65536:
                    break
        except BlockingIOError:
            pass
        except OSError as e:
            close(p, str(e))
            return
        buf = p.buf
        pos = 0
        while len(buf) - pos >= 5:
            n, kind = struct.unpack_from(">IB", buf, pos)
            if len(buf) - pos < 5 + n:
                break
            body = bytes(buf[pos + 5:pos + 5 + n])
            pos += 5 + n
            if kind == PING:
                p.out += frame(PONG, body)
                if body == ROOM_PROBE and not p.joined:
                    p.joined = True
                    joined += 1
            elif kind == DATA and body[8] & 1:
                p.out += frame(ACK, body[:8])
            elif kind == BYE:
                close(p, "BYE reason %d %r" % (body[0], body[1:]))
                return
        del buf[:pos]
        flush(p)

    def flush(p):
        if p.out:
            try:
                sent = p.sock.send(p.out)
                del p.out[:sent]
                if p.out:
                    backlog.add(p)
            except BlockingIOError:
                backlog.add(p)
            except OSError as e:
                close(p, str(e))

    def close(p, why):
        print("closed %s: %s" % (p.name.decode(), why), flush=True)
        if p not in peers:
            return
        sel.unregister(p.sock)
        p.sock.close()
        peers.discard(p)

    while True:
        if opened < args.clients:
            for _ in range(min(args.batch, args.clients - opened)):
                s = socket.create_connection(target)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                name = b"idle%d" % opened
                s.sendall(hello(name, args.max_message))
                s.setblocking(False)
                p = Peer(s, name)
                peers.add(p)
                sel.register(s, selectors.EVENT_READ, p)
                opened += 1
        timeout = 0 if opened < args.clients else (0.01 if backlog else None)
        for key, _ in sel.select(timeout):
            service(key.data)
        waiting = list(backlog)
        backlog.clear()
        for p in waiting:
            if p in peers:
                flush(p)
        if not announced and joined >= args.clients:
            announced = True
            print("ready %d" % joined, flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
