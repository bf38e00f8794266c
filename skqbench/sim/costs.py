"""The costs of the event path, as simulation parameters, and how they were measured.

Every cost is virtual time in nanoseconds, spent on the CPU core named below.  The
defaults are what :func:`skqbench.sim.calibrate.calibrate` measured on the development
machine (2 vCPUs, CPython, skqueue in pure Python; rounded, from its quieter runs:
other jobs share the machine and only ever add time); ``skqueue sim run --calibrate``
measures the machine it runs on instead, and ``--cost NAME=US`` overrides one.  They
are the costs of *skqueue*, a Python library: a kernel kqueue's are one to two orders
of magnitude smaller, so for the paper's machine pass them with ``--cost``.

* ``harvest``: one ``kevent()`` wait that returns an event, on the worker's core.
  Measured: a classic skqueue kqueue with one ready level-triggered socket,
  ``kq.control(None, 1, 0)``.
* ``io``: reading one request and writing its reply (``recv`` + ``send`` of a frame),
  on the worker's core.  Measured: a socketpair, both directions.
* ``place``: one activation's placement, before the event is visible to a worker.
  Measured: :meth:`skqueue.sched.Scheduler.place` (best-of-2 over 4 kevqs).  Paid by
  every design (a classic kqueue's enqueue is no cheaper in skqueue).
* ``wakeup``: from waking a sleeping worker to that worker running.  Measured: half
  the round trip of two threads that notify each other's ``threading.Condition``.
* ``steal``: one steal that moves events, extra on the thief's core.  Measured:
  :meth:`skqueue.sched.Scheduler.steal_into` robbing one of 4 kevqs.
* ``cold``: extra on the worker's core for a request whose connection's previous
  request was served on another core (its socket and objects in the other core's
  cache): what CPU and queue affinity save.  Measured by
  ``benchmarks/bench_cache_cold.py`` (not by ``--calibrate``): the same request path
  (recv, framing, decode, send on a socketpair) timed after the connection's previous
  request ran on the same CPU or on the other one; 0.33 us (0.21..0.35) with 64
  connections and 0.66 us (0.36..0.93) with 1,024 on 3.11, 0.56 us on 3.13t.
* ``lock``: the legacy single-lock kqueue holds its one lock this long per
  operation (each activation, each wait).  A guess, not a measurement: the time of a
  kevent() call (``harvest``), since a classic kevent() holds the kqueue lock all
  through; under contention the operations queue on it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Costs:
    """Event-path costs in ns; defaults measured on the development machine (see the module)."""

    harvest: int = 8_000
    io: int = 3_000
    place: int = 2_500
    wakeup: int = 10_000
    steal: int = 1_000
    cold: int = 500
    lock: int = 8_000

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_us(self, name: str, us: float) -> Costs:
        """This set with one cost replaced (given in microseconds)."""
        if name not in self.names():
            raise ValueError(f"unknown cost {name!r}; choose from {', '.join(self.names())}")
        return replace(self, **{name: round(us * 1000)})
