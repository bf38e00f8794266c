"""The C accelerator (skqueue._accel) against the pure-Python path, its reference.

Both paths run in this process: the accelerator is loaded directly, whether or not it
serves the process (``SKQUEUE_PURE=1`` turns that off, and CI runs the suite both
ways), and ``skqueue.core.speedups`` chooses the path per test.  The two must agree on
every event of random changelists and readiness, make the same system calls in the same
order, and the accelerator must hold no memory.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skqueue
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_DISPATCH,
    EV_ENABLE,
    EV_ONESHOT,
    EVFILT_READ,
    EVFILT_WRITE,
)
from support import KQUEUE_KINDS, checkout_env, join_all

try:
    ACCEL: ModuleType | None = importlib.import_module("skqueue._accel")
except ImportError:  # CI checks that the accelerator was built (.ci/run)
    ACCEL = None

needs_accel = pytest.mark.skipif(ACCEL is None, reason="skqueue._accel was not built")


def use(monkeypatch: pytest.MonkeyPatch, speedups: ModuleType | None) -> None:
    """Serve the kqueues made from now on by this path (None: pure Python)."""
    monkeypatch.setattr("skqueue.core.speedups", speedups)


def test_the_flag_says_which_path_serves() -> None:
    pure = os.environ.get("SKQUEUE_PURE", "") not in ("", "0")
    assert skqueue.accelerated is (ACCEL is not None and not pure)
    for value, expected in (("1", "False"), ("0", str(ACCEL is not None))):
        child = subprocess.run(
            [sys.executable, "-c", "import skqueue; print(skqueue.accelerated)"],
            env={**checkout_env(), "SKQUEUE_PURE": value},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert child.stdout.strip() == expected, (value, child.stderr)


# Random changelists and readiness, run on both paths. ------------------------------
PAIRS = 3
FLAGS = [
    EV_ADD,
    EV_ADD | EV_CLEAR,
    EV_ADD | EV_DISPATCH,
    EV_ADD | EV_ONESHOT,
    EV_DELETE,
    EV_ENABLE,
    EV_DISABLE,
]
step = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 2 * PAIRS - 1), st.integers(1, 3)),
    st.tuples(st.just("recv"), st.integers(0, 2 * PAIRS - 1), st.integers(1, 4)),
    st.tuples(st.just("shut"), st.integers(0, 2 * PAIRS - 1), st.just(0)),
    st.tuples(
        st.just("change"),
        st.integers(0, 2 * PAIRS - 1),
        st.tuples(st.sampled_from(FLAGS), st.sampled_from([EVFILT_READ, EVFILT_WRITE])),
    ),
    st.tuples(st.just("wait"), st.integers(1, 2 * PAIRS + 1), st.just(0)),
)


def run(steps: list[tuple[str, int, Any]], kind: str) -> list[object]:
    """Play steps on fresh socketpairs and a kqueue of this kind (SKQ: served by this
    thread alone); what every step saw, with fds named by their socket's index so that
    two runs compare."""
    socks = [s for _ in range(PAIRS) for s in socket.socketpair()]
    index = {s.fileno(): i for i, s in enumerate(socks)}
    seen: list[object] = []
    with KQUEUE_KINDS[kind]() as kq:
        try:
            for op, i, arg in steps:
                sock = socks[i % len(socks)]
                try:
                    if op == "send":
                        seen.append(socks[i ^ 1].send(b"x" * arg))
                    elif op == "recv":
                        sock.setblocking(False)
                        seen.append(sock.recv(arg))
                    elif op == "shut":
                        socks[i ^ 1].shutdown(socket.SHUT_WR)
                    elif op == "change":
                        flags, filt = arg
                        kev = skqueue.kevent(sock, filt, flags, udata=i)
                        seen.append(kq.control([kev], 0))
                    else:
                        events = kq.control(None, i, 0)
                        seen.append(
                            [
                                (index[e.ident], e.filter, e.flags, e.fflags, e.data, e.udata)
                                for e in events
                            ]
                        )
                except OSError as exc:
                    seen.append(("error", op, exc.errno))
        finally:
            for s in socks:
                s.close()
    return seen


@needs_accel
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=40), st.sampled_from(sorted(KQUEUE_KINDS)))
def test_both_paths_return_the_same_events(steps: list[tuple[str, int, Any]], kind: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        use(monkeypatch, ACCEL)
        accelerated = run(steps, kind)
        use(monkeypatch, None)
        pure = run(steps, kind)
    assert accelerated == pure


@needs_accel
def test_the_accelerator_reports_a_busy_harvest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only agreement: a harvest of ready plain READs is the accelerator's, whole."""
    taken: list[int] = []
    report_plain = ACCEL.report_plain  # type: ignore[union-attr]

    class Counting:
        events_of = ACCEL.events_of  # type: ignore[union-attr]

        @staticmethod
        def report_plain(*args: Any) -> int:
            taken.append(report_plain(*args))
            return taken[-1]

    use(monkeypatch, Counting)  # type: ignore[arg-type]
    pairs = [socket.socketpair() for _ in range(4)]
    try:
        with skqueue.kqueue() as kq:
            kq.control([skqueue.kevent(a, EVFILT_READ, EV_ADD) for a, _ in pairs], 0)
            for _, b in pairs:
                b.send(b"ab")
            events = kq.control(None, 8, 1)
            assert sorted(e.data for e in events) == [2, 2, 2, 2]
            assert taken == [4]
    finally:
        for a, b in pairs:
            a.close()
            b.close()


# The same system calls. ---------------------------------------------------------
SCENARIO = textwrap.dedent(
    """
    import os, socket, skqueue
    from skqueue import kevent, EVFILT_READ, EVFILT_WRITE, EV_ADD, EV_CLEAR, EV_DISPATCH
    pairs = [socket.socketpair() for _ in range(4)]
    r, w = os.pipe()
    kq = skqueue.kqueue(**KIND)
    kq.control([kevent(a, EVFILT_READ, EV_ADD) for a, _ in pairs[:2]], 0)
    kq.control([kevent(r, EVFILT_READ, EV_ADD)], 0)
    kq.control([kevent(pairs[2][0], EVFILT_READ, EV_ADD | EV_CLEAR)], 0)
    kq.control([kevent(pairs[3][0], EVFILT_READ, EV_ADD | EV_DISPATCH),
                kevent(pairs[3][0], EVFILT_WRITE, EV_ADD)], 0)
    def wait(n, timeout):
        events = kq.control(None, n, timeout)  # written out: the trace holds them too
        os.write(1, repr([(e.ident, e.filter, e.flags, e.data) for e in events]).encode())
    os.write(1, b"start\\n")
    for round_ in range(3):
        for _, b in pairs:
            b.send(b"xy")
        os.write(w, b"z")
        if round_ == 2:
            pairs[1][1].shutdown(socket.SHUT_WR)
        for timeout in (None, 0):
            wait(3, timeout)
    # A pipe's event queued behind another, then the pipe's hang-up: on SKQ only the
    # poll(2) of its unlocked delivery sees it, so that call is what gives EV_EOF.
    r, w = os.pipe()
    kq = skqueue.kqueue(**KIND)
    kq.control([kevent(pairs[0][0], EVFILT_READ, EV_ADD), kevent(r, EVFILT_READ, EV_ADD)], 0)
    wait(1, 0)
    os.write(w, b"z")
    wait(1, 0)
    os.close(w)
    wait(4, 0)
    os.write(1, b"end\\n")
    """
)


TRACED = "trace=epoll_ctl,epoll_wait,epoll_pwait,ioctl,poll,write"


KINDS = {"classic": "{}", "skq": "{'sched': 'best', 'sargs': 2}"}


def traced_calls(pure: bool, kind: str) -> list[str]:
    """The scenario's epoll, ioctl and poll system calls, from its start to its end."""
    env = {**checkout_env(), "SKQUEUE_PURE": "1" if pure else "0"}
    scenario = f"KIND = {KINDS[kind]}\n{SCENARIO}"
    trace = subprocess.run(
        ["strace", "-qq", "-s", "4096", "-e", TRACED, sys.executable, "-c", scenario],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # select.epoll sets only data.fd (u32) of what it registers; the rest is left as
    # it was on the stack, the accelerator zeroes it: epoll hands back what it was given.
    # And pointers are where the stack was.
    lines = [
        re.sub(r"0x[0-9a-f]+", "0x", re.sub(r", u64=\d+", "", line))
        for line in trace.stderr.splitlines()
    ]
    begin = next(n for n, line in enumerate(lines) if '"start\\n"' in line)
    end = next(n for n, line in enumerate(lines) if '"end\\n"' in line)
    return lines[begin + 1 : end]


@needs_accel
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_both_paths_make_the_same_system_calls(kind: str) -> None:
    accelerated, pure = traced_calls(pure=False, kind=kind), traced_calls(pure=True, kind=kind)
    assert sum("EPOLL_CTL_MOD" in line for line in pure) >= 6  # the scenario re-arms
    assert sum("FIONREAD" in line for line in pure) >= 6
    if kind == "skq":  # the pipe's unlocked delivery asks poll(2) for a hang-up
        assert any(line.startswith("poll(") for line in pure)
    assert accelerated == pure


# Memory. -----------------------------------------------------------------------
@needs_accel
def test_the_accelerator_keeps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every object the accelerated harvest makes is freed: a reference leaked per event
    (an int, a kevent, a knote) would show as a block per round here."""
    use(monkeypatch, ACCEL)
    pairs = [socket.socketpair() for _ in range(8)]
    try:
        with skqueue.kqueue() as kq:
            kq.control([skqueue.kevent(a, EVFILT_READ, EV_ADD) for a, _ in pairs], 0)
            for _, b in pairs:
                b.send(b"z" * 70_000)  # past the small-int cache: data is a new int

            def rounds(n: int) -> int:
                count = 0
                for _ in range(n):
                    count += len(kq.control(None, 8, 0))
                return count

            rounds(2_000)  # warm: caches, the free lists
            before = sys.getallocatedblocks()
            assert rounds(20_000) == 8 * 20_000
            grown = sys.getallocatedblocks() - before
            assert grown < 2_000, f"{grown} blocks more after 160,000 events"
    finally:
        for a, b in pairs:
            a.close()
            b.close()


@needs_accel
def test_bad_arguments_are_errors_not_crashes() -> None:
    assert ACCEL is not None
    with pytest.raises(TypeError):
        ACCEL.report_plain(0, (), {}, {}, [], 1, (0, 0, 0, 0, 0))
    with pytest.raises(TypeError):
        ACCEL.report_plain(0, [], {}, {}, [], 1, (0, 0))
    with pytest.raises(TypeError):
        ACCEL.events_of(int, None, 0)
    with pytest.raises(AttributeError):
        ACCEL.events_of(skqueue.kevent, [object()], 0)
    if skqueue.accelerated:  # skqueue.filters.fd configured it at import
        with pytest.raises(RuntimeError, match="called already"):
            ACCEL.configure(object, object, object)
    # An fd that names nothing: the accelerator leaves it to Python, which drops it.
    assert ACCEL.report_plain(-1, [(10**6, 1)], {10**6: None}, {}, [], 1, (0,) * 5) == 0


@needs_accel
def test_threads_sharing_a_classic_kqueue_lose_no_readiness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The accelerated harvest under the kqueue lock, from four threads at once (on
    free-threaded CPython, really at once) on plain READs: every event says there is
    data, and every byte sent gets read (a lost re-arm would leave its fd silent)."""
    use(monkeypatch, ACCEL)
    pairs = [socket.socketpair() for _ in range(16)]
    for a, _ in pairs:
        a.setblocking(False)
    per_pair, threads, total = 200, 4, 16 * 200
    by_fd = {a.fileno(): a for a, _ in pairs}
    received = [0] * threads
    empty_events: list[skqueue.kevent] = []
    with skqueue.kqueue() as kq:
        kq.control([skqueue.kevent(a, EVFILT_READ, EV_ADD) for a in by_fd.values()], 0)

        def serve(me: int) -> None:
            while sum(received) < total:
                for ev in kq.control(None, 4, 0.05):
                    if ev.data <= 0:
                        empty_events.append(ev)
                    with contextlib.suppress(BlockingIOError):  # another thread read it
                        received[me] += len(by_fd[ev.ident].recv(65536))

        workers = [threading.Thread(target=serve, args=(i,), daemon=True) for i in range(threads)]
        for worker in workers:
            worker.start()
        for _ in range(per_pair):
            for _, b in pairs:
                b.send(b"y")
        join_all(workers, timeout=60)
    for a, b in pairs:
        a.close()
        b.close()
    assert sum(received) == total, received
    assert empty_events == []
