"""skqueue.backend.epoll: its own fds, and the one route to epoll_ctl."""

from __future__ import annotations

import errno
import os
import select
import socket

import pytest

import skqueue
from skqueue.backend import epoll
from skqueue.backend.epoll import EpollBackend
from skqueue.constants import EV_ADD, EVFILT_READ


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _fail(*args: object) -> int:
    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


@pytest.mark.parametrize("step", ["eventfd", "timerfd"])
def test_init_failure_leaks_no_fd(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """At the fd limit the eventfd or the timerfd fails: the epoll fd is closed too."""
    if step == "eventfd":
        monkeypatch.setattr(os, "eventfd", _fail)
    else:
        monkeypatch.setattr(epoll, "timerfd_create", _fail)
    before = _open_fds()
    with pytest.raises(OSError) as info:
        EpollBackend()
    assert info.value.errno == errno.EMFILE
    assert _open_fds() == before


def test_close_twice_is_harmless() -> None:
    backend = EpollBackend()
    backend.close()
    backend.close()


class _CountingEpoll:
    """A select.epoll stand-in that counts epoll_ctl calls by kind."""

    def __init__(self, real: select.epoll) -> None:
        self.real = real
        self.calls: list[tuple[str, int]] = []

    def register(self, fd: int, events: int) -> None:
        self.calls.append(("add", events))
        self.real.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self.calls.append(("mod", events))
        self.real.modify(fd, events)

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_new_fd_is_one_epoll_ctl(monkeypatch: pytest.MonkeyPatch) -> None:
    """EV_ADD READ on a new socket: one ADD with its final mask, no MOD after it."""
    created: list[_CountingEpoll] = []
    real_epoll = select.epoll

    def counting_epoll() -> _CountingEpoll:
        created.append(_CountingEpoll(real_epoll()))
        return created[-1]

    monkeypatch.setattr(select, "epoll", counting_epoll)
    a, b = socket.socketpair()
    with a, b, skqueue.kqueue() as kq:
        counter = created[-1]
        del counter.calls[:]  # the backend's own eventfd and timerfd
        kq.control([skqueue.kevent(a.fileno(), EVFILT_READ, EV_ADD)], 0)
        assert counter.calls == [("add", select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT)]
        b.send(b"x")
        [ev] = kq.control(None, 1, 5)
        assert ev.ident == a.fileno() and ev.data == 1
