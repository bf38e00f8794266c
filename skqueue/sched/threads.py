"""The threads of an SKQ kqueue: each one's kevq, made at its first wait, retired when
the thread leaves (``kq.leave()``) or ends.

CPython has no thread-exit callback.  A thread's kevq hangs from a
``threading.local`` slot, and CPython clears a thread's locals when the thread
ends, which drops the slot and runs its ``__del__``: the thread-exit hook (see
"Thread exit" in the README).  The slot reaches the kqueue through a weak
reference, so that living threads do not keep a closed kqueue alive.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from .kevq import Kevq
from .policy import Scheduler
from .world import current_cpu


class _Slot:
    """One thread's kevq; retires it once, at leave() or when the thread ends."""

    __slots__ = ("kevq", "retire")

    def __init__(self, kevq: Kevq, retire: weakref.WeakMethod[Callable[[Kevq], None]]) -> None:
        self.kevq = kevq
        self.retire: weakref.WeakMethod[Callable[[Kevq], None]] | None = retire

    def fire(self) -> None:
        ref, self.retire = self.retire, None
        retire = None if ref is None else ref()
        if retire is not None:
            retire(self.kevq)

    __del__ = fire


class ThreadKevqs:
    """Which kevq is the calling thread's, on one SKQ kqueue.

    ``new_lock()`` makes each kevq's lock; ``retire(kevq)`` is the kqueue's method
    that takes a thread's kevq out of service (with the kqueue lock, which it takes
    itself).
    """

    def __init__(
        self, new_lock: Callable[[], threading.Lock], retire: Callable[[Kevq], None]
    ) -> None:
        self._new_lock = new_lock
        self._retire = weakref.WeakMethod(retire)
        self._tls = threading.local()

    def mine(self) -> Kevq | None:
        """The calling thread's kevq, or None before its first wait."""
        slot: _Slot | None = getattr(self._tls, "slot", None)
        return None if slot is None else slot.kevq

    def join(self, sched: Scheduler) -> Kevq:
        """Make the calling thread's kevq, in the group of the CPU it runs on now.

        The caller registers it with sched, and places again what that evicts.
        """
        kevq = Kevq(
            self._new_lock(), sched.topology.group(current_cpu()), threading.current_thread()
        )
        self._tls.slot = _Slot(kevq, self._retire)
        return kevq

    def leave(self) -> None:
        """The calling thread stops serving the kqueue: retire its kevq now."""
        slot: _Slot | None = getattr(self._tls, "slot", None)
        if slot is not None:
            del self._tls.slot
            slot.fire()
