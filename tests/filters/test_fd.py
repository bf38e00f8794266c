"""EVFILT_READ / EVFILT_WRITE specifics: what ``data``, ``fflags`` and EV_EOF say
for each kind of file (FreeBSD kqueue(2)), NOTE_LOWAT, fds closed behind the
kqueue's back, and the errors of the kevent call itself."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import skqueue
from skqueue import kevent
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_EOF,
    EV_ERROR,
    EV_ONESHOT,
    EV_REALTIME,
    EVFILT_READ,
    EVFILT_WRITE,
    NOTE_LOWAT,
)
from support import nothing as none
from support import one

WAIT = 2.0
QUIET = 0.05


def add(
    kq: skqueue.kqueue,
    fd: int,
    filt: int = EVFILT_READ,
    flags: int = 0,
    fflags: int = 0,
    data: int = 0,
) -> None:
    kq.control([kevent(fd, filt, EV_ADD | flags, fflags, data)], 0)


def tcp_pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return client, server


# READ: data ---------------------------------------------------------------------------
def test_read_socket_data_is_bytes_readable(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    add(kq, a.fileno())
    none(kq)
    b.send(b"hello")
    ev = one(kq)
    assert (ev.ident, ev.filter, ev.flags, ev.data) == (a.fileno(), EVFILT_READ, 0, 5)
    b.send(b"!!")
    assert one(kq).data == 7
    a.recv(3)
    assert one(kq).data == 4
    a.recv(100)
    none(kq)


def test_read_tcp_data_is_bytes_readable(kq: skqueue.kqueue, listener: socket.socket) -> None:
    client, server = tcp_pair(listener)
    with client, server:
        add(kq, server.fileno())
        client.sendall(b"x" * 1000)
        deadline = time.monotonic() + WAIT
        data = 0
        while data < 1000 and time.monotonic() < deadline:  # segments may trickle in
            data = one(kq).data
        assert data == 1000


def test_read_pipe_data(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    r, w = pipe
    add(kq, r)
    none(kq)
    os.write(w, b"1234567")
    assert one(kq).data == 7


def test_read_fifo_data(kq: skqueue.kqueue, tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        add(kq, r)
        none(kq)
        os.write(w, b"abc")
        assert one(kq).data == 3
        os.close(w)
        ev = one(kq)  # the writer is gone
        assert (ev.flags & EV_EOF, ev.data) == (EV_EOF, 3)
    finally:
        os.close(r)


def test_read_listening_socket_data_is_pending_connections(
    kq: skqueue.kqueue, listener: socket.socket
) -> None:
    add(kq, listener.fileno())
    none(kq)  # 0 pending: not ready
    clients = [socket.create_connection(listener.getsockname())]
    assert one(kq).data == 1
    clients += [socket.create_connection(listener.getsockname()) for _ in range(2)]
    assert one(kq).data == 3
    for _ in range(3):
        listener.accept()[0].close()
    none(kq)
    for c in clients:
        c.close()


def test_read_regular_file_data_is_bytes_to_eof(kq: skqueue.kqueue, tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"x" * 100)
    with open(path, "rb") as f:
        f.seek(30)
        add(kq, f.fileno())
        assert one(kq).data == 70
        f.seek(100)
        none(kq)  # at EOF there is nothing to read (FreeBSD: data 0 is not ready)


def test_read_regular_file_wakes_when_it_grows(kq: skqueue.kqueue, tmp_path: Path) -> None:
    """FreeBSD re-evaluates READ on a file at every write to it (``tail -f``)."""
    path = tmp_path / "log"
    path.write_bytes(b"")
    with open(path, "rb", buffering=0) as reader, open(path, "ab", buffering=0) as writer:
        add(kq, reader.fileno())
        none(kq)
        writer.write(b"abc")
        assert one(kq).data == 3
        reader.read()
        none(kq)
        writer.write(b"de")
        assert one(kq).data == 2


# READ: EOF and errors -----------------------------------------------------------------
def test_read_eof_when_peer_closes(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    add(kq, a.fileno())
    b.send(b"abc")
    b.close()
    ev = one(kq)
    assert (ev.flags, ev.fflags, ev.data) == (EV_EOF, 0, 3)
    a.recv(10)
    ev = one(kq)  # EOF stays reported, level-triggered
    assert (ev.flags, ev.data) == (EV_EOF, 0)


def test_read_eof_when_pipe_writer_closes(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    r, w = pipe
    add(kq, r)
    os.close(w)
    ev = one(kq)
    assert (ev.flags, ev.data) == (EV_EOF, 0)


def test_read_eof_after_shutdown_write(kq: skqueue.kqueue, listener: socket.socket) -> None:
    client, server = tcp_pair(listener)
    with client, server:
        add(kq, server.fileno())
        client.shutdown(socket.SHUT_WR)
        ev = one(kq)
        assert (ev.flags, ev.fflags, ev.data) == (EV_EOF, 0, 0)


def test_udp_error_is_readable_without_eof(kq: skqueue.kqueue) -> None:
    """FreeBSD: a "temporary udp error" makes the socket readable, no EV_EOF, and
    recv() still reports it (the kqueue must not consume the error)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        address = closed_port.getsockname()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(address)
        add(kq, udp.fileno())
        udp.send(b"ping")  # answered by ICMP port unreachable
        ev = one(kq)
        assert (ev.flags, ev.fflags, ev.data) == (0, 0, 0)
        with pytest.raises(ConnectionRefusedError):
            udp.recv(10)
        none(kq)


# NOTE_LOWAT ---------------------------------------------------------------------------
def test_read_lowat_socket(kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    add(kq, a.fileno(), fflags=NOTE_LOWAT, data=5)
    b.send(b"123")
    none(kq)
    b.send(b"45")
    ev = one(kq)
    assert ev.data == 5
    assert one(kq).data == 5  # still level-triggered while at or above the mark
    a.recv(1)
    none(kq)


def test_read_lowat_pipe(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    r, w = pipe
    add(kq, r, fflags=NOTE_LOWAT, data=4)
    os.write(w, b"12")
    none(kq)
    os.write(w, b"3")
    none(kq)
    os.write(w, b"4")
    assert one(kq).data == 4


def test_unmet_lowat_does_not_spin(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    """A level epoll item would report the short buffer again and again."""
    a, b = pair
    add(kq, a.fileno(), fflags=NOTE_LOWAT, data=100)
    b.send(b"x")
    started = time.process_time()
    assert kq.control(None, 8, 0.3) == []
    assert time.process_time() - started < 0.1


def test_lowat_removed_by_modify(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    add(kq, a.fileno(), fflags=NOTE_LOWAT, data=100)
    b.send(b"x")
    none(kq)
    add(kq, a.fileno())  # modify: no low-water mark any more
    assert one(kq).data == 1


def test_write_lowat_socket(kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]) -> None:
    a = pair[0]
    sndbuf = a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    add(kq, a.fileno(), EVFILT_WRITE, fflags=NOTE_LOWAT, data=sndbuf + 1)
    none(kq)
    add(kq, a.fileno(), EVFILT_WRITE, fflags=NOTE_LOWAT, data=sndbuf)
    assert one(kq).data == sndbuf


# WRITE ---------------------------------------------------------------------------------
def test_write_socket_data_is_send_buffer_space(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    sndbuf = a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    add(kq, a.fileno(), EVFILT_WRITE)
    ev = one(kq)
    assert (ev.filter, ev.flags, ev.data) == (EVFILT_WRITE, 0, sndbuf)
    a.send(b"x" * 1000)
    assert one(kq).data <= sndbuf - 1000
    b.recv(4096)
    assert one(kq).data == sndbuf


def test_write_full_socket_is_not_ready(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    a.setblocking(False)
    add(kq, a.fileno(), EVFILT_WRITE)
    with pytest.raises(BlockingIOError):
        while True:
            a.send(b"x" * 65536)
    none(kq)
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        while True:
            b.recv(1 << 20)
    assert one(kq).data > 0


def test_write_pipe_data_is_pipe_space(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    r, w = pipe
    capacity = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    add(kq, w, EVFILT_WRITE)
    assert one(kq).data == capacity
    os.write(w, b"x" * 100)
    assert one(kq).data == capacity - 100
    with pytest.raises(BlockingIOError):
        while True:
            os.write(w, b"x" * 4096)
    none(kq)
    os.read(r, capacity)
    assert one(kq).data == capacity


def test_write_eof_when_pipe_reader_is_gone(kq: skqueue.kqueue, pipe: tuple[int, int]) -> None:
    """FreeBSD's pipe_kqueue test: EV_EOF|EV_ONESHOT with the space there was, once."""
    r, w = pipe
    add(kq, w, EVFILT_WRITE)
    capacity = one(kq).data
    os.write(w, b"x" * 100)
    os.close(r)
    ev = one(kq)
    assert (ev.flags, ev.data) == (EV_EOF | EV_ONESHOT, capacity - 100)
    none(kq)
    (gone,) = kq.control([kevent(w, EVFILT_WRITE, EV_DELETE)], 1, 0)
    assert (gone.flags, gone.data) == (EV_ERROR, errno.ENOENT)


def test_write_eof_when_fifo_reader_is_gone_keeps_the_knote(
    kq: skqueue.kqueue, tmp_path: Path
) -> None:
    """A named FIFO outlives its ends: EV_EOF, and the knote stays for the next reader."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        add(kq, w, EVFILT_WRITE)
        capacity = one(kq).data
        os.close(r)
        ev = one(kq)
        assert (ev.flags, ev.data) == (EV_EOF, capacity)
        r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        assert one(kq).flags == 0
    finally:
        os.close(w)
        os.close(r)


def test_write_eof_when_socket_peer_is_gone(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    add(kq, a.fileno(), EVFILT_WRITE)
    one(kq)
    b.close()
    assert one(kq).flags & EV_EOF


def test_read_and_write_on_one_fd(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    add(kq, a.fileno(), EVFILT_READ)
    add(kq, a.fileno(), EVFILT_WRITE)
    b.send(b"abc")
    events = sorted((ev.filter, ev.data > 0) for ev in kq.control(None, 8, WAIT))
    assert events == [(EVFILT_WRITE, True), (EVFILT_READ, True)]
    kq.control([kevent(a, EVFILT_WRITE, EV_DELETE)], 0)
    assert one(kq).filter == EVFILT_READ  # the other direction survives


# Closed behind the kqueue's back ---------------------------------------------------------
def _reuse(fd: int) -> tuple[socket.socket, socket.socket]:
    """A fresh socketpair whose first end takes over the number fd."""
    c, d = socket.socketpair()
    if c.fileno() != fd:
        os.dup2(c.fileno(), fd)
        c.close()
        c = socket.socket(fileno=fd)
    return c, d


@pytest.mark.parametrize("filt", [EVFILT_READ, EVFILT_WRITE])
def test_closed_fd_loses_registration_silently(kq: skqueue.kqueue, filt: int) -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    add(kq, fd, filt, flags=EV_CLEAR if filt == EVFILT_WRITE else 0)
    b.send(b"pending")  # ready, maybe already harvested
    a.close()
    c, d = _reuse(fd)
    with b, c, d:
        d.send(b"new file's data")  # the new file is ready in both directions
        none(kq)
        with pytest.raises(OSError) as info:
            kq.control([kevent(fd, filt, EV_DELETE)], 0)
        assert info.value.errno == errno.ENOENT
        add(kq, fd, filt)  # a fresh registration on the new file works
        ev = one(kq)
        assert (ev.ident, ev.filter) == (fd, filt)


def test_reused_number_add_makes_a_fresh_knote(kq: skqueue.kqueue) -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    add(kq, fd, flags=EV_CLEAR)
    a.close()
    c, d = _reuse(fd)
    with b, c, d:
        add(kq, fd)  # not a modify of the dead knote: a level knote on the new file
        d.send(b"abc")
        assert one(kq).data == 3
        assert one(kq).data == 3  # level-triggered: EV_CLEAR died with the old file


def test_dup_and_original_are_separate_registrations(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    copy = os.dup(a.fileno())
    try:
        add(kq, a.fileno())
        add(kq, copy)
        b.send(b"x")
        assert sorted(ev.ident for ev in kq.control(None, 8, WAIT)) == sorted([a.fileno(), copy])
        kq.control([kevent(a, EVFILT_READ, EV_DELETE)], 0)
        assert one(kq).ident == copy
    finally:
        os.close(copy)
    none(kq)  # closing the copy removed its knote


@pytest.mark.parametrize("clear", [0, EV_CLEAR], ids=["level", "clear"])
def test_dup_then_close_never_reports_the_old_file(kq: skqueue.kqueue, clear: int) -> None:
    """epoll keeps the old file's item alive through the dup; kqueue must not."""
    a, b = socket.socketpair()
    fd = a.fileno()
    add(kq, fd, flags=clear)
    kept = os.dup(fd)
    a.close()
    c, d = _reuse(fd)
    with b, c, d:
        try:
            b.send(b"to the old file")  # its epoll item fires under the number fd
            none(kq)
            d.send(b"to the new file")  # and the new file under fd is readable too
            none(kq)
            b.send(b"more")
            none(kq)
        finally:
            os.close(kept)


def test_closed_while_queued_is_not_delivered(kq: skqueue.kqueue) -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    add(kq, fd)
    keep = os.dup(fd)  # keeps the old file (and its epoll item) alive
    b.send(b"x")
    kq.control(None, 0, 0)  # no room: nothing harvested or delivered
    a.close()
    c, d = _reuse(fd)
    with b, c, d:
        d.send(b"y")
        none(kq)
    os.close(keep)


def test_second_report_of_a_number_in_one_harvest_is_one_event(kq: skqueue.kqueue) -> None:
    """An orphaned item (dup + close) and the new file's item report the same number in
    one epoll_wait: the new file's knote is still delivered once, with its own data."""
    a, b = socket.socketpair()
    fd = a.fileno()
    add(kq, fd)
    b.send(b"x")
    assert one(kq).data == 1  # the old item is re-armed: it will fire again
    kept = os.dup(fd)
    a.close()
    c, d = _reuse(fd)
    with b, c, d:
        try:
            add(kq, fd)  # the number now names c
            b.send(b"to the old file")
            d.send(b"new")
            events = kq.control(None, 8, WAIT)
            assert [(ev.ident, ev.data) for ev in events] == [(fd, 3)]
            c.recv(16)
            none(kq)
        finally:
            os.close(kept)


# Batches -------------------------------------------------------------------------------
def test_small_batches_deliver_every_ready_fd_once(kq: skqueue.kqueue) -> None:
    """More ready fds than the event list holds: the rest wait for the next call, each
    is delivered exactly once, and data is measured when it is delivered."""
    pairs = [socket.socketpair() for _ in range(10)]
    try:
        expected = {}
        for size, (a, b) in enumerate(pairs, start=1):
            add(kq, a.fileno())
            b.send(b"x" * size)
            expected[a.fileno()] = size
        socks = {a.fileno(): a for a, _ in pairs}
        seen: list[int] = []
        while len(seen) < len(pairs):
            events = kq.control(None, 3, WAIT)
            assert 0 < len(events) <= 3
            for ev in events:
                assert ev.data == expected[ev.ident], ev
                socks[ev.ident].recv(64)
                seen.append(ev.ident)
        assert sorted(seen) == sorted(expected)
        none(kq)
        pairs[4][1].send(b"again")  # a later batch still delivers what becomes ready
        ev = one(kq)
        assert (ev.ident, ev.data) == (pairs[4][0].fileno(), 5)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_realtime_knote_comes_first_in_a_batch_of_one(kq: skqueue.kqueue) -> None:
    pairs = [socket.socketpair() for _ in range(6)]
    try:
        for a, _ in pairs[:5]:
            add(kq, a.fileno())
        urgent = pairs[5][0].fileno()
        add(kq, urgent, flags=EV_REALTIME)
        for _, b in pairs:
            b.send(b"x")
        assert [ev.ident for ev in kq.control(None, 1, WAIT)] == [urgent]
        kq.control([kevent(urgent, EVFILT_READ, EV_DELETE)], 0)
        events = kq.control(None, 8, WAIT)  # the five others, each once
        assert sorted(ev.ident for ev in events) == sorted(a.fileno() for a, _ in pairs[:5])
    finally:
        for a, b in pairs:
            a.close()
            b.close()


# Errors --------------------------------------------------------------------------------
def _closed_fd() -> int:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    return fd


# A negative ident never gets this far: kevent() refuses it (OverflowError), as
# select.kevent does (tests/test_hardening_core.py).
@pytest.mark.parametrize("ident", [_closed_fd, lambda: 1 << 20], ids=["closed", "huge"])
@pytest.mark.parametrize("filt", [EVFILT_READ, EVFILT_WRITE])
def test_bad_fd_is_ebadf(kq: skqueue.kqueue, ident: Callable[[], int], filt: int) -> None:
    fd = ident()
    (err,) = kq.control([kevent(fd, filt, EV_ADD, 0, 0, "u")], 1, 0)
    assert (err.ident, err.filter, err.flags, err.data, err.udata) == (
        fd,
        filt,
        EV_ERROR,
        errno.EBADF,
        "u",
    )
    with pytest.raises(OSError) as info:
        kq.control([kevent(fd, filt, EV_ADD)], 0)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize("filt", [-100, 7, -12])
def test_unknown_filter_is_einval(kq: skqueue.kqueue, filt: int) -> None:
    (err,) = kq.control([kevent(0, filt, EV_ADD)], 1, 0)
    assert (err.flags, err.data) == (EV_ERROR, errno.EINVAL)
    with pytest.raises(OSError) as info:
        kq.control([kevent(0, filt, EV_ADD)], 0)
    assert info.value.errno == errno.EINVAL


def test_closed_kqueue_raises_value_error(pair: tuple[socket.socket, socket.socket]) -> None:
    kq = skqueue.kqueue()
    kq.close()
    with pytest.raises(ValueError):
        kq.control(None, 1, 0)
    with pytest.raises(ValueError):
        kq.control([kevent(pair[0], EVFILT_READ, EV_ADD)], 0)


def test_close_wakes_a_blocked_waiter() -> None:
    kq = skqueue.kqueue()
    outcome: list[BaseException | list[kevent]] = []

    def wait() -> None:
        try:
            outcome.append(kq.control(None, 1, 10))
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)
    kq.close()
    waiter.join(5)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError)


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signals are delivered to the main thread",
)
def test_eintr_is_retried(kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    add(kq, a.fileno())
    interrupted: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda signum, frame: interrupted.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        started = time.monotonic()
        assert kq.control(None, 8, 0.3) == []  # interrupted, resumed, timed out
        elapsed = time.monotonic() - started
        assert interrupted == [signal.SIGALRM]
        assert 0.25 < elapsed < 2
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        sender = threading.Timer(0.2, b.send, (b"late",))
        sender.start()
        ev = one(kq)  # the signal does not end the wait; the data does
        sender.join(5)
        assert ev.data == 4 and len(interrupted) == 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# The system-call budget of a delivery: how many epoll_ctl calls one event costs. -----
@pytest.fixture
def modifies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every mask the kqueues made after this fixture passes to epoll_ctl(MOD), on the
    pure-Python path (the accelerator's calls are its own: tests/test_accel.py shows
    that they are the same calls)."""
    from skqueue.backend.epoll import EpollBackend

    monkeypatch.setattr("skqueue.core.speedups", None)

    masks: list[int] = []
    init = EpollBackend.__init__

    def counting(self: EpollBackend) -> None:
        init(self)
        modify = self.modify

        def counted(fd: int, events: int) -> None:
            masks.append(events)
            modify(fd, events)

        self.modify = counted

    monkeypatch.setattr(EpollBackend, "__init__", counting)
    return masks


@pytest.mark.parametrize(
    ("kind", "per_event"),
    [
        ("classic", 1),  # the re-arm, which also checks the fd's identity
        ("skq", 1),  # re-armed at delivery while owned: the release needs none
        ("dispatch", 3),  # identity at EV_ENABLE, arming, identity at delivery (disarmed)
    ],
)
def test_epoll_ctl_calls_per_delivered_read(modifies: list[int], kind: str, per_event: int) -> None:
    r, w = os.pipe()
    os.write(w, b"x")  # never read: always ready
    kq = skqueue.kqueue(sched=skqueue.KQ_SCHED_BEST, sargs=2) if kind == "skq" else skqueue.kqueue()
    try:
        flags = EV_ADD | (skqueue.EV_DISPATCH if kind == "dispatch" else 0)
        kq.control([kevent(r, EVFILT_READ, flags)], 0)
        changes: list[kevent] = []
        for round_ in range(4):
            if round_ == 1:
                modifies.clear()  # counted from the steady state on
            [ev] = kq.control(changes, 1, WAIT)
            assert ev.ident == r and ev.data == 1
            if kind == "dispatch":
                changes = [kevent(r, EVFILT_READ, skqueue.EV_ENABLE)]
        assert len(modifies) == 3 * per_event, [hex(m) for m in modifies]
        if kind == "dispatch":  # the delivery's call leaves the disabled knote disarmed
            assert not modifies[-1] & select.EPOLLIN
    finally:
        kq.close()
        os.close(r)
        os.close(w)
