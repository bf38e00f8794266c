"""One server at one offered load, as a discrete-event simulation on a virtual clock.

The model: ``workers`` threads pinned round-robin to ``cores`` cores; a worker runs
only while it holds its core (cores are not time-sliced: a worker keeps its core
until it sleeps, or, with ``work="sleep"``, while its service waits off the core).
``connections`` sockets receive open-loop requests (the load generator's arrival
processes and service distributions, reused from :mod:`skqbench.loadgen` and
:mod:`skqbench.service`); a socket with a request waiting is a level-triggered knote,
activated when it becomes readable and again whenever it is released still readable.
Every activation costs ``costs.place`` before it is queued; every wait that returns
events costs ``costs.harvest`` on the worker's core, every request ``costs.io`` plus
its service time, every wake-up of a sleeping worker ``costs.wakeup``, every steal
``costs.steal``, and a request served on another core than its connection's previous
one ``costs.cold`` more (see :mod:`.costs`).  Each delivered event serves one request, as the
real servers' ``serve_one`` does.  ``serve_ns`` is the rest of a real server's
per-request CPU (its Python around the event path: framing, the service routine's
call, the reply, its loop), which differs by design and so is a property of the
configuration, not of the event path; ``skqueue sim validate`` measures it per design
(:func:`skqbench.sim.validate.measure_serve`).  ``serve_kernel_ns`` is the part of it
spent in system calls (recv, send, epoll_wait, futex), which a GIL build runs without the
interpreter lock: it waits off the core, as ``work="sleep"`` service does.

Wake-up lateness (``late_p50_ns``, ``late_p99_ns``): a real thread woken from sleep runs
later than ``costs.wakeup`` says whenever its core is busy with something the model does
not hold (the load generator, the kernel, other processes on a shared machine).  The
server's wake-up probe (:mod:`skqbench.probe`) measures its median and 99th percentile;
every wake-up here adds a draw from the lognormal with those two percentiles.

The designs:

* ``skq``: one SKQ kqueue.  Every placement, steal, idle-thief choice, realtime
  budget and FREQ limit is skqueue's own :class:`~skqueue.sched.Scheduler` and
  :class:`~skqueue.sched.Kevq` code, driven by the virtual clock; the simulator only
  mirrors :class:`skqueue.core.KqueueCore`'s wait (a worker owns what it was given
  until its next wait, then releases it, and a still-readable socket is activated
  again).  A socket's activation CPU is fixed per connection (its RSS hash); each
  core is a CPU group of its own.
* ``vanilla``: a classic kqueue per worker, connections assigned round-robin (the
  acceptor's order); ``reuseport``: the same, assigned by a hash (SO_REUSEPORT).
  Both take up to 64 events per wait and re-queue a still-readable socket at once.
* ``dispatch``: one shared FIFO of sockets (one classic kqueue with EV_DISPATCH, or
  asyncio + a pool), one event per wait, the socket re-armed at the next wait.
* ``kqueue``: ``dispatch`` under the legacy single lock: every activation and every
  wait holds it for ``costs.lock`` (FIFO), so its operations serialise as cores grow.

What the model leaves out (for ``skqueue sim validate`` to find): the leader thread
in epoll_wait (activations cost no worker time), the GIL, and time-slicing.  A GIL
build runs at most one worker's Python at a time: simulate it as one core
(``cores=1``; ``work="sleep"`` service still waits off it), as validate does.

The loop is a heap of (time, sequence, action, argument), not SimPy: on one M/M/4
workload of 200,000 requests SimPy 4.1.2 (processes and a Resource) ran 46,000
requests/s on the development machine, a heap loop 100,000 to 204,000 (2.2 to 4.4x,
the machine being shared), and SimPy would be one more dependency.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from skqbench.loadgen import ARRIVALS, LoadResult, interarrival
from skqbench.protocol import MAX_SERVICE_NS
from skqbench.servers.base import parse_policy
from skqbench.service import parse_dist
from skqueue import KQ_SCHED_FEAT_WS
from skqueue.sched import (
    POLICY_NAMES,
    Kevq,
    Scheduler,
    Topology,
    check_reserve,
    realtime_budget,
)

from .costs import Costs

if TYPE_CHECKING:
    from skqueue.knote import Knote

DESIGNS = ("skq", "vanilla", "dispatch", "reuseport", "kqueue")
POPULATIONS = ("bg", "rt")  # with rt_rate: the kv experiment's names, background first
WORKS = ("cpu", "sleep")
_STATIC_BATCH = 64  # events per wait of the per-worker kqueue designs, as VanillaServer
_OWNING = frozenset({"skq", "dispatch", "kqueue"})  # a delivered socket waits for release
_NOT_DONE = -1


@dataclass(frozen=True)
class SimConfig:
    """One simulated point: a design (and SKQ policy), a machine, a workload, a load."""

    design: str = "skq"
    policy: str = "best2"  # the skq design's
    workers: int = 4
    cores: int = 0  # 0: a core per worker
    connections: int = 64
    dist: str = "classes:400us"
    arrival: str = "poisson"
    rate: float = 1000.0  # offered requests/s
    duration_s: float = 1.0  # measured, simulated seconds
    warmup_s: float = 0.1
    drain_s: float = 1.0  # after the last arrival, at most this long to finish
    seed: int = 1
    realtime: int = 0  # the first this many connections are EV_REALTIME
    # > 0: the realtime connections are the latency-sensitive population's alone, sent
    # this many requests/s of their own (sample_rt_ns: the kv mix's GETs), and ``rate``
    # goes to the others; the point's result is then reported per population.
    rt_rate: float = 0.0
    rtshare: int = 100
    rtreserve: int = 0  # KQTUNE_RTRESERVE: kevqs kept for realtime events (skq)
    freq: int = 0
    work: str = "cpu"  # cpu: service holds the core; sleep: it waits off the core
    costs: Costs = field(default_factory=Costs)
    serve_ns: int = 0  # per-request server CPU beyond the event path (see the module)
    serve_kernel_ns: int = 0  # per-request system calls beside it, off the core (module)
    # Wake-up lateness (see the module): the median and 99th percentile of a lognormal
    # delay added to every wake-up of a sleeping worker; 0, 0: none.
    late_p50_ns: int = 0
    late_p99_ns: int = 0
    name: str = ""  # the label, if not the design's own (the measured one it stands for)
    shown_as: str = ""  # the measured design it stands for, whose look a report gives it

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ValueError(f"unknown design {self.design!r}; choose from {', '.join(DESIGNS)}")
        if self.design == "skq":
            parse_policy(self.policy)
        if self.arrival not in ARRIVALS or self.work not in WORKS:
            raise ValueError(f"unknown arrival {self.arrival!r} or work {self.work!r}")
        if min(self.workers, self.connections) < 1 or self.rate <= 0:
            raise ValueError("workers, connections and rate must be positive")
        if min(self.cores, self.serve_ns, self.serve_kernel_ns) < 0:
            raise ValueError("cores, serve_ns and serve_kernel_ns must not be negative")
        if (self.late_p50_ns > 0) != (self.late_p99_ns > 0) or not (
            0 <= self.late_p50_ns <= self.late_p99_ns
        ):
            raise ValueError("wake-up lateness needs 0 < late_p50_ns <= late_p99_ns (or both 0)")
        if not 0 <= self.realtime <= self.connections or not 1 <= self.rtshare <= 100:
            raise ValueError("realtime must be <= connections and rtshare in 1..100")
        if self.rt_rate < 0 or (self.rt_rate and not 0 < self.realtime < self.connections):
            raise ValueError(
                "rt_rate (--rt-rate) needs realtime connections (--realtime) and others "
                "beside them, and cannot be negative"
            )
        check_reserve(self.rtreserve)
        if self.rtreserve and self.design != "skq":
            raise ValueError("rtreserve is a tunable of the skq design")
        parse_dist(self.dist)

    @property
    def label(self) -> str:
        """``name``, or as :attr:`skqbench.servers.base.ServerConfig.label`."""
        if self.name:
            return self.name
        what = f"skq {self.policy}" if self.design == "skq" else self.design
        return f"{what} x{self.workers}"

    @property
    def n_cores(self) -> int:
        return self.cores or self.workers


_GUARD = threading.RLock()  # every connection's knote guard (see Conn)


class Conn:
    """A connection: its socket's waiting requests, and its knote's scheduling state.

    What :class:`~skqueue.sched.Scheduler` and :class:`~skqueue.sched.Kevq` read and
    set on a knote is all here: ``group`` (queue affinity), ``kevq`` (where it is
    queued) and ``guard`` (taken by a thief that moves it; one simulated thread takes
    them all); ``cpu`` is its activation CPU, given to the scheduler as ``cpu_of``.
    """

    __slots__ = (
        "activating",
        "cpu",
        "group",
        "guard",
        "home",
        "index",
        "kevq",
        "last_core",
        "mult",
        "owner",
        "pending",
        "realtime",
    )

    def __init__(self, index: int, mult: float, cpu: int, realtime: bool, home: int) -> None:
        self.index = index
        self.mult = mult  # the service-class multiplier of this connection
        self.cpu = cpu
        self.realtime = realtime
        self.home = home  # its worker under a static assignment
        self.group = -1
        self.kevq: Kevq | None = None
        self.guard = _GUARD
        self.owner: Worker | None = None
        self.activating = False  # between readable and queued (the placement's cost)
        self.pending: deque[tuple[int, int]] = deque()  # (request id, service ns)
        self.last_core = -1  # where its previous request was served (none yet: -1)

    @property
    def idle(self) -> bool:
        return not self.activating and self.kevq is None and self.owner is None


def as_knote(conn: Conn) -> Knote:
    """The one place a Conn is handed to skqueue's scheduler as a knote."""
    return cast("Knote", conn)


def as_conn(kn: Knote) -> Conn:
    return cast(Conn, kn)


def cpu_of(kn: Knote) -> int:
    return as_conn(kn).cpu


class Worker:
    """A worker thread: its kevq, its core, what it owns and the batch it is serving."""

    __slots__ = ("batch", "core", "current", "index", "kevq", "nevents", "owned", "woken")

    def __init__(self, index: int, core: int, kevq: Kevq) -> None:
        self.index = index
        self.core = core
        self.kevq = kevq
        self.owned: list[Conn] = []
        self.batch: deque[tuple[int, int, int]] = deque()  # (request, service, cold ns)
        self.current = 0  # the request being served
        self.nevents = 1
        self.woken = False  # a wake-up is on its way


class Core:
    __slots__ = ("holder", "runq")

    def __init__(self) -> None:
        self.holder: Worker | None = None
        self.runq: deque[tuple[Worker, Callable[[Worker], None]]] = deque()


@dataclass
class Outcome:
    """What one simulation produced: every request's arrival and completion (ns)."""

    config: SimConfig
    arrivals: list[int]
    done: list[int]  # _NOT_DONE for a request unfinished at the end
    latency_sensitive: bytearray  # 1 for a request of the rt_rate population
    measure_ns: tuple[int, int]  # the window whose arrivals are measured
    end_ns: int  # virtual time when the simulation stopped
    events: int  # simulation events processed
    wall_s: float
    stats: dict[str, Any]

    def result(self, population: str = "") -> LoadResult:
        """The point as the real load generator reports one (latency from arrival):
        every request, or one population's ("bg", "rt": the rt_rate one), as the kv
        experiment's generator reports each."""
        lo, hi = self.measure_ns
        duration = (hi - lo) / 1e9
        lat: list[int] = []
        timeouts = received = 0
        offered = self.config.rate + self.config.rt_rate
        wanted = -1  # every request
        if population:
            wanted = POPULATIONS.index(population)
            offered = self.config.rt_rate if wanted else self.config.rate
        for arrived, done, rt in zip(self.arrivals, self.done, self.latency_sensitive, strict=True):
            if lo <= arrived < hi and (wanted < 0 or rt == wanted):
                if done == _NOT_DONE:
                    timeouts += 1
                    lat.append(self.end_ns - arrived)
                else:
                    received += 1
                    lat.append(done - arrived)
        lat.sort()

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] / 1e3 if lat else float("nan")

        p50, p99 = pct(0.5), pct(0.99)
        return LoadResult(
            offered=offered,
            scheduled=len(lat) / duration,
            achieved=received / duration,
            sent=len(lat),
            received=received,
            timeouts=timeouts,
            errors=0,
            p50_us=p50,
            p90_us=pct(0.9),
            p99_us=p99,
            p999_us=pct(0.999),
            max_us=lat[-1] / 1e3 if lat else float("nan"),
            mean_us=sum(lat) / len(lat) / 1e3 if lat else float("nan"),
            from_send_p50_us=p50,  # a simulated client sends on time
            from_send_p99_us=p99,
            send_lag_p99_us=0.0,
            send_lag_max_us=0.0,
            histogram="",
        )


class Simulation:
    """The heap loop and the server model; :meth:`run` once."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.costs = cfg.costs
        self._request_ns = cfg.costs.io + cfg.serve_ns  # on the core, per request
        self._sleeps = cfg.work == "sleep"
        self._late = _lateness(cfg.late_p50_ns, cfg.late_p99_ns, random.Random(f"{cfg.seed}:late"))
        self.now = 0
        self._heap: list[tuple[int, int, Callable[[Any], None], Any]] = []
        self._seq = itertools.count()
        seed = cfg.seed
        self._load_rng = random.Random(f"{seed}:load")
        self._dist = parse_dist(cfg.dist)
        self._gap = interarrival(cfg.arrival, cfg.rate, self._load_rng)
        self._rt_rng = random.Random(f"{seed}:rt")
        self._rt_gap = interarrival(cfg.arrival, cfg.rt_rate, self._rt_rng) if cfg.rt_rate else None
        cores = cfg.n_cores
        # Per-connection classes exactly as the load generator draws them.
        mults = self._dist.connection_multipliers(cfg.connections, random.Random(seed))
        rss = random.Random(f"{seed}:rss")
        hashed = random.Random(f"{seed}:reuseport")
        self.conns = [
            Conn(
                i,
                mults[i],
                rss.randrange(cores),
                i < cfg.realtime,
                hashed.randrange(cfg.workers) if cfg.design == "reuseport" else i % cfg.workers,
            )
            for i in range(cfg.connections)
        ]
        lock = threading.Lock()  # the kevqs' conditions want one; nothing waits on it
        self.shared = Kevq(lock)  # the shared designs' queue; SKQ's orphanage
        self.sched: Scheduler | None = None
        if cfg.design == "skq":
            policy = parse_policy(cfg.policy)
            self.sched = Scheduler(
                POLICY_NAMES[policy.kind],
                policy.sargs,
                KQ_SCHED_FEAT_WS if policy.steal else 0,
                policy.steal,
                topology=Topology({c: c for c in range(cores)}),
                clock=self._clock,
                cpu_of=cpu_of,
                rng=random.Random(f"{seed}:sched"),
            )
        shared = cfg.design in ("dispatch", "kqueue")
        self.workers = [
            Worker(i, i % cores, self.shared if shared else Kevq(lock, i % cores))
            for i in range(cfg.workers)
        ]
        self._worker_of = {id(w.kevq): w for w in self.workers if not shared}
        if self.sched is not None:
            for w in self.workers:
                self.sched.register(w.kevq)
            self.sched.set_reserve(cfg.rtreserve)  # nothing queued yet: nothing evicted
        self._sleepers: deque[Worker] = deque()  # on the shared queue, in wait order
        self.cores = [Core() for _ in range(cores)]
        self._owning = cfg.design in _OWNING
        self._locked = cfg.design == "kqueue"
        self._lock_free_ns = 0
        self._batch = 1 if shared or self.sched is not None else _STATIC_BATCH
        self.arrivals: list[int] = []
        self.done: list[int] = []
        self.latency_sensitive = bytearray()
        # Background requests go to every connection, or with rt_rate to the others.
        self._bg_conns = self.conns[cfg.realtime :] if cfg.rt_rate else self.conns
        start = round(cfg.warmup_s * 1e9)
        self._measure = (start, start + round(cfg.duration_s * 1e9))
        self.completed = 0

    def _clock(self) -> int:
        return self.now

    def _at(self, when: int, action: Callable[[Any], None], arg: Any = None) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action, arg))

    # The clients ---------------------------------------------------------------------
    def _arrival(self, _: None) -> None:
        rng = self._load_rng
        conn = self._bg_conns[rng.randrange(len(self._bg_conns))]
        self._request(conn, self._dist.sample_ns(rng, conn.mult), 0)
        nxt = self.now + round(self._gap())
        if nxt < self._measure[1]:
            self._at(nxt, self._arrival)

    def _rt_arrival(self, _: None) -> None:
        """The latency-sensitive population's next request (rt_rate)."""
        rng = self._rt_rng
        conn = self.conns[rng.randrange(self.cfg.realtime)]
        self._request(conn, self._dist.sample_rt_ns(rng, conn.mult), 1)
        assert self._rt_gap is not None
        nxt = self.now + round(self._rt_gap())
        if nxt < self._measure[1]:
            self._at(nxt, self._rt_arrival)

    def _request(self, conn: Conn, service: int, population: int) -> None:
        conn.pending.append((len(self.arrivals), min(service, MAX_SERVICE_NS)))
        self.arrivals.append(self.now)
        self.done.append(_NOT_DONE)
        self.latency_sensitive.append(population)
        if conn.idle:
            self._activate(conn)

    # Activation and placement --------------------------------------------------------
    def _hold_lock(self, when: int) -> int:
        """The legacy kqueue's lock, FIFO: when an operation wanting it at ``when`` ends."""
        start = max(when, self._lock_free_ns)
        self._lock_free_ns = start + self.costs.lock
        return self._lock_free_ns

    def _activate(self, conn: Conn) -> None:
        conn.activating = True
        when = self._hold_lock(self.now) if self._locked else self.now
        self._at(when + self.costs.place, self._enqueue, conn)

    def _enqueue(self, conn: Conn) -> None:
        conn.activating = False
        sched = self.sched
        if sched is not None:
            kevq = sched.place(as_knote(conn), self.shared, conn.realtime)
        elif self._worker_of:
            kevq = self.workers[conn.home].kevq
        else:
            kevq = self.shared
        kevq.push(as_knote(conn), conn.realtime)
        if kevq is self.shared:
            if self._sleepers:  # the condition's notify: one waiter, in wait order
                self._wake(self._sleepers.popleft())
            return
        if kevq.sleeping:
            self._wake(self._worker_of[id(kevq)])
        if sched is not None and sched.steal and (not kevq.waiting or len(kevq) > 1):
            # As KqueueCore._enqueue: work would sit behind a busy thread.
            thief = sched.idle_thief(kevq)
            if thief is not None:
                self._wake(self._worker_of[id(thief)])

    def _wake(self, w: Worker) -> None:
        if not w.woken:
            w.woken = True
            self._at(self.now + self.costs.wakeup + self._late(), self._woke, w)

    # Cores ---------------------------------------------------------------------------
    def _acquire(self, w: Worker, then: Callable[[Worker], None]) -> None:
        core = self.cores[w.core]
        if core.holder is None:
            core.holder = w
            then(w)
        else:
            core.runq.append((w, then))

    def _release(self, w: Worker) -> None:
        core = self.cores[w.core]
        core.holder = None
        if core.runq:
            nxt, then = core.runq.popleft()
            core.holder = nxt
            self._at(self.now, then, nxt)

    # The worker's wait, as KqueueCore._wait / _scan / _release_owned -----------------
    def _begin_wait(self, w: Worker) -> None:
        owned, w.owned = w.owned, []
        for conn in owned:
            conn.owner = None
            if conn.pending:  # released still readable: activated again
                self._activate(conn)
        kevq = w.kevq
        kevq.account_wait(self.now)
        w.nevents = kevq.batch_limit(self._batch, self.cfg.freq) if self.cfg.freq else self._batch
        kevq.waiting = True
        self._scan(w)

    def _woke(self, w: Worker) -> None:
        self._acquire(w, self._scan_after_sleep)

    def _scan_after_sleep(self, w: Worker) -> None:
        # Only now: a worker queued for its core is still asleep, and woken once.
        w.woken = False
        w.kevq.sleeping = False
        self._scan(w)

    def _scan(self, w: Worker) -> None:
        kevq, sched = w.kevq, self.sched
        rt, normal = kevq.rt, kevq.normal
        rt_budget = realtime_budget(w.nevents, self.cfg.rtshare)
        steals = 0
        batch = w.batch
        while len(batch) < w.nevents:
            if rt and rt_budget > 0:
                kn = rt.popleft()
                rt_budget -= 1
            elif normal:
                kn = normal.popleft()
            elif sched is not None and sched.steal_into(kevq):
                steals += 1
                continue
            else:
                break
            conn = as_conn(kn)
            conn.kevq = None
            rid, service = conn.pending.popleft()
            cold = self.costs.cold if conn.last_core not in (-1, w.core) else 0
            conn.last_core = w.core
            batch.append((rid, service, cold))
            if conn.realtime:
                kevq.realtime_events += 1
            if self._owning:
                conn.owner = w
                w.owned.append(conn)
            elif conn.pending:  # a classic level-triggered socket: queued again at once
                self._activate(conn)
        if not batch:
            kevq.sleeping = True
            if kevq is self.shared:
                self._sleepers.append(w)
            self._release(w)
            return
        when = self._hold_lock(self.now) if self._locked else self.now
        self._at(when + self.costs.harvest + steals * self.costs.steal, self._returned, w)

    def _returned(self, w: Worker) -> None:
        w.kevq.account_return(self.now, len(w.batch))
        w.kevq.waiting = False
        self._serve_next(w)

    # Serving ---------------------------------------------------------------------------
    def _serve_next(self, w: Worker) -> None:
        if not w.batch:
            self._begin_wait(w)
            return
        w.current, service, cold = w.batch.popleft()
        on_core = self._request_ns + cold
        off_core = self.cfg.serve_kernel_ns
        if self._sleeps:
            off_core += service
        else:
            on_core += service
        if off_core:
            self._at(self.now + on_core, self._off_core, (w, off_core))
        else:
            self._at(self.now + on_core, self._served, w)

    def _off_core(self, arg: tuple[Worker, int]) -> None:
        """The request's time that needs no core (sleep service, system calls)."""
        w, wait = arg
        self._release(w)
        self._at(self.now + wait, self._acquire_to_finish, w)

    def _acquire_to_finish(self, w: Worker) -> None:
        self._acquire(w, self._served)

    def _served(self, w: Worker) -> None:
        if self.done[w.current] != _NOT_DONE:
            raise RuntimeError(f"request {w.current} served twice")
        self.done[w.current] = self.now
        self.completed += 1
        self._serve_next(w)

    # The loop --------------------------------------------------------------------------
    def run(self) -> Outcome:
        """Arrivals for warmup + duration, then at most drain_s to finish."""
        start = time.perf_counter()
        self._at(round(self._gap()), self._arrival)
        if self._rt_gap is not None:
            self._at(round(self._rt_gap()), self._rt_arrival)
        for w in self.workers:
            self._acquire(w, self._begin_wait)
        stop = self._measure[1] + round(self.cfg.drain_s * 1e9)
        heap, pop = self._heap, heapq.heappop
        events = 0
        while heap and heap[0][0] <= stop:
            when, _, action, arg = pop(heap)
            self.now = when
            action(arg)
            events += 1
        return Outcome(
            config=self.cfg,
            arrivals=self.arrivals,
            done=self.done,
            latency_sensitive=self.latency_sensitive,
            measure_ns=self._measure,
            end_ns=self.now if not heap else stop,
            events=events,
            wall_s=time.perf_counter() - start,
            stats=self.stats(),
        )

    def stats(self) -> dict[str, Any]:
        if self.sched is not None:
            return self.sched.stats()
        kevqs = (
            [self.shared] if self.workers[0].kevq is self.shared else [w.kevq for w in self.workers]
        )
        return {"policy": self.cfg.design, "kevqs": [k.stats() for k in kevqs]}


_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


def _lateness(p50_ns: int, p99_ns: int, rng: random.Random) -> Callable[[], int]:
    """Draws of the wake-up lateness: a lognormal with the given median and 99th
    percentile (0: none)."""
    if not p50_ns:
        return lambda: 0
    mu, sigma = math.log(p50_ns), math.log(p99_ns / p50_ns) / _Z99
    return lambda: round(rng.lognormvariate(mu, sigma))


def simulate(cfg: SimConfig) -> Outcome:
    return Simulation(cfg).run()
