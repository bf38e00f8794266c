"""Fixtures for the AIO tests: socket pairs, tunables restored, and a leak check.

AIO state is process-wide, so every test must reap every job it submits; the
autouse fixture fails a test that leaves a job, a pinned buffer, a socket in
the engine, or an open descriptor behind.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

import skqueue


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(predicate: object, timeout: float = 5.0) -> bool:
    """Poll predicate() until true or timeout (for engine-side clean-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return bool(predicate())  # type: ignore[operator]


def start_engine() -> None:
    """Run one socket job so the engine's kqueue (3 fds) exists before counting."""
    a, b = socket.socketpair()
    with a, b:
        cb = skqueue.aiocb(a, bytearray(1))
        skqueue.aio_read(cb)
        assert skqueue.aio_cancel(a, cb) == skqueue.AIO_CANCELED
        with pytest.raises(OSError):
            skqueue.aio_return(cb)
        assert settle(lambda: skqueue.aio_stats()["sockets"] == 0)


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Each test ends with no job, pinned buffer or engine socket, and no new fd."""
    start_engine()
    before = open_fds()
    saved = skqueue.tunables.as_dict()
    yield
    for name, value in saved.items():
        skqueue.tunables.set(name, value)
    assert settle(lambda: skqueue.aio_stats()["sockets"] == 0)
    stats = skqueue.aio_stats()
    assert stats["jobs"] == 0, stats
    assert stats["buffers_held"] == 0, stats
    assert stats["queued"] == stats["running"] == stats["zc_inflight"] == 0, stats
    assert open_fds() == before


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    with a, b:
        yield a, b


@pytest.fixture
def kq() -> Iterator[skqueue.kqueue]:
    with skqueue.kqueue() as k:
        yield k
