"""The kqueue engine: knote table, change processing, activation, and the wait.

Theory of operation
===================

A kqueue is one ``KqueueCore``: the knote table (``knotes``, keyed by (ident,
filter)), one filter instance per filter kind (``filters``), the backend (the
epoll set, its wake-up eventfd and alarm timerfd), the shared inotify watcher,
and the kevqs.  A classic kqueue has one kevq (``shared``) and releases each
delivered knote at once; an SKQ ("multi") kqueue has a kevq per waiting thread,
a scheduler that places every activation on one of them, and releases a thread's
knotes when that thread next waits (``_release_owned``).

A classic wait follows leader/followers under the kqueue lock: a waiter whose kevq
is empty becomes the leader if nobody is, releases the lock, blocks in epoll_wait,
and on return runs the handlers of what became ready (``_harvest``).  Handlers
activate knotes, which queues them and wakes a sleeper; other waiters sleep on the
kevq's queue.  When the queue is empty a handler may instead have a ready knote
reported straight from the harvest (``report_now``), the fast path of the common
plain READ: the core keeps the list and builds the ``kevent`` objects, here and in
``_scan`` alone.  An SKQ wait runs in parallel instead (below, "The SKQ wait").

With the C accelerator (``speedups``, see ``skqueue.accel``) that fast path runs in C
for the leading run of a harvest's ready entries (``Filter.report_ready``) and the
harvest's events are built there (``_events_of``); an SKQ scan's unlocked system calls
too (``measure_unlocked``).  Every decision is the same as the pure path's, and
``speedups`` (this module's global, None on the pure path) is the one switch.

Knote states
------------

``kn.status`` holds the KN_* bits of ``skqueue.knote``; ``kn.kevq`` is the kevq
it is queued on and ``kn.owner`` the kevq that owns it.  Only the core changes
them, with the knote's guard held (``kn.guard``, below); filters may read the bits
(and one may clear KN_ACTIVE, below).  KN_OWNED is set exactly while ``owner`` is::

    bit / field   set by                           cleared by
    KN_ACTIVE     activate()                       a delivery (_scan); touch() taking
                                                   back what was pending (TIMER re-add)
    KN_QUEUED     _enqueue (+ kn.kevq)             _scan's pop, _disable, drop, re-placement
    KN_DISABLED   EV_DISABLE, EV_DISPATCH delivery EV_ENABLE (re-queued if ACTIVE)
    KN_DETACHED   drop() (terminal)                never: the knote is out of the table
    KN_REPORTED   report_now, in a classic harvest the end of that harvest
    KN_OWNED,     _scan (SKQ: before deliver();    _release_owned, a SKIP, EV_ONESHOT
    owner         classic: after, until the end
                  of the scan)

The legal moves: a new knote is attached with status 0, then enters the table.
``activate`` sets ACTIVE and queues the knote unless it is QUEUED, DISABLED,
DETACHED or owned (an owned knote is queued again at its release, if still
ACTIVE; else its filter re-checks it).  ``_scan`` pops a knote (QUEUED off),
skips it if DISABLED or DETACHED, and asks ``deliver()``: SKIP clears ACTIVE and
lets the filter re-arm it; REPORT makes an event and the knote owned until its
release; REPORT_REARMED (classic only: the delivery re-armed it) makes an event and
needs no release.  EV_ONESHOT drops it, EV_CLEAR lets the filter reset it,
EV_DISPATCH sets DISABLED.  A REPORTED knote is neither QUEUED nor owned.

Locks
-----

Order, outermost first; nothing takes them the other way round but with a try-lock:

1. the signal hub's ``reader_lock`` (``SignalHub.drain``, the hub thread): it then
   takes kqueue locks through ``activate_from_thread``, so ``before_wait`` runs
   before ``control()`` takes the lock, never under it;
2. the kqueue lock (``self.lock``, reentrant);
3. a knote's guard (``kn.guard``): it guards status, kevq and owner, and what the
   filter keeps for the knote.  It is the kqueue lock itself, but on an SKQ kqueue
   the READ/WRITE filter gives each fd a lock of its own (``FdWatch.guard``, one for
   both knotes of the fd): the SKQ wait handles those knotes without the kqueue lock;
4. a kevq's lock (``kevq.lock``; a classic kqueue's one kevq has the kqueue lock):
   its queues, its ``WaitQueue``, its sleeping, polling, closing and reserved flags;
5. short leaf locks: the handle table's, the signal hub's ``lock`` (watch/unwatch
   from attach/detach), the AIO job table's (``kqueue_closed`` at close), a
   sleeper's lock (``WaitQueue``).  The AIO machinery releases its table lock before
   it posts, fires or retires a knote (``JobTable.section``).

A knote enters or leaves a kevq's queues with its guard and that kevq's lock held,
but for a pop: ``Kevq.take`` holds the kevq's lock alone and leaves the knote marked
queued there (kn.kevq), and the taker then settles it under the guard, skipping it if
a change dequeued it meanwhile (kn.kevq is no longer that kevq).  A thief
(``Kevq.give``) try-locks the victim's lock and each knote's guard, against the order,
so it never waits and cannot deadlock.  The scheduler has no lock: placement reads
other kevqs' lengths and estimates racily (see ``sched.policy``).  Another kqueue's
lock is taken under ours only by a nested kqueue's READ (``pending``), with a timeout,
so two kqueues watching each other cannot deadlock.

With the kqueue lock held run: change processing (every filter method, with the
knote's guard too), a classic wait (the harvest and every backend handler, the
scan, waking), an SKQ wait's handlers of other filters and every delivery or
re-check that needs more than the steps below, arming the backend's alarm (also for
a short wait: ``prepare_wait``), the leader's election and close.  The classic
leader releases it around epoll_wait (``backend.poll``, which touches no state of
ours), a sleeper inside ``WaitQueue.wait``, control() around the ``before_wait`` hook
and around an SKQ wait.

While a leader polls, every wake-up eventfd write is for it, so another thread's
harvest (a zero-timeout poll, ``pending``) leaves the eventfd readable
(``dispatch(keep_wake)``): drained there, the leader would sleep on.

The SKQ wait
------------

Threads serving one SKQ kqueue do not take its lock per event: each runs its wait
(``_wait_multi``) holding only what a step needs, as the paper's kqueue does with a
lock per kevq.  In order:

* release: what the thread was given last time (``kevq.owned``, its own) is
  released under each knote's guard; a still-active knote is placed again, and a
  filter that must re-check one (``Filter.settle`` says so) does it with the kqueue
  lock;
* scan (``_scan_multi``): knotes taken off its kevq (``Kevq.take``), or stolen, are
  settled under their guards and made owned; a lone level READ's system calls
  (FIONREAD, the re-arm) run under its guard alone (``begin_unlocked`` /
  ``measure_unlocked`` / ``finish``), and a knote of another filter, or a delivery
  that changed meanwhile, is delivered with the kqueue lock;
* harvest for itself: a thread whose scan found nothing polls epoll without waiting
  and runs the handlers itself: the fd handlers (added ``guarded``) with no lock, each
  taking its watch's guard, the rest with the kqueue lock (``_harvest_multi``).
  Linux lets several threads poll one epoll set and reports an EPOLLONESHOT item to
  one of them, so no thread is one through which every activation must pass.  An
  activation is placed by the scheduler and offered to the chosen kevq
  (``Kevq.offer``), which turns it away if its thread is retiring (or it is reserved
  and the knote normal) and wakes its thread otherwise;
* sleep (``_sleep``): with nothing found, a thread enlists a sleeper on its kevq (so
  an offer from then on wakes it), then under the kqueue lock becomes the leader if
  nobody is, or a follower.  The leader blocks in epoll_wait (an offer to it writes
  the eventfd, ``Kevq.begin_poll``), takes its wake-up while still leading, hands
  the lead to a follower under the lock, then harvests what it found.  Every thread
  that finds no leader as it leaves a wait hands the lead over too, and followers
  enlist under the same lock, so no follower sleeps while nobody polls.

That is on free-threaded CPython (``_PARALLEL``).  Under the GIL only one thread runs
Python at a time, and threads that each make system calls per event would hand the
GIL over at every one: there an SKQ wait keeps the kqueue lock but where it blocks
(``_blocking``), and its kevqs' locks and fd guards are the kqueue lock itself, so the
same code takes turns at the lock (as the classic wait does).

Guard sections.  A guard that is the kqueue lock, held by the code at hand, is not
taken again: change processing, a classic wait, and under the GIL an SKQ wait's scan
and release test ``guard is not held`` and acquire only then.  A ``with`` on a held
reentrant lock cost 130 ns on 3.11, and three per event made the classic EV_DISPATCH
path 8 % slower in instructions than before the guards existed.

A thread inside an SKQ wait is marked on its kevq (``inside``, under the kevq's lock:
a wait with no changes takes no kqueue lock at all); the backend's fds are closed when
the last one leaves a closed kqueue (``_close_backend_when_idle``), since each may be
polling or making a delivery's system calls on a raw number.

``SKQUEUE_CHECK_LOCKS=1`` (``skqueue._lockcheck``) checks these rules on every
access to the guarded fields: KqueueCore's mutable fields but ``handles`` (the
handle table's lock) and ``abandoned`` (a fork child's), the kevqs' (their lock) and
the knotes' (their guard); the racy reads it allows are listed there, each with why.

Filters
-------

A filter sees its kqueue as a ``knote.KqueueHost`` and nothing more.  In its
methods and in the handlers it gives the poller (lock held) it may fill its
knotes' report fields and ``hook``, read their status bits, and call
``activate``, ``drop``, ``drop_fd``, ``report_now`` (from a handler),
``nested_kqueue``, ``set_before_wait`` and its poller and watcher (on an SKQ kqueue,
a guarded handler only ``activate`` and the poller: it holds a guard, not the
kqueue lock), also on the knote being delivered (``deliver`` may drop it and answer
SKIP).  It may not change status bits (but clear KN_ACTIVE in ``touch``), touch
``kevq`` or ``owner``, block, or call ``post`` and the ``*_from_thread`` verbs, which take the lock:
those are for other threads (AIO workers, the signal hub), which hold no kqueue
lock.  ``attach`` refuses by raising OSError and then has taken nothing;
``detach`` must not fail; ``close`` runs before the knotes are dropped,
``abandon`` (fork child) may close fds only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, TypeVar

from ._lockcheck import CHECK_LOCKS, install_lock_checks, lock_figures, new_lock

# The C accelerator, or None: the one switch between the two paths (see skqueue.accel).
from .accel import speedups
from .backend.epoll import EpollBackend, Poller
from .backend.watcher import InotifyWatcher
from .constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_DISPATCH,
    EV_ENABLE,
    EV_ERROR,
    EV_KEEPUDATA,
    EV_ONESHOT,
    EV_REALTIME,
    EV_RECEIPT,
    EV_SYSFLAGS,
    EVFILT_READ,
    FKQMULTI,
    FKQTUNE,
    KQSCHED_PARSE,
    KQTUNE_FREQ,
    KQTUNE_PARSE,
    KQTUNE_RTRESERVE,
    KQTUNE_RTSHARE,
)
from .event import checked, event, kevent
from .filters import registry
from .knote import (
    KN_ACTIVE,
    KN_DETACHED,
    KN_DISABLED,
    KN_KEPT_FLAGS,
    KN_OWNED,
    KN_QUEUED,
    KN_REPORTED,
    REPORT,
    REPORT_REARMED,
    SKIP,
    Delivery,
    Filter,
    Knote,
)
from .sched.kevq import OFFER_POLLING, OFFER_REFUSED, Kevq, WaitQueue, realtime_budget
from .sched.policy import Scheduler, check_reserve
from .sched.threads import ThreadKevqs
from .sched.world import real_scheduler
from .tunables import tunables

_T = TypeVar("_T")
_HARVEST_BATCH = 256
_PEEK_LOCK_TIMEOUT = 0.05  # seconds pending() waits for another kqueue's lock
_SLICE = 86_400.0  # seconds: the longest single sleep of a wait (a day)
_RARE_FLAGS = EV_REALTIME | EV_ONESHOT | EV_CLEAR | EV_DISPATCH
_LOCKED_FLAGS = EV_ONESHOT | EV_CLEAR | EV_DISPATCH  # a delivery with these needs the lock
# Under the GIL only one thread runs Python at a time: there an SKQ wait holds the kqueue
# lock throughout but where it blocks, and its kevqs' locks and knote guards are that
# lock (reentrant), so that threads hand over at the lock and not at each system call's
# release of the GIL.  Without the GIL each kevq and fd has a lock of its own.
_PARALLEL = not getattr(sys, "_is_gil_enabled", lambda: True)()


def _einval(message: str) -> OSError:
    return OSError(errno.EINVAL, f"{os.strerror(errno.EINVAL)}: {message}")


def _events_of(reported: list[Knote]) -> list[kevent]:
    """One event per knote reported straight from a harvest; clears KN_REPORTED."""
    if speedups is not None:
        events: list[kevent] = speedups.events_of(kevent, reported, KN_REPORTED)
        return events
    for kn in reported:
        kn.status &= ~KN_REPORTED
    return [
        event(kn.ident, kn.filter, kn.flags | kn.oflags, kn.fflags, kn.data, kn.udata)
        for kn in reported
    ]


def _closed_error() -> ValueError:
    return ValueError("I/O operation on closed kqueue object")


class KqueueCore:
    """State shared by every handle (``kqueue.fromfd``) of one kqueue."""

    def __init__(self) -> None:
        self.lock = new_lock()
        self.backend = EpollBackend()
        self.watcher = InotifyWatcher(self.backend)
        self.knotes: dict[tuple[int, int], Knote] = {}
        self.filters: dict[int, Filter] = {}
        self.closed = False
        self.initialised = False  # a kevent() call was made (SKQ's KQ_FLAG_INIT)
        self.handles = 0  # kqueue objects sharing this core (fromfd)
        # The classic queue; in SKQ mode, the orphanage.
        self.shared = Kevq(self.lock, thread=threading.current_thread())
        self.sched: Scheduler | None = None
        self.threads = ThreadKevqs(new_lock if _PARALLEL else self._the_lock, self.kevq_exit)
        self.in_wait = 0  # threads inside a classic wait
        self.leader: Kevq | None = None
        self.leader_polling = False  # classic: the leader is in epoll_wait
        self.followers: list[Kevq] = []  # SKQ: kevqs whose threads sleep while one leads
        self.rtshare = 100  # KQTUNE_RTSHARE
        self.freq = 0  # KQTUNE_FREQ
        self.rtreserve = 0  # KQTUNE_RTRESERVE (the scheduler applies it)
        self.realtime_knotes = 0
        # While a classic wait harvests into an empty queue, a handler may have a
        # ready knote reported straight from the harvest (report_now), up to _room
        # of them, instead of queueing it: same event, no queue round trip.  None
        # at every other time.
        self._reported: list[Knote] | None = None
        self._room = 0
        # Activations queued so far (EV_CLEAR on a kqueue's fd); an SKQ kqueue's kevqs
        # count their own, and a retired one's join this.
        self.enqueues = 0
        self.abandoned = False  # a fork() child's copy (see abandon)
        # Called before each kevent() takes the lock: lets a filter bring in what has
        # happened but is not counted yet (the SIGNAL filter reads the signal pipe).
        self.before_wait: Callable[[], None] | None = None

    def fileno(self) -> int:
        """The kqueue's own descriptor (the epoll set's)."""
        return self.backend.fileno()

    # What a filter sees (knote.KqueueHost) --------------------------------------------
    @property
    def poller(self) -> Poller:
        return self.backend

    @property
    def speedups(self) -> ModuleType | None:
        return speedups

    @property
    def parallel(self) -> bool:
        return _PARALLEL

    def nested_kqueue(self, fd: int) -> KqueueCore | None:
        return handles.core_behind(fd)

    def set_before_wait(self, hook: Callable[[], None] | None) -> None:
        self.before_wait = hook

    def post(self, ev: kevent, hook: object) -> Knote:
        with self.lock:
            if self.closed:
                raise OSError(errno.EBADF, f"{os.strerror(errno.EBADF)}: the kqueue is closed")
            ops = self.filter_for(ev.filter)
            if ops is None:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            kn = Knote(ops, ev, self.lock)
            kn.hook = hook
            ops.attach(kn)
            self.knotes[(kn.ident, kn.filter)] = kn
        return kn

    def drop_from_thread(self, kn: Knote) -> None:
        with self.lock:
            self.drop(kn)

    def activate_from_thread(self, find: Callable[[], Knote | None]) -> None:
        with self.lock:
            if self.closed:
                return
            kn = find()
            if kn is not None:
                with kn.guard:
                    self.activate(kn)

    @property
    def reports_now(self) -> bool:
        return self.sched is None

    def report_now(self, kn: Knote, fill: Callable[[Knote], bool]) -> bool:
        reported = self._reported
        if reported is None or len(reported) >= self._room or not fill(kn):
            return False
        kn.status |= KN_REPORTED
        reported.append(kn)
        return True

    # Filters ------------------------------------------------------------------------
    def filter_for(self, filt: int) -> Filter | None:
        ops = self.filters.get(filt)
        if ops is None:
            cls = registry.get(filt)
            if cls is None:
                return None
            ops = cls(self)
            for number, other in registry.items():
                if other is cls:
                    self.filters[number] = ops
        return ops

    # ioctl -------------------------------------------------------------------------
    def ioctl(self, request: int, arg: int) -> None:
        """SKQ's ioctls: FKQMULTI (make_multi) and FKQTUNE; any other is ENOTTY."""
        if request == FKQMULTI:
            self.make_multi(*KQSCHED_PARSE(arg))
        elif request == FKQTUNE:
            obj, val = KQTUNE_PARSE(arg)
            with self.lock:
                if obj == KQTUNE_RTSHARE and 1 <= val <= 100:
                    self.rtshare = val
                elif obj == KQTUNE_FREQ:
                    self.freq = val
                elif obj == KQTUNE_RTRESERVE:
                    self._set_rtreserve(val)
                else:
                    raise _einval(f"tunable {obj} value {val}")
        else:
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))

    def _set_rtreserve(self, n: int) -> None:
        """KQTUNE_RTRESERVE, kept for a later FKQMULTI on a classic kqueue."""
        try:
            self.rtreserve = check_reserve(n)
        except ValueError as exc:
            raise _einval(str(exc)) from None
        if self.sched is not None:
            self._place_again(self.sched.set_reserve(n))

    def make_multi(self, sched: int, sargs: int, feat: int, fargs: int) -> None:
        """Turn this kqueue into an SKQ one (FKQMULTI): once, before its first kevent()."""
        with self.lock:
            if self.sched is not None or self.initialised:
                raise _einval("a kqueue turns multi-threaded once, before its first kevent() call")
            try:
                self.sched = real_scheduler(sched, sargs, feat, fargs)
            except ValueError as exc:
                raise _einval(str(exc)) from None
            self.sched.set_reserve(self.rtreserve)  # no kevqs yet: nothing to place again
            # The orphanage gets a lock of its own: SKQ harvests offer it events unlocked.
            lock = new_lock() if _PARALLEL else self.lock
            self.shared = Kevq(lock, thread=threading.current_thread())

    # Changes ------------------------------------------------------------------------
    def control(
        self, changes: Iterable[kevent] | None, nevents: int, timeout: float | None
    ) -> list[kevent]:
        """kevent(): nevents (0 <= nevents <= C_INT_MAX) and timeout (seconds, >= 0, or
        None) as kqueue.control has checked them."""
        # As select.kqueue.control does before the syscall: a changelist with a bad
        # entry is refused before any change is applied.
        changelist = () if changes is None else _checked_changes(changes)
        out: list[kevent] = []
        before_wait = self.before_wait
        if before_wait is not None and nevents > 0:
            before_wait()
        if _PARALLEL and not changelist and nevents > 0 and self.initialised and self.sched:
            kevq = self.threads.mine()
            if kevq is not None:  # an SKQ thread's wait with no changes: no kqueue lock
                self._enter(kevq)
                return self._entered_wait(kevq, nevents, timeout)
        with self.lock:
            if self.closed:
                raise _closed_error()
            self.initialised = True  # SKQ's kqueue_acquire: no FKQMULTI from now on
            nerrors = 0
            for ev in changelist:
                if ev.filter == 0:
                    continue
                flags = ev.flags & ~EV_SYSFLAGS & 0xFFFF
                err, fflags = self._register(ev, flags)
                if err or flags & EV_RECEIPT:
                    if len(out) < nevents:
                        out.append(event(ev.ident, ev.filter, EV_ERROR, fflags, err, ev.udata))
                        nerrors += 1
                    elif err:
                        raise OSError(err, os.strerror(err))
            if nerrors or nevents <= 0:
                return out
            sched = self.sched
            if sched is None:
                return self._wait(nevents, timeout)
            mine = self.threads.mine()
            kevq = self._join(sched) if mine is None else mine
            self._enter(kevq)
            if not _PARALLEL:  # the lock stays held, but where the wait blocks
                return self._entered_wait(kevq, nevents, timeout)
        return self._entered_wait(kevq, nevents, timeout)

    def _enter(self, kevq: Kevq) -> None:
        """An SKQ wait begins: kevq.inside, under its lock, which close() reads too."""
        with kevq.lock:
            if self.closed:
                raise _closed_error()
            kevq.inside = True

    def _entered_wait(self, kevq: Kevq, nevents: int, timeout: float | None) -> list[kevent]:
        try:
            return self._wait_multi(kevq, nevents, timeout)
        finally:
            with kevq.lock:
                kevq.inside = False
                closed = self.closed  # read under kevq's lock: close() set it before its
            if closed:  # look at kevq.inside, so one of the two sees the other
                with self.lock:
                    self._close_backend_when_idle()

    def _the_lock(self) -> threading.Lock:
        return self.lock

    def _register(self, ev: kevent, flags: int) -> tuple[int, int]:
        """Apply one change (kqueue lock held); returns (errno, fflags to echo in a
        receipt)."""
        ops = self.filter_for(ev.filter)
        if ops is None:
            return errno.EINVAL, ev.fflags
        key = (ev.ident, ev.filter)
        kn = self._knote(key)
        lock = self.lock
        if ops.is_fd:
            if not _fd_is_open(ev.ident):
                if kn is not None:
                    self.drop_fd(ev.ident)
                return errno.EBADF, ev.fflags
            if kn is not None:
                if kn.guard is lock:  # held: see "Guard sections"
                    stale = ops.stale(kn)
                else:
                    with kn.guard:
                        stale = ops.stale(kn)
                if stale:
                    self.drop_fd(ev.ident)
                    kn = None
        new = kn is None
        if kn is None:
            if not flags & EV_ADD:
                return errno.ENOENT, ev.fflags
            kn = Knote(ops, ev, lock)
            kn.flags = flags & KN_KEPT_FLAGS
            try:
                ops.attach(kn)
            except OSError as exc:  # the filter refused, and took nothing
                return exc.errno or errno.EINVAL, 0
            except BaseException:
                _undo_attach(kn)
                raise
            self.knotes[key] = kn
            if kn.flags & EV_REALTIME:
                self.realtime_knotes += 1
        elif flags & EV_DELETE:
            self.drop(kn)
            return 0, ev.fflags
        guard = kn.guard
        if guard is not lock:
            guard.acquire()
        try:
            if not new:
                if not flags & EV_KEEPUDATA:
                    kn.udata = ev.udata
                try:
                    ops.touch(kn, ev)
                except OSError as exc:
                    return exc.errno or errno.EINVAL, ev.fflags
            if flags & EV_DISABLE:
                self._disable(kn)
            if flags & EV_ENABLE and kn.status & KN_DISABLED:
                kn.status &= ~KN_DISABLED
                if kn.status & KN_ACTIVE:
                    self.activate(kn)
            ops.recheck(kn)  # FreeBSD runs the filter after every change
        finally:
            if guard is not lock:
                guard.release()
        return 0, 0 if new else ev.fflags

    def _disable(self, kn: Knote) -> None:
        kn.status |= KN_DISABLED
        if kn.status & KN_QUEUED and kn.kevq is not None:
            kn.kevq.remove(kn)
            kn.status &= ~KN_QUEUED

    def drop(self, kn: Knote) -> None:
        """Delete a knote: dequeue it, detach its filter, forget it."""
        with kn.guard:
            if kn.status & KN_DETACHED:
                return
            if kn.status & KN_QUEUED and kn.kevq is not None:
                kn.kevq.remove(kn)
            kn.status = KN_DETACHED
            if kn.flags & EV_REALTIME:
                self.realtime_knotes -= 1
            self.knotes.pop((kn.ident, kn.filter), None)
            kn.ops.detach(kn)

    def _knote(self, key: tuple[int, int]) -> Knote | None:
        """knotes[key] or None.  Not knotes.get(key): on 3.13t a get() that finds a tuple
        key costs a thread other than the dict's creator about 20 us (a subscript 0.1 us),
        and a server's workers change knotes that its main thread registered."""
        try:
            return self.knotes[key]
        except KeyError:
            return None

    def drop_fd(self, fd: int) -> None:
        """The fd was closed behind our back: its knotes vanish silently."""
        for filt in list(self.filters):
            kn = self._knote((fd, filt))
            if kn is not None and kn.ops.is_fd:
                self.drop(kn)

    # Activation ---------------------------------------------------------------------
    def activate(self, kn: Knote) -> None:
        """The filter says kn has something to report (kn.guard held)."""
        status = kn.status
        kn.status = status | KN_ACTIVE
        if status & (KN_QUEUED | KN_DETACHED | KN_DISABLED | KN_OWNED):
            return
        self._enqueue(kn)

    def _enqueue(self, kn: Knote) -> None:
        sched = self.sched
        realtime = bool(kn.flags & EV_REALTIME)
        if sched is None:
            kevq = self.shared
            kevq.push(kn, realtime)
            kn.status |= KN_QUEUED
            self.enqueues += 1
            if kevq.cond.unwoken or not self.in_wait or self.leader is not None:
                self._wake(kevq)
            return
        while True:  # a kevq whose thread retires, or now reserved, turns kn away
            kevq = sched.place(kn, self.shared, realtime)
            offered = kevq.offer(kn, realtime)
            if offered != OFFER_REFUSED:
                break
        kn.status |= KN_QUEUED
        if offered == OFFER_POLLING:
            self.backend.wake()
        if sched.steal and (not kevq.waiting or len(kevq) > 1):
            # Work would sit behind a busy thread: wake an idle one to steal it.
            thief = sched.idle_thief(kevq)
            if thief is not None:
                thief.wake()
            else:
                leader = self.leader
                if leader is not None and leader is not kevq and leader.polling:
                    self.backend.wake()

    def _wake(self, kevq: Kevq) -> None:
        # Not kevq.sleeping: the classic kevq has many sleepers, and one already
        # notified (but not yet running) must not swallow the next wake-up.
        if kevq.cond.unwoken:
            kevq.cond.notify()
        elif kevq is self.leader and self.leader_polling:
            self.backend.wake()
        elif not self.in_wait and self.sched is None:
            # Nobody waits: make the kqueue's own fd readable, so that a poller
            # watching kq.fileno() (a nested kqueue, asyncio) sees this event.
            self.backend.wake()

    def pending(self) -> tuple[int, int] | None:
        """Events waiting here (FreeBSD's kq_count, a kqueue fd's READ data), and
        ``enqueues``, read together so that the count covers what the number says.

        Looks at the kernel first, since FreeBSD counts an event the moment it
        happens.  None if the lock stays busy: a filter must not wait for long,
        and kqueues watching each other would deadlock.
        """
        if not self.lock.acquire(timeout=_PEEK_LOCK_TIMEOUT):
            return None
        try:
            if self.closed:
                return 0, self.enqueues
            multi = self.sched is not None
            ready = self.backend.poll(0, _HARVEST_BATCH)
            # SKQ: only the leader takes the wake-up (drain_wake).
            self.backend.dispatch(ready, self.leader_polling or multi)
            kevqs = [self.shared, *(self.sched.kevqs if self.sched else [])]
            count = sum(len(kevq) for kevq in kevqs)
            if count and not self.in_wait and not multi:
                self.backend.wake()  # harvesting drained the wake-up: stay readable
            return count, self.enqueues + sum(kevq.enqueues for kevq in kevqs)
        finally:
            self.lock.release()

    # Waiting: a classic kqueue --------------------------------------------------------
    def _wait(self, nevents: int, timeout: float | None) -> list[kevent]:
        kevq = self.shared
        kevq.account_wait(time.monotonic_ns())
        if self.freq:
            nevents = kevq.batch_limit(nevents, self.freq)
        deadline = None if timeout is None or timeout <= 0 else time.monotonic() + timeout
        kevq.waiting = True
        self.in_wait += 1
        out: list[kevent] = []
        try:
            if kevq.normal or kevq.rt:
                # Queued events will satisfy this wait without epoll_wait; look at
                # the kernel anyway so that fds re-armed since (still-ready level
                # knotes) join the tail of the queue, as FreeBSD re-queues them.
                ready = self.backend.poll(0, _HARVEST_BATCH)
                self.backend.dispatch(ready, self.leader_polling)
            while True:
                if kevq.normal or kevq.rt:
                    out = self._scan(kevq, nevents)
                    if out:
                        return out
                if self.closed:
                    raise _closed_error()
                if timeout is not None and timeout <= 0:
                    # A poll: look at the kernel once (epoll_wait is safe to call
                    # while a leader blocks in it), then return what there is.
                    out = self._harvest(kevq, self.backend.poll(0, _HARVEST_BATCH), nevents)
                    out += self._scan(kevq, nevents - len(out))
                    return out
                # Sleep in slices: epoll_wait takes at most INT_MAX ms (24.8 days).
                remaining = None if deadline is None else min(deadline - time.monotonic(), _SLICE)
                if remaining is not None and remaining <= 0:
                    return []
                if self.leader is None:
                    out = self._lead(kevq, remaining, nevents)
                    if out:
                        if kevq.normal or kevq.rt:  # the harvest also queued some
                            out += self._scan(kevq, nevents - len(out))
                        return out
                else:
                    kevq.sleeping = True
                    try:
                        kevq.cond.wait(remaining)
                    finally:
                        kevq.sleeping = False
        finally:
            kevq.waiting = False
            kevq.account_return(time.monotonic_ns(), len(out))
            self.in_wait -= 1
            if not self.in_wait and (kevq.normal or kevq.rt) and not self.closed:
                self.backend.wake()  # events left queued: keep fileno() readable
            if self.leader is None and kevq.cond.unwoken and not self.closed:
                kevq.cond.notify()  # someone must poll while we work: a sleeper leads

    def _lead(self, kevq: Kevq, remaining: float | None, nevents: int) -> list[kevent]:
        """Be the thread in epoll_wait; run the handlers of what is ready.

        Returns the events delivered directly to this thread (see _harvest).
        """
        batch = nevents if nevents > _HARVEST_BATCH else _HARVEST_BATCH
        if remaining is not None:
            self.backend.prepare_wait(remaining)
        self.leader = kevq
        self.leader_polling = True
        self.lock.release()
        try:
            ready = self.backend.poll(remaining, batch)
        except ValueError:  # the backend was closed under us
            ready = []
        finally:
            self.lock.acquire()
            self.leader_polling = False
            self.leader = None
        if self.closed:
            self._close_backend_when_idle()
            return []
        return self._harvest(kevq, ready, nevents)

    def _harvest(self, kevq: Kevq, ready: list[tuple[int, int]], nevents: int) -> list[kevent]:
        """Run the handlers of what epoll reported, for a wait that takes nevents.

        The first nevents activations that need no queueing (report_now) go straight
        into the returned list, when the queue is empty: they would be queued and taken
        off again by this very wait.  A queue that holds events (they come first) or
        realtime knotes (they would jump the list) keeps the ordinary path.
        """
        keep_wake = self.leader_polling  # a zero-timeout poll's harvest, beside the leader
        if kevq.normal or kevq.rt or self.realtime_knotes:
            self.backend.dispatch(ready, keep_wake)
            return []
        reported: list[Knote] = []
        self._reported, self._room = reported, nevents
        try:
            start = 0
            if speedups is not None and EVFILT_READ in self.filters:
                start = self.filters[EVFILT_READ].report_ready(ready, reported, nevents)
            if start < len(ready):
                self.backend.dispatch(ready, keep_wake, start)
        finally:
            self._reported = None
            events = _events_of(reported)  # clears KN_REPORTED, also after an exception
        return events

    def _scan(self, kevq: Kevq, nevents: int) -> list[kevent]:
        # The per-event path of a classic wait: locals and one branch for the rare flags.
        out: list[kevent] = []
        rt, normal = kevq.rt, kevq.normal
        if not (rt or normal):
            return out  # nothing queued, and nothing is owned between scans
        append = out.append
        rt_budget = realtime_budget(nevents, self.rtshare)
        while len(out) < nevents:
            if rt and rt_budget > 0:
                kn = rt.popleft()
                rt_budget -= 1
            elif normal:
                kn = normal.popleft()
            else:
                break
            status = kn.status & ~KN_QUEUED
            kn.kevq = None
            if status & (KN_DISABLED | KN_DETACHED):
                kn.status = status
                continue
            kn.status = status & ~KN_ACTIVE
            delivery = kn.ops.deliver(kn)
            flags = kn.flags | kn.oflags
            if delivery is REPORT_REARMED and not flags & _RARE_FLAGS:
                # The fast path, inline: the event, and nothing to release.
                append(event(kn.ident, kn.filter, flags, kn.fflags, kn.data, kn.udata))
                continue
            ev = self._take(kevq, kn, delivery)
            if ev is not None:
                append(ev)
        owned, kevq.owned = kevq.owned, []
        if owned:  # a classic kqueue owns a knote until the end of its scan
            self._release(kevq, owned, locked=True)
        return out

    def _take(self, kevq: Kevq, kn: Knote, delivery: Delivery) -> kevent | None:
        """What a delivery found: the event to report (None: nothing), and kn's new state
        (kn.guard and the kqueue lock held)."""
        if delivery is SKIP:
            # Not ready after all: no longer owned, so let the filter re-arm it.
            kn.owner = None
            if not kn.status & KN_DETACHED:
                kn.status &= ~(KN_ACTIVE | KN_OWNED)
                kn.ops.recheck(kn)
            return None
        flags = kn.flags | kn.oflags
        ev = event(kn.ident, kn.filter, flags, kn.fflags, kn.data, kn.udata)
        if flags & _RARE_FLAGS:
            if flags & EV_REALTIME:
                kevq.realtime_events += 1
            if flags & EV_ONESHOT:
                kn.owner = None
                self.drop(kn)
                return ev
            if flags & EV_CLEAR:
                kn.ops.clear(kn)
            if flags & EV_DISPATCH:
                kn.status |= KN_DISABLED
        if delivery is REPORT_REARMED:
            return ev  # classic mode, and its delivery re-armed it: nothing to release
        if kn.owner is not kevq:  # classic; SKQ made it owned before deliver()
            kn.owner = kevq
            kn.status |= KN_OWNED
        kevq.owned.append(kn)
        return ev

    def _release(self, kevq: Kevq, owned: list[Knote], locked: bool) -> list[Knote]:
        """kevq's owner is done with these knotes: level ones may fire again.

        Each under its guard.  Without the kqueue lock (locked False) a knote of a filter
        that runs under it, or one its filter must re-check (``Filter.settle``), stays
        owned and is returned, for the caller to release again with the lock.
        """
        left: list[Knote] = []
        lock = self.lock
        held = lock if locked else None
        for kn in owned:
            guard = kn.guard
            if guard is not held:
                guard.acquire()
            try:
                if kn.owner is not kevq:
                    continue
                kn.owner = None
                status = kn.status & ~KN_OWNED
                kn.status = status
                if status & KN_DETACHED:
                    continue
                if status & KN_ACTIVE:
                    self.activate(kn)
                elif kn.ops.settle(kn):
                    pass
                elif locked or guard is lock:  # the kqueue lock is held now
                    kn.ops.recheck(kn)
                else:  # its owner's until released with the lock
                    kn.owner = kevq
                    kn.status = status | KN_OWNED
                    left.append(kn)
            finally:
                if guard is not held:
                    guard.release()
        return left

    # Waiting: an SKQ kqueue -------------------------------------------------------------
    def _join(self, sched: Scheduler) -> Kevq:
        """The calling thread's first wait on this SKQ kqueue: give it a kevq."""
        kevq = self.threads.join(sched)
        self._place_again(sched.register(kevq))
        self._place_again(self.shared.close_queues())  # adopt what queued while nobody waited
        return kevq

    def _wait_multi(self, kevq: Kevq, nevents: int, timeout: float | None) -> list[kevent]:
        """SKQ's wait, holding no lock but what each step takes ("The SKQ wait")."""
        self._release_owned(kevq)
        kevq.account_wait(time.monotonic_ns())
        if self.freq:
            nevents = kevq.batch_limit(nevents, self.freq)
        deadline = None if timeout is None or timeout <= 0 else time.monotonic() + timeout
        kevq.waiting = True
        out: list[kevent] = []
        try:
            if len(kevq):  # as a classic wait: what became ready meanwhile joins the tail
                self._harvest_multi(self.backend.poll(0, _HARVEST_BATCH))
            while True:
                out = self._scan_multi(kevq, nevents)
                if out or self.closed:
                    break
                polling = timeout is not None and timeout <= 0
                # Harvest for itself: no thread through which every activation must pass.
                # Under the GIL one harvester is enough, the leader (in _sleep): another
                # one's poll would only hand the GIL over.
                if _PARALLEL or polling:
                    found = self._harvest_multi(self.backend.poll(0, _HARVEST_BATCH))
                    if polling:
                        if found:  # a poll looks at the kernel once
                            out = self._scan_multi(kevq, nevents)
                        break
                    if found:
                        continue
                # Sleep in slices: epoll_wait takes at most INT_MAX ms (24.8 days).
                remaining = None if deadline is None else min(deadline - time.monotonic(), _SLICE)
                if remaining is not None and remaining <= 0:
                    break
                self._sleep(kevq, remaining, nevents)
        finally:
            kevq.waiting = False
            kevq.account_return(time.monotonic_ns(), len(out))
            if self.leader is None and self.followers:  # racy reads: see _hand_over_lead
                with self.lock:
                    self._hand_over_lead()
        if not out and self.closed:
            raise _closed_error()
        return out

    def _sleep(self, kevq: Kevq, remaining: float | None, nevents: int) -> None:
        """Lead (block in epoll_wait, then harvest) or follow (sleep until an offer or the
        leader wakes this thread), until something happened or remaining has passed."""
        sleeper = kevq.enlist()
        if sleeper is None:
            return  # something was queued meanwhile
        with self.lock:
            closed = self.closed
            lead = self.leader is None and not closed
            if lead:
                self.leader = kevq
                self.backend.prepare_wait(remaining)
            elif not closed:
                self.followers.append(kevq)
        if not lead:
            if not closed:
                self._blocking(sleeper.acquire, True, -1 if remaining is None else remaining)
                with self.lock:
                    self.followers.remove(kevq)
            kevq.withdraw(sleeper)
            return
        ready: list[tuple[int, int]] = []
        try:
            if kevq.begin_poll(sleeper):
                try:
                    batch = nevents if nevents > _HARVEST_BATCH else _HARVEST_BATCH
                    ready = self._blocking(self.backend.poll, remaining, batch)
                finally:
                    kevq.end_poll()
                # Taken while still the leader: drained by the next one, a wake-up for it
                # would be lost.
                self.backend.drain_wake(ready)
        finally:
            with self.lock:
                self.leader = None
                self._hand_over_lead()
        self._harvest_multi(ready)

    def _blocking(self, call: Callable[..., _T], *args: object) -> _T:
        """call(*args), which blocks: under the GIL, without the kqueue lock (_PARALLEL)."""
        if _PARALLEL:
            return call(*args)
        self.lock.release()
        try:
            return call(*args)
        finally:
            self.lock.acquire()

    def _hand_over_lead(self) -> None:
        """No thread leads (kqueue lock held): wake a follower to.  A follower enlists
        under the lock while a leader is there, and every thread that finds none when
        it leaves a wait (or stops leading) calls this, so none sleeps without a leader."""
        if self.closed or self.leader is not None:
            return
        for kevq in self.followers:
            if kevq.wake():
                return

    def _harvest_multi(self, ready: list[tuple[int, int]]) -> bool:
        """Run the handlers of what a poll found: the guarded ones with no lock, the rest
        with the kqueue lock; whether anything but a wake-up was there."""
        if not ready:
            return False
        found, rest = self.backend.dispatch_guarded(ready)
        if rest:
            with self.lock:
                if not self.closed:
                    self.backend.dispatch(rest, keep_wake=True)
        return found

    def _scan_multi(self, kevq: Kevq, nevents: int) -> list[kevent]:
        """Take up to nevents off kevq's queues (and by stealing), and deliver them: the
        per-event path of an SKQ wait.  Each knote is settled under its guard, its
        system calls made with no lock (begin_unlocked), and only what needs the kqueue
        lock (another filter's knote, a delivery that changed meanwhile) takes it."""
        sched = self.sched
        assert sched is not None
        out: list[kevent | None] = []
        # Deliveries for the kqueue lock: (place in out, kn, token or -1, measured).
        locked: list[tuple[int, Knote, int, int]] = []
        rt_budget = realtime_budget(nevents, self.rtshare)
        lock, owned = self.lock, kevq.owned
        held = None if _PARALLEL else lock  # the GIL's wait holds the kqueue lock
        while len(out) < nevents:
            taken = kevq.take(nevents - len(out), rt_budget)
            if not taken:
                if sched.steal and sched.steal_into(kevq):
                    continue
                break
            for kn in taken:
                if kn.flags & EV_REALTIME:
                    rt_budget -= 1
                guard, ops = kn.guard, kn.ops
                if guard is not held:
                    guard.acquire()
                try:
                    status = kn.status
                    if kn.kevq is not kevq or not status & KN_QUEUED:
                        continue  # a change took it off the queue meanwhile
                    kn.kevq = None
                    status &= ~KN_QUEUED
                    if status & (KN_DISABLED | KN_DETACHED):
                        kn.status = status
                        continue
                    # The delivery takes the activation; one arriving meanwhile (while the
                    # guard is free for the system calls) is kept for the release.
                    kn.owner = kevq
                    kn.status = (status & ~KN_ACTIVE) | KN_OWNED
                    # The system calls with the guard held: a report of this fd, which
                    # waits for it meanwhile, can only come once they re-armed the item.
                    token = ops.begin_unlocked(kn)
                    measured = 0
                    if token >= 0:
                        measured = ops.measure_unlocked(kn)
                        if (
                            ops.finish(kn, token, measured, False) is REPORT
                            and not kn.flags & _LOCKED_FLAGS
                        ):
                            flags = kn.flags  # finish() cleared oflags
                            if flags & EV_REALTIME:
                                kevq.realtime_events += 1
                            owned.append(kn)
                            ev = event(kn.ident, kn.filter, flags, kn.fflags, kn.data, kn.udata)
                            out.append(ev)
                            continue
                    elif guard is lock:  # the guard is the kqueue lock: held now
                        out.append(self._take(kevq, kn, ops.deliver(kn)))
                        continue
                finally:
                    if guard is not held:
                        guard.release()
                locked.append((len(out), kn, token, measured))
                out.append(None)
        if locked:
            self._deliver_locked(kevq, locked, out)
        return [ev for ev in out if ev is not None]

    def _deliver_locked(
        self, kevq: Kevq, locked: list[tuple[int, Knote, int, int]], out: list[kevent | None]
    ) -> None:
        """The scan's deliveries that need the kqueue lock: the filter's deliver(), or its
        finish() when something changed since begin_unlocked."""
        lock = self.lock
        with lock:
            for place, kn, token, measured in locked:
                guard = kn.guard
                if guard is not lock:
                    guard.acquire()
                try:
                    if token < 0:
                        if kn.status & KN_DETACHED:
                            kn.owner = None
                            continue
                        delivery = kn.ops.deliver(kn)
                    else:
                        found = kn.ops.finish(kn, token, measured, True)
                        assert found is not None  # with the lock, finish always decides
                        delivery = found
                        if kn.status & KN_DETACHED:  # dropped meanwhile: not reported
                            kn.owner = None
                            continue
                    out[place] = self._take(kevq, kn, delivery)
                finally:
                    if guard is not lock:
                        guard.release()

    def _release_owned(self, kevq: Kevq) -> None:
        """The owner is done with what it was given (its next wait): with the kqueue lock
        only what needs it (see _release)."""
        owned = kevq.owned
        if not owned:
            return
        kevq.owned = []
        left = self._release(kevq, owned, locked=not _PARALLEL)  # the GIL's wait holds it
        if left:
            with self.lock:
                self._release(kevq, left, locked=True)

    # SKQ threads ----------------------------------------------------------------------
    def kevq_exit(self, kevq: Kevq) -> None:
        """A thread left: release what it owns and place again what it had queued."""
        with self.lock:
            sched = self.sched
            if self.closed or sched is None or kevq not in sched.kevqs:
                return
            evicted = sched.retire(kevq)
            self.enqueues += kevq.enqueues
            if not sched.kevqs:
                self.shared.close_queues(False)  # the orphanage takes events again
            self._place_again(evicted)
            self._place_again(kevq.close_queues())
            self._release_owned(kevq)

    def _place_again(self, queued: list[Knote]) -> None:
        """Knotes taken off a kevq's queues (still marked queued there), with the kqueue
        lock held: place each anew."""
        for kn in queued:
            with kn.guard:
                if kn.status & KN_QUEUED:
                    kn.status &= ~KN_QUEUED
                    kn.kevq = None
                    self._enqueue(kn)

    def leave(self) -> None:
        """The calling thread stops serving this kqueue (its events move on)."""
        self.threads.leave()

    # Closing -------------------------------------------------------------------------
    def abandon(self) -> None:
        """In the child of fork(): close this process's copies of the kernel objects.

        A child inherits no kqueue (FreeBSD), and select.kqueue objects appear closed
        in it (CPython).  Nothing here may touch the epoll set or the watches, which
        the parent still uses, nor take the lock, which a parent thread may have held
        at the fork; the child has a single thread at this point.
        """
        if self.closed:
            return
        self.abandoned = self.closed = True
        for ops in set(self.filters.values()):
            ops.abandon()
        self.watcher.abandon()
        self.backend.close()

    def close(self) -> None:
        """Drop every knote, free every filter's fds and the backend; never raises.

        A filter that fails to let go (a bug) must not keep the eventfd, the timerfd
        or the other filters' fds open: each step runs whatever the others did, and
        the failure is reported as a RuntimeWarning.
        """
        if self.abandoned:
            return
        with self.lock:
            if self.closed:
                return
            self.closed = True
            failures: list[BaseException] = []
            for ops in set(self.filters.values()):
                _attempt(failures, ops.close)
            for kn in list(self.knotes.values()):
                _attempt(failures, self.drop, kn)
            self.knotes.clear()
            _attempt(failures, self.watcher.close)
            kevqs = [self.shared, *(self.sched.kevqs if self.sched else [])]
            for kevq in kevqs:
                kevq.wake_all()
            if self.leader is not None:
                self.backend.wake()  # the leader closes the backend on its way out
            _attempt(failures, self._close_backend_when_idle)
        for exc in failures:
            warnings.warn(f"kqueue close: {exc!r}", RuntimeWarning, stacklevel=3)

    def _close_backend_when_idle(self) -> None:
        """After close(): free the epoll set and its fds once no thread can still use
        their numbers (a classic leader in epoll_wait; any thread in an SKQ wait, which
        polls and makes its deliveries' system calls with no lock, the accelerator's on
        the raw fd); the last one out closes them."""
        if self.sched is None:
            idle = self.leader is None
        else:
            idle = not any(kevq.is_inside() for kevq in self.sched.kevqs)
        if idle:
            self.backend.close()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            common: dict[str, Any] = {
                "knotes": len(self.knotes),
                "rtshare": self.rtshare,
                "freq": self.freq,
                "rtreserve": self.rtreserve,
                "tunables": tunables.as_dict(),
            }
            timing = lock_figures(self.lock)
            if timing is not None:  # SKQUEUE_LOCK_TIMING=1
                common["lock"] = timing
            if self.sched is None:
                return {
                    "multi": False,
                    "policy": "classic",
                    **common,
                    "kevqs": [self.shared.stats()],
                }
            return {"multi": True, **common, **self.sched.stats()}


class HandleTable:
    """fd -> core for every open handle (``kqueue.fromfd``, a watched kqueue's fd)."""

    def __init__(self) -> None:
        self._by_fd: weakref.WeakValueDictionary[int, KqueueCore] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def add(self, fd: int, core: KqueueCore) -> None:
        """fd is a new handle of core."""
        with self._lock:
            core.handles += 1
            self._by_fd[fd] = core

    def discard(
        self, fd: int, take: Callable[[], KqueueCore | None]
    ) -> tuple[KqueueCore | None, bool]:
        """Close the handle fd: take() detaches it from its core (None: closed already).

        Returns that core and whether this was its last handle.  take() runs under
        the table's lock, since a handle may be closed from several threads at once.
        """
        with self._lock:
            core = take()
            if core is None:
                return None, False
            if self._by_fd.get(fd) is core:
                del self._by_fd[fd]
            core.handles -= 1
            return core, core.handles <= 0

    def core_behind(self, fd: int) -> KqueueCore | None:
        """The open skqueue kqueue whose handle is fd, if any."""
        with self._lock:
            core = self._by_fd.get(fd)
        return None if core is None or core.closed else core

    def forget_all(self) -> list[tuple[int, KqueueCore]]:
        """In a fork() child: empty the table and return what it held."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        held = list(self._by_fd.items())
        self._by_fd.clear()
        return held


#: Every open handle of this process.
handles = HandleTable()

if CHECK_LOCKS:  # SKQUEUE_CHECK_LOCKS=1: the guarded fields check the lock
    install_lock_checks(KqueueCore, Kevq, WaitQueue, Knote)


def _undo_attach(kn: Knote) -> None:
    """attach() failed part-way (a bug, or KeyboardInterrupt): undo what it took.

    The knote never entered the table, so nothing but the filter's own state can
    hold it; detach() frees that, and what detach() cannot undo stays undone.
    """
    kn.status = KN_DETACHED
    with contextlib.suppress(Exception):
        kn.ops.detach(kn)


def _attempt(failures: list[BaseException], step: Callable[..., object], *args: Any) -> None:
    """Run one step of close(); a failure is noted, and the next step runs anyway."""
    try:
        step(*args)
    except Exception as exc:
        failures.append(exc)


def _checked_changes(changes: Iterable[kevent]) -> list[kevent]:
    """The changelist as a list of valid kevents (TypeError, OverflowError otherwise)."""
    changelist = list(changes)
    for ev in changelist:
        if not isinstance(ev, kevent):
            raise TypeError("changelist must be an iterable of kevent objects")
        checked(ev)
    return changelist


def _fd_is_open(fd: int) -> bool:
    if fd < 0:
        return False
    try:
        os.get_inheritable(fd)  # fcntl(F_GETFD): the cheapest validity check
    except OSError:
        return False
    return True
