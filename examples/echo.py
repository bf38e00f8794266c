"""An echo server driven by kqueue events, printing every event it sees.

Run it: ``python examples/echo.py`` starts the server on loopback, connects three
clients that each send a few lines, echoes them back and exits when all are done.
"""

from __future__ import annotations

import socket
import threading

import skqueue
from skqueue import EV_ADD, EV_DELETE, EV_EOF, EVFILT_READ, kevent

CLIENTS = 3
LINES = 3


def client(port: int, number: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for line in range(LINES):
            message = f"client {number} line {line}\n".encode()
            sock.sendall(message)
            received = b""
            while len(received) < len(message):
                received += sock.recv(4096)
            assert received == message, (received, message)


def serve(listener: socket.socket) -> None:
    kq = skqueue.kqueue()
    conns: dict[int, socket.socket] = {}
    kq.control([kevent(listener, EVFILT_READ, EV_ADD, udata="listener")], 0)
    finished = 0
    while finished < CLIENTS:
        for ev in kq.control(None, 16):
            name = _flags(ev.flags)
            print(
                f"event ident={ev.ident} filter=READ flags={name} data={ev.data} udata={ev.udata!r}"
            )
            if ev.udata == "listener":
                for _ in range(ev.data):  # data = connections waiting to be accepted
                    conn, _ = listener.accept()
                    conns[conn.fileno()] = conn
                    change = kevent(conn, EVFILT_READ, EV_ADD, udata=f"conn {conn.fileno()}")
                    kq.control([change], 0)
            elif ev.flags & EV_EOF and ev.data == 0:
                conn = conns.pop(ev.ident)
                kq.control([kevent(conn, EVFILT_READ, EV_DELETE)], 0)
                conn.close()
                finished += 1
            else:
                conn = conns[ev.ident]
                conn.sendall(conn.recv(ev.data))
    kq.close()


def _flags(flags: int) -> str:
    names = [name for name, bit in (("EOF", EV_EOF),) if flags & bit]
    return "|".join(names) or "0"


def main() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        print(f"echo server on 127.0.0.1:{port}")
        clients = [threading.Thread(target=client, args=(port, n)) for n in range(CLIENTS)]
        for thread in clients:
            thread.start()
        serve(listener)
        for thread in clients:
            thread.join(timeout=10)
    print(f"done: {CLIENTS} clients x {LINES} lines echoed")


if __name__ == "__main__":
    main()
