"""The Linux backend: one epoll set per kqueue, plus a wake-up eventfd and an alarm timerfd.

Everything a kqueue watches in the kernel (user fds, the timer alarm, inotify,
the proc connector, pidfds) is an item in this epoll set; the epoll fd is the kqueue's
``fileno()``, so a kqueue can itself be watched by another poller.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from .timerfd import timerfd_create, timerfd_read, timerfd_settime_ns

#: Runs in the harvest, given the fd's ready events: with the kqueue lock held, or with
#: no lock for an fd added ``guarded`` (its handler takes the lock that guards it).
Handler = Callable[[int], None]


class Poller(Protocol):
    """The kqueue's one route to epoll_ctl and its alarm, as a filter may use them."""

    #: Called when the alarm set by arm_alarm fires (the TIMER filter's expiry).
    alarm_handler: Callable[[], None]

    def fileno(self) -> int:
        """The epoll set's descriptor."""

    @property
    def handlers(self) -> Mapping[int, Handler]:
        """fd -> the handler the harvest runs for it (read-only: for the accelerator)."""

    def add(self, fd: int, events: int, handler: Handler, guarded: bool = False) -> None:
        """Watch fd with this mask; handler(events) runs in the harvest, with the kqueue
        lock held unless guarded (then the handler takes what it needs itself)."""

    def modify(self, fd: int, events: int) -> None:
        """Change fd's mask (OSError ENOENT/EBADF when fd no longer names the item)."""

    def remove(self, fd: int) -> None:
        """Stop watching fd (an fd the kernel already forgot is fine)."""

    def arm_alarm(self, deadline_ns: int) -> None:
        """Make the kqueue look at alarm_handler by deadline_ns (CLOCK_MONOTONIC)."""


# Sub-50 ms waits go through the alarm timerfd: epoll_wait's timeout is in
# milliseconds (rounded up), which would make a 10 us wait 100 times too long.
_PRECISE_BELOW = 0.05


class EpollBackend:
    """epoll set with a handler per fd; the handlers run in the harvesting thread.

    add, modify and remove are the only calls of epoll_ctl on a kqueue's items.
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}
        self._guarded: dict[int, Handler] = {}  # those of _handlers that need no lock
        self._woken = False
        self._alarm_ns = 0  # deadline currently armed, 0 = none
        self.alarm_handler: Callable[[], None] = lambda: None
        # epoll_ctl(MOD) is the per-delivery re-arm of a level knote: epoll's own
        # method, so that it costs no Python frame of ours.
        self.modify: Callable[[int, int], None] = self._epoll.modify
        self._wake_fd = self._alarm_fd = -1
        try:
            self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._alarm_fd = timerfd_create()
            self._epoll.register(self._wake_fd, select.EPOLLIN)
            self._epoll.register(self._alarm_fd, select.EPOLLIN)
        except BaseException:  # at the fd limit, say: leave no fd behind
            self.close()
            raise

    def fileno(self) -> int:
        return self._epoll.fileno()

    @property
    def handlers(self) -> Mapping[int, Handler]:
        return self._handlers

    # Registration -----------------------------------------------------------------
    def add(self, fd: int, events: int, handler: Handler, guarded: bool = False) -> None:
        """Watch fd with its final mask: one epoll_ctl(ADD)."""
        self._handlers[fd] = handler
        if guarded:
            self._guarded[fd] = handler
        try:
            self._epoll.register(fd, events)
        except BaseException:
            self._handlers.pop(fd, None)
            self._guarded.pop(fd, None)
            raise

    def remove(self, fd: int) -> None:
        """Forget fd; tolerate an fd the kernel already dropped because it was closed."""
        self._handlers.pop(fd, None)
        self._guarded.pop(fd, None)
        try:
            self._epoll.unregister(fd)
        except OSError as exc:
            if exc.errno not in (errno.EBADF, errno.ENOENT, errno.EPERM):
                raise

    # Waiting ----------------------------------------------------------------------
    def prepare_wait(self, timeout: float | None) -> None:
        """Before a poll(timeout) that may block: arm the alarm if the wait is short.

        Called with the kqueue lock held (the alarm is shared with the TIMER filter
        and the harvest); the leader then polls without it.  The poll keeps its own
        timeout, rounded up to a millisecond, as a backstop: another thread's
        harvest may read the expired alarm before the leader wakes for it.
        """
        if timeout is not None and 0 < timeout < _PRECISE_BELOW:
            self.arm_alarm(time.monotonic_ns() + int(timeout * 1e9))

    def poll(self, timeout: float | None, maxevents: int) -> list[tuple[int, int]]:
        """epoll_wait (None blocks); it touches nothing of ours, so needs no lock."""
        return self._epoll.poll(-1 if timeout is None else timeout, maxevents)

    def dispatch(
        self, ready: list[tuple[int, int]], keep_wake: bool = False, start: int = 0
    ) -> None:
        """Run the handler of every ready fd from ready[start] on (the caller holds the
        kqueue lock; the entries before start were served already, by the accelerator).

        keep_wake: another thread blocks in poll(), and a wake-up is for it; a
        harvest that drained the eventfd would leave it asleep (a lost wake-up), so
        the eventfd stays readable (level-triggered) until that thread harvests.
        """
        handlers, wake_fd, alarm_fd = self._handlers, self._wake_fd, self._alarm_fd
        for fd, events in ready[start:] if start else ready:
            handler = handlers.get(fd)
            if handler is not None:
                handler(events)
            elif fd == wake_fd:
                if not keep_wake:
                    self._drain_wake()
            elif fd == alarm_fd:
                timerfd_read(alarm_fd)
                self._alarm_ns = 0
                self.alarm_handler()

    def dispatch_guarded(self, ready: list[tuple[int, int]]) -> tuple[bool, list[tuple[int, int]]]:
        """An SKQ harvest, holding no lock: run the guarded handlers.  Returns whether
        anything but the wake-up was ready, and the entries left for dispatch() with
        the kqueue lock (without the wake-up: only the leader takes it, drain_wake)."""
        guarded, wake_fd = self._guarded, self._wake_fd
        found = False
        rest: list[tuple[int, int]] = []
        for fd, events in ready:
            handler = guarded.get(fd)
            if handler is not None:
                handler(events)
                found = True
            elif fd != wake_fd:
                rest.append((fd, events))
                found = True
        return found, rest

    def drain_wake(self, ready: list[tuple[int, int]]) -> None:
        """The thread that polled blocking (SKQ's leader) takes its wake-up, if it came."""
        wake_fd = self._wake_fd
        if any(fd == wake_fd for fd, _ in ready):
            self._drain_wake()

    def wake(self) -> None:
        """Interrupt a thread blocked in poll(); cheap when already pending."""
        if not self._woken:
            self._woken = True
            os.eventfd_write(self._wake_fd, 1)

    def _drain_wake(self) -> None:
        self._woken = False
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wake_fd)

    def arm_alarm(self, deadline_ns: int) -> None:
        """Make poll() return by deadline_ns (CLOCK_MONOTONIC); keeps the earlier one."""
        if self._alarm_ns and self._alarm_ns <= deadline_ns:
            return
        self._alarm_ns = deadline_ns
        timerfd_settime_ns(self._alarm_fd, max(deadline_ns, 1))

    def close(self) -> None:
        """Close the epoll set and the backend's own fds; a second call does nothing."""
        if self._epoll.closed:
            return
        self._epoll.close()
        for fd in (self._wake_fd, self._alarm_fd):
            if fd >= 0:
                os.close(fd)
        self._handlers.clear()
        self._guarded.clear()
