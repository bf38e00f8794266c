"""EVFILT_AIO / EVFILT_LIO events, lio_listio, and a kqueue closing with jobs pending."""

from __future__ import annotations

import errno
import socket

import pytest

import skqueue
from skqueue import (
    EV_ADD,
    EV_CLEAR,
    EV_DISPATCH,
    EV_ENABLE,
    EV_ONESHOT,
    EVFILT_AIO,
    EVFILT_LIO,
    LIO_NOP,
    LIO_NOWAIT,
    LIO_READ,
    LIO_WAIT,
    LIO_WRITE,
    aio_error,
    aio_read,
    aio_return,
    aio_suspend,
    aio_write,
    aiocb,
    kevent,
    lio_listio,
    sigevent_kevent,
)


def test_event_carries_ident_error_and_udata(fd: int, kq: skqueue.kqueue) -> None:
    token = object()
    ok = aiocb(fd, b"abc", 0, sigevent_kevent(kq, EV_ONESHOT, token))
    bad = aiocb(fd, b"xyz", 1 << 62, sigevent_kevent(kq, EV_ONESHOT, "bad"))
    aio_write(ok)
    aio_write(bad)  # beyond the largest file: EFBIG from pwrite
    events = {ev.udata: ev for ev in _collect(kq, 2)}
    assert events[token].ident == ok.ident and events[token].filter == EVFILT_AIO
    assert events[token].data == 0 and events[token].flags & skqueue.EV_EOF
    assert aio_return(events[token].ident) == 3
    assert events["bad"].data == aio_error(bad) == errno.EFBIG
    with pytest.raises(OSError):
        aio_return(bad)
    assert kq.control(None, 4, 0) == []


def _collect(kq: skqueue.kqueue, n: int) -> list[kevent]:
    out: list[kevent] = []
    for _ in range(50):
        out += kq.control(None, n - len(out), 0.2)
        if len(out) >= n:
            break
    assert len(out) == n
    return out


def test_level_clear_and_dispatch_knotes(fd: int, kq: skqueue.kqueue) -> None:
    level = aiocb(fd, b"1", 0, sigevent_kevent(kq, 0, "level"))
    clear = aiocb(fd, b"2", 1, sigevent_kevent(kq, EV_CLEAR, "clear"))
    dispatch = aiocb(fd, b"3", 2, sigevent_kevent(kq, EV_DISPATCH, "dispatch"))
    for cb in (level, clear, dispatch):
        aio_write(cb)
    aio_suspend([level], 5)
    aio_suspend([clear], 5)
    aio_suspend([dispatch], 5)
    first = sorted(ev.udata for ev in kq.control(None, 8, 1))
    assert first == ["clear", "dispatch", "level"]
    # A level knote keeps reporting its finished job until it is reaped (filt_aio).
    assert [ev.udata for ev in kq.control(None, 8, 0)] == ["level"]
    kq.control([kevent(dispatch.ident, EVFILT_AIO, EV_ENABLE, udata="dispatch")], 0)
    assert sorted(ev.udata for ev in kq.control(None, 8, 0)) == ["dispatch", "level"]
    for cb in (level, clear, dispatch):
        assert aio_return(cb) == 1
    assert kq.control(None, 8, 0) == []  # reaping retired the knotes
    assert kq.stats()["knotes"] == 0


def test_user_cannot_register_aio_knotes(kq: skqueue.kqueue) -> None:
    for filt in (EVFILT_AIO, EVFILT_LIO):
        with pytest.raises(PermissionError):
            kq.control([kevent(1, filt, EV_ADD)], 0)


def test_sigevent_flags_and_closed_kqueue(fd: int) -> None:
    kq = skqueue.kqueue()
    for flags in (skqueue.EV_ADD, skqueue.EV_RECEIPT, 0x10000, EV_ONESHOT | skqueue.EV_DELETE):
        with pytest.raises(OSError) as info:
            sigevent_kevent(kq, flags)
        assert info.value.errno == errno.EINVAL
    sig = sigevent_kevent(kq, EV_ONESHOT | EV_CLEAR | EV_DISPATCH)
    kq.close()
    with pytest.raises(OSError) as info:
        aio_write(aiocb(fd, b"x", 0, sig))
    assert info.value.errno == errno.EBADF
    assert skqueue.aio_stats()["buffers_held"] == 0


def test_closing_the_kqueue_cancels_pending_jobs(kq: skqueue.kqueue) -> None:
    a, b = socket.socketpair()
    with a, b:
        other = skqueue.kqueue()
        cbs = [aiocb(a, bytearray(4), sigevent=sigevent_kevent(other, 0, i)) for i in range(3)]
        keep = aiocb(a, bytearray(4), sigevent=sigevent_kevent(kq, EV_ONESHOT, "keep"))
        for cb in cbs:
            aio_read(cb)
        aio_read(keep)
        held = skqueue.aio_stats()["buffers_held"]
        other.close()
        for cb in cbs:
            assert aio_error(cb) == errno.ECANCELED
            with pytest.raises(OSError):
                aio_return(cb)
        assert skqueue.aio_stats()["buffers_held"] == held - 3  # their buffers are free
        b.sendall(b"data")
        (ev,) = kq.control(None, 4, 5)
        assert ev.udata == "keep" and aio_return(keep) == 4


def test_lio_listio_wait_mode(fd: int) -> None:
    writes = [aiocb(fd, bytes([i]) * 100, i * 100, lio_opcode=LIO_WRITE) for i in range(5)]
    ident = lio_listio(LIO_WAIT, [*writes, aiocb(fd, None, lio_opcode=LIO_NOP), None])
    assert ident > 0
    assert all(aio_error(cb) == 0 for cb in writes)  # all done when it returned
    assert [aio_return(cb) for cb in writes] == [100] * 5
    buf = bytearray(500)
    read = aiocb(fd, buf, 0, lio_opcode=LIO_READ)
    bad = aiocb(fd, bytearray(4), -1, lio_opcode=LIO_READ)
    with pytest.raises(OSError) as info:
        lio_listio(LIO_WAIT, [read, bad])
    assert info.value.errno == errno.EIO
    assert bad.error == errno.EINVAL  # this block was refused, the other ran
    assert aio_return(read) == 500 and buf == b"".join(bytes([i]) * 100 for i in range(5))
    with pytest.raises(OSError) as info:
        lio_listio(7, [])
    assert info.value.errno == errno.EINVAL


def test_lio_listio_nowait_posts_one_list_event(kq: skqueue.kqueue) -> None:
    a, b = socket.socketpair()
    with a, b:
        reads = [
            aiocb(a, bytearray(2), lio_opcode=LIO_READ, sigevent=sigevent_kevent(kq, EV_ONESHOT, i))
            for i in range(3)
        ]
        ident = lio_listio(LIO_NOWAIT, reads, sigevent_kevent(kq, EV_ONESHOT, "list"))
        assert all(aio_error(cb) == errno.EINPROGRESS for cb in reads)
        b.sendall(b"aa")
        b.sendall(b"bb")
        events = _collect(kq, 2)
        assert all(ev.filter == EVFILT_AIO for ev in events)
        b.sendall(b"cc")
        events = _collect(kq, 2)
        lists = [ev for ev in events if ev.filter == EVFILT_LIO]
        assert len(lists) == 1 and lists[0].ident == ident and lists[0].udata == "list"
        assert sum(aio_return(cb) for cb in reads) >= 3
        assert kq.control(None, 4, 0) == []


def test_lio_listio_queue_limit(fd: int) -> None:
    skqueue.tunables.aio_max_queue = 4
    cbs = [aiocb(fd, b"x", i, lio_opcode=LIO_WRITE) for i in range(5)]
    with pytest.raises(OSError) as info:
        lio_listio(LIO_NOWAIT, cbs)
    assert info.value.errno == errno.EINVAL  # longer than the queue can ever hold
    with pytest.raises(OSError) as info:
        lio_listio(LIO_NOWAIT, [*cbs[:4], None], None)
    assert info.value.errno == errno.EINVAL
    first = aiocb(fd, b"x", 0)
    aio_write(first)
    with pytest.raises(OSError) as info:
        lio_listio(LIO_NOWAIT, cbs[:4])  # 1 + 4 > 4: nothing is queued
    assert info.value.errno == errno.EAGAIN
    assert all(cb.ident == 0 for cb in cbs)
    aio_suspend([first], 5)
    aio_return(first)
