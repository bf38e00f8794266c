"""Bad input: each a clear error, nothing leaked (fds and pinned buffers counted)."""

from __future__ import annotations

import errno
import mmap
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import skqueue
from skqueue import aio_read, aio_return, aio_suspend, aio_write, aiocb, sigevent_kevent
from support import open_fds


def _no_leak(action: Callable[[], None]) -> None:
    fds, held = len(open_fds()), skqueue.aio_stats()["buffers_held"]
    action()
    assert len(open_fds()) == fds
    assert skqueue.aio_stats()["buffers_held"] == held
    assert skqueue.aio_stats()["jobs"] == 0


def _raises(code: int | type[Exception], call: Callable[[], object]) -> None:
    if isinstance(code, int):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == code, info.value
        assert os.strerror(code) in str(info.value)
    else:
        with pytest.raises(code):
            call()


def test_closed_fd(tmp_path: Path) -> None:
    f = os.open(tmp_path / "x", os.O_RDWR | os.O_CREAT)
    os.close(f)
    _no_leak(lambda: _raises(errno.EBADF, lambda: aio_read(aiocb(f, bytearray(4)))))
    _no_leak(lambda: _raises(errno.EBADF, lambda: aio_write(aiocb(f, b"abcd"))))
    _no_leak(lambda: _raises(errno.EBADF, lambda: skqueue.aio_fsync(skqueue.O_SYNC, aiocb(f))))
    _no_leak(lambda: _raises(errno.EBADF, lambda: skqueue.aio_cancel(f)))


def test_read_only_buffer_for_aio_read(tmp_path: Path) -> None:
    f = os.open(tmp_path / "x", os.O_RDWR | os.O_CREAT)
    try:
        for buf in (b"immutable", memoryview(bytearray(4)).toreadonly()):
            cb = aiocb(f, buf)
            _no_leak(lambda: _raises(TypeError, lambda: aio_read(cb)))  # noqa: B023
        _no_leak(lambda: _raises(TypeError, lambda: aio_write(aiocb(f, "text"))))
        _no_leak(lambda: _raises(TypeError, lambda: aio_write(aiocb(f, None))))
    finally:
        os.close(f)


def test_negative_offset_and_nbytes(tmp_path: Path) -> None:
    f = os.open(tmp_path / "x", os.O_RDWR | os.O_CREAT)
    try:
        _no_leak(lambda: _raises(errno.EINVAL, lambda: aio_write(aiocb(f, b"x", -1))))
        _no_leak(lambda: _raises(errno.EINVAL, lambda: aio_read(aiocb(f, bytearray(2), -5))))
        _no_leak(lambda: _raises(errno.EINVAL, lambda: aio_read(aiocb(f, bytearray(2), nbytes=-1))))
    finally:
        os.close(f)


def test_unknown_sigevent_flag(kq: skqueue.kqueue) -> None:
    _no_leak(lambda: _raises(errno.EINVAL, lambda: sigevent_kevent(kq, 0x8000_0000)))
    a, b = socket.socketpair()
    with a, b:
        cb = aiocb(a, bytearray(4))
        cb.sigevent = "not a sigevent"  # type: ignore[assignment]
        _no_leak(lambda: _raises(errno.EINVAL, lambda: aio_read(cb)))


def test_job_reaped_twice(tmp_path: Path) -> None:
    f = os.open(tmp_path / "x", os.O_RDWR | os.O_CREAT)
    try:

        def twice() -> None:
            cb = aiocb(f, b"data")
            aio_write(cb)
            aio_suspend([cb], 5)
            assert aio_return(cb) == 4
            _raises(errno.EINVAL, lambda: aio_return(cb))
            _raises(errno.EINVAL, lambda: aio_return(cb.ident))
            _raises(errno.EINVAL, lambda: skqueue.aio_error(cb))
            aio_write(cb)  # a reaped block can be used again
            aio_suspend([cb], 5)
            assert aio_return(cb) == 4

        _no_leak(twice)
    finally:
        os.close(f)


def test_buffer_is_pinned_until_the_job_finishes(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = tcp_pair
    buf = bytearray(16)
    cb = aiocb(a, buf)
    aio_read(cb)
    with pytest.raises(BufferError):
        buf.extend(b"more")  # Python may not move or free it while the job runs
    with mmap.mmap(-1, 4096) as region:
        mcb = aiocb(a, region)
        aio_read(mcb)
        with pytest.raises(BufferError):
            region.close()
        b.sendall(b"x" * 4096)
        aio_suspend([cb], 5)
        aio_suspend([mcb], 5)
        assert (aio_return(cb), aio_return(mcb)) == (16, 4080)
    buf.extend(b"more")  # released with the job
    assert len(buf) == 20
