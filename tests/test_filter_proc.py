"""EVFILT_PROC: NOTE_EXIT with the wait(2) status and EV_EOF|EV_ONESHOT (without
reaping the child), NOTE_FORK / NOTE_EXEC through the proc connector, ESRCH and
EINVAL, and the flag behaviour FreeBSD gives process knotes."""

from __future__ import annotations

import errno
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

import skqueue
from skqueue.backend.proc_connector import ProcConnector
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_DISPATCH,
    EV_ENABLE,
    EV_EOF,
    EV_ERROR,
    EV_ONESHOT,
    EVFILT_PROC,
    NOTE_EXEC,
    NOTE_EXIT,
    NOTE_FORK,
    NOTE_TRACK,
)
from skqueue.event import kevent
from support import nothing as _nothing
from support import one

WAIT = 5.0
QUIET = 0.1


def nothing(kq: skqueue.kqueue) -> None:
    _nothing(kq, QUIET)


# A child that does what it is told, one line of stdin per step.
SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    print("ready", flush=True)
    while step := sys.stdin.readline().strip():
        if step == "fork":
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        elif step == "thread":
            worker = threading.Thread(target=lambda: None)
            worker.start()
            worker.join()
        elif step == "exec":
            os.execv("/bin/sh", ["sh", "-c", "read line; exit 4"])
        print("done", flush=True)
    sys.exit(3)
    """
)


def _connector_works() -> bool:
    try:
        ProcConnector.open().close()
    except OSError:
        return False
    return True


CONNECTOR = _connector_works()
needs_connector = pytest.mark.skipif(
    not CONNECTOR, reason="the proc connector needs root in the initial namespaces"
)


class Child:
    """A scripted child process; ``step`` returns once the child has done it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = self.proc.pid
        # Popen may return (vfork) before the exec is over: wait until it is.
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    def step(self, name: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        if name != "exec":
            assert self.proc.stdout.readline() == "done\n"

    def finish(self) -> None:
        """Make it exit: 3 from the script, 4 from the shell it may have become."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def child() -> Iterator[Child]:
    made = Child()
    yield made
    made.close()


def add(kq: skqueue.kqueue, pid: int, fflags: int, flags: int = 0) -> None:
    kq.control([kevent(pid, EVFILT_PROC, EV_ADD | flags, fflags)], 0)


def assert_gone(kq: skqueue.kqueue, pid: int) -> None:
    with pytest.raises(OSError) as info:
        kq.control([kevent(pid, EVFILT_PROC, EV_DELETE)], 0)
    assert info.value.errno == errno.ENOENT


# NOTE_EXIT ----------------------------------------------------------------------------


def test_exit_status_without_reaping(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_EXIT)
    nothing(kq)
    child.finish()
    ev = one(kq)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data) == (
        child.pid,
        EVFILT_PROC,
        EV_CLEAR | EV_EOF | EV_ONESHOT,
        NOTE_EXIT,
        3 << 8,
    )
    assert_gone(kq, child.pid)  # deleted once delivered
    assert child.proc.wait(WAIT) == 3  # the application still reaps its child


def test_killed_child_reports_the_signal(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_EXIT)
    child.proc.kill()
    ev = one(kq)
    assert os.WIFSIGNALED(ev.data) and os.WTERMSIG(ev.data) == signal.SIGKILL


def test_zombie_registered_after_exit_fires_at_once(kq: skqueue.kqueue, child: Child) -> None:
    child.finish()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    with pytest.raises(OSError) as info:  # without NOTE_EXIT, FreeBSD does not find it
        add(kq, child.pid, NOTE_FORK)
    assert info.value.errno == errno.ESRCH
    add(kq, child.pid, NOTE_EXIT)
    assert one(kq).data == 3 << 8


def test_exit_of_a_process_that_is_not_our_child(kq: skqueue.kqueue) -> None:
    shell = subprocess.run(
        ["sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = int(shell.stdout)  # its parent exited: now init's (or a subreaper's)
    add(kq, orphan, NOTE_EXIT)
    nothing(kq)
    os.kill(orphan, signal.SIGTERM)
    ev = one(kq)
    assert (ev.flags, ev.fflags, ev.data) == (EV_CLEAR | EV_EOF | EV_ONESHOT, NOTE_EXIT, 0)


def test_exit_with_nothing_to_report_deletes_silently(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_FORK)
    child.finish()
    child.proc.wait(WAIT)
    nothing(kq)
    assert_gone(kq, child.pid)


# Flags ------------------------------------------------------------------------------------


def test_disabled_exit_is_held_until_enabled(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_EXIT, EV_DISABLE)
    child.finish()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    nothing(kq)  # the kqueue has seen the exit (and read the status)...
    assert child.proc.wait(WAIT) == 3  # ...so reaping now takes nothing from it
    kq.control([kevent(child.pid, EVFILT_PROC, EV_ENABLE, NOTE_EXIT)], 0)
    ev = one(kq)
    assert (ev.fflags, ev.data) == (NOTE_EXIT, 3 << 8)


def test_delete_before_exit(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_EXIT)
    kq.control([kevent(child.pid, EVFILT_PROC, EV_DELETE)], 0)
    child.finish()
    child.proc.wait(WAIT)
    nothing(kq)


def test_oneshot_before_exit(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_EXIT | NOTE_FORK, EV_ONESHOT)
    child.step("fork") if CONNECTOR else child.finish()
    ev = one(kq)
    assert ev.flags & (EV_ONESHOT | EV_CLEAR) == EV_ONESHOT | EV_CLEAR
    assert_gone(kq, child.pid)  # deleted by its first delivery, exit or not


@needs_connector
def test_fork_exec_exit_in_order(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_FORK | NOTE_EXEC | NOTE_EXIT, EV_CLEAR)
    nothing(kq)
    child.step("fork")
    ev = one(kq)
    assert (ev.flags, ev.fflags, ev.data) == (EV_CLEAR, NOTE_FORK, 0)
    nothing(kq)  # EV_CLEAR: reported once
    child.step("exec")
    assert one(kq).fflags == NOTE_EXEC
    child.finish()
    ev = one(kq)
    assert (ev.flags, ev.fflags, ev.data) == (EV_CLEAR | EV_EOF | EV_ONESHOT, NOTE_EXIT, 4 << 8)


@needs_connector
def test_only_requested_notes_are_returned(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_EXEC | NOTE_EXIT)
    child.step("fork")
    nothing(kq)
    child.step("exec")
    child.finish()
    seen = 0
    deadline = time.monotonic() + WAIT
    while not seen & NOTE_EXIT and time.monotonic() < deadline:
        for ev in kq.control(None, 4, WAIT):
            seen |= ev.fflags
    assert seen == NOTE_EXEC | NOTE_EXIT


@needs_connector
def test_thread_creation_is_not_a_fork(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_FORK)
    child.step("thread")
    nothing(kq)


@needs_connector
def test_clear_is_implied(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_FORK)
    child.step("fork")
    ev = one(kq)
    assert (ev.flags, ev.fflags) == (EV_CLEAR, NOTE_FORK)
    nothing(kq)  # reported once, as FreeBSD (filt_procattach sets EV_CLEAR)
    child.step("fork")
    child.step("fork")
    assert one(kq).fflags == NOTE_FORK  # notes, not counts: two forks, one note


@needs_connector
def test_dispatch_holds_notes_until_enabled(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_FORK | NOTE_EXEC, EV_DISPATCH | EV_CLEAR)
    child.step("fork")
    assert one(kq).fflags == NOTE_FORK
    child.step("exec")
    nothing(kq)
    kq.control([kevent(child.pid, EVFILT_PROC, EV_ENABLE, NOTE_FORK | NOTE_EXEC)], 0)
    ev = one(kq)
    assert (ev.flags, ev.fflags) == (EV_DISPATCH | EV_CLEAR, NOTE_EXEC)
    nothing(kq)  # and disabled again


@needs_connector
def test_pending_fork_rides_along_with_exit(kq: skqueue.kqueue, child: Child) -> None:
    add(kq, child.pid, NOTE_FORK | NOTE_EXIT, EV_DISABLE)
    child.step("fork")
    child.finish()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    nothing(kq)
    kq.control([kevent(child.pid, EVFILT_PROC, EV_ENABLE, NOTE_FORK | NOTE_EXIT)], 0)
    ev = one(kq)
    assert (ev.flags, ev.fflags, ev.data) == (
        EV_CLEAR | EV_EOF | EV_ONESHOT,
        NOTE_FORK | NOTE_EXIT,
        3 << 8,
    )


# Errors -----------------------------------------------------------------------------------


def _reaped_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(WAIT)
    return proc.pid


# A negative pid never gets this far: kevent() refuses a negative ident
# (OverflowError), as select.kevent does (tests/test_hardening_core.py).
@pytest.mark.parametrize("which", ["reaped", "zero", "thread"])
def test_no_such_process_is_esrch(kq: skqueue.kqueue, which: str) -> None:
    stop = threading.Event()
    tids: list[int] = []

    def live_thread() -> None:
        tids.append(threading.get_native_id())
        stop.wait(WAIT)

    worker = threading.Thread(target=live_thread)
    worker.start()
    try:
        while not tids:
            time.sleep(0.001)
        pid = {"reaped": _reaped_pid(), "zero": 0, "thread": tids[0]}[which]
        (err,) = kq.control([kevent(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT)], 1, 0)
        assert (err.ident, err.flags, err.data) == (pid, EV_ERROR, errno.ESRCH)
        with pytest.raises(OSError) as info:
            kq.control([kevent(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT)], 0)
        assert info.value.errno == errno.ESRCH
    finally:
        stop.set()
        worker.join(WAIT)
    assert not worker.is_alive()


def test_note_track_is_einval(kq: skqueue.kqueue, child: Child) -> None:
    (err,) = kq.control([kevent(child.pid, EVFILT_PROC, EV_ADD, NOTE_EXIT | NOTE_TRACK)], 1, 0)
    assert (err.flags, err.data) == (EV_ERROR, errno.EINVAL)
    add(kq, child.pid, NOTE_EXIT)
    with pytest.raises(OSError) as info:  # asking for it later is refused too
        add(kq, child.pid, NOTE_EXIT | NOTE_TRACK)
    assert info.value.errno == errno.EINVAL
    child.finish()
    assert one(kq).fflags == NOTE_EXIT  # the knote was left as it was


def test_no_fd_left_after_close(child: Child) -> None:
    def fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    gc.collect()
    before = fds()
    first, second = skqueue.kqueue(), skqueue.kqueue(sched="best", sargs=2)
    for made in (first, second):
        add(made, child.pid, NOTE_EXIT | NOTE_FORK | NOTE_EXEC)
        add(made, os.getpid(), NOTE_FORK)
    assert fds() != before
    first.close()
    second.close()
    assert fds() == before
