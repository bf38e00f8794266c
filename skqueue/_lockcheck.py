"""SKQUEUE_CHECK_LOCKS=1: check the core header's lock rules on every guarded access.

The core's header ("Knote states", "Locks") says the kqueue lock guards the
kqueue's mutable state, its kevqs and its knotes' queue state.  Under the GIL a
broken rule rarely shows; without it, it is a race.  With the variable set to 1
when skqueue is first imported:

* every kqueue lock (:func:`new_lock`) is an :class:`OwnedLock`, which records
  the thread holding it (and refuses a release by another thread);
* the guarded fields (:data:`GUARDED`) become data descriptors that raise
  AssertionError, naming the field and the thread, when a thread that does not
  hold the owning kqueue's lock reads or writes them.

``SKQUEUE_LOCK_TIMING=1`` instead makes every kqueue lock a :class:`TimedLock`, which
adds up how long threads waited for it and held it (``kq.stats()["lock"]``): what
still serialises, on a free-threaded build.

When neither variable is set, nothing here runs: :func:`new_lock` is
``threading.Lock`` itself and the classes keep their own slots, so the hot path
has no extra branch and no extra frame.

What it cannot check:

* the first assignment of a field (an object's ``__init__``): the object is not
  shared yet, so it is allowed without the lock;
* objects whose lock was not made by :func:`new_lock` (the scheduler tests' kevqs
  on a plain lock): nothing to ask, so unchecked;
* what a field refers to: a deque read under the lock and mutated after its
  release is not seen; nor the scheduler's and the backend's own fields, which
  have no lock of their own to name (they run under the kqueue lock);
* lock order: it checks that the lock is held, not how it was reached.

The exceptions the rules allow are listed in :data:`RACY_READS`, each with why;
writes of those fields are checked like any other.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, cast

#: Read once, at import: turning checks on later would leave locks made unchecked.
CHECK_LOCKS = os.environ.get("SKQUEUE_CHECK_LOCKS") == "1"


class OwnedLock:
    """threading.RLock's interface, recording the owner so that a field can ask."""

    __slots__ = ("_depth", "_lock", "_owner")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner = 0  # ident of the holder; only the holder writes its own ident
        self._depth = 0  # the holder's acquisitions not released yet

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return True
        if not self._lock.acquire(blocking, timeout):
            return False
        self._owner, self._depth = me, 1
        return True

    def release(self) -> None:
        if self._owner != threading.get_ident():
            raise AssertionError(
                f"kqueue lock released by {_describe(threading.get_ident())}, "
                f"held by {_describe(self._owner)}"
            )
        self._depth -= 1
        if not self._depth:
            self._owner = 0
            self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def held(self) -> bool:
        """Whether the calling thread holds it (a racy read that cannot lie to the caller)."""
        return self._owner == threading.get_ident()

    @property
    def owner(self) -> int:
        return self._owner

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


#: SKQUEUE_LOCK_TIMING=1: kqueue locks count how long threads wait for them and hold
#: them (read at import, like CHECK_LOCKS; the benchmarks' "where the time goes").
LOCK_TIMING = os.environ.get("SKQUEUE_LOCK_TIMING") == "1"


class TimedLock:
    """threading.RLock's interface, adding up wait and hold times (nanoseconds) of the
    outermost acquisitions.

    The counters are written only by the holder, so the lock guards them itself.
    """

    __slots__ = ("_acquired_ns", "_depth", "_lock", "_owner", "acquisitions", "hold_ns", "wait_ns")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner = 0
        self._depth = 0
        self._acquired_ns = 0
        self.acquisitions = 0
        self.wait_ns = 0
        self.hold_ns = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return True
        start = time.perf_counter_ns()
        if not self._lock.acquire(blocking, timeout):
            return False
        now = time.perf_counter_ns()
        self._owner, self._depth = me, 1
        self.acquisitions += 1
        self.wait_ns += now - start
        self._acquired_ns = now
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth:
            return
        self.hold_ns += time.perf_counter_ns() - self._acquired_ns
        self._owner = 0
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def figures(self) -> dict[str, int]:
        """The totals so far (call with the lock held for a consistent set)."""
        return {"acquisitions": self.acquisitions, "wait_ns": self.wait_ns, "hold_ns": self.hold_ns}

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _owned_lock() -> threading.Lock:
    return cast(threading.Lock, OwnedLock())  # the same interface, by duck typing


def _timed_lock() -> threading.Lock:
    return cast(threading.Lock, TimedLock())


def lock_figures(lock: object) -> dict[str, int] | None:
    """A TimedLock's totals; None for any other lock (timing is off)."""
    return lock.figures() if isinstance(lock, TimedLock) else None


def _rlock() -> threading.Lock:
    return cast(threading.Lock, threading.RLock())


#: Makes a kqueue's lock, a kevq's or a knote guard (all reentrant: a knote of a filter
#: that runs under the kqueue lock has that lock as its guard): threading.RLock itself
#: when neither mode is on.  The ownership checks win over timing (their extra work
#: would be timed too).
new_lock: Callable[[], threading.Lock] = (
    _owned_lock if CHECK_LOCKS else _timed_lock if LOCK_TIMING else _rlock
)


def _describe(ident: int) -> str:
    if not ident:
        return "nobody"
    for thread in threading.enumerate():
        if thread.ident == ident:
            return f"thread {thread.name!r} ({ident})"
    return f"thread {ident} (gone)"


# How each guarded class finds the lock that guards it.
def _core_lock(core: Any) -> object:
    if core.__dict__.get("abandoned"):
        return None  # a fork() child's copy: single-threaded, and must not take the lock
    return core.__dict__.get("lock")


def _kevq_lock(kevq: Any) -> object:
    return kevq.lock


def _waitqueue_lock(queue: Any) -> object:
    return queue.lock


def _knote_lock(kn: Any) -> object:
    return kn.guard


#: class name -> (fields the kqueue lock guards, how to find that lock).
GUARDED: dict[str, tuple[tuple[str, ...], Callable[[Any], object]]] = {
    "KqueueCore": (
        (
            "knotes",
            "filters",
            "closed",
            "initialised",
            "sched",
            "in_wait",
            "leader",
            "leader_polling",
            "followers",
            "rtshare",
            "freq",
            "rtreserve",
            "realtime_knotes",
            "_reported",
            "_room",
            "enqueues",
            "before_wait",
        ),
        _core_lock,
    ),
    # owned, waiting and the estimates (avg_ns, ...) are its thread's alone.
    "Kevq": (
        ("normal", "rt", "sleeping", "polling", "closing", "reserved", "enqueues", "inside"),
        _kevq_lock,
    ),
    "WaitQueue": (("unwoken",), _waitqueue_lock),
    "Knote": (("status", "kevq", "owner"), _knote_lock),
}

#: (class name, field) -> why a read without the lock is correct.  Writes are checked.
RACY_READS: dict[tuple[str, str], str] = {
    ("KqueueCore", "closed"): (
        "monotonic (False to True, once): the handle's early checks, the handle "
        "table's core_behind and a fork() child read it unlocked, and whatever they "
        "then do under the lock checks it again there"
    ),
    ("KqueueCore", "initialised"): (
        "monotonic (False to True, once): an SKQ thread's wait with no changes skips the "
        "lock only once a kevent() call has set it"
    ),
    ("KqueueCore", "sched"): (
        "set once, by FKQMULTI, which is refused after the first kevent() call: every "
        "wait sees its final value"
    ),
    ("KqueueCore", "rtshare"): "one int, read by an SKQ scan: a retune applies from the next",
    ("KqueueCore", "freq"): "one int, read by an SKQ wait: a retune applies from the next",
    ("KqueueCore", "leader"): (
        "a thread leaving an SKQ wait, or an activation that would wake a thief, reads it "
        "to decide whether to act; _hand_over_lead reads it again under the lock, and a "
        "stale thief wake-up costs one spurious return from epoll_wait"
    ),
    ("KqueueCore", "followers"): "read with leader, for the same decision",
    ("Kevq", "normal"): (
        "placement and stealing read queue lengths without the kevq's lock: heuristics; "
        "the queues change only under it"
    ),
    ("Kevq", "rt"): "as normal",
    ("Kevq", "sleeping"): "idle_thief's heuristic; a wake-up goes through the lock",
    ("Kevq", "polling"): "the thief wake-up's heuristic, as sleeping",
    ("Kevq", "reserved"): "idle_thief's heuristic; offer() decides under the lock",
    ("Kevq", "enqueues"): "one int, summed for a watching kqueue's EV_CLEAR test",
    ("KqueueCore", "before_wait"): (
        "control() calls the hook before taking the lock (lock order: the hook takes "
        "the signal hub's reader_lock, outside the kqueue lock); one reference read "
        "gives the old or the new hook, and either is a complete hook"
    ),
}


class _DictSlot:
    """A plain instance attribute, seen through the slot interface."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        try:
            return obj.__dict__[self._name]
        except KeyError:
            raise AttributeError(self._name) from None

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self._name] = value


class _Guarded:
    """A field that only the holder of its kqueue's lock may read or write."""

    __slots__ = ("_field", "_lock_of", "_reads", "_slot")

    def __init__(
        self, field: str, slot: Any, lock_of: Callable[[Any], object], check_reads: bool
    ) -> None:
        self._field = field
        self._slot = slot
        self._lock_of = lock_of
        self._reads = check_reads

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        value = self._slot.__get__(obj, objtype)
        if self._reads:
            self._check(obj, "read")
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        try:
            self._slot.__get__(obj, type(obj))
        except AttributeError:
            pass  # the first assignment, in __init__: nobody else can see obj yet
        else:
            self._check(obj, "written")
        self._slot.__set__(obj, value)

    def _check(self, obj: Any, verb: str) -> None:
        lock = self._lock_of(obj)
        if not isinstance(lock, OwnedLock) or lock.held():
            return
        raise AssertionError(
            f"{self._field} {verb} by {_describe(threading.get_ident())} without "
            f"the lock that guards it (held by {_describe(lock.owner)})"
        )


def install_lock_checks(*classes: type) -> None:
    """Put a checking descriptor on each guarded field of classes (once, at import)."""
    for cls in classes:
        fields, lock_of = GUARDED[cls.__name__]
        for field in fields:
            slot = cls.__dict__.get(field, _DictSlot(field))
            if isinstance(slot, _Guarded):
                continue
            racy = (cls.__name__, field) in RACY_READS
            name = f"{cls.__name__}.{field}"
            setattr(cls, field, _Guarded(name, slot, lock_of, check_reads=not racy))
