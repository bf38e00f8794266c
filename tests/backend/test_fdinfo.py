"""Per-fd queries: pipe capacity, socket send queues (and the tests' FIONREAD); real fds."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import threading

import pytest

from skqueue.backend import fdinfo
from support import kernel
from support.kernel import wait_until


def test_pipe_capacity() -> None:
    r, w = os.pipe()
    try:
        assert fdinfo.pipe_capacity(w) == fdinfo.pipe_capacity(r) > 0
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 128 * 1024)
        assert fdinfo.pipe_capacity(w) == 128 * 1024
    finally:
        os.close(r)
        os.close(w)
    with socket.socket() as s, pytest.raises(OSError) as info:
        fdinfo.pipe_capacity(s.fileno())
    assert info.value.errno == errno.EBADF


def test_socket_outq_unix_stream() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert fdinfo.socket_outq(a.fileno()) == 0
        a.sendall(b"x" * 1000)
        assert fdinfo.socket_outq(a.fileno()) >= 1000  # charged to the sender until read
        assert b.recv(2000) == b"x" * 1000
        assert fdinfo.socket_outq(a.fileno()) == 0


def test_socket_outq_tcp_unsent() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.setblocking(False)
            sent = 0
            with pytest.raises(BlockingIOError):
                while True:
                    sent += client.send(b"y" * 65536)
            # The receiver is full, so part of what we sent sits unsent in our queue.
            assert wait_until(lambda: 0 < fdinfo.socket_outq(client.fileno()) <= sent)
            assert (
                fdinfo.socket_outq(client.fileno()) + kernel.bytes_readable(server.fileno()) <= sent
            )


def test_bytes_readable_pipe_socket_udp() -> None:
    r, w = os.pipe()
    try:
        assert kernel.bytes_readable(r) == 0
        os.write(w, b"abc")
        assert kernel.bytes_readable(r) == 3
        os.read(r, 2)
        assert kernel.bytes_readable(r) == 1
    finally:
        os.close(r)
        os.close(w)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"0123456789")
        assert kernel.bytes_readable(b.fileno()) == 10
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        tx.sendto(b"12345", rx.getsockname())
        tx.sendto(b"1234567", rx.getsockname())
        assert wait_until(lambda: kernel.bytes_readable(rx.fileno()) == 5)  # next datagram
    with pytest.raises(OSError) as info:
        kernel.bytes_readable(10_000)
    assert info.value.errno == errno.EBADF


def test_socket_outq_threads_do_not_share_buffers() -> None:
    """socket_outq's ioctl buffer is per thread: four threads, four queue levels."""
    errors: list[str] = []
    pairs = [socket.socketpair() for _ in range(4)]
    for sends, (a, _b) in enumerate(pairs, 1):
        for _ in range(sends):
            a.sendall(b"z" * 100)  # one skb each, so the four levels differ
    levels = [fdinfo.socket_outq(a.fileno()) for a, _b in pairs]
    assert len(set(levels)) == 4, levels

    def worker(fd: int, level: int) -> None:
        for _ in range(20_000):
            got = fdinfo.socket_outq(fd)
            if got != level:
                errors.append(f"fd {fd}: {got} != {level}")
                return

    threads = [
        threading.Thread(target=worker, args=(a.fileno(), level))
        for (a, _b), level in zip(pairs, levels, strict=True)
    ]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so a shared buffer would show
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
            assert not t.is_alive()
    finally:
        sys.setswitchinterval(interval)
    for a, b in pairs:
        a.close()
        b.close()
    assert errors == []
