"""The kevq: a per-thread event queue (SKQ), or the one shared queue of a classic kqueue.

Its estimates and its accounting are functions of the times its caller gives it
(:meth:`Kevq.account_wait`, :meth:`Kevq.account_return`,
:meth:`Kevq.expected_start_ns`): a kevq never reads a clock.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..knote import Knote

_EWMA_OLD = 0.95  # SKQ's 95/5 moving average of time per event
# What Kevq.offer did with a knote.
OFFER_REFUSED, OFFER_QUEUED, OFFER_WOKEN, OFFER_POLLING = range(4)


class WaitQueue:
    """A condition on a lock (the kevq's) that knows how many threads it has not woken yet.

    threading.Condition keeps that count private (``_waiters``); the core needs it
    to tell a wake-up that reaches a sleeper from one that must go elsewhere (the
    leader in epoll_wait, or the kqueue's own fd).  Every method but the blocking
    part of wait() runs with the lock held.

    An SKQ wait blocks outside the lock (it may lead instead, see the core's "The SKQ
    wait"): it takes a sleeper from :meth:`enlist`, blocks on it with nothing held and
    gives it back with :meth:`withdraw`; a notify() meanwhile is kept by the sleeper.
    """

    __slots__ = ("_lock", "unwoken")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        #: One lock per thread in wait() that notify() has not picked yet (read-only).
        self.unwoken: deque[threading.Lock] = deque()

    @property
    def lock(self) -> threading.Lock:
        """The lock this condition is built on."""
        return self._lock

    def wait(self, timeout: float | None) -> bool:
        """Release the lock until notify() picks this thread or timeout passes; False: timeout."""
        sleeper = self.enlist()
        self._lock.release()
        woken = False
        try:
            woken = sleeper.acquire(True, -1 if timeout is None else timeout)
        finally:
            self._lock.acquire()
            if not woken:
                self.withdraw(sleeper)
        return woken

    def enlist(self) -> threading.Lock:
        """A sleeper that the next notify() releases; the caller blocks on it unlocked."""
        sleeper = threading.Lock()
        sleeper.acquire()
        self.unwoken.append(sleeper)
        return sleeper

    def withdraw(self, sleeper: threading.Lock) -> bool:
        """Take back an enlisted sleeper; False if notify() picked it meanwhile."""
        try:
            self.unwoken.remove(sleeper)
        except ValueError:  # notified as the timeout passed
            return False
        return True

    def notify(self) -> bool:
        """Wake the longest-waiting thread, if any; whether there was one."""
        if self.unwoken:
            self.unwoken.popleft().release()
            return True
        return False

    def notify_all(self) -> None:
        while self.unwoken:
            self.unwoken.popleft().release()


class Kevq:
    """Queues (normal and realtime), owned knotes, a private wake-up and statistics."""

    __slots__ = (
        "avg_ns",
        "busy_ns",
        "closing",
        "cond",
        "enqueues",
        "events",
        "fallbacks",
        "group",
        "inside",
        "last_return_ns",
        "lock",
        "mismatches",
        "n_last",
        "normal",
        "owned",
        "place_ns",
        "placements",
        "polling",
        "realtime",
        "realtime_events",
        "reserved",
        "rt",
        "sleeping",
        "steal_scans",
        "steals",
        "thread_id",
        "thread_name",
        "var_ns",
        "waiting",
        "waits",
    )

    def __init__(
        self, lock: threading.Lock, group: int = 0, thread: threading.Thread | None = None
    ) -> None:
        # Guards the queues, the wake-ups (cond, sleeping, polling) and closing, reserved
        # (a classic kqueue's one kevq: the kqueue lock).
        self.lock = lock
        self.normal: deque[Knote] = deque()
        self.rt: deque[Knote] = deque()
        self.owned: list[Knote] = []  # its thread's alone
        # A condition private to this kevq, so that placing an event wakes exactly the
        # thread that will take it (no herd).
        self.cond = WaitQueue(lock)
        self.sleeping = False  # its thread sleeps on cond
        self.polling = False  # its thread blocks in epoll_wait for the kqueue (SKQ)
        self.waiting = False  # inside a kevent() wait at all (its thread's, racy reads)
        self.inside = False  # the same, under the lock: what close() must wait out (SKQ)
        self.enqueues = 0  # knotes offered and queued here (SKQ)
        self.closing = False
        # KQTUNE_RTRESERVE: kept for realtime events (set by the scheduler alone).
        self.reserved = False
        self.group = group
        # The thread this kevq serves, for statistics only.
        self.thread_name = "" if thread is None else thread.name
        self.thread_id = 0 if thread is None else thread.native_id or 0
        # Expected-start-time inputs (SKQ's best-of-N).  last_return_ns only counts
        # once a wait has returned n_last > 0 events, so it needs no clock to start.
        self.avg_ns = 0.0
        self.last_return_ns = 0
        self.n_last = 0
        # The auto policy's evidence: time spent serving batches, and the EWMA
        # variance of the time per event (same 95/5 weights as avg_ns).
        self.busy_ns = 0
        self.var_ns = 0.0
        # Statistics.
        self.events = 0
        self.waits = 0
        self.realtime_events = 0
        self.steals = 0
        self.steal_scans = 0
        self.fallbacks = 0
        self.mismatches = 0
        self.placements = 0
        self.place_ns = 0  # time the scheduler spent placing activations here

    def __len__(self) -> int:
        return len(self.normal) + len(self.rt)

    def push(self, kn: Knote, realtime: bool) -> None:
        """Queue kn (the caller holds the lock: a classic kqueue's, or a simulation's)."""
        (self.rt if realtime else self.normal).append(kn)
        kn.kevq = self

    def remove(self, kn: Knote) -> None:
        """Take kn out of the queues (O(n), only for delete/disable and re-placement);
        fine if a popper took it already (see :meth:`take`)."""
        with self.lock:
            for queue in (self.normal, self.rt):
                try:
                    queue.remove(kn)
                except ValueError:
                    continue
                break
        kn.kevq = None

    # SKQ's queue operations: each takes the lock, and the caller holds kn's guard where
    # a knote's fields change (the rules are in the core's header, "The SKQ wait").
    def offer(self, kn: Knote, realtime: bool) -> int:
        """Queue kn here unless this kevq turns it away (retiring, or reserved and kn normal).

        OFFER_REFUSED: place it again; OFFER_WOKEN: a sleeper was notified; OFFER_POLLING:
        the thread blocks in epoll_wait, and the caller must wake the poller; OFFER_QUEUED.
        """
        with self.lock:
            if self.closing or (self.reserved and not realtime):
                return OFFER_REFUSED
            (self.rt if realtime else self.normal).append(kn)
            kn.kevq = self
            self.enqueues += 1
            unwoken = self.cond.unwoken
            if unwoken:  # cond.notify(), inline: this runs at every activation
                unwoken.popleft().release()
                return OFFER_WOKEN
            return OFFER_POLLING if self.polling else OFFER_QUEUED

    def take(self, n: int, rt_budget: int) -> list[Knote]:
        """Up to n knotes off the queues, realtime first (at most rt_budget of them).

        They stay marked queued here (kn.kevq): the caller settles each under its guard,
        and skips one that a change dequeued meanwhile (kn.kevq no longer this kevq).
        """
        with self.lock:
            rt, normal = self.rt, self.normal
            taken: list[Knote] = []
            while len(taken) < n:
                if rt and rt_budget > 0:
                    taken.append(rt.popleft())
                    rt_budget -= 1
                elif normal:
                    taken.append(normal.popleft())
                else:
                    break
            return taken

    def give(self, thief: Kevq, n: int, normal_too: bool) -> int:
        """Work stealing: move up to n queued knotes, realtime first, onto thief's queues.

        Try-locks throughout (this kevq's lock, each knote's guard): a thief never waits
        for a victim, and so takes the locks against their order without a deadlock.
        """
        if not self.lock.acquire(False):
            return 0
        moved: list[tuple[Knote, bool]] = []
        try:
            while len(moved) < n:
                realtime = bool(self.rt)
                queue = self.rt if realtime else self.normal if normal_too else None
                if not queue or not queue[0].guard.acquire(False):
                    break
                moved.append((queue.popleft(), realtime))
        finally:
            self.lock.release()
        try:
            with thief.lock:
                for kn, realtime in moved:
                    (thief.rt if realtime else thief.normal).append(kn)
                    kn.kevq = thief
        finally:
            for kn, _ in moved:
                kn.guard.release()
        return len(moved)

    def set_reserved(self, reserved: bool) -> list[Knote]:
        """KQTUNE_RTRESERVE: keep this kevq for realtime events or not; becoming reserved
        gives up the normal events queued here (to settle and place again, as take())."""
        with self.lock:
            evicted: list[Knote] = []
            if reserved and not self.reserved:
                evicted.extend(self.normal)
                self.normal.clear()
            self.reserved = reserved
            return evicted

    def close_queues(self, closing: bool = True) -> list[Knote]:
        """Refuse offers from now on (a retiring thread; the orphanage once threads wait),
        or accept them again; returns what was queued (realtime first, as take())."""
        with self.lock:
            self.closing = closing
            queued = [*self.rt, *self.normal]
            self.rt.clear()
            self.normal.clear()
            return queued

    def enlist(self) -> threading.Lock | None:
        """Before an SKQ sleep: a sleeper that offer() will release, or None if events
        are queued already."""
        with self.lock:
            if self.normal or self.rt:
                return None
            self.sleeping = True
            return self.cond.enlist()

    def withdraw(self, sleeper: threading.Lock) -> bool:
        """After the sleep: take the sleeper back; False if it was woken."""
        with self.lock:
            self.sleeping = False
            return self.cond.withdraw(sleeper)

    def begin_poll(self, sleeper: threading.Lock) -> bool:
        """The leader, about to block in epoll_wait: whether to (not woken, nothing queued).

        From then on until end_poll(), an offer here asks for the poller's wake-up.
        """
        with self.lock:
            self.sleeping = False
            if not self.cond.withdraw(sleeper) or self.normal or self.rt:
                return False
            self.polling = True
            return True

    def end_poll(self) -> None:
        with self.lock:
            self.polling = False

    def is_inside(self) -> bool:
        with self.lock:
            return self.inside

    def wake(self) -> bool:
        """Wake the thread sleeping on this kevq, if one is; whether one was."""
        with self.lock:
            return self.cond.notify()

    def wake_all(self) -> None:
        with self.lock:
            self.cond.notify_all()

    def expected_start_ns(self, now_ns: int, unmeasured_avg: float = 0.0) -> float:
        """When an event placed here now would start: SKQ's best-of-N estimate, with
        unmeasured_avg as the time per event of a kevq that has timed none yet."""
        avg = self.avg_ns or unmeasured_avg
        busy_until = self.last_return_ns + self.n_last * avg
        return max(float(now_ns), busy_until) + len(self) * avg

    def account_wait(self, now_ns: int) -> None:
        """A new wait closes the previous batch: update the time-per-event average."""
        if self.n_last:
            busy = now_ns - self.last_return_ns
            self.busy_ns += busy
            per_event = busy / self.n_last
            if not self.avg_ns:
                self.avg_ns = per_event
            else:
                dev = per_event - self.avg_ns
                self.avg_ns = _EWMA_OLD * self.avg_ns + (1 - _EWMA_OLD) * per_event
                self.var_ns = _EWMA_OLD * (self.var_ns + (1 - _EWMA_OLD) * dev * dev)
        self.waits += 1

    def account_return(self, now_ns: int, n: int) -> None:
        """A wait returns n events at now_ns: they are the batch the next wait closes."""
        self.last_return_ns = now_ns
        self.n_last = n
        self.events += n

    def batch_limit(self, nevents: int, freq: int) -> int:
        """KQTUNE_FREQ: the events of nevents this thread can finish at freq events/s."""
        if not self.avg_ns:
            return nevents  # no estimate yet
        return max(1, min(nevents, int(1e9 / (self.avg_ns * freq))))

    def stats(self) -> dict[str, Any]:
        return {
            "thread_name": self.thread_name,
            "thread_id": self.thread_id,
            "cpu_group": self.group,
            "reserved": self.reserved,
            **_counter_stats(self, self.avg_ns),
            "queued": len(self.normal),
            "queued_realtime": len(self.rt),
            "owned": len(self.owned),
        }


def realtime_budget(nevents: int, rtshare: int) -> int:
    """KQTUNE_RTSHARE: how many of a wait's nevents realtime events may take, at least 1."""
    return -(-nevents * rtshare // 100)  # ceil(nevents * rtshare / 100)


#: The counters of a kevq that add up across kevqs.
_COUNTERS = (
    "events",
    "waits",
    "realtime_events",
    "steals",
    "steal_scans",
    "fallbacks",
    "mismatches",
    "placements",
)
#: Those counters by the names stats() gives them.
COUNTER_STATS = tuple("realtime" if name == "realtime_events" else name for name in _COUNTERS)


class RetiredKevqs:
    """The kevqs of threads that left, summed into one record.

    A server that runs short-lived threads would otherwise keep a record per
    thread that ever waited, for the life of the kqueue; the sum keeps every
    total in constant space.
    """

    __slots__ = ("kevqs", "place_ns", "weighted_avg_ns", *_COUNTERS)

    events: int
    waits: int
    realtime_events: int
    steals: int
    steal_scans: int
    fallbacks: int
    mismatches: int
    placements: int

    def __init__(self) -> None:
        self.kevqs = 0
        self.place_ns = 0
        self.weighted_avg_ns = 0.0  # sum of avg_ns * events, for the mean per event
        for name in _COUNTERS:
            setattr(self, name, 0)

    def add(self, kevq: Kevq) -> None:
        self.kevqs += 1
        self.place_ns += kevq.place_ns
        self.weighted_avg_ns += kevq.avg_ns * kevq.events
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(kevq, name))

    def stats(self) -> dict[str, Any]:
        avg_ns = self.weighted_avg_ns / self.events if self.events else 0.0
        return {"kevqs": self.kevqs, **_counter_stats(self, avg_ns)}


def _counter_stats(src: Kevq | RetiredKevqs, avg_ns: float) -> dict[str, Any]:
    """The statistics a live kevq and the retired sum both report, by one name each."""
    waits = src.waits or 1
    return {
        "events": src.events,
        "waits": src.waits,
        "avg_event_us": avg_ns / 1e3,
        "avg_events_per_wait": src.events / waits,
        "realtime": src.realtime_events,
        "steals": src.steals,
        "steal_scans": src.steal_scans,
        "fallbacks": src.fallbacks,
        "mismatches": src.mismatches,
        "placements": src.placements,
    }
