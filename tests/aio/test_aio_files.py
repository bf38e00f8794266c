"""aio_read / aio_write / aio_fsync on regular files, and the status calls around them."""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path

import pytest

import skqueue
from skqueue import aio_error, aio_read, aio_return, aio_suspend, aio_waitcomplete, aio_write, aiocb

from .conftest import finish


def test_write_then_read_at_offsets(fd: int) -> None:
    cbs = [aiocb(fd, bytes([65 + i]) * 1000, i * 1000) for i in range(8)]
    for cb in cbs:
        aio_write(cb)
    assert [finish(cb) for cb in cbs] == [1000] * 8
    assert os.pread(fd, 8000, 0) == b"".join(bytes([65 + i]) * 1000 for i in range(8))
    buf = bytearray(1500)
    cb = aiocb(fd, buf, 2500)
    aio_read(cb)
    assert finish(cb) == 1500
    assert buf == b"C" * 500 + b"D" * 1000


def test_read_past_eof_returns_zero_and_short_read(fd: int) -> None:
    os.pwrite(fd, b"xyz", 0)
    buf = bytearray(10)
    past, short = aiocb(fd, buf, 100), aiocb(fd, memoryview(buf)[5:], 1)
    aio_read(past)
    aio_read(short)
    assert finish(past) == 0
    assert finish(short) == 2
    assert buf[5:7] == b"yz"


def test_nbytes_limits_the_transfer(fd: int) -> None:
    cb = aiocb(fd, b"abcdef", 0, nbytes=3)
    aio_write(cb)
    assert finish(cb) == 3
    assert os.pread(fd, 10, 0) == b"abc"
    with pytest.raises(OSError) as info:
        aio_write(aiocb(fd, b"abc", 0, nbytes=4))
    assert info.value.errno == errno.EINVAL


def test_cancel_queued_file_jobs(fd: int) -> None:
    skqueue.tunables.aio_workers = 1
    big = bytearray(64 << 20)
    first = aiocb(fd, big, 0)
    later = [aiocb(fd, b"x" * 10, 1 << 30) for _ in range(5)]
    aio_write(first)
    for cb in later:
        aio_write(cb)
    result = skqueue.aio_cancel(fd)
    cancelled = 0
    for cb in [first, *later]:
        aio_suspend([cb], 5)
        if aio_error(cb) == errno.ECANCELED:
            cancelled += 1
            with pytest.raises(OSError) as info:
                aio_return(cb)
            assert info.value.errno == errno.ECANCELED
        else:
            assert aio_return(cb) == cb.nbytes or len(cb.buf)
    # One worker: the first job may have started; the queued ones were cancelled.
    assert cancelled >= 5
    assert result == (skqueue.AIO_CANCELED if cancelled == 6 else skqueue.AIO_NOTCANCELED)
    assert skqueue.aio_cancel(fd) == skqueue.AIO_ALLDONE
    assert skqueue.aio_cancel(fd, first) == skqueue.AIO_ALLDONE
    with pytest.raises(OSError) as info:
        skqueue.aio_cancel(-1)
    assert info.value.errno == errno.EBADF


def test_fsync_waits_for_earlier_writes(fd: int) -> None:
    skqueue.tunables.aio_workers = 4
    writes = [aiocb(fd, os.urandom(1 << 20), i << 20) for i in range(8)]
    for cb in writes:
        aio_write(cb)
    sync = aiocb(fd)
    skqueue.aio_fsync(skqueue.O_SYNC, sync)
    aio_suspend([sync], 10)
    assert aio_return(sync) == 0
    # The barrier held the fsync back until every earlier write had finished.
    assert all(aio_error(cb) == 0 for cb in writes)
    for cb in writes:
        assert aio_return(cb) == 1 << 20
    dsync = aiocb(fd)
    skqueue.aio_fsync(skqueue.O_DSYNC, dsync)
    assert finish(dsync) == 0
    with pytest.raises(OSError) as info:
        skqueue.aio_fsync(0x7777, aiocb(fd))
    assert info.value.errno == errno.EINVAL


def test_wrong_access_mode_and_unsupported_files(tmp_path: Path) -> None:
    path = tmp_path / "ro"
    path.write_bytes(b"abc")
    ro = os.open(path, os.O_RDONLY)
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            aio_write(aiocb(ro, b"x"))
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            aio_read(aiocb(r, bytearray(1)))
        assert info.value.errno == errno.EOPNOTSUPP
    finally:
        for f in (ro, r, w):
            os.close(f)


def test_suspend_and_waitcomplete_time_out(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(OSError) as info:
        aio_waitcomplete(0.1)
    assert info.value.errno == errno.EAGAIN
    assert time.monotonic() - t0 >= 0.09
    with pytest.raises(OSError) as info:
        aio_waitcomplete(0)
    assert info.value.errno == errno.EAGAIN
    with pytest.raises(OSError) as info:
        aio_waitcomplete(-1)
    assert info.value.errno == errno.EINVAL
    t0 = time.monotonic()
    with pytest.raises(OSError) as info:
        aio_suspend([aiocb(0, bytearray(1))], 0.1)  # never submitted: nothing to wait for
    assert info.value.errno == errno.EAGAIN
    assert time.monotonic() - t0 >= 0.09


def test_waitcomplete_reaps_in_completion_order(fd: int) -> None:
    cbs = [aiocb(fd, bytes([i]), i) for i in range(20)]
    for cb in cbs:
        aio_write(cb)
    seen = set()
    for _ in cbs:
        cb, status = aio_waitcomplete(5)
        assert status == 1 and cb.error == 0
        seen.add(id(cb))
    assert seen == {id(cb) for cb in cbs}
    with pytest.raises(OSError) as info:
        aio_return(cbs[0])
    assert info.value.errno == errno.EINVAL


def test_waitcomplete_reports_failure_in_cb(fd: int, tmp_path: Path) -> None:
    f = os.open(tmp_path / "gone", os.O_RDWR | os.O_CREAT)
    cb = aiocb(f, bytearray(10), 0)
    skqueue.tunables.aio_workers = 1
    blocker = aiocb(fd, bytearray(32 << 20), 0)
    aio_write(blocker)
    aio_read(cb)
    os.close(f)  # closed behind the job's back before a worker reaches it
    got = {}
    for _ in range(2):
        done, status = aio_waitcomplete(10)
        got[id(done)] = (status, done.error)
    assert got[id(cb)] == (-1, errno.EBADF)
    assert got[id(blocker)] == (32 << 20, 0)


def test_queue_limits_give_eagain(fd: int) -> None:
    # Finished but unreaped jobs count against aio_max_queue, as in FreeBSD.
    skqueue.tunables.aio_max_queue = 3
    cbs = [aiocb(fd, bytearray(8), 0) for _ in range(3)]
    for cb in cbs:
        aio_read(cb)
    for cb in cbs:  # all finished: none holds its buffer any more
        aio_suspend([cb], 5)
    extra = aiocb(fd, bytearray(1), 0)
    with pytest.raises(OSError) as info:
        aio_read(extra)
    assert info.value.errno == errno.EAGAIN
    assert extra.ident == 0 and skqueue.aio_stats()["buffers_held"] == 0
    for cb in cbs:
        finish(cb)
    # aio_max_per_fd counts the fd's unfinished jobs: socket reads with no data.
    skqueue.tunables.aio_max_queue = 100
    skqueue.tunables.aio_max_per_fd = 2
    a, b = socket.socketpair()
    with a, b:
        reads = [aiocb(a, bytearray(1)) for _ in range(2)]
        for cb in reads:
            aio_read(cb)
        with pytest.raises(OSError) as info:
            aio_read(aiocb(a, bytearray(1)))
        assert info.value.errno == errno.EAGAIN
        aio_read(extra)  # another fd is not limited
        assert finish(extra) == 0
        b.sendall(b"xy")
        assert [finish(cb) for cb in reads] == [1, 1]


def test_worker_pool_is_sized_by_the_tunable(fd: int) -> None:
    skqueue.tunables.aio_workers = 3
    cbs = [aiocb(fd, bytearray(4 << 20), 0) for _ in range(30)]
    for cb in cbs:
        aio_read(cb)
    # Sampled at least once: without the GIL the workers may finish every job (the
    # file is empty) before this thread looks; they stay in the pool while idle.
    peak = skqueue.aio_stats()["workers"]
    while any(aio_error(cb) == errno.EINPROGRESS for cb in cbs):
        peak = max(peak, skqueue.aio_stats()["workers"])
        time.sleep(0.001)
    for cb in cbs:
        aio_return(cb)
    assert 1 <= peak <= 3
    assert skqueue.aio_stats()["workers"] <= 3
