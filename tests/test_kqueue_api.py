"""The public surface shaped like ``select.kqueue``/``select.kevent``: kevent
records, handles (fromfd, context manager, close, fileno), argument checks, the
FreeBSD rules for changes on existing knotes, and a model-based check of random
change lists."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import skqueue
from skqueue import kevent
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_ENABLE,
    EV_KEEPUDATA,
    EV_ONESHOT,
    EVFILT_PROC,
    EVFILT_READ,
    EVFILT_USER,
    EVFILT_VNODE,
    EVFILT_WRITE,
    KQ_EV_ADD,
    KQ_FILTER_READ,
    NOTE_EXIT,
    NOTE_TRIGGER,
    NOTE_WRITE,
)
from support import KQUEUE_KINDS


# kevent ---------------------------------------------------------------------------------
def test_kevent_defaults_and_attributes() -> None:
    ev = kevent(5)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata) == (
        5,
        KQ_FILTER_READ,
        KQ_EV_ADD,
        0,
        0,
        0,
    )
    ev = kevent(1, 2, 3, 4, 5, 6)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata) == (1, 2, 3, 4, 5, 6)
    ev.data = 9  # the fields are writable, as in select.kevent
    assert ev.data == 9


def test_kevent_ident_from_fileno(pair: tuple[socket.socket, socket.socket]) -> None:
    assert kevent(pair[0]).ident == pair[0].fileno()


def test_kevent_comparison() -> None:
    assert kevent(1) == kevent(1)
    assert kevent(1) != kevent(2)
    assert kevent(1) < kevent(2) <= kevent(2) < kevent(3)
    assert kevent(3) > kevent(2) >= kevent(2)
    # Fields compare in order ident, filter, flags, fflags, data, udata.
    assert kevent(1, EVFILT_WRITE) < kevent(1, EVFILT_READ)
    assert kevent(1, EVFILT_READ, 1, 0, 9) < kevent(1, EVFILT_READ, 1, 1, 0)
    assert sorted([kevent(3), kevent(1), kevent(2)]) == [kevent(1), kevent(2), kevent(3)]
    assert kevent(1) != 1
    assert not kevent(1) == "ev"  # noqa: SIM201 - __eq__ with a foreign type
    for other in (None, 1, "ev"):
        with pytest.raises(TypeError):
            assert kevent(1) < other
        with pytest.raises(TypeError):
            assert kevent(1) >= other


def test_kevent_udata_compares_by_value_for_ints_and_identity_otherwise() -> None:
    assert kevent(1, udata=7) == kevent(1, udata=7)
    assert kevent(1, udata=[1]) != kevent(1, udata=[1])
    thing = [1]
    assert kevent(1, udata=thing) == kevent(1, udata=thing)


def test_kevent_is_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(kevent(1))


# Handles --------------------------------------------------------------------------------
def test_context_manager_closes() -> None:
    with skqueue.kqueue() as kq:
        assert not kq.closed
        assert isinstance(kq.fileno(), int)
    assert kq.closed
    with pytest.raises(ValueError):
        kq.fileno()
    with pytest.raises(ValueError), kq:
        pass


def test_close_twice_and_closed_errors() -> None:
    kq = skqueue.kqueue()
    fd = kq.fileno()
    os.fstat(fd)  # a real, open descriptor
    kq.close()
    kq.close()
    assert kq.closed
    for call in (lambda: kq.control(None, 1, 0), lambda: kq.control([], 0), kq.fileno):
        with pytest.raises(ValueError):
            call()


def test_fromfd_shares_registrations(
    kq: skqueue.kqueue, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    other = skqueue.kqueue.fromfd(kq.fileno())
    try:
        kq.control([kevent(a, EVFILT_READ, EV_ADD, udata="shared")], 0)
        b.send(b"x")
        (ev,) = other.control(None, 4, 2)
        assert (ev.ident, ev.udata) == (a.fileno(), "shared")
        other.control([kevent(a, EVFILT_READ, EV_DELETE)], 0)
        with pytest.raises(FileNotFoundError):
            kq.control([kevent(a, EVFILT_READ, EV_DELETE)], 0)
    finally:
        other.close()
    assert not kq.closed  # closing one handle leaves the other working
    kq.control([kevent(a, EVFILT_READ, EV_ADD)], 0)
    assert len(kq.control(None, 4, 2)) == 1


def test_fromfd_of_a_non_kqueue_fd(pair: tuple[socket.socket, socket.socket]) -> None:
    with pytest.raises(OSError) as info:
        skqueue.kqueue.fromfd(pair[0].fileno())
    assert info.value.errno == errno.EBADF


def test_fileno_is_unique_per_kqueue() -> None:
    with skqueue.kqueue() as one, skqueue.kqueue() as two:
        assert one.fileno() != two.fileno()


# Arguments -------------------------------------------------------------------------------
def test_argument_checks(kq: skqueue.kqueue) -> None:
    with pytest.raises(ValueError):
        kq.control(None, -1)
    with pytest.raises(ValueError):
        kq.control(None, 1, -1)
    with pytest.raises(TypeError):
        kq.control([1], 0)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        kq.control(5, 0)  # type: ignore[arg-type]


def test_changelist_may_be_any_iterable(kq: skqueue.kqueue) -> None:
    kq.control((kevent(i, EVFILT_USER, EV_ADD) for i in range(3)), 0)
    kq.control((kevent(i, EVFILT_USER, 0, NOTE_TRIGGER) for i in range(3)), 0)
    assert sorted(ev.ident for ev in kq.control(None, 8, 0)) == [0, 1, 2]


def test_events_are_bounded_by_max_events(kq: skqueue.kqueue) -> None:
    kq.control([kevent(i, EVFILT_USER, EV_ADD | EV_ONESHOT) for i in range(5)], 0)
    kq.control([kevent(i, EVFILT_USER, 0, NOTE_TRIGGER) for i in range(5)], 0)
    assert len(kq.control(None, 2, 0)) == 2
    assert len(kq.control(None, 8, 0)) == 3


# FreeBSD's rules for changes on an existing knote ------------------------------------------
def test_every_change_replaces_udata(kq: skqueue.kqueue) -> None:
    kq.control([kevent(1, EVFILT_USER, EV_ADD, udata="added")], 0)
    kq.control([kevent(1, EVFILT_USER, EV_DISABLE, udata="disabled")], 0)
    kq.control([kevent(1, EVFILT_USER, EV_ENABLE, NOTE_TRIGGER, udata="enabled")], 0)
    (ev,) = kq.control(None, 4, 0)
    assert ev.udata == "enabled"


def test_keepudata_leaves_udata_alone(kq: skqueue.kqueue) -> None:
    """EV_KEEPUDATA (FreeBSD 12): change a knote without knowing its udata."""
    token = object()
    kq.control([kevent(1, EVFILT_USER, EV_ADD | EV_DISABLE, udata=token)], 0)
    kq.control([kevent(1, EVFILT_USER, EV_ENABLE | EV_KEEPUDATA, NOTE_TRIGGER)], 0)
    (ev,) = kq.control(None, 4, 0)
    assert ev.udata is token
    assert not ev.flags & EV_KEEPUDATA  # an action, not a state: never reported
    kq.control([kevent(1, EVFILT_USER, EV_ADD | EV_KEEPUDATA, udata="ignored")], 0)
    kq.control([kevent(1, EVFILT_USER, 0, NOTE_TRIGGER, udata="replaced")], 0)
    (ev,) = kq.control(None, 4, 0)
    assert ev.udata == "replaced"


def test_readd_does_not_enable_a_disabled_knote(kq: skqueue.kqueue) -> None:
    kq.control([kevent(1, EVFILT_USER, EV_ADD)], 0)
    kq.control([kevent(1, EVFILT_USER, EV_DISABLE, NOTE_TRIGGER)], 0)
    kq.control([kevent(1, EVFILT_USER, EV_ADD)], 0)
    assert kq.control(None, 4, 0) == []
    kq.control([kevent(1, EVFILT_USER, EV_ADD | EV_ENABLE)], 0)
    assert len(kq.control(None, 4, 0)) == 1


def test_enable_wins_over_disable_in_one_change(kq: skqueue.kqueue) -> None:
    kq.control([kevent(1, EVFILT_USER, EV_ADD | EV_DISABLE)], 0)
    kq.control([kevent(1, EVFILT_USER, EV_ENABLE | EV_DISABLE, NOTE_TRIGGER)], 0)
    assert len(kq.control(None, 4, 0)) == 1


# fork() --------------------------------------------------------------------------------
def _in_child(check: Callable[[], None]) -> int:
    """Run check in a fork() child; its exit status (0: every assertion held)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(10)  # a hang in the child ends it (and fails the test)
            check()
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.forks_with_threads  # a fork in a threaded program is what is tested
def test_fork_child_inherits_no_kqueue_and_leaves_the_parents_alone(
    kq: skqueue.kqueue, tmp_path: Path
) -> None:
    """FreeBSD gives a child no kqueue, and CPython's select.kqueue objects appear
    closed in one; the child must neither take the parent's events nor drop its
    registrations (they live in kernel objects the two processes share)."""
    a, b = socket.socketpair()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watched = tmp_path / "watched"
    watched.write_bytes(b"")
    fd = os.open(watched, os.O_RDONLY)
    try:
        handle = skqueue.kqueue.fromfd(kq.fileno())
        kq.control(
            [
                kevent(a, EVFILT_READ, EV_ADD),
                kevent(1, EVFILT_USER, EV_ADD | EV_ONESHOT),
                kevent(1, EVFILT_USER, 0, NOTE_TRIGGER),
                kevent(sleeper.pid, EVFILT_PROC, EV_ADD, NOTE_EXIT),
                kevent(fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE),
            ],
            0,
        )
        b.send(b"x")
        epoll_fd = kq.fileno()

        def child() -> None:
            # As if another thread held the lock at the fork: the child must not wait.
            kq._core.lock.acquire(blocking=False)  # type: ignore[union-attr]
            assert kq.closed and handle.closed
            with pytest.raises(ValueError):
                kq.control(None, 8, 0)
            with pytest.raises(ValueError):
                kq.fileno()
            assert "eventpoll" not in _fd_target(epoll_fd)
            handle.close()
            kq.close()
            with skqueue.kqueue() as own:  # the child may make kqueues of its own
                own.control([kevent(2, EVFILT_USER, EV_ADD | EV_ONESHOT, NOTE_TRIGGER)], 0)
                assert [ev.ident for ev in own.control(None, 8, 0)] == [2]

        assert _in_child(child) == 0
        events = kq.control(None, 8, 1.0)
        assert sorted((ev.filter, ev.ident) for ev in events) == sorted(
            [(EVFILT_READ, a.fileno()), (EVFILT_USER, 1)]
        )
        a.recv(1)
        with open(watched, "ab") as out:
            out.write(b"after the child")
        sleeper.kill()
        sleeper.wait(5)
        seen = {ev.filter for ev in kq.control(None, 8, 2.0)}
        if seen != {EVFILT_PROC, EVFILT_VNODE}:
            seen |= {ev.filter for ev in kq.control(None, 8, 2.0)}
        assert seen == {EVFILT_PROC, EVFILT_VNODE}
        handle.close()
    finally:
        sleeper.kill()
        sleeper.wait(5)
        os.close(fd)
        a.close()
        b.close()


def _fd_target(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


# Random change lists against a model ------------------------------------------------------
@dataclass
class Entry:
    """What the model knows of one knote."""

    udata: int
    disabled: bool
    triggered: bool


ACTIONS = {
    "add": EV_ADD,
    "add-disabled": EV_ADD | EV_DISABLE,
    "add-enabled": EV_ADD | EV_ENABLE,
    "delete": EV_DELETE,
    "enable": EV_ENABLE,
    "disable": EV_DISABLE,
    "touch": 0,  # USER: trigger; fd filters: only restates udata
}
STEPS = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from(sorted(ACTIONS)), st.integers(0, 1000)),
    min_size=20,
    max_size=100,
)


def _apply(
    model: dict[tuple[int, int], Entry], key: tuple[int, int], action: str, udata: int
) -> int:
    """The model's answer to one change: the errno (0 for success)."""
    flags = ACTIONS[action]
    entry = model.get(key)
    if flags & EV_DELETE:
        return errno.ENOENT if model.pop(key, None) is None else 0
    if entry is None:
        if not flags & EV_ADD:
            return errno.ENOENT
        entry = model[key] = Entry(udata, False, False)
        entry.disabled = bool(flags & EV_DISABLE)
    entry.udata = udata
    if flags & EV_ENABLE:
        entry.disabled = False
    elif flags & EV_DISABLE:
        entry.disabled = True
    if action == "touch" and key[1] == EVFILT_USER:
        entry.triggered = True
    return 0


@pytest.mark.parametrize("kind", sorted(KQUEUE_KINDS))
@settings(max_examples=40, deadline=None)
@given(steps=STEPS)
def test_random_changes_match_a_model(kind: str, steps: list[tuple[int, str, int]]) -> None:
    """Level-triggered knotes on ready fds and USER events: after every change the
    set of reported (ident, filter, udata) is exactly what the model predicts."""
    a, b = socket.socketpair()
    b.send(b"ready")
    targets = [
        (0, EVFILT_USER),
        (1, EVFILT_USER),
        (2, EVFILT_USER),
        (a.fileno(), EVFILT_READ),
        (a.fileno(), EVFILT_WRITE),
        (b.fileno(), EVFILT_WRITE),
    ]
    model: dict[tuple[int, int], Entry] = {}
    kq = KQUEUE_KINDS[kind]()
    try:
        for index, action, udata in steps:
            key = targets[index]
            fflags = NOTE_TRIGGER if action == "touch" and key[1] == EVFILT_USER else 0
            change = kevent(key[0], key[1], ACTIONS[action], fflags, 0, udata)
            try:
                kq.control([change], 0)
                got = 0
            except OSError as exc:
                got = exc.errno or -1
            assert got == _apply(model, key, action, udata), (key, action)
            expected = sorted(
                (k[0], k[1], e.udata)
                for k, e in model.items()
                if not e.disabled and (k[1] != EVFILT_USER or e.triggered)
            )
            reported = sorted((ev.ident, ev.filter, ev.udata) for ev in kq.control(None, 16, 0))
            assert reported == expected
    finally:
        kq.close()
        a.close()
        b.close()


def test_a_kqueue_left_open_at_exit_says_nothing() -> None:
    # Still referenced by module globals when the interpreter tears its modules down
    # (one of them SKQ, waited on by a thread): exit quietly, as a file object does.
    script = """
import os, threading, skqueue
r, w = os.pipe()
os.write(w, b"x")
KQ = skqueue.kqueue()
KQ.control([skqueue.kevent(r, skqueue.EVFILT_READ, skqueue.EV_ADD)], 0)
SKQ = skqueue.kqueue(sched=skqueue.KQ_SCHED_BEST, sargs=2)
SKQ.control([skqueue.kevent(r, skqueue.EVFILT_READ, skqueue.EV_ADD)], 0)
t = threading.Thread(target=SKQ.control, args=(None, 1, 1.0))
t.start()
t.join()
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
