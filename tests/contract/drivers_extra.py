"""Contract drivers for EVFILT_SIGNAL, EVFILT_PROC and EVFILT_VNODE (see ``drivers.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import skqueue
from skqueue.backend.proc_connector import ProcConnector
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EVFILT_PROC,
    EVFILT_SIGNAL,
    EVFILT_VNODE,
    NOTE_ATTRIB,
    NOTE_EXEC,
    NOTE_FORK,
    NOTE_WRITE,
)

from .drivers import Driver, Reg


class SignalDriver(Driver):
    """A real-time signal (queued: one send, one delivery) sent to this process."""

    name = "signal"
    filter = EVFILT_SIGNAL
    implied_flags = EV_CLEAR
    level = False
    signo = signal.SIGRTMIN + 5

    def open(self) -> int:
        self.saved = signal.signal(self.signo, signal.SIG_IGN)
        return self.signo

    def fire(self, reg: Reg) -> None:
        os.kill(os.getpid(), self.signo)

    def check(self, ev: skqueue.kevent) -> None:
        assert (ev.data, ev.fflags) == (1, 0)

    def modified(self) -> tuple[int, int]:
        return 0x1234, 99  # a signal knote has no parameters: nothing changes

    def check_modified(self, events: list[skqueue.kevent]) -> None:
        assert [(ev.fflags, ev.data) for ev in events] == [(0, 1)]

    def close(self) -> None:
        signal.signal(self.signo, self.saved)


_FORKER = textwrap.dedent(
    """
    import os, sys
    print("ready", flush=True)
    while sys.stdin.readline():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print("forked", flush=True)
    """
)


class ProcDriver(Driver):
    """NOTE_FORK on a child that forks once per line it reads (needs the connector)."""

    name = "proc"
    filter = EVFILT_PROC
    fflags = NOTE_FORK
    implied_flags = EV_CLEAR
    level = False
    settle = 0.1

    def open(self) -> int:
        self.child = subprocess.Popen(
            [sys.executable, "-c", _FORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout is not None and self.child.stdout.readline() == "ready\n"
        return self.child.pid

    def fire(self, reg: Reg) -> None:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write("fork\n")
        self.child.stdin.flush()
        assert self.child.stdout.readline() == "forked\n"

    def check(self, ev: skqueue.kevent) -> None:
        assert (ev.fflags, ev.data) == (NOTE_FORK, 0)

    def modified(self) -> tuple[int, int]:
        return NOTE_EXEC, 0  # a fork is no longer asked for

    def check_modified(self, events: list[skqueue.kevent]) -> None:
        assert events == []

    def close(self) -> None:
        self.child.kill()
        self.child.wait()
        for stream in (self.child.stdin, self.child.stdout):
            assert stream is not None
            stream.close()


class VnodeDriver(Driver):
    """NOTE_WRITE on a temporary file; firing rewrites its first byte in place."""

    name = "vnode"
    filter = EVFILT_VNODE
    fflags = NOTE_WRITE

    def open(self) -> int:
        self.fd, self.path = tempfile.mkstemp()
        os.write(self.fd, b"x")
        return self.fd

    def fire(self, reg: Reg) -> None:
        os.pwrite(self.fd, b"y", 0)

    def quiet(self, reg: Reg) -> None:
        """Accumulated notes go only with an EV_CLEAR delivery: register anew."""
        reg.kq.control(
            [
                skqueue.kevent(self.fd, EVFILT_VNODE, EV_DELETE),
                skqueue.kevent(self.fd, EVFILT_VNODE, EV_ADD, self.fflags, 0, reg.udata),
            ],
            0,
        )

    def check(self, ev: skqueue.kevent) -> None:
        assert (ev.fflags, ev.data) == (NOTE_WRITE, 0)

    def modified(self) -> tuple[int, int]:
        return NOTE_ATTRIB, 0  # writes are no longer asked for

    def check_modified(self, events: list[skqueue.kevent]) -> None:
        assert events == []

    def close(self) -> None:
        os.close(self.fd)
        os.unlink(self.path)


def _connector_works() -> bool:
    try:
        ProcConnector.open().close()
    except OSError:
        return False
    return True


# NOTE_FORK is best effort: without the proc connector (root) there is nothing to fire.
DRIVERS: list[type[Driver]] = [
    SignalDriver,
    *([ProcDriver] if _connector_works() else []),
    VnodeDriver,
]
