"""The one interface every server design implements, and what they share.

A design is a :class:`Server` subclass in its own module (see :data:`DESIGNS`).  It runs
inside a server process started by :mod:`skqbench.servers.harness`, never in the load
generator's interpreter.  ``start`` binds loopback (port 0 unless told otherwise),
starts the workers and returns the port; ``stop`` ends them; ``stats`` is JSON-ready.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import functools
import importlib
import logging
import random
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from skqbench.kvstore import MAX_SCAN, VALUE_MAX, Dataset, KvService, Store, load
from skqbench.probe import WakeProbe
from skqbench.protocol import (
    KV_MAX_SCAN,
    KV_MAX_VALUE,
    KV_PUT,
    KV_SEEK,
    Framer,
    Job,
    KvRequest,
    ProtocolError,
)
from skqbench.service import WORK_KINDS, WorkFn, make_work, parse_dist, parse_duration_ns
from skqueue.sched import RTRESERVE_MAX

LOOPBACK = "127.0.0.1"
BACKLOG = 4096
ACCEPT_BACKOFF_S = 0.5  # as nginx: out of fds, stop watching the listener this long
# accept() errors that say "not now" (the pending connection keeps the listener readable,
# so retrying at once spins), as opposed to a listener closed by stop()
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

log = logging.getLogger("skqbench.servers")

DESIGNS: dict[str, str] = {
    "skq": "skqbench.servers.skq",
    "vanilla": "skqbench.servers.vanilla",
    "dispatch": "skqbench.servers.dispatch",
    "asyncio": "skqbench.servers.asyncio_pool",
    "uvloop": "skqbench.servers.uvloop_pool",
    "reuseport": "skqbench.servers.reuseport",
}

# What a server serves: timed requests with a work routine, or the key-value store.
SERVED = (*WORK_KINDS, "kv")

_POLICY = re.compile(r"^(?:(random|auto)|(queue|cpu)(\d*)|(best)(\d+))(?:\+ws(\d*))?$")


@dataclass(frozen=True)
class Policy:
    """An SKQ scheduling policy by name: ``random``, ``queue``, ``cpu``, ``bestN``,
    hybrids ``queueN`` / ``cpuN`` (N other queues sampled), each optionally ``+ws``
    (work stealing, ``+wsK`` to steal K events at a time, default 1)."""

    name: str
    kind: str  # random | queue | cpu | best
    sargs: int
    steal: int  # events per steal, 0 = no work stealing


def parse_policy(name: str) -> Policy:
    """Validate an SKQ policy name without needing the skqueue core."""
    m = _POLICY.match(name)
    if m is None:
        raise ValueError(
            f"bad SKQ policy {name!r}; use random, queue, cpu, bestN, queueN, cpuN or auto, "
            "optionally followed by +ws"
        )
    random_, affinity, hybrid_n, best, best_n, ws = m.groups()
    kind = random_ or affinity or best
    if kind == "auto" and ws is not None:
        raise ValueError(f"bad SKQ policy {name!r}: auto decides stealing itself")
    sargs = int(best_n or hybrid_n or 0)
    if best and sargs < 1:
        raise ValueError(f"bad SKQ policy {name!r}: best needs N >= 1")
    steal = 0 if ws is None else int(ws or 1)
    return Policy(name, kind, sargs, steal)


@dataclass(frozen=True)
class ServerConfig:
    """Everything a server process needs; picklable, so it crosses to the child."""

    design: str = "skq"
    workers: int = 4
    policy: str = "best2"  # used by the skq design only
    work: str = "sleep"
    port: int = 0
    reuseport: bool = False
    sockperf_service: str = "fixed:400us"  # for sockperf messages, which carry no time
    # A client-chosen service time over this is refused: the connection is closed, as for
    # a malformed frame (clamping would serve it with a time the client did not ask for).
    # 1 s is 125 times the longest the benchmarks ask for (20 x 400 us).
    max_service: str = "1s"
    # Longest a reply may wait for the client to read; then that connection is dropped,
    # so a client that stops reading holds a worker (or buffer space) this long at most.
    send_timeout: str = "1s"
    # Pool designs: requests of one connection in the pool at once, so that one
    # pipelining connection cannot take every thread; 0 is workers - 1 (at least 1).
    max_inflight: int = 0
    # work="kv": the data set (see skqbench.kvstore) and the caps on what one request may
    # ask for; a request over a cap closes its connection, as a malformed frame does.
    kv_keys: int = Dataset.keys
    kv_seed: int = Dataset.seed
    kv_max_value: int = 4 * VALUE_MAX
    kv_max_scan: int = MAX_SCAN
    # The skq design's KQTUNE_RTRESERVE: worker threads kept for realtime connections.
    rtreserve: int = 0
    # Run a :class:`~skqbench.probe.WakeProbe` in the process(es) that serve, and report
    # its figures under ``stats()["probe"]`` (read and reset by each stats call).
    probe: bool = False

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ValueError(f"unknown design {self.design!r}; choose from {', '.join(DESIGNS)}")
        if self.work not in SERVED:
            raise ValueError(f"unknown work {self.work!r}; choose from {', '.join(SERVED)}")
        for name in (
            "workers",
            "rtreserve",
            "max_inflight",
            "kv_keys",
            "kv_seed",
            "kv_max_value",
            "kv_max_scan",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if not 0 <= self.rtreserve <= RTRESERVE_MAX:
            raise ValueError(f"rtreserve must be 0 to {RTRESERVE_MAX}")
        if self.max_inflight < 0:
            raise ValueError("max_inflight must be 0 (automatic) or more")
        if not 0 <= self.kv_max_value <= KV_MAX_VALUE or not 1 <= self.kv_max_scan <= KV_MAX_SCAN:
            raise ValueError(
                f"kv_max_value must be 0 to {KV_MAX_VALUE}, kv_max_scan 1 to {KV_MAX_SCAN}"
            )
        Dataset(self.kv_keys, self.kv_seed)
        if self.design == "skq":
            parse_policy(self.policy)
        parse_dist(self.sockperf_service)
        for name in ("max_service", "send_timeout"):
            if parse_duration_ns(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be a positive duration")

    @property
    def max_service_ns(self) -> int:
        """:attr:`max_service` in nanoseconds."""
        return parse_duration_ns(self.max_service)

    @property
    def send_timeout_s(self) -> float:
        """:attr:`send_timeout` in seconds."""
        return parse_duration_ns(self.send_timeout) / 1e9

    @property
    def inflight_limit(self) -> int:
        """:attr:`max_inflight` with 0 resolved."""
        return self.max_inflight or max(1, self.workers - 1)

    @property
    def dataset(self) -> Dataset:
        """The key-value data set (used when ``work`` is ``kv``)."""
        return Dataset(self.kv_keys, self.kv_seed)

    @property
    def label(self) -> str:
        """Short name for tables and plot legends."""
        what = f"skq {self.policy}" if self.design == "skq" else self.design
        if self.design == "skq" and self.rtreserve:
            what += f" rt{self.rtreserve}"
        return f"{what} x{self.workers}"


class Server(abc.ABC):
    """One server design.  Subclasses serve :mod:`skqbench.protocol` frames: timed ones
    with the ``work`` routine, key-value ones (``work="kv"``) against the store.  The
    server is the framings' :class:`~skqbench.protocol.Handler`; the jobs it returns run
    in whatever thread the design serves in."""

    serves_here = True  # False: child processes serve (and probe), not this one

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.work: WorkFn | None = None
        self.kv_service: KvService | None = None
        if cfg.work == "kv":
            self.kv_service = KvService(Store(load(cfg.dataset), cfg.kv_keys))
        else:
            self.work = make_work(cfg.work)
        self._sockperf_dist = parse_dist(cfg.sockperf_service)
        self._rng = random.Random(0)
        self._served: dict[str, int] = {}
        self._served_lock = threading.Lock()
        self._events: dict[str, int] = {}
        self._max_service_ns = cfg.max_service_ns
        self.probe = WakeProbe() if cfg.probe and self.serves_here else None

    @abc.abstractmethod
    def start(self) -> int:
        """Bind loopback, start serving, return the TCP port."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop every worker and close every socket."""

    @contextlib.contextmanager
    def running(self) -> Iterator[int]:
        """start() (the port) and, at the end, stop(), with the probe running between."""
        port = self.start()
        try:
            if self.probe:
                self.probe.start()
            yield port
        finally:
            try:
                if self.probe:
                    self.probe.stop()
            finally:
                self.stop()

    def sockperf_service_ns(self) -> int:
        """Service time for a sockperf message (drawn here: the message has none)."""
        return self._sockperf_dist.sample_ns(self._rng, 1.0)

    def respond(self, framer: Framer, frame: bytes) -> Job:
        """The job for a frame; ProtocolError for one this server must not serve."""
        return framer.respond(frame, self)

    def timed(self, service_ns: int | None, reply: bytes | None) -> Job:
        """A timed request's job; ProtocolError for a client-chosen service time over
        ``max_service``, which would stall everything queued behind it."""
        work = self.work
        if work is None:
            raise ProtocolError("timed request to a key-value server")
        if service_ns is None:
            service_ns = self.sockperf_service_ns()
        elif service_ns > self._max_service_ns:
            raise ProtocolError(f"service time {service_ns} ns over max_service")
        return functools.partial(_timed_job, work, service_ns, reply)

    def kv(self, req: KvRequest) -> Job:
        """A key-value request's job; ProtocolError on a server without the store, or
        for a PUT or SEEK over this server's caps."""
        if self.kv_service is None:
            raise ProtocolError("key-value request to a server without a store")
        if req.op == KV_PUT and len(req.value) > self.cfg.kv_max_value:
            raise ProtocolError(f"value of {len(req.value)} bytes over kv_max_value")
        if req.op == KV_SEEK and req.arg > self.cfg.kv_max_scan:
            raise ProtocolError(f"scan of {req.arg} records over kv_max_scan")
        return functools.partial(self.kv_service.serve, req)

    def count(self, event: str) -> None:
        """Count a connection-level fault (``protocol_error``, ``slow_reader``,
        ``accept_backoff``) for :meth:`stats`: faults are handled, never silent."""
        with self._served_lock:
            self._events[event] = self._events.get(event, 0) + 1

    def accept_pending(self, listener: socket.socket) -> tuple[list[socket.socket], bool]:
        """Accept every pending connection on a non-blocking listener.  The flag is True
        when the process is out of fds or memory: the caller must then stop watching the
        listener for :data:`ACCEPT_BACKOFF_S`, since the pending connection keeps it
        readable and an immediate retry spins."""
        socks: list[socket.socket] = []
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return socks, False
            except OSError as exc:
                if exc.errno not in OUT_OF_RESOURCES:
                    return socks, False  # listener closed by stop()
                self.count("accept_backoff")
                log.warning("accept: %s; not accepting for %.1f s", exc, ACCEPT_BACKOFF_S)
                return socks, True
            socks.append(sock)

    def serve_request(self, worker: str, job: Job) -> bytes | None:
        """Run a request's job, count it against ``worker``, return its reply."""
        reply = job()
        try:
            self._served[worker] += 1
        except KeyError:
            with self._served_lock:
                self._served[worker] = self._served.get(worker, 0) + 1
        return reply

    def stats(self) -> dict[str, Any]:
        """Configuration and requests served per worker (shows imbalance across workers)."""
        served = dict(self._served)
        with self._served_lock:
            events = dict(self._events)
        return {
            "config": asdict(self.cfg),
            "served": served,
            "served_total": sum(served.values()),
            "events": events,
            **({"probe": self.probe.read()} if self.probe else {}),
        }


def _timed_job(work: WorkFn, service_ns: int, reply: bytes | None) -> bytes | None:
    work(service_ns)
    return reply


def load_design(name: str) -> type[Server]:
    """Import a design's module only when asked, so designs that need the skqueue core
    do not stop the others from running."""
    module = importlib.import_module(DESIGNS[name])
    design: type[Server] = module.DESIGN
    return design


def listen_socket(port: int = 0, reuseport: bool = False) -> socket.socket:
    """A listening TCP socket on loopback only."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(BACKLOG)
    return sock


class Connection:
    """A server-side connection driven by readiness events, one request per event.

    Reading at most one frame per event keeps every design fair: a connection with
    several pipelined requests is re-reported (level-triggered) instead of keeping a
    worker for all of them.
    """

    __slots__ = ("fd", "framer", "prioritised", "sock")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.fd = sock.fileno()
        self.framer = Framer()
        self.prioritised = False  # a design that can has acted on framer.realtime

    def serve_one(self, server: Server, worker: str) -> bool:
        """Handle what one readiness event allows; False once the connection must be
        closed (end of file, socket error, or a malformed frame)."""
        try:
            data = self.sock.recv(self.framer.wanted())
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        try:
            frames = self.framer.feed(data)
            for frame in frames:  # never more than one: recv stops at the frame's end
                reply = server.serve_request(worker, server.respond(self.framer, frame))
                if reply is not None and not self._send(server, reply):
                    return False
        except ProtocolError:
            server.count("protocol_error")
            return False
        return True

    def _send(self, server: Server, data: bytes) -> bool:
        """Send a reply; False (drop the connection) on error or when the client does
        not take it within ``send_timeout``, which bounds how long it holds the worker."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return False
        if sent < len(data):  # full send buffer: rare, finish with a deadline
            try:
                # the timeout bounds the whole sendall, not each partial send
                self.sock.settimeout(server.cfg.send_timeout_s)
                self.sock.sendall(data[sent:])
                self.sock.setblocking(False)
            except TimeoutError:
                server.count("slow_reader")
                return False
            except OSError:
                return False
        return True

    def close(self) -> None:
        self.sock.close()
