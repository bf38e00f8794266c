"""Kernel objects behind the filters have an owner that closes them.

Measuring a listener's backlog needs a sock_diag netlink socket and a cached request
per listener; the kqueue itself holds an epoll set, an eventfd, a timerfd, and per
filter an inotify fd, pidfds and the proc connector.  None may outlive its owner
(a thread, a listener, a kqueue), which tests here see by counting fds and
ResourceWarnings.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import skqueue
from skqueue import kevent
from skqueue.backend import sockdiag as sc
from skqueue.constants import (
    EV_ADD,
    EVFILT_PROC,
    EVFILT_READ,
    EVFILT_TIMER,
    EVFILT_USER,
    EVFILT_VNODE,
    NOTE_EXIT,
    NOTE_FORK,
    NOTE_WRITE,
)

WAIT = 10.0  # generous: only a hang runs into it


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def open_inodes() -> set[int]:
    """The inode of every open fd (the directory listing's own fd is gone by then)."""
    inodes = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            inodes.add(os.fstat(int(name)).st_ino)
    return inodes


def wait_until(predicate: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def queue_is(sock: socket.socket, length: int) -> Callable[[], bool]:
    return lambda: sc.accept_queue_length(sock.fileno()) == length


def connect_to(listener: socket.socket) -> socket.socket:
    client = socket.socket(listener.family)
    client.connect(listener.getsockname())
    return client


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0), backlog=16) as sock:
        yield sock


def test_thread_end_and_exit_leave_no_unclosed_socket() -> None:
    """Threads that measured a listener end, then the interpreter exits: nothing of
    sock_diag's is left for the garbage collector to close (ResourceWarning)."""
    code = """
import gc, socket, threading
from skqueue.backend import sockdiag as sc
with socket.create_server(("127.0.0.1", 0)) as listener:
    threads = [
        threading.Thread(target=sc.accept_queue_length, args=(listener.fileno(),))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gc.collect()
"""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr


def test_short_lived_threads_hold_no_fd_each(listener: socket.socket) -> None:
    """Threads measuring one after another share one netlink socket, alive or not."""
    fd = listener.fileno()
    sc.accept_queue_length(fd)  # the pool has a socket before the count
    before = fd_count()
    release = threading.Event()
    errors: list[BaseException] = []

    def measure(measured: threading.Event) -> None:
        try:
            sc.accept_queue_length(fd)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)
        measured.set()
        release.wait(WAIT)

    threads: list[threading.Thread] = []
    try:
        for _ in range(8):
            measured = threading.Event()
            thread = threading.Thread(target=measure, args=(measured,))
            thread.start()
            threads.append(thread)
            assert measured.wait(WAIT), "the measuring thread hung"
        assert not errors
        assert fd_count() == before  # 8 threads still alive, no fd of their own
    finally:
        release.set()
        for thread in threads:
            thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert fd_count() == before


def test_plan_cache_is_bounded_and_keeps_busy_listeners(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket, tmp_path: Path
) -> None:
    """2,000 short-lived listeners: the cache stays within its size, every count is
    exact, and the listener measured all along keeps its plan (it is not rebuilt)."""
    size = 16
    monkeypatch.setattr(sc, "_PLAN_CACHE_MAX", size)
    built: Counter[int] = Counter()
    make_plan = sc._make_plan

    def counting_make_plan(fd: int, ino: int) -> sc._Plan:
        built[ino] += 1
        return make_plan(fd, ino)

    monkeypatch.setattr(sc, "_make_plan", counting_make_plan)
    busy = listener.fileno()
    busy_ino = os.fstat(busy).st_ino & 0xFFFFFFFF
    with connect_to(listener):
        assert wait_until(queue_is(listener, 1))
        for i in range(2000):
            if i % 2:
                short = socket.create_server(("127.0.0.1", 0), backlog=4)
            else:
                short = socket.socket(socket.AF_UNIX)
                short.bind(str(tmp_path / "listener.sock"))
                short.listen(4)
            with short:
                pending = [connect_to(short) for _ in range(i % 3)]
                assert wait_until(queue_is(short, len(pending)))
                for client in pending:
                    client.close()
            if short.family == socket.AF_UNIX:
                os.unlink(tmp_path / "listener.sock")
            assert sc.accept_queue_length(busy) == 1
            assert len(sc._plans) <= size
    assert built[busy_ino] == 1


def test_plan_left_by_a_reused_inode_is_rebuilt(listener: socket.socket, tmp_path: Path) -> None:
    """An inode number of a closed socket can come back on a new one; the plan cached
    for the old socket must not make the new one fail or report another's queue."""
    with (
        socket.create_server(("127.0.0.1", 0), backlog=4) as other,
        socket.socket(socket.AF_UNIX) as unix,
        connect_to(listener) as client,
    ):
        unix.bind(str(tmp_path / "unix.sock"))
        unix.listen(4)
        with connect_to(other), connect_to(other), connect_to(unix):
            socks = {"tcp": listener, "other": other, "unix": unix}
            expected = {"tcp": 1, "other": 2, "unix": 1}
            for name, sock in socks.items():
                assert wait_until(queue_is(sock, expected[name]))

            def key(sock: socket.socket) -> tuple[int, int]:
                st = os.fstat(sock.fileno())
                return (st.st_dev, st.st_ino)

            def plan(sock: socket.socket) -> sc._Plan:
                return sc._make_plan(sock.fileno(), os.fstat(sock.fileno()).st_ino & 0xFFFFFFFF)

            for name, sock in socks.items():
                for stale_from in socks.values():
                    if stale_from is not sock:
                        sc._plans[key(sock)] = plan(stale_from)
                        assert sc.accept_queue_length(sock.fileno()) == expected[name]
            # A socket that is not a listener, under a listener's old plan: EINVAL.
            sc._plans[key(client)] = plan(listener)
            with pytest.raises(OSError) as info:
                sc.accept_queue_length(client.fileno())
            assert info.value.errno == errno.EINVAL
            assert key(client) not in sc._plans


@pytest.mark.timeout(30)
@pytest.mark.forks_with_threads  # fork semantics are what is tested; earlier tests leave threads
def test_forked_child_closes_the_parents_diag_sockets(listener: socket.socket) -> None:
    """The child closes its copies of the idle sockets, and one that was busy at the
    fork is closed when given back, not pooled: the parent reads from them too."""
    fd = listener.fileno()
    busy = sc._diag_pool.take()
    sc.accept_queue_length(fd)  # and at least one idle socket besides
    parent_inodes = {os.fstat(link.sock.fileno()).st_ino for link in sc._diag_pool._idle}
    assert parent_inodes
    pid = os.fork()
    if pid == 0:  # child
        signal.alarm(20)
        code = 0
        try:
            if parent_inodes & open_inodes():
                code = 1
            sc._diag_pool.give_back(busy)
            if busy.sock.fileno() != -1 or busy in sc._diag_pool._idle:
                code = 2
            if sc.accept_queue_length(fd) != 0:
                code = 3
        except BaseException:
            code = 4
        os._exit(code)
    sc._diag_pool.give_back(busy)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sc.accept_queue_length(fd) == 0


def test_kqueue_close_gives_back_every_fd(listener: socket.socket, tmp_path: Path) -> None:
    """epoll, eventfd, timerfd, inotify, pidfd and (where allowed) the proc connector."""
    path = tmp_path / "watched"
    path.write_bytes(b"")
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        with open(path, "rb") as watched:
            sc.accept_queue_length(listener.fileno())  # the pool has a socket before the count
            before = fd_count()
            kq = skqueue.kqueue()
            kq.control(
                [
                    kevent(listener.fileno(), EVFILT_READ, EV_ADD),
                    kevent(watched.fileno(), EVFILT_VNODE, EV_ADD, NOTE_WRITE),
                    kevent(watched.fileno(), EVFILT_READ, EV_ADD),
                    kevent(child.pid, EVFILT_PROC, EV_ADD, NOTE_EXIT | NOTE_FORK),
                    kevent(1, EVFILT_TIMER, EV_ADD, 0, 1000),
                    kevent(2, EVFILT_USER, EV_ADD),
                ],
                0,
            )
            with connect_to(listener):
                assert kq.control(None, 8, WAIT)  # the listener is measured
            assert fd_count() > before
            kq.close()
            assert fd_count() == before
    finally:
        child.communicate(b"", timeout=WAIT)
