"""SKQ's scheduler: which thread's kevq an activation goes to, without I/O.

The scheduler is a deterministic function of what it is given, in the manner of
h11's sans-I/O core; the kqueue feeds it the real world, and a test or a
simulator can feed it a made-up one and replay a decision sequence exactly.

Inputs, all given by the caller:

* at construction (:class:`Scheduler`): the policy ``(sched, sargs, feat, fargs)``;
  a :class:`Topology` (cpu -> group, as data); ``clock()``, nanoseconds on any
  monotonic scale; ``cpu_of(kn)``, the CPU a knote's activation happened on; and
  ``rng``, the :class:`random.Random` every random choice is drawn from;
* the queue state: the registered kevqs (:meth:`Scheduler.register`,
  :meth:`Scheduler.retire`), their queues, and their time-per-event estimates,
  which :meth:`Kevq.account_wait` / :meth:`Kevq.account_return` update from the
  times the caller passes;
* the process-wide tunables ``cache_penalty_ns`` and ``steal_scan_factor``, and
  the kqueue's KQTUNE_RTRESERVE (:meth:`Scheduler.set_reserve`).

Outputs:

* :meth:`Scheduler.place` -> the kevq an activation is queued on;
* :meth:`Scheduler.register`, :meth:`Scheduler.retire`, :meth:`Scheduler.set_reserve`
  -> the normal events taken off kevqs that became reserved, to place again;
* :meth:`Scheduler.steal_into` -> events moved from a busy kevq to an idle one;
  :meth:`Scheduler.idle_thief` -> the sleeping kevq to wake so that it steals;
* :meth:`Kevq.expected_start_ns` -> best-of-N's estimate of when an event placed
  now would start; :meth:`Kevq.batch_limit` (KQTUNE_FREQ) and
  :func:`realtime_budget` (KQTUNE_RTSHARE) -> how many events a wait may take;
* statistics (``stats()``), plain data.

Rules:

* The same inputs give the same outputs: the clock is read only through
  ``clock`` (once per placement for the decision, once more for the placement's
  cost), activation CPUs only through ``cpu_of``, and only when the policy needs
  them (queue affinity at a knote's first activation, CPU affinity and auto always).
* A placement changes nothing but counters and, under queue affinity, the knote's
  group on its first activation; the caller queues the knote and wakes the thread.
* Nothing blocks.  Placement and stealing may run in several threads at once, reading
  other kevqs racily (see :mod:`.policy`); the rest runs with the kqueue lock held.
* Nothing here does I/O, reads a clock or asks for a CPU, except the two modules
  that face the real world: :mod:`.world` (the clock, the CPUs and /sys for
  :func:`real_scheduler`) and :mod:`.threads` (each real thread's kevq, made at
  its first wait and retired by ``leave()`` or the thread-exit hook).
"""

from __future__ import annotations

from .kevq import COUNTER_STATS, Kevq, RetiredKevqs, realtime_budget
from .policy import POLICY_NAMES, RTRESERVE_MAX, Scheduler, check_reserve
from .threads import ThreadKevqs
from .topology import Topology
from .world import machine_topology, real_scheduler

__all__ = [
    "COUNTER_STATS",
    "POLICY_NAMES",
    "RTRESERVE_MAX",
    "Kevq",
    "RetiredKevqs",
    "Scheduler",
    "ThreadKevqs",
    "Topology",
    "check_reserve",
    "machine_topology",
    "real_scheduler",
    "realtime_budget",
]
