"""EVFILT_PROC gives its pidfd back as soon as the exit status is read.

A knote that is disabled (EV_DISABLE, or by an EV_DISPATCH delivery) when its
process exits keeps its NOTE_EXIT for later, but not the pidfd: a program that
watches many short-lived children with disabled knotes must not run out of fds.
"""

from __future__ import annotations

import errno
import os

import pytest

import skqueue
from skqueue.constants import (
    EV_ADD,
    EV_DELETE,
    EV_DISABLE,
    EV_DISPATCH,
    EV_ENABLE,
    EV_EOF,
    EV_ONESHOT,
    EVFILT_PROC,
    NOTE_EXIT,
    NOTE_FORK,
)
from skqueue.event import kevent
from support import nothing, one
from support.proc import STATUS, WAIT, Child, needs_connector


def pidfds() -> int:
    """How many pidfds this process holds open."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[pidfd]":
                count += 1
        except OSError:  # the fd listdir itself used, already closed
            continue
    return count


def register(kq: skqueue.kqueue, child: Child, fflags: int, flags: int) -> int:
    """Add the knote; returns the pidfd count before it, checking it took one."""
    before = pidfds()
    kq.control([kevent(child.pid, EVFILT_PROC, EV_ADD | flags, fflags)], 0)
    assert pidfds() == before + 1
    return before


def enable_and_get_exit(kq: skqueue.kqueue, child: Child) -> None:
    kq.control([kevent(child.pid, EVFILT_PROC, EV_ENABLE, NOTE_EXIT)], 0)
    ev = one(kq, WAIT)
    assert (ev.ident, ev.filter, ev.fflags, ev.data) == (child.pid, EVFILT_PROC, NOTE_EXIT, STATUS)
    assert ev.flags & (EV_EOF | EV_ONESHOT) == EV_EOF | EV_ONESHOT
    with pytest.raises(OSError) as info:  # delivered with EV_ONESHOT: deleted
        kq.control([kevent(child.pid, EVFILT_PROC, EV_DELETE)], 0)
    assert info.value.errno == errno.ENOENT


@pytest.mark.parametrize(
    "flags",
    [EV_DISABLE, EV_DISABLE | EV_ONESHOT, EV_DISABLE | EV_DISPATCH],
    ids=["disable", "disable+oneshot", "disable+dispatch"],
)
def test_exit_while_disabled_closes_the_pidfd(kq: skqueue.kqueue, child: Child, flags: int) -> None:
    before = register(kq, child, NOTE_EXIT, flags)
    child.exit_unreaped()
    nothing(kq)  # the kqueue sees the exit and reads the status, delivers nothing
    assert pidfds() == before
    assert child.proc.wait(WAIT) == 3  # reaped: the kqueue already has the status
    enable_and_get_exit(kq, child)
    assert pidfds() == before


@needs_connector
def test_exit_while_dispatch_disabled_closes_the_pidfd(kq: skqueue.kqueue, child: Child) -> None:
    before = register(kq, child, NOTE_EXIT | NOTE_FORK, EV_DISPATCH)
    child.step("fork")
    assert one(kq, WAIT).fflags == NOTE_FORK  # and now disabled by EV_DISPATCH
    child.exit_unreaped()
    nothing(kq)
    assert pidfds() == before
    enable_and_get_exit(kq, child)
    assert pidfds() == before


def test_exit_delivered_closes_the_pidfd(kq: skqueue.kqueue, child: Child) -> None:
    before = register(kq, child, NOTE_EXIT, 0)
    child.exit_unreaped()
    assert one(kq, WAIT).data == STATUS
    assert pidfds() == before


@pytest.mark.parametrize("how", ["delete", "close"])
def test_knote_of_an_exited_process_goes_cleanly(child: Child, how: str) -> None:
    """EV_DELETE or close() after the pidfd was given back closes nothing twice."""
    kq = skqueue.kqueue()
    try:
        before = register(kq, child, NOTE_EXIT, EV_DISABLE)
        child.exit_unreaped()
        nothing(kq)
        guard = os.open(os.devnull, os.O_RDONLY)  # takes the number the pidfd had
        try:
            if how == "delete":
                kq.control([kevent(child.pid, EVFILT_PROC, EV_DELETE)], 0)
            else:
                kq.close()
            os.fstat(guard)  # still open: nobody closed the pidfd's old number again
        finally:
            os.close(guard)
        assert pidfds() == before
    finally:
        kq.close()
