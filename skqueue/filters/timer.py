"""EVFILT_TIMER: a heap of deadlines behind the kqueue's one alarm timerfd.

One timerfd per timer would not scale to 100,000 timers (fd limits); the heap
does, and the alarm is re-armed only when the earliest deadline changes.
"""

from __future__ import annotations

import errno
import heapq
import os
import time
from typing import TYPE_CHECKING, Any

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
from ..knote import KN_ACTIVE, REPORT, SKIP, Delivery, Filter, Knote, KqueueHost

if TYPE_CHECKING:
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


# A heap entry: [deadline_ns, sequence, knote].  Cancelling a timer empties the
# knote slot, which frees the knote (and its udata) at once; the dead entry itself
# leaves when it reaches the top or at the next compaction.
_Entry = list[Any]


class TimerState:
    """A timer knote's schedule and its one live heap entry (None: not scheduled)."""

    __slots__ = ("deadline", "entry", "expired", "period")

    def __init__(self) -> None:
        self.deadline = 0
        self.period = 0  # 0 = fires once
        self.expired = 0  # expirations not yet delivered
        self.entry: _Entry | None = None


class TimerFilter(Filter):
    """Periodic, one-shot and absolute timers; data = expirations since last delivery.

    The heap holds at most twice as many entries as there are scheduled timers: a
    reset or deleted timer's entry is dead, and once the dead are more than half
    of the heap it is rebuilt without them (amortised O(1) per cancellation).
    """

    def __init__(self, kq: KqueueHost) -> None:
        super().__init__(kq)
        self.heap: list[_Entry] = []
        self._dead = 0  # entries whose knote slot was emptied
        self._seq = 0
        kq.poller.alarm_handler = self.expire

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
        kn.status &= ~KN_ACTIVE  # nothing pending any more

    def _schedule(self, kn: Knote) -> tuple[int, int]:
        """(deadline, period) of kn's registration; OSError(EINVAL) if it is invalid."""
        unit = kn.sfflags & _UNIT_MASK
        # kevent fields are plain attributes: a float period (NaN above all) would
        # put a deadline in the heap that no comparison or timerfd can handle.
        if (
            kn.sfflags & ~(_UNIT_MASK | NOTE_ABSTIME)
            or unit not in _UNITS
            or not isinstance(kn.sdata, int)
            or kn.sdata < 0
        ):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        # FreeBSD: a periodic timer of 0 ticks every unit, not continuously.
        amount = min((kn.sdata or (0 if kn.flags & EV_ONESHOT else 1)) * _UNITS[unit], _SBT_MAX_NS)
        now = time.monotonic_ns()
        if kn.sfflags & NOTE_ABSTIME:
            # kqueue(2) (2021 on) takes any absolute time already passed, even one
            # before the boot, as "now": it fires at once instead of failing EINVAL.
            return max(now, now + amount - time.time_ns()), 0
        return now + amount, 0 if kn.flags & EV_ONESHOT else amount

    def _start(self, kn: Knote) -> None:
        """(Re)start kn's timer; on failure nothing has changed, not even the heap."""
        deadline, period = self._schedule(kn)
        heap = self.heap
        if not heap or deadline < heap[0][0]:
            self.kq.poller.arm_alarm(deadline)  # the one step that may fail
        state: TimerState = kn.hook
        self._cancel(state)
        state.deadline, state.period, state.expired = deadline, period, 0
        self._insert(kn, state)

    def _insert(self, kn: Knote, state: TimerState) -> None:
        self._seq += 1
        state.entry = [state.deadline, self._seq, kn]
        heapq.heappush(self.heap, state.entry)

    def _cancel(self, state: TimerState) -> None:
        """Kill state's heap entry; rebuild the heap once the dead are the majority."""
        entry = state.entry
        if entry is None:
            return
        entry[2] = None
        state.entry = None
        self._dead += 1
        heap = self.heap
        if self._dead > len(heap) // 2:
            heap[:] = [live for live in heap if live[2] is not None]
            heapq.heapify(heap)
            self._dead = 0

    def detach(self, kn: Knote) -> None:
        self._cancel(kn.hook)

    def expire(self) -> None:
        """The alarm fired: count expirations of every due timer and activate it."""
        now = time.monotonic_ns()
        heap = self.heap
        while heap and (heap[0][0] <= now or heap[0][2] is None):
            kn: Knote | None = heapq.heappop(heap)[2]
            if kn is None:
                self._dead -= 1
                continue
            state: TimerState = kn.hook
            state.entry = None
            if state.period:
                missed = (now - state.deadline) // state.period + 1
                state.expired += missed
                state.deadline += missed * state.period
                self._insert(kn, state)
            else:
                state.expired += 1
            self.kq.activate(kn)
        if heap:
            self.kq.poller.arm_alarm(heap[0][0])

    def deliver(self, kn: Knote) -> Delivery:
        state: TimerState = kn.hook
        kn.data = state.expired
        kn.fflags = 0
        kn.oflags = 0
        return REPORT if state.expired > 0 else SKIP

    def clear(self, kn: Knote) -> None:
        kn.hook.expired = 0

    def recheck(self, kn: Knote) -> None:
        if kn.hook.expired:
            self.kq.activate(kn)
