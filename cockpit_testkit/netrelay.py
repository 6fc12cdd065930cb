"""`python netrelay.py [--fdpass] HOST PORT`: an ssh ProxyCommand that connects to HOST:PORT (like `nc`).

The ssh tests run it inside their private network namespace (`ip netns exec NS ...`), so the client side of
every ssh connection lives in that namespace too and nothing is reachable from the machine's own network.
With `--fdpass` (ssh's `ProxyUseFdpass yes`) it hands the connected socket to ssh and exits, so no relay
process sits in the data path; without it, it joins stdin/stdout to the connection.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys


def main() -> int:
    args = sys.argv[1:]
    fdpass = args[:1] == ["--fdpass"]
    host, port = args[-2], int(args[-1])
    try:
        conn = socket.create_connection((host, port), timeout=5)
    except OSError as exc:
        print(f"netrelay: {host}:{port}: {exc}", file=sys.stderr)
        return 1
    conn.settimeout(None)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if fdpass:
        channel = socket.socket(fileno=os.dup(sys.stdout.fileno()))
        socket.send_fds(channel, [b"\0"], [conn.fileno()])
        return 0
    sel = selectors.DefaultSelector()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    sel.register(stdin, selectors.EVENT_READ)
    sel.register(conn, selectors.EVENT_READ)
    open_in = True
    while True:
        for key, _ in sel.select():
            if key.fileobj == stdin:
                data = os.read(stdin, 65536)
                if not data:
                    sel.unregister(stdin)
                    open_in = False
                    conn.shutdown(socket.SHUT_WR)
                    continue
                conn.sendall(data)
            else:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    return 0
                view = memoryview(data)
                while view:
                    view = view[os.write(stdout, view):]
        if not open_in and not sel.get_map():
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
