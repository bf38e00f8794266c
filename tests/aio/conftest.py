"""Fixtures for the AIO tests: a scratch file, socket pairs, tunables restored, and a
leak check; finish() waits for a job and reaps it.

AIO state is process-wide, so every test must reap every job it submits; the
autouse fixture fails a test that leaves a job, a pinned buffer, a socket in
the engine, or an open descriptor behind.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import skqueue
from support import open_fds, wait_until

#: A wait on a busy machine: long enough never to expire when things work.
PATIENCE = 10.0


def finish(cb: skqueue.aiocb, timeout: float = PATIENCE) -> int:
    """The job's result, once it is done."""
    skqueue.aio_suspend([cb], timeout)
    return skqueue.aio_return(cb)


def start_engine() -> None:
    """Run one socket job so the engine's kqueue (3 fds) exists before counting."""
    a, b = socket.socketpair()
    with a, b:
        cb = skqueue.aiocb(a, bytearray(1))
        skqueue.aio_read(cb)
        assert skqueue.aio_cancel(a, cb) == skqueue.AIO_CANCELED
        with pytest.raises(OSError):
            skqueue.aio_return(cb)
        assert wait_until(lambda: skqueue.aio_stats()["sockets"] == 0)


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Each test ends with no job, pinned buffer or engine socket, and no new fd."""
    start_engine()
    before = len(open_fds())
    saved = skqueue.tunables.as_dict()
    yield
    for name, value in saved.items():
        skqueue.tunables.set(name, value)
    assert wait_until(lambda: skqueue.aio_stats()["sockets"] == 0)
    stats = skqueue.aio_stats()
    assert stats["jobs"] == 0, stats
    assert stats["buffers_held"] == 0, stats
    assert stats["queued"] == stats["running"] == stats["zc_inflight"] == 0, stats
    assert len(open_fds()) == before


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    """A scratch file the jobs read and write."""
    f = os.open(tmp_path / "data", os.O_RDWR | os.O_CREAT)
    yield f
    os.close(f)


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
