"""EVFILT_READ / EVFILT_WRITE behaviours that FreeBSD's own regression tests check.

Sources (facts only): tests/sys/kqueue/libkqueue/read.c, tests/sys/kern/pipe/
pipe_kqueue_test.c, tests/sys/kern/unix_dgram.c (``event``) and
tests/sys/kern/listener_wakeup.c (the kqueue cases).  Cases that
tests/filters/test_fd.py or tests/contract already cover are not repeated here.

Linux sizes differ from FreeBSD's (a pipe holds 64 KiB, not 16 KiB), so data is
compared with what this system's buffers hold, never with FreeBSD's constants.

Checked by FreeBSD but deliberately not asserted here:

* WRITE|EV_CLEAR on a pipe re-reported after every read (data PIPE_BUF + 1 after
  one more byte): Linux wakes a pipe's writers only when a full pipe frees a page,
  so no edge exists to report.
* WRITE on a pipe's read end being writable: FreeBSD pipes run both ways, Linux
  pipes do not.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
from pathlib import Path

import pytest

import skqueue
from skqueue import kevent
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_ENABLE,
    EV_EOF,
    EV_ERROR,
    EV_ONESHOT,
    EV_RECEIPT,
    EVFILT_READ,
    EVFILT_WRITE,
    NOTE_LOWAT,
)
from support import nothing, one

PIPE_BUF = select.PIPE_BUF
CLEAR_RECEIPT = EV_CLEAR | EV_RECEIPT


def _capacity(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


def fill_pipe(w: int) -> int:
    """Write until the pipe refuses more; the number of bytes it took."""
    total = 0
    chunk = b"\0" * PIPE_BUF
    while True:
        try:
            total += os.write(w, chunk)
        except BlockingIOError:
            return total


def register_both(kq: skqueue.kqueue, fd: int) -> list[kevent]:
    """READ and WRITE with EV_CLEAR|EV_RECEIPT on fd, as pipe_kqueue_test does."""
    changes = [kevent(fd, filt, EV_ADD | CLEAR_RECEIPT) for filt in (EVFILT_READ, EVFILT_WRITE)]
    return kq.control(changes, 2, 0)


def by_filter(events: list[kevent]) -> dict[int, kevent]:
    """The events keyed by filter, each filter at most once."""
    keyed = {ev.filter: ev for ev in events}
    assert len(keyed) == len(events), events
    return keyed


# read.c -----------------------------------------------------------------------------------
def test_clear_partial_drain_reports_nothing_new(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    """EV_CLEAR: two bytes give one event with data 2; reading one of them (data
    left, but nothing new arrived) must not report again."""
    a, b = pair
    kq.control([kevent(a, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, "u")], 0)
    b.send(b".")
    b.send(b".")
    ev = one(kq)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata) == (
        a.fileno(),
        EVFILT_READ,
        EV_CLEAR,
        0,
        2,
        "u",
    )
    assert a.recv(1) == b"."
    nothing(kq)
    assert a.recv(1) == b"."
    nothing(kq)


def test_enable_of_knote_ready_before_it_was_added(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    """Data sent before an EV_ADD|EV_DISABLE is reported as soon as EV_ENABLE comes,
    with flags free of EV_ADD / EV_ENABLE."""
    a, b = pair
    b.send(b".")
    kq.control([kevent(a, EVFILT_READ, EV_ADD | EV_DISABLE, 0, 0, "u")], 0)
    nothing(kq)
    kq.control([kevent(a, EVFILT_READ, EV_ENABLE, 0, 0, "u")], 0)
    ev = kq.control(None, 8, 0)  # no wait: already ready when enabled
    assert [(e.ident, e.flags, e.fflags, e.data, e.udata) for e in ev] == [
        (a.fileno(), 0, 0, 1, "u")
    ]


def test_lowat_oneshot_fires_once_at_the_mark(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    """NOTE_LOWAT 2 with EV_ONESHOT: one byte is not enough, the second fires it once,
    and the knote is gone afterwards."""
    a, b = pair
    kq.control([kevent(a, EVFILT_READ, EV_ADD | EV_ONESHOT, NOTE_LOWAT, 2)], 0)
    nothing(kq)
    b.send(b".")
    nothing(kq)
    b.send(b".")
    ev = one(kq)
    assert (ev.ident, ev.flags, ev.data) == (a.fileno(), EV_ONESHOT, 2)
    nothing(kq)
    (err,) = kq.control([kevent(a, EVFILT_READ, EV_DELETE)], 1, 0)
    assert (err.flags, err.data) == (EV_ERROR, errno.ENOENT)


# pipe_kqueue_test.c ---------------------------------------------------------------------------
def test_pipe_write_end_clear(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    """WRITE|EV_CLEAR on a pipe: reported with the whole capacity, silent while full,
    still silent with less than PIPE_BUF free, reported with data PIPE_BUF once that
    much is free."""
    r, w = pipe
    capacity = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    kq.control([kevent(w, EVFILT_WRITE, EV_ADD | EV_CLEAR)], 0)
    ev = one(kq, 0)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata) == (
        w,
        EVFILT_WRITE,
        EV_CLEAR,
        0,
        capacity,
        0,
    )
    assert fill_pipe(w) == capacity
    nothing(kq)
    assert len(os.read(r, PIPE_BUF - 1)) == PIPE_BUF - 1
    nothing(kq)
    assert os.read(r, 1) == b"\0"
    ev = one(kq)
    assert (ev.flags, ev.fflags, ev.data) == (EV_CLEAR, 0, PIPE_BUF)


def test_pipe_write_end_clear_reader_gone(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    """WRITE|EV_CLEAR already reported: closing the read end reports it once more,
    now with EV_EOF|EV_ONESHOT and the space there was."""
    r, w = pipe
    kq.control([kevent(w, EVFILT_WRITE, EV_ADD | EV_CLEAR)], 0)
    one(kq, 0)
    os.write(w, b"x" * 100)
    nothing(kq)  # was reported already; 100 bytes less space is no new edge
    os.close(r)
    ev = one(kq)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data) == (
        w,
        EVFILT_WRITE,
        EV_CLEAR | EV_EOF | EV_ONESHOT,
        0,
        _capacity(w) - 100,
    )


def test_pipe_closed_read_end(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    """Reader gone before registration: READ on the write end registers and reports
    EV_EOF with data 0; WRITE is refused with EPIPE."""
    r, w = pipe
    os.close(r)
    receipts = by_filter(register_both(kq, w))
    assert (receipts[EVFILT_READ].flags & EV_ERROR, receipts[EVFILT_READ].data) == (EV_ERROR, 0)
    assert (receipts[EVFILT_WRITE].flags & EV_ERROR, receipts[EVFILT_WRITE].data) == (
        EV_ERROR,
        errno.EPIPE,
    )
    ev = one(kq, 0)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata) == (
        w,
        EVFILT_READ,
        EV_EOF | CLEAR_RECEIPT,
        0,
        0,
        0,
    )


def test_pipe_closed_read_end_registered_before(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    """Both registered on the write end, then the reader goes: both report EV_EOF in
    the same wait (READ with data 0; WRITE once, EV_ONESHOT, with the capacity)."""
    r, w = pipe
    receipts = register_both(kq, w)
    assert [(ev.flags & EV_ERROR, ev.data) for ev in receipts] == [(EV_ERROR, 0)] * 2
    os.close(r)
    events = by_filter(kq.control(None, 8, 0.2))
    assert set(events) == {EVFILT_READ, EVFILT_WRITE}
    wr, rd = events[EVFILT_WRITE], events[EVFILT_READ]
    assert (wr.ident, wr.flags, wr.fflags, wr.data) == (
        w,
        EV_EOF | EV_ONESHOT | CLEAR_RECEIPT,
        0,
        _capacity(w),
    )
    assert (rd.ident, rd.flags, rd.fflags, rd.data) == (w, EV_EOF | CLEAR_RECEIPT, 0, 0)


def test_pipe_closed_write_end(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    """Writer gone before registration, pipe full: READ on the read end reports EV_EOF
    with every byte still buffered; WRITE on the read end is refused with EPIPE."""
    r, w = pipe
    written = fill_pipe(w)
    os.close(w)
    receipts = by_filter(register_both(kq, r))
    assert receipts[EVFILT_READ].data == 0
    assert receipts[EVFILT_WRITE].data == errno.EPIPE
    ev = one(kq, 0)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data) == (
        r,
        EVFILT_READ,
        EV_EOF | CLEAR_RECEIPT,
        0,
        written,
    )


def test_pipe_closed_write_end_registered_before(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    """READ and WRITE registered on the read end, the pipe filled, then the writer
    goes: WRITE reports EV_EOF|EV_ONESHOT with the (empty) reverse direction's space,
    READ reports EV_EOF with the buffered byte count."""
    r, w = pipe
    receipts = register_both(kq, r)
    assert [(ev.flags & EV_ERROR, ev.data) for ev in receipts] == [(EV_ERROR, 0)] * 2
    written = fill_pipe(w)
    os.close(w)
    events = by_filter(kq.control(None, 8, 0.2))
    assert set(events) == {EVFILT_READ, EVFILT_WRITE}
    wr, rd = events[EVFILT_WRITE], events[EVFILT_READ]
    assert (wr.ident, wr.flags, wr.fflags) == (r, EV_EOF | EV_ONESHOT | CLEAR_RECEIPT, 0)
    assert wr.data > 0
    assert (rd.ident, rd.flags, rd.fflags, rd.data) == (r, EV_EOF | CLEAR_RECEIPT, 0, written)


# unix_dgram.c --------------------------------------------------------------------------------
def _check_42(kq: skqueue.kqueue, fd: int) -> None:
    """READ with NOTE_LOWAT 41 on a socket holding one 42-byte datagram: data 42."""
    kq.control([kevent(fd, EVFILT_READ, EV_ADD, NOTE_LOWAT, 41)], 0)
    ev = one(kq)
    assert (ev.ident, ev.filter, ev.data) == (fd, EVFILT_READ, 42)


def test_unix_dgram_connected_data(kq: skqueue.kqueue) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        assert a.send(b"x" * 42) == 42
        _check_42(kq, b.fileno())


def test_unix_dgram_unconnected_data(kq: skqueue.kqueue, tmp_path: Path) -> None:
    path = str(tmp_path / "unix_dgram_listener")
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(path)
        assert tx.sendto(b"x" * 42, path) == 42
        _check_42(kq, rx.fileno())


# listener_wakeup.c ---------------------------------------------------------------------------
def _tcp_listener() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


@pytest.mark.parametrize("family", ["inet", "unix"])
def test_read_registers_on_shut_down_listener(
    kq: skqueue.kqueue, tmp_path: Path, family: str
) -> None:
    """EVFILT_READ on a listening socket after shutdown(SHUT_RDWR) registers (error 0)."""
    if family == "inet":
        sock = _tcp_listener()
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(tmp_path / "listen-shutdown-test.sock"))
        sock.listen()
    with sock:
        with contextlib.suppress(OSError):  # FreeBSD: ENOTCONN; Linux stops listening
            sock.shutdown(socket.SHUT_RDWR)
        (receipt,) = kq.control([kevent(sock, EVFILT_READ, EV_ADD | EV_RECEIPT)], 1, 0)
        assert (receipt.flags & EV_ERROR, receipt.data) == (EV_ERROR, 0)
