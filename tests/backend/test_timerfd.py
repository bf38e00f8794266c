"""timerfd: create, arm (relative, absolute, periodic), disarm, read, errors. Real fds, no mocks."""

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


def test_timerfd_relative_fires_on_time(timer_fd: int) -> None:
    start = time.monotonic()
    timerfd.timerfd_settime_ns(timer_fd, 50 * MS, absolute=False)
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


def test_timerfd_interval_counts_expirations(timer_fd: int) -> None:
    start = time.monotonic_ns()
    timerfd.timerfd_settime_ns(timer_fd, 10 * MS, absolute=False, interval_ns=10 * MS)
    time.sleep(0.065)
    count = timerfd.timerfd_read(timer_fd)
    elapsed = time.monotonic_ns() - start
    assert 6 <= count <= elapsed // (10 * MS)
    assert wait_readable(timer_fd)  # still armed: periodic
    assert timerfd.timerfd_read(timer_fd) >= 1


def test_timerfd_disarm(timer_fd: int) -> None:
    timerfd.timerfd_settime_ns(timer_fd, 30 * MS, absolute=False)
    timerfd.timerfd_settime_ns(timer_fd, 0)
    assert not wait_readable(timer_fd, 0.08)
    assert timerfd.timerfd_read(timer_fd) == 0


def test_timerfd_errors() -> None:
    with pytest.raises(OSError) as info:
        timerfd.timerfd_create(12345)
    assert info.value.errno == errno.EINVAL
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            timerfd.timerfd_settime_ns(r, 10 * MS, absolute=False)
        assert info.value.errno == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.skipif(os.geteuid() != 0, reason="setting the clock needs root")
def test_timerfd_cancel_on_set_reports_clock_change() -> None:
    fd = timerfd.timerfd_create(time.CLOCK_REALTIME)
    try:
        far = time.clock_gettime_ns(time.CLOCK_REALTIME) + 3600 * 1_000_000_000
        timerfd.timerfd_settime_ns(fd, far, cancel_on_set=True)
        assert timerfd.timerfd_read(fd) == 0
        # Setting the clock to (about) its own value is a "set" and cancels the timer.
        time.clock_settime_ns(time.CLOCK_REALTIME, time.clock_gettime_ns(time.CLOCK_REALTIME))
        assert wait_readable(fd)
        assert timerfd.timerfd_read(fd) == -1
    finally:
        os.close(fd)
