"""Service-time distributions (drawn by the load generator) and the server's work routines.

The *distribution* lives on the client side: the generator draws each request's service
time and sends it in the frame (see :mod:`skqbench.protocol`), so every server design is
fed exactly the same, seed-reproducible work.  The *work routine* lives on the server
side and must release the GIL while it works, as real Python services do while they wait
for a database or a socket:

* ``sleep`` (default): a precise blocking wait.  ``time.sleep`` is ``clock_nanosleep``
  on Linux and releases the GIL; the thread's timer slack is set to 1 ns first
  (:func:`skqbench.osutil.precise_timer_slack`), otherwise the kernel adds ~50 us to
  every wait, a third of a 150 us service.  It is the default because it stands for I/O-bound
  services and costs no CPU, so on a 2-core box the measurement is about scheduling
  requests onto workers, not about the generator and the server fighting for cores.
* ``sqlite``: a real embedded-database call: an in-memory sqlite3 recursive query whose
  row count is calibrated to the service time.  CPython's sqlite3 module releases the GIL
  inside ``sqlite3_step``; :func:`gil_max_stall_ns` measures it (while 20 ms queries
  run, another thread is never kept from running Python for more than about a
  scheduler time slice; a GIL-holding call of 20 ms stalls it for 20 ms).  It burns
  CPU, so on 2 cores it competes with the generator: use it on bigger machines.
"""

from __future__ import annotations

import abc
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from skqbench import kvstore
from skqbench.osutil import precise_timer_slack
from skqbench.protocol import MAX_SERVICE_NS

WorkFn = Callable[[int], None]

_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ns|us|ms|s)\s*$")


def parse_duration_ns(text: str) -> int:
    """Parse ``"150us"``, ``"1.5ms"``, ``"2s"`` or ``"800ns"`` into nanoseconds."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"bad duration {text!r}: expected a number and ns, us, ms or s")
    return round(float(m.group(1)) * _UNITS[m.group(2)])


class ServiceDist(abc.ABC):
    """Where service times come from: one multiplier per connection, one draw per request."""

    spec: str

    def connection_multipliers(self, connections: int, rng: random.Random) -> list[float]:
        """Per-connection multiplier; 1.0 everywhere unless the distribution has classes."""
        return [1.0] * connections

    @abc.abstractmethod
    def sample_ns(self, rng: random.Random, multiplier: float) -> int:
        """Service time of one request on a connection with ``multiplier``."""

    def sample_rt_ns(self, rng: random.Random, multiplier: float) -> int:
        """A latency-sensitive client's request: by default one like any other."""
        return self.sample_ns(rng, multiplier)

    @abc.abstractmethod
    def mean_ns(self, connections: int) -> float:
        """Expected service time per request when every connection sends at the same rate."""


@dataclass
class Fixed(ServiceDist):
    """Every request takes ``base_ns``."""

    base_ns: int
    spec: str = ""

    def sample_ns(self, rng: random.Random, multiplier: float) -> int:
        return round(self.base_ns * multiplier)

    def mean_ns(self, connections: int) -> float:
        return float(self.base_ns)


@dataclass
class Exponential(ServiceDist):
    """Exponential service times with mean ``base_ns`` (M/M/k-like)."""

    base_ns: int
    spec: str = ""

    def sample_ns(self, rng: random.Random, multiplier: float) -> int:
        return round(rng.expovariate(1.0 / self.base_ns) * multiplier)

    def mean_ns(self, connections: int) -> float:
        return float(self.base_ns)


@dataclass
class Bimodal(ServiceDist):
    """``high_ns`` with probability ``p_high``, otherwise ``low_ns``, drawn per request."""

    low_ns: int
    high_ns: int
    p_high: float
    spec: str = ""

    def sample_ns(self, rng: random.Random, multiplier: float) -> int:
        base = self.high_ns if rng.random() < self.p_high else self.low_ns
        return round(base * multiplier)

    def mean_ns(self, connections: int) -> float:
        return self.low_ns + self.p_high * (self.high_ns - self.low_ns)


@dataclass
class Pareto(ServiceDist):
    """Heavy-tailed service: Pareto with tail index ``shape`` (> 1; at most 2, the
    variance is infinite) scaled to mean ``base_ns``, drawn per request, capped at what
    a frame carries (``MAX_SERVICE_NS``, 4.3 s)."""

    base_ns: int
    shape: float
    spec: str = ""

    @property
    def _scale(self) -> float:
        return self.base_ns * (self.shape - 1) / self.shape  # the smallest service time

    def sample_ns(self, rng: random.Random, multiplier: float) -> int:
        x: float = self._scale * (1.0 - rng.random()) ** (-1.0 / self.shape)
        return min(MAX_SERVICE_NS, round(x * multiplier))

    def mean_ns(self, connections: int) -> float:
        """The capped mean: E[min(X, c)] = m - scale**a * c**(1 - a) / (a - 1)."""
        a, cap = self.shape, float(MAX_SERVICE_NS)
        tail: float = self._scale**a * cap ** (1 - a) / (a - 1)
        return self.base_ns - tail


DEFAULT_MIX: tuple[tuple[float, float], ...] = ((0.95, 1.0), (0.04, 5.0), (0.01, 20.0))


@dataclass
class Classes(ServiceDist):
    """Per-connection classes as in SKQ's benchmark: by default 95 % 1x, 4 % 5x, 1 % 20x.

    Classes are given to connections, not drawn per request, which is what makes a
    static connection-to-thread design imbalanced.  The counts are apportioned exactly
    (largest remainder, at least one connection for a class when there are enough
    connections) and shuffled with the seed, so the mix is reproducible.
    """

    base_ns: int
    mix: Sequence[tuple[float, float]] = field(default_factory=lambda: DEFAULT_MIX)
    spec: str = ""

    def _counts(self, connections: int) -> list[int]:
        shares = [share * connections for share, _ in self.mix]
        counts = [int(s) for s in shares]
        if connections >= len(self.mix):
            counts = [max(c, 1) for c in counts]
        order = sorted(range(len(shares)), key=lambda i: shares[i] - int(shares[i]), reverse=True)
        i = 0
        while sum(counts) < connections:
            counts[order[i % len(order)]] += 1
            i += 1
        while sum(counts) > connections:  # the max(c, 1) above took from the largest class
            counts[counts.index(max(counts))] -= 1
        return counts

    def connection_multipliers(self, connections: int, rng: random.Random) -> list[float]:
        mults = [
            mult
            for (_, mult), count in zip(self.mix, self._counts(connections), strict=True)
            for _ in range(count)
        ]
        rng.shuffle(mults)
        return mults

    def sample_ns(self, rng: random.Random, multiplier: float) -> int:
        return round(self.base_ns * multiplier)

    def mean_ns(self, connections: int) -> float:
        counts = self._counts(connections)
        total = sum(c * mult for c, (_, mult) in zip(counts, self.mix, strict=True))
        return self.base_ns * total / connections


@dataclass
class KvMix(ServiceDist):
    """The key-value experiment's requests as service times: the background mix of
    :meth:`skqbench.kvstore.Dataset.draw` (GET 83 %, PUT 14 %, SEEK 3 % with its
    heavy-tailed run), each costing what that store call costs, a SEEK ``get_ns`` plus
    ``next_ns`` per record; a latency-sensitive client's request is a GET."""

    get_ns: int
    put_ns: int
    next_ns: int
    spec: str = ""

    def sample_ns(self, rng: random.Random, multiplier: float) -> int:
        op = _KV_DRAW.draw(rng)
        if op.op == "get":
            base = self.get_ns
        elif op.op == "put":
            base = self.put_ns
        else:
            base = self.get_ns + op.arg * self.next_ns
        return round(base * multiplier)

    def sample_rt_ns(self, rng: random.Random, multiplier: float) -> int:
        return round(self.get_ns * multiplier)

    def mean_ns(self, connections: int) -> float:
        (_, get), (_, put), (_, seek) = kvstore.MIX
        return (
            get * self.get_ns
            + put * self.put_ns
            + seek * (self.get_ns + kvstore.mean_scan_length() * self.next_ns)
        )


# Draws only the mix, never a key's record: any data set size draws the same ops.
_KV_DRAW = kvstore.Dataset(keys=1)


def parse_dist(spec: str) -> ServiceDist:
    """Parse ``fixed:150us``, ``exp:150us``, ``bimodal:100us:1ms:0.1``, ``classes:150us``,
    ``pareto:150us:1.5`` (mean, tail index) or ``kv:GET:PUT:NEXT`` (the key-value mix
    from its store calls' costs)."""
    kind, _, rest = spec.partition(":")
    args = rest.split(":") if rest else []
    dist: ServiceDist
    try:
        if kind == "fixed" and len(args) == 1:
            dist = Fixed(parse_duration_ns(args[0]))
        elif kind == "exp" and len(args) == 1:
            dist = Exponential(parse_duration_ns(args[0]))
        elif kind == "bimodal" and len(args) == 3:
            p = float(args[2])
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"probability {p} not in [0, 1]")
            dist = Bimodal(parse_duration_ns(args[0]), parse_duration_ns(args[1]), p)
        elif kind == "classes" and len(args) == 1:
            dist = Classes(parse_duration_ns(args[0]))
        elif kind == "pareto" and len(args) == 2:
            shape = float(args[1])
            if not 1.0 < shape <= 100.0:
                raise ValueError(f"shape {shape} not in (1, 100]")
            dist = Pareto(parse_duration_ns(args[0]), shape)
        elif kind == "kv" and len(args) == 3:
            get, put, nxt = (parse_duration_ns(a) for a in args)
            dist = KvMix(get, put, nxt)
        else:
            raise ValueError("unknown kind or wrong number of fields")
    except ValueError as exc:
        raise ValueError(
            f"bad service distribution {spec!r} ({exc}); use fixed:T, exp:T, "
            "bimodal:LOW:HIGH:P, classes:BASE, pareto:MEAN:SHAPE or kv:GET:PUT:NEXT"
        ) from None
    dist.spec = spec
    return dist


# ---------------------------------------------------------------- server-side work


class SleepWork:
    """I/O stand-in: block (GIL released) for the service time.

    Even with 1 ns of timer slack a wake-up comes some tens of microseconds late (timer
    interrupt and scheduling, more on a VM); that overshoot is measured once and
    subtracted, so the mean service time is the one asked for.
    """

    def __init__(self, probe_ns: int = 100_000, probes: int = 50) -> None:
        precise_timer_slack()
        start = time.perf_counter_ns()
        for _ in range(probes):
            time.sleep(probe_ns / 1e9)
        self.overshoot_ns = max(0, (time.perf_counter_ns() - start) // probes - probe_ns)

    def __call__(self, service_ns: int) -> None:
        precise_timer_slack()
        wait_ns = service_ns - self.overshoot_ns
        if wait_ns > 0:
            time.sleep(wait_ns / 1e9)


_QUERY = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
    "SELECT count(*) FROM c"
)


class SqliteWork:
    """Embedded-database work: one in-memory connection per thread, rows sized to the time.

    The whole query runs inside one ``sqlite3_step``, during which CPython releases the GIL.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self.ns_per_row = self._calibrate()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(":memory:", check_same_thread=True)
            self._local.conn = conn
        return conn

    def _calibrate(self, rows: int = 200_000) -> float:
        self._run_rows(rows // 10)  # warm up
        start = time.perf_counter_ns()
        self._run_rows(rows)
        return max(time.perf_counter_ns() - start, 1) / rows

    def _run_rows(self, rows: int) -> None:
        self._conn().execute(_QUERY, (max(rows, 1),)).fetchone()

    def __call__(self, service_ns: int) -> None:
        self._run_rows(round(service_ns / self.ns_per_row))


WORK_KINDS = ("sleep", "sqlite")


def make_work(kind: str) -> WorkFn:
    """The server-side work routine by name (one of :data:`WORK_KINDS`)."""
    if kind == "sleep":
        return SleepWork()
    if kind == "sqlite":
        return SqliteWork()
    raise ValueError(f"unknown work kind {kind!r}; choose from {', '.join(WORK_KINDS)}")


def gil_max_stall_ns(work: WorkFn, service_ns: int, calls: int = 5) -> int:
    """The longest time a second thread went without running Python while ``work`` ran.

    A routine that holds the GIL stalls the other thread for about ``service_ns`` per
    call; one that releases it stalls it for no more than a scheduler time slice, even
    when both threads share one busy core.
    """
    done = threading.Event()

    def run() -> None:
        for _ in range(calls):
            work(service_ns)
        done.set()

    worker = threading.Thread(target=run)
    last = time.perf_counter_ns()
    stall = 0
    worker.start()
    while not done.is_set():
        now = time.perf_counter_ns()
        stall = max(stall, now - last)
        last = now
    worker.join()
    return stall


@dataclass(frozen=True)
class Lateness:
    """How late a probe thread woke, in ns, while something else ran."""

    p50_ns: int
    p99_ns: int
    max_ns: int


def probe_lateness(run: Callable[[], None], seconds: float, period_ns: int = 100_000) -> Lateness:
    """Call ``run`` in a loop for ``seconds`` while a probe thread asks to wake every
    ``period_ns`` and records how late it ran Python again: a call that holds the GIL
    shows as lateness as long as itself; one that drops it, as little more than an idle
    machine's (the baseline: ``run`` that sleeps)."""
    stop = threading.Event()
    lates: list[int] = []

    def probe() -> None:
        precise_timer_slack()
        due = time.perf_counter_ns() + period_ns
        while not stop.is_set():
            wait = due - time.perf_counter_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            now = time.perf_counter_ns()
            lates.append(now - due)
            due = max(due + period_ns, now)

    thread = threading.Thread(target=probe)
    thread.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        run()
    stop.set()
    thread.join()
    lates.sort()
    return Lateness(lates[len(lates) // 2], lates[len(lates) * 99 // 100], lates[-1])
