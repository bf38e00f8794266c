"""timerfd: the monotonic alarm: arm, re-arm, disarm, read, errors (real fds)."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator

import pytest

from skqueue.backend import timerfd
from support.kernel import wait_readable

MS = 1_000_000


@pytest.fixture
def timer_fd() -> Iterator[int]:
    fd = timerfd.timerfd_create()
    yield fd
    os.close(fd)


def test_timerfd_flags(timer_fd: int) -> None:
    assert os.get_blocking(timer_fd) is False
    assert os.get_inheritable(timer_fd) is False
    assert timerfd.timerfd_read(timer_fd) == 0  # never armed: EAGAIN, not an error


def test_timerfd_fires_on_time(timer_fd: int) -> None:
    start = time.monotonic()
    timerfd.timerfd_settime_ns(timer_fd, time.clock_gettime_ns(time.CLOCK_MONOTONIC) + 50 * MS)
    assert not wait_readable(timer_fd, 0.02)
    assert wait_readable(timer_fd)
    elapsed = time.monotonic() - start
    assert 0.049 <= elapsed < 0.5
    assert timerfd.timerfd_read(timer_fd) == 1
    assert timerfd.timerfd_read(timer_fd) == 0


def test_timerfd_absolute_deadline(timer_fd: int) -> None:
    deadline = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + 30 * MS
    timerfd.timerfd_settime_ns(timer_fd, deadline)
    assert wait_readable(timer_fd)
    assert time.clock_gettime_ns(time.CLOCK_MONOTONIC) >= deadline
    assert timerfd.timerfd_read(timer_fd) == 1


def test_timerfd_past_absolute_deadline_fires_at_once(timer_fd: int) -> None:
    timerfd.timerfd_settime_ns(timer_fd, time.clock_gettime_ns(time.CLOCK_MONOTONIC) - 10 * MS)
    assert wait_readable(timer_fd, 0.1)
    assert timerfd.timerfd_read(timer_fd) == 1


def test_timerfd_rearm_replaces_the_deadline(timer_fd: int) -> None:
    """The alarm moves earlier by arming again (what arm_alarm relies on)."""
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    timerfd.timerfd_settime_ns(timer_fd, now + 3600 * 1000 * MS)
    timerfd.timerfd_settime_ns(timer_fd, now + 20 * MS)
    assert wait_readable(timer_fd)
    assert timerfd.timerfd_read(timer_fd) == 1


def test_timerfd_disarm(timer_fd: int) -> None:
    timerfd.timerfd_settime_ns(timer_fd, time.clock_gettime_ns(time.CLOCK_MONOTONIC) + 30 * MS)
    timerfd.timerfd_settime_ns(timer_fd, 0)
    assert not wait_readable(timer_fd, 0.08)
    assert timerfd.timerfd_read(timer_fd) == 0


def test_timerfd_errors() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            timerfd.timerfd_settime_ns(r, 10 * MS)
        assert info.value.errno == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)
