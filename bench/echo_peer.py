"""A tiny blocking-socket echo server for ``echo_ext`` (plain Python, no asyncio).

Prints the port it listens on, serves one connection, echoes until EOF, exits.
"""

from __future__ import annotations

import socket
import sys


def main() -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    sys.stdout.write(f"{srv.getsockname()[1]}\n")
    sys.stdout.flush()
    conn, _ = srv.accept()
    srv.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    recv, sendall = conn.recv, conn.sendall
    while data := recv(65536):
        sendall(data)
    conn.close()


if __name__ == "__main__":
    main()
