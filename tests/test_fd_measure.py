"""A failure to measure an fd is not a closed fd: the knote stays and reports.

READ/WRITE compute ``data`` with a syscall per kind of file (sock_diag for a
listener, FIONREAD, TIOCOUTQ...).  When that syscall fails for any reason but
EBADF, the knote must still report what poll can tell, and be measured exactly
again once the cause is gone.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
from collections.abc import Iterator

import pytest

import skqueue
from skqueue import kevent
from skqueue.backend import sockdiag
from skqueue.constants import EV_ADD, EV_EOF, EVFILT_READ, EVFILT_WRITE
from support import one

WAIT = 10.0  # generous: only a hang runs into it


@contextlib.contextmanager
def fd_table_full() -> Iterator[None]:
    """No fd can be opened inside: RLIMIT_NOFILE lowered and the rest filled."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    filler = [os.open(os.devnull, os.O_RDONLY)]
    highest = max(int(name) for name in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 8, hard))
    try:
        with contextlib.suppress(OSError):
            while True:
                filler.append(os.dup(filler[0]))
        with pytest.raises(OSError, match="Too many open files"):
            os.close(os.dup(filler[0]))
        yield
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_listener_at_the_fd_limit_keeps_its_knote(kq: skqueue.kqueue) -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        kq.control([kevent(listener.fileno(), EVFILT_READ, EV_ADD)], 0)
        assert kq.control(None, 8, 0) == []  # this thread's kevq exists before the limit
        clients = [socket.create_connection(listener.getsockname()) for _ in range(2)]
        try:
            sockdiag._diag_pool.close()  # so the measurement must open a netlink socket
            with fd_table_full():
                for _ in range(2):  # delivered, and still there to deliver again
                    ev = one(kq, WAIT)
                    assert (ev.ident, ev.flags) == (listener.fileno(), 0)
                    assert ev.data >= 1
            ev = one(kq, WAIT)
            assert (ev.ident, ev.data) == (listener.fileno(), len(clients))  # exact again
        finally:
            for client in clients:
                client.close()


def test_listener_whose_sock_diag_never_answers_keeps_its_knote(
    kq: skqueue.kqueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unanswered sock_diag request is a failed measurement: bounded, not a hang."""
    monkeypatch.setattr(sockdiag, "_DIAG_REPLY_TIMEOUT", 0.2)
    quiet, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener, quiet, peer:
        kq.control([kevent(listener.fileno(), EVFILT_READ, EV_ADD)], 0)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(2)]
        try:
            sockdiag._diag_pool.give_back(sockdiag._DiagLink(quiet))  # taken next
            ev = one(kq, WAIT)
            assert (ev.ident, ev.flags) == (listener.fileno(), 0)
            assert ev.data == 1  # poll's "some", not the count
            assert quiet.fileno() == -1  # the unanswered socket was dropped
            ev = one(kq, WAIT)
            assert (ev.ident, ev.data) == (listener.fileno(), len(clients))  # exact again
        finally:
            for client in clients:
                client.close()


def test_empty_datagram_at_the_fd_limit_is_reported(kq: skqueue.kqueue) -> None:
    """Telling an empty datagram from a stale report must not need a free fd."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        kq.control([kevent(rx.fileno(), EVFILT_READ, EV_ADD)], 0)
        tx.sendto(b"", rx.getsockname())
        with fd_table_full():
            ev = one(kq, WAIT)
        assert (ev.ident, ev.flags, ev.data) == (rx.fileno(), 0, 0)
        assert rx.recv(16) == b""


def test_hung_up_tty_reports_eof(kq: skqueue.kqueue) -> None:
    """FIONREAD on a hung-up tty fails with EIO; the knote reports EV_EOF instead."""
    master, slave = os.openpty()
    try:
        kq.control([kevent(slave, EVFILT_READ, EV_ADD)], 0)
        assert kq.control(None, 8, 0) == []
        os.close(master)  # the pty's other side hangs the slave up
        for _ in range(2):
            ev = one(kq, WAIT)
            assert (ev.ident, ev.flags & EV_EOF, ev.data) == (slave, EV_EOF, 0)
    finally:
        os.close(slave)


def test_write_on_a_socket_without_tiocoutq_is_reported(kq: skqueue.kqueue) -> None:
    """A netlink socket has no TIOCOUTQ (ENOTTY): writable, amount unknown."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as sock:
        kq.control([kevent(sock.fileno(), EVFILT_WRITE, EV_ADD)], 0)
        for _ in range(2):
            ev = one(kq, WAIT)
            assert (ev.ident, ev.filter, ev.flags, ev.data) == (sock.fileno(), EVFILT_WRITE, 0, 1)
