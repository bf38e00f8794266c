"""EVFILT_TIMER: a heap of deadlines behind the kqueue's one alarm timerfd.

One timerfd per timer would not scale to 100,000 timers (fd limits); the heap
does, and the alarm is re-armed only when the earliest deadline changes.
"""

from __future__ import annotations

import errno
import heapq
import os
import time
from typing import TYPE_CHECKING

from ..constants import (
    EV_ADD,
    EV_CLEAR,
    EV_ONESHOT,
    NOTE_ABSTIME,
    NOTE_MSECONDS,
    NOTE_NSECONDS,
    NOTE_SECONDS,
    NOTE_USECONDS,
)
from .base import Filter, Knote

if TYPE_CHECKING:
    from ..core import KqueueCore
    from ..event import kevent

_UNITS = {
    0: 1_000_000,
    NOTE_MSECONDS: 1_000_000,
    NOTE_SECONDS: 1_000_000_000,
    NOTE_USECONDS: 1_000,
    NOTE_NSECONDS: 1,
}
_UNIT_MASK = NOTE_SECONDS | NOTE_MSECONDS | NOTE_USECONDS | NOTE_NSECONDS
# FreeBSD's timer2sbintime clamps any time past SBT_MAX (about 68 years) to SBT_MAX,
# so that a huge period or absolute time is merely far away: it neither wraps round
# into the past nor overflows what the alarm timerfd can be set to.
_SBT_MAX_NS = ((1 << 63) - 1) * 1_000_000_000 >> 32


class TimerState:
    """A timer knote's schedule; ``generation`` invalidates stale heap entries."""

    __slots__ = ("deadline", "expired", "generation", "period")

    def __init__(self) -> None:
        self.deadline = 0
        self.period = 0  # 0 = fires once
        self.expired = 0  # expirations not yet delivered
        self.generation = 0


class TimerFilter(Filter):
    """Periodic, one-shot and absolute timers; data = expirations since last delivery."""

    def __init__(self, core: KqueueCore) -> None:
        super().__init__(core)
        self.heap: list[tuple[int, int, int, Knote]] = []
        self._seq = 0
        core.backend.alarm_handler = self.expire

    def attach(self, kn: Knote) -> None:
        if not kn.sfflags & NOTE_ABSTIME:  # as FreeBSD: data counts expirations since
            kn.flags |= EV_CLEAR  # the last delivery; an absolute timer stays level
        kn.hook = TimerState()
        self._start(kn)

    def touch(self, kn: Knote, ev: kevent) -> None:
        # FreeBSD restarts a re-added timer and forgets undelivered expirations;
        # other changes (EV_ENABLE, EV_DISABLE) leave the timer as it is.
        if not ev.flags & EV_ADD:
            return
        old = (kn.sfflags, kn.sdata)
        super().touch(kn, ev)
        try:
            self._start(kn)
        except OSError:
            kn.sfflags, kn.sdata = old
            raise
        kn.status &= ~1  # KN_ACTIVE: nothing pending any more

    def _start(self, kn: Knote) -> None:
        unit = kn.sfflags & _UNIT_MASK
        if kn.sfflags & ~(_UNIT_MASK | NOTE_ABSTIME) or unit not in _UNITS or kn.sdata < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        # FreeBSD: a periodic timer of 0 ticks every unit, not continuously.
        amount = min((kn.sdata or (0 if kn.flags & EV_ONESHOT else 1)) * _UNITS[unit], _SBT_MAX_NS)
        now = time.monotonic_ns()
        state: TimerState = kn.hook
        state.generation += 1
        state.expired = 0
        if kn.sfflags & NOTE_ABSTIME:
            # kqueue(2) (2021 on) takes any absolute time already passed, even one
            # before the boot, as "now": it fires at once instead of failing EINVAL.
            state.deadline = max(now, now + amount - time.time_ns())
            state.period = 0
        else:
            state.deadline = now + amount
            state.period = 0 if kn.flags & EV_ONESHOT else amount
        self._push(kn, state)

    def _push(self, kn: Knote, state: TimerState) -> None:
        self._seq += 1
        heapq.heappush(self.heap, (state.deadline, self._seq, state.generation, kn))
        if self.heap[0][3] is kn:
            self.core.backend.arm_alarm(state.deadline)

    def detach(self, kn: Knote) -> None:
        kn.hook.generation += 1  # its heap entries are now ignored

    def expire(self) -> None:
        """The alarm fired: count expirations of every due timer and activate it."""
        now = time.monotonic_ns()
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, generation, kn = heapq.heappop(heap)
            state: TimerState = kn.hook
            if generation != state.generation:
                continue
            if state.period:
                missed = (now - state.deadline) // state.period + 1
                state.expired += missed
                state.deadline += missed * state.period
                self._push(kn, state)
            else:
                state.expired += 1
            self.core.activate(kn)
        if heap:
            self.core.backend.arm_alarm(heap[0][0])

    def deliver(self, kn: Knote) -> bool:
        state: TimerState = kn.hook
        kn.data = state.expired
        kn.fflags = 0
        kn.oflags = 0
        return state.expired > 0

    def clear(self, kn: Knote) -> None:
        kn.hook.expired = 0

    def recheck(self, kn: Knote) -> None:
        if kn.hook.expired:
            self.core.activate(kn)
