"""EVFILT_SIGNAL: FreeBSD semantics (data = deliveries since the last report, EV_CLEAR
implied, the disposition stays the application's) and the hub design that does not
depend on any thread's signal mask (see skqueue/filters/signal.py)."""

from __future__ import annotations

import errno
import faulthandler
import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

import skqueue
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_DISPATCH,
    EV_ENABLE,
    EV_ERROR,
    EV_ONESHOT,
    EVFILT_SIGNAL,
)
from skqueue.event import kevent
from skqueue.filters import signal as signal_filter
from skqueue.filters.signal import SignalHub, hub
from support import ROOT, checkout_env, join_all, one, open_fds, start_thread
from support import nothing as _nothing

WAIT = 2.0
QUIET = 0.1


def nothing(kq: skqueue.kqueue) -> None:
    _nothing(kq, QUIET)


SIG = signal.SIGUSR1
OTHER = signal.SIGUSR2
RT = signal.SIGRTMIN + 3  # real-time: queued, so every send is one delivery
WATCHED = (SIG, OTHER, RT)


@pytest.fixture(autouse=True)
def dispositions() -> Iterator[None]:
    """Tests start with the watched signals ignored and no hub reader of an earlier
    hub still running; everything is put back after, and the stopped hub's reader
    has closed its read end (it would close an fd in the middle of the next test)."""
    saved = {signo: signal.getsignal(signo) for signo in (*WATCHED, signal.SIGCHLD)}
    for signo in WATCHED:
        signal.signal(signo, signal.SIG_IGN)
    join_all(hub_readers(), WAIT)
    yield
    for signo, handler in saved.items():
        signal.signal(signo, handler)
    assert hub.pipe is None and not hub.saved and not hub.listeners  # nothing left behind
    join_all(hub_readers(), WAIT)


def hub_readers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "skqueue-signals"]


@pytest.fixture
def bystander() -> Iterator[threading.Thread]:
    """A thread that exists before any registration and never touches skqueue."""
    done = threading.Event()
    thread = threading.Thread(target=done.wait, args=(WAIT * 5,))
    thread.start()
    yield thread
    done.set()
    thread.join(WAIT)
    assert not thread.is_alive()


def in_thread(action: Callable[[], object]) -> None:
    """Run action on a new thread (the sender is never the waiting thread)."""
    join_all([start_thread(action)], WAIT)


def kill_self(signo: int, times: int = 1) -> Callable[[], None]:
    def send() -> None:
        for _ in range(times):
            os.kill(os.getpid(), signo)

    return send


def add(kq: skqueue.kqueue, signo: int, flags: int = 0) -> None:
    kq.control([kevent(signo, EVFILT_SIGNAL, EV_ADD | flags)], 0)


def total(kq: skqueue.kqueue, expected: int) -> int:
    """Sum of data over the events that arrive until expected is reached (or WAIT)."""
    deadline = time.monotonic() + WAIT
    seen = 0
    while seen < expected and time.monotonic() < deadline:
        for ev in kq.control(None, 4, deadline - time.monotonic()):
            assert ev.data >= 1
            seen += ev.data
    return seen


# Delivery no matter which thread the kernel picks ------------------------------------


def test_process_signal_taken_by_a_bystander_thread_is_counted(
    kq: skqueue.kqueue, bystander: threading.Thread
) -> None:
    """libkqueue's trap: the waiting thread blocks the signal, so the kernel hands it
    to a thread that never blocked it; signalfd would never see it."""
    add(kq, SIG)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {SIG})
    try:
        in_thread(kill_self(SIG))  # the sender inherits the block too
        ev = one(kq)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data) == (
        SIG,
        EVFILT_SIGNAL,
        EV_CLEAR,
        0,
        1,
    )


def test_os_kill_from_another_thread(kq: skqueue.kqueue, bystander: threading.Thread) -> None:
    add(kq, SIG)
    in_thread(kill_self(SIG))
    assert one(kq).data == 1


@pytest.mark.parametrize("target", ["bystander", "main"])
def test_pthread_kill_from_another_thread(
    kq: skqueue.kqueue, bystander: threading.Thread, target: str
) -> None:
    add(kq, SIG)
    thread = bystander if target == "bystander" else threading.main_thread()
    assert thread.ident is not None
    ident = thread.ident
    in_thread(lambda: signal.pthread_kill(ident, SIG))
    assert one(kq).data == 1


# FreeBSD semantics ---------------------------------------------------------------------


def test_data_counts_deliveries_since_last_report(kq: skqueue.kqueue) -> None:
    add(kq, RT)
    in_thread(kill_self(RT, 5))
    assert total(kq, 5) == 5
    nothing(kq)  # EV_CLEAR is implied: reported once
    in_thread(kill_self(RT, 2))
    assert total(kq, 2) == 2


def test_clear_is_implied_and_echoed(kq: skqueue.kqueue) -> None:
    add(kq, SIG)
    nothing(kq)
    in_thread(kill_self(SIG))
    assert one(kq).flags == EV_CLEAR
    nothing(kq)


def test_disabled_knote_keeps_counting(kq: skqueue.kqueue) -> None:
    add(kq, RT, EV_DISABLE)
    in_thread(kill_self(RT, 2))
    nothing(kq)
    kq.control([kevent(RT, EVFILT_SIGNAL, EV_ENABLE)], 0)
    assert total(kq, 2) == 2


def test_dispatch(kq: skqueue.kqueue) -> None:
    add(kq, RT, EV_DISPATCH)
    in_thread(kill_self(RT))
    ev = one(kq)
    assert (ev.flags, ev.data) == (EV_DISPATCH | EV_CLEAR, 1)
    in_thread(kill_self(RT, 3))
    nothing(kq)  # disabled by the delivery
    kq.control([kevent(RT, EVFILT_SIGNAL, EV_ENABLE)], 0)
    assert total(kq, 3) == 3


def test_oneshot_deletes_and_restores(kq: skqueue.kqueue) -> None:
    add(kq, SIG, EV_ONESHOT)
    in_thread(kill_self(SIG))
    assert one(kq).flags == EV_ONESHOT | EV_CLEAR
    with pytest.raises(OSError) as info:
        kq.control([kevent(SIG, EVFILT_SIGNAL, EV_DELETE)], 0)
    assert info.value.errno == errno.ENOENT
    assert signal.getsignal(SIG) == signal.SIG_IGN


def test_application_handler_still_runs_and_comes_back(kq: skqueue.kqueue) -> None:
    calls: list[int] = []

    def handler(signo: int, frame: FrameType | None) -> None:
        calls.append(signo)

    signal.signal(SIG, handler)
    add(kq, SIG)
    assert signal.getsignal(SIG) is not handler  # skqueue's chaining handler meanwhile
    in_thread(kill_self(SIG))
    assert one(kq).data == 1
    assert calls == [SIG]  # chained: the kqueue only observes
    kq.control([kevent(SIG, EVFILT_SIGNAL, EV_DELETE)], 0)
    assert signal.getsignal(SIG) is handler
    in_thread(kill_self(SIG))
    nothing(kq)
    assert calls == [SIG, SIG]


def test_handler_installed_after_registration_is_left_in_place(kq: skqueue.kqueue) -> None:
    calls: list[int] = []
    add(kq, SIG)
    signal.signal(SIG, lambda signo, frame: calls.append(signo))
    in_thread(kill_self(SIG))
    assert one(kq).data == 1  # still observed: CPython's C handler stays
    kq.control([kevent(SIG, EVFILT_SIGNAL, EV_DELETE)], 0)
    assert signal.getsignal(SIG) not in (signal.SIG_IGN, hub.handler)
    assert calls == [SIG]


def test_default_action_is_kept(tmp_path: Path) -> None:
    """SIG_DFL: SIGWINCH (ignored by default) is counted and the process lives on;
    SIGTERM is counted by nobody because it terminates the process, as on FreeBSD."""
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, skqueue
            kq = skqueue.kqueue()
            kq.control([skqueue.kevent(s, skqueue.EVFILT_SIGNAL) for s in
                        (signal.SIGWINCH, signal.SIGTERM)], 0)
            os.kill(os.getpid(), signal.SIGWINCH)
            (ev,) = kq.control(None, 4, 5)
            print(ev.ident, ev.data, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            kq.control(None, 4, 5)
            print("survived", flush=True)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=WAIT * 5,
        cwd=ROOT,
        env=checkout_env(),
        check=False,
    )
    assert done.stdout.split() == [str(int(signal.SIGWINCH)), "1"], done.stderr
    assert done.returncode == -signal.SIGTERM


def test_two_kqueues_see_every_delivery(kq: skqueue.kqueue) -> None:
    with skqueue.kqueue() as other:
        add(kq, RT)
        add(other, RT)
        in_thread(kill_self(RT, 2))
        assert total(kq, 2) == 2
        assert total(other, 2) == 2
        kq.control([kevent(RT, EVFILT_SIGNAL, EV_DELETE)], 0)
        in_thread(kill_self(RT))
        assert total(other, 1) == 1
        nothing(kq)


def test_skq_worker_threads_receive_signals() -> None:
    with skqueue.kqueue(sched="best", sargs=2) as kq:
        add(kq, RT)
        got: list[int] = []
        lock = threading.Lock()
        stop = threading.Event()

        def worker() -> None:
            while not stop.is_set():
                for ev in kq.control(None, 4, 0.05):
                    with lock:
                        got.append(ev.data)

        workers = [start_thread(worker) for _ in range(2)]
        time.sleep(0.1)  # both are waiting (each has its kevq)
        in_thread(kill_self(RT, 4))
        deadline = time.monotonic() + WAIT
        while sum(got) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        join_all(workers, WAIT)
        assert sum(got) == 4


# Errors and limits ------------------------------------------------------------------


@pytest.mark.parametrize("signo", [0, signal.NSIG, 1000, signal.SIGKILL, signal.SIGSTOP, 32])
def test_invalid_signal_is_einval(kq: skqueue.kqueue, signo: int) -> None:
    (err,) = kq.control([kevent(signo, EVFILT_SIGNAL, EV_ADD)], 1, 0)
    assert (err.ident, err.flags, err.data) == (signo, EV_ERROR, errno.EINVAL)
    with pytest.raises(OSError) as info:
        kq.control([kevent(signo, EVFILT_SIGNAL, EV_ADD)], 0)
    assert info.value.errno == errno.EINVAL


def test_first_knote_off_the_main_thread_is_enotsup(kq: skqueue.kqueue) -> None:
    answers: list[list[kevent]] = []
    change = [kevent(SIG, EVFILT_SIGNAL, EV_ADD)]
    in_thread(lambda: answers.append(kq.control(change, 1, 0)))
    ((err,),) = answers
    assert (err.flags, err.data) == (EV_ERROR, errno.ENOTSUP)
    with skqueue.kqueue() as first:
        add(first, SIG)  # the main thread hooks the signal...
        answers.clear()
        in_thread(lambda: answers.append(kq.control(change, 1, 0)))
        assert answers == [[]]  # ...then any thread may add knotes for it
        in_thread(kill_self(SIG))
        assert one(kq).data == 1
        assert one(first).data == 1


def test_last_delete_off_the_main_thread_restores_later(kq: skqueue.kqueue) -> None:
    calls: list[int] = []
    signal.signal(SIG, lambda signo, frame: calls.append(signo))
    app_handler = signal.getsignal(SIG)
    add(kq, SIG)
    in_thread(lambda: kq.control([kevent(SIG, EVFILT_SIGNAL, EV_DELETE)], 0))
    assert signal.getsignal(SIG) is hub.handler  # CPython allows no change off main
    in_thread(kill_self(SIG))
    deadline = time.monotonic() + WAIT
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)  # the handler runs on this thread, between bytecodes
    assert calls == [SIG]  # chained, and the arrival put the handler back
    assert signal.getsignal(SIG) is app_handler
    nothing(kq)

    add(kq, SIG)
    in_thread(lambda: kq.control([kevent(SIG, EVFILT_SIGNAL, EV_DELETE)], 0))
    add(kq, OTHER)  # any main-thread change of a SIGNAL knote settles too
    assert signal.getsignal(SIG) is app_handler
    kq.control([kevent(OTHER, EVFILT_SIGNAL, EV_DELETE)], 0)


def test_handler_installed_behind_cpythons_back_is_ebusy(kq: skqueue.kqueue) -> None:
    faulthandler.register(OTHER)
    try:
        (err,) = kq.control([kevent(OTHER, EVFILT_SIGNAL, EV_ADD)], 1, 0)
    finally:
        faulthandler.unregister(OTHER)
    assert (err.flags, err.data) == (EV_ERROR, errno.EBUSY)


def test_ignored_sigchld_is_not_recorded(kq: skqueue.kqueue) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    add(kq, signal.SIGCHLD)
    pid = os.posix_spawn("/bin/true", ["true"], os.environ)
    nothing(kq)
    with pytest.raises(ChildProcessError):  # the kernel still reaps children itself
        os.waitpid(pid, 0)
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN


def test_default_sigchld_is_recorded(kq: skqueue.kqueue) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    add(kq, signal.SIGCHLD)
    pid = os.posix_spawn("/bin/true", ["true"], os.environ)
    assert one(kq).data == 1
    assert os.waitpid(pid, 0)[0] == pid  # not reaped behind the application's back


# The wakeup fd and fork ------------------------------------------------------------------


def wakeup_socket() -> tuple[socket.socket, socket.socket]:
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    return reader, writer


def received(sock: socket.socket) -> bytes:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            return sock.recv(64)
        except BlockingIOError:
            time.sleep(0.01)
    return b""


def test_previous_wakeup_fd_gets_every_byte(kq: skqueue.kqueue) -> None:
    reader, writer = wakeup_socket()
    with reader, writer:
        signal.set_wakeup_fd(writer.fileno())
        try:
            add(kq, SIG)
            in_thread(kill_self(SIG))
            assert one(kq).data == 1
            assert received(reader) == bytes([SIG])  # forwarded by the hub
            kq.control([kevent(SIG, EVFILT_SIGNAL, EV_DELETE)], 0)
        finally:
            assert signal.set_wakeup_fd(-1) == writer.fileno()  # put back


def test_wakeup_fd_replaced_later_is_taken_back(kq: skqueue.kqueue) -> None:
    reader, writer = wakeup_socket()
    with reader, writer:
        add(kq, SIG)
        signal.set_wakeup_fd(writer.fileno())  # e.g. asyncio's add_signal_handler
        try:
            for _ in range(2):
                in_thread(kill_self(SIG))
                assert one(kq).data == 1
                assert received(reader) == bytes([SIG])
            kq.control([kevent(SIG, EVFILT_SIGNAL, EV_DELETE)], 0)
        finally:
            assert signal.set_wakeup_fd(-1) == writer.fileno()


@pytest.mark.forks_with_threads  # the signal hub thread runs at the fork
def test_forked_child_gets_dispositions_back(kq: skqueue.kqueue) -> None:
    add(kq, SIG)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        clean = signal.getsignal(SIG) == signal.SIG_IGN and signal.set_wakeup_fd(-1) == -1
        os._exit(0 if clean else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    in_thread(kill_self(SIG))
    assert one(kq).data == 1  # the parent still observes


def test_no_fd_left_after_close() -> None:
    gc.collect()  # fds of earlier tests' garbage must not close during this one
    before = open_fds()
    first, second = skqueue.kqueue(), skqueue.kqueue(sched="best", sargs=2)
    for made in (first, second):
        add(made, SIG)
        add(made, RT)
    in_thread(kill_self(RT))
    assert one(first).data == 1
    assert open_fds() != before
    first.close()
    second.close()
    deadline = time.monotonic() + WAIT
    while open_fds() != before and time.monotonic() < deadline:
        time.sleep(0.01)  # the hub's reader thread closes its end when it sees EOF
    assert open_fds() == before
    assert signal.getsignal(SIG) == signal.SIG_IGN


def test_signal_to_self_is_seen_by_the_next_zero_timeout_poll(kq: skqueue.kqueue) -> None:
    """FreeBSD posts a signal before kill() returns; the very next poll must see it
    (its kqueue_peek_signal test), every time, not only when the hub thread won."""
    add(kq, SIG)
    for sent in range(1, 21):
        os.kill(os.getpid(), SIG)
        events = kq.control(None, 4, 0)
        assert [(ev.ident, ev.data) for ev in events] == [(SIG, 1)], f"signal {sent}"
    assert kq.control(None, 4, 0) == []


class _LateReaderOs:
    """The os module as the hub sees it, except that the hub thread closing read end
    ``lagging`` then stops until ``resume`` is set (the preemption behind issue 10)."""

    def __init__(self) -> None:
        self.lagging = -1
        self.lagged = threading.Event()
        self.resume = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def close(self, fd: int) -> None:
        os.close(fd)
        if fd == self.lagging and threading.current_thread().name == "skqueue-signals":
            self.lagging = -1
            self.lagged.set()
            self.resume.wait(WAIT)


def test_a_stopped_hubs_late_reader_leaves_the_next_hub_alone(
    kq: skqueue.kqueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10: a stopped hub's thread closed its read end, then forgot the hub's read
    end if the number matched; a hub started meanwhile gets that very number from
    pipe(), so its kevent() calls stopped reading the pipe and a zero-timeout poll saw
    a signal only if the new hub thread happened to count it first."""
    gc.collect()  # no fd of earlier tests' garbage may close meanwhile
    late = _LateReaderOs()
    monkeypatch.setattr(signal_filter, "os", late)
    add(kq, SIG)
    assert hub.pipe is not None
    late.lagging = old_rfd = hub.pipe[0]
    readers = hub_readers()
    counting = threading.Event()

    def held_back(rfd: int) -> None:  # the new hub thread waits: only kevent() may count
        counting.wait(WAIT)
        SignalHub._run(hub, rfd)

    try:
        kq.control([kevent(SIG, EVFILT_SIGNAL, EV_DELETE)], 0)  # the hub stops
        assert late.lagged.wait(WAIT)  # its thread has closed old_rfd, and lags
        monkeypatch.setattr(hub, "_run", held_back)
        add(kq, SIG)
        assert hub.pipe is not None and hub.pipe[0] == old_rfd  # the number came back
        late.resume.set()
        join_all(readers, WAIT)  # the late reader has finished
        os.kill(os.getpid(), SIG)
        assert [(ev.ident, ev.data) for ev in kq.control(None, 4, 0)] == [(SIG, 1)]
    finally:
        late.resume.set()
        counting.set()
