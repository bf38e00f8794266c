"""Kernel objects behind the filters have an owner that closes them.

Measuring a listener's backlog needs a sock_diag netlink socket and a cached request
per listener; the kqueue itself holds an epoll set, an eventfd, a timerfd, and per
filter an inotify fd, pidfds and the proc connector.  None may outlive its owner
(a thread, a listener, a kqueue), which tests here see by counting fds and
ResourceWarnings.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from skqueue.backend import syscalls as sc

WAIT = 10.0  # generous: only a hang runs into it


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


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
from skqueue.backend import syscalls as sc
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
