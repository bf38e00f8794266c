"""Fixtures shared by the test modules (a kqueue of each kind, a socketpair, a pipe, a
TCP listener), and the check that no test forks while other threads run unless it is
marked to."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

import pytest

import skqueue
from support import KQUEUE_KINDS

#: Threads of this process at each fork() since the current test began.
_threads_at_fork: list[int] = []

#: Python 3.12+ warns when it forks a multi-threaded process (the child may deadlock).
FORK_WARNING = r"This process \(pid=\d+\) is multi-threaded, use of fork\(\)"


def _count_threads_at_fork() -> None:
    # The kernel's count: threads started outside the threading module count too.
    _threads_at_fork.append(len(os.listdir("/proc/self/task")))


os.register_at_fork(before=_count_threads_at_fork)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "forks_with_threads: the test forks while other threads run, on purpose "
        "(fork semantics); Python's DeprecationWarning about it is expected there",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silence the fork warning for exactly the tests marked forks_with_threads."""
    for item in items:
        if item.get_closest_marker("forks_with_threads") is not None:
            item.add_marker(pytest.mark.filterwarnings(f"ignore:{FORK_WARNING}:DeprecationWarning"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    _threads_at_fork.clear()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test that forked (in setup or body) while other threads ran, unless marked."""
    result = yield
    threaded = [count for count in _threads_at_fork if count > 1]
    if threaded and item.get_closest_marker("forks_with_threads") is None:
        pytest.fail(
            f"forked while {max(threaded)} threads ran: the child may deadlock on a lock "
            "another thread held (Python 3.12+ warns).  Use subprocess or a spawn "
            "context, or mark the test @pytest.mark.forks_with_threads if that is the point"
        )
    return result


@pytest.fixture(params=sorted(KQUEUE_KINDS))
def kq(request: pytest.FixtureRequest) -> Iterator[skqueue.kqueue]:
    """A classic kqueue, then an SKQ one (best-of-2) driven from one thread."""
    made = KQUEUE_KINDS[request.param]()
    yield made
    made.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A non-blocking pipe (read end, write end); either end may be closed by the test."""
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on loopback with room for 16 pending connections."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as sock:
        yield sock
