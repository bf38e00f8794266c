"""The proc connector: fork, exec and exit events, overflow, close. Real fds, no mocks."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from skqueue.backend.proc_connector import ProcConnector, ProcEvent
from support.kernel import wait_readable


@pytest.fixture
def proc_connector() -> Iterator[ProcConnector]:
    try:
        conn = ProcConnector.open()
    except PermissionError:
        pytest.skip("proc connector not permitted here (EPERM)")
    yield conn
    conn.close()


def collect_until(
    conn: ProcConnector, done: Callable[[list[ProcEvent]], bool], timeout: float = 5.0
) -> list[ProcEvent]:
    events: list[ProcEvent] = []
    deadline = time.monotonic() + timeout
    while not done(events) and time.monotonic() < deadline:
        if wait_readable(conn.fileno(), 0.1):
            events += conn.read_events()
    return events


def test_proc_connector_fork_exec_exit(proc_connector: ProcConnector) -> None:
    conn = proc_connector
    assert conn.fileno() >= 0
    assert os.get_blocking(conn.fileno()) is False
    pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", "exit 5"], os.environ)

    def seen_exit(events: list[ProcEvent]) -> bool:
        return any(e.what == "exit" and e.pid == pid for e in events)

    events = [e for e in collect_until(conn, seen_exit) if e.tgid == pid]
    os.waitpid(pid, 0)
    whats = [e.what for e in events]
    assert whats[0] == "fork" and "exec" in whats and whats[-1] == "exit"
    fork = events[0]
    assert (fork.pid, fork.parent_tgid) == (pid, os.getpid())
    exit_event = events[-1]
    assert exit_event.exit_code == 5 << 8
    assert exit_event.parent_tgid == os.getpid()
    assert conn.overflow is False


def test_proc_connector_reports_overflow(proc_connector: ProcConnector) -> None:
    conn = proc_connector
    # Shrink the receive buffer to its minimum so that unread events are dropped.
    view = socket.socket(fileno=os.dup(conn.fileno()))
    view.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    view.close()
    pids = [os.posix_spawn("/bin/true", ["/bin/true"], os.environ) for _ in range(30)]
    for pid in pids:
        os.waitpid(pid, 0)
    conn.read_events()
    assert conn.overflow is True
    conn.overflow = False
    view = socket.socket(fileno=os.dup(conn.fileno()))
    view.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    view.close()
    pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
    os.waitpid(pid, 0)
    events = collect_until(conn, lambda evs: any(e.pid == pid and e.what == "exit" for e in evs))
    assert any(e.pid == pid and e.what == "exit" for e in events)
    assert conn.overflow is False


def test_proc_connector_close_is_idempotent() -> None:
    try:
        conn = ProcConnector.open()
    except PermissionError:
        pytest.skip("proc connector not permitted here (EPERM)")
    fd = conn.fileno()
    conn.close()
    conn.close()
    with pytest.raises(OSError):
        os.fstat(fd)
