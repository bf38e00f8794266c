"""Timers and timeouts at their limits (issue 10): huge periods and absolute times,
refused and re-added timers, and the timeout argument of every wait.

A wait that spins instead of sleeping is caught by the CPU time it burns, which a
busy machine does not inflate (a sleeping process uses none), unlike wall-clock time.
"""

from __future__ import annotations

import time

import pytest

import skqueue
from skqueue import kevent
from skqueue.constants import (
    EV_ADD,
    EV_DELETE,
    EVFILT_TIMER,
    NOTE_ABSTIME,
    NOTE_MSECONDS,
    NOTE_NSECONDS,
    NOTE_SECONDS,
    NOTE_USECONDS,
)

INT64_MAX = 2**63 - 1  # the largest data a kevent carries (intptr_t)
IDLE_WAIT = 0.25  # seconds: long enough for a spinning wait to burn a visible share
SPIN_CPU = 0.1  # CPU seconds: a sleeping wait of IDLE_WAIT uses well under a millisecond


def wait_cpu(kq: skqueue.kqueue, seconds: float = IDLE_WAIT) -> float:
    """CPU time of a wait with nothing to report: next to nothing unless it spins."""
    started = time.process_time()
    assert kq.control(None, 1, seconds) == []
    return time.process_time() - started


UNITS = [
    NOTE_SECONDS,
    NOTE_MSECONDS,
    0,
    NOTE_USECONDS,
    NOTE_NSECONDS,
    NOTE_ABSTIME | NOTE_SECONDS,
    NOTE_ABSTIME,
    NOTE_ABSTIME | NOTE_NSECONDS,
]
UNIT_IDS = ["s", "ms", "default", "us", "ns", "abs-s", "abs-ms", "abs-ns"]


@pytest.mark.parametrize("fflags", UNITS, ids=UNIT_IDS)
def test_largest_timer_is_clamped_not_wrapped(kq: skqueue.kqueue, fflags: int) -> None:
    """FreeBSD clamps a time past SBT_MAX (timer2sbintime): accepted and far away."""
    kq.control([kevent(1, EVFILT_TIMER, EV_ADD, fflags, INT64_MAX)], 0)  # no EINVAL
    assert kq.control(None, 1, 0) == []  # not due
    kq.control([kevent(1, EVFILT_TIMER, EV_DELETE)], 0)
    assert wait_cpu(kq) < SPIN_CPU


@pytest.mark.parametrize("fflags", UNITS, ids=UNIT_IDS)
def test_data_past_int64_never_spins(kq: skqueue.kqueue, fflags: int) -> None:
    """2**64 - 1 either fails kevent()'s range check or is a clamped timer, never a spin."""
    try:
        ev = kevent(1, EVFILT_TIMER, EV_ADD, fflags, 2**64 - 1)
    except OverflowError:  # select.kevent's intptr_t range: the filter never sees it
        return
    kq.control([ev], 0)
    kq.control([kevent(1, EVFILT_TIMER, EV_DELETE)], 0)
    assert wait_cpu(kq) < SPIN_CPU
