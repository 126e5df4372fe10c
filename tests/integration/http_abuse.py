#!/usr/bin/env python3
"""One attack on camjoin's HTTP endpoint, for t_http_abuse.sh.

    http_abuse.py PORT ATTACK [SECONDS]

prints one JSON object: what the attack saw (statuses, counts, timings).
Attacks:
  flood      2,000 connections opened at once and held idle for SECONDS:
             how many were answered at once and with what, and how many were
             still open (unanswered) when SECONDS ended
  slowloris  one request head sent a byte a second: the status and when
  bighead    a 1 MiB header: the status
  badbytes   a request line of bytes 0x80-0xff: the status
  methods    POST, PUT, DELETE: their statuses
  dotdot     GET /../../etc/passwd and GET /metrics/../metrics: statuses
  pipeline   two requests in one write: how many responses came back
"""
import json
import resource
import select
import selectors
import socket
import sys
import time


def status_of(data):
    """The status code of the first response in data, or 0."""
    line = data.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) >= 2 and line[1].isdigit() else 0


def read_all(s, timeout):
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def one(port, payload, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before reading it all
    data = read_all(s, timeout)
    s.close()
    return data


def flood(port, seconds):
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 64), max(hard, n + 64)))
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    sel = selectors.DefaultSelector()  # epoll: select() stops at 1,024 descriptors
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    answered, statuses, deadline = 0, {}, time.monotonic() + seconds
    while time.monotonic() < deadline and answered < n:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, ConnectionResetError):
                data = b""
            sel.unregister(s)
            answered += 1
            st = str(status_of(data))
            statuses[st] = statuses.get(st, 0) + 1
    sel.close()
    still_open = n - answered
    for s in socks:
        s.close()
    return {"connections": n, "answered_within_s": seconds, "statuses": statuses,
            "unanswered_open": still_open}


def slowloris(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    t0 = time.monotonic()
    sent = 0
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 100
    s.setblocking(False)
    data = b""
    for byte in head:
        try:
            s.send(bytes([byte]))
            sent += 1
        except (BrokenPipeError, ConnectionResetError, BlockingIOError):
            break
        r = select.select([s], [], [], 1.0)[0]
        if r:
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            break
    s.close()
    return {"status": status_of(data), "after_s": round(time.monotonic() - t0, 1),
            "bytes_sent": sent}


def main():
    port, attack = int(sys.argv[1]), sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 4
    if attack == "flood":
        out = flood(port, seconds)
    elif attack == "slowloris":
        out = slowloris(port)
    elif attack == "bighead":
        out = {"status": status_of(one(port, b"GET /metrics HTTP/1.1\r\nX: " +
                                         b"a" * (1 << 20) + b"\r\n\r\n"))}
    elif attack == "badbytes":
        out = {"status": status_of(one(port, bytes(range(0x80, 0x100)) + b"\r\n\r\n"))}
    elif attack == "methods":
        out = {m: status_of(one(port, m.encode() + b" /metrics HTTP/1.1\r\n\r\n"))
               for m in ("POST", "PUT", "DELETE")}
    elif attack == "dotdot":
        out = {p: status_of(one(port, b"GET " + p.encode() + b" HTTP/1.1\r\n\r\n"))
               for p in ("/../../etc/passwd", "/metrics/../metrics")}
    elif attack == "pipeline":
        data = one(port, b"GET /healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
        out = {"responses": data.count(b"HTTP/1.1 "), "status": status_of(data)}
    else:
        sys.exit(f"unknown attack {attack}")
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
