"""The ``skqueue`` command: benchmarks, a server for your own tools, scheduler statistics.

skqueue bench reproduce [--quick]   both experiments below, end to end
skqueue bench reproduce imbalance   the imbalanced-workload comparison
skqueue bench reproduce kv          latency-sensitive GETs beside a key-value mix, every design
skqueue bench sweep ...             any configuration (design x policy x workers)
skqueue bench load --port P --rate R  one point against a running server, as JSON
skqueue bench kv [--quick]          one key-value point, latency-sensitive vs background
skqueue bench crosscheck            our generator vs sockperf, same server and rate
skqueue bench report DIR            redo plots and table from a results folder
skqueue sim run ...                 the same plots and table from a simulated server
skqueue sim grid [--quick]          every fixed SKQ policy and auto over a workload grid
skqueue serve ...                   run one server design on loopback
skqueue stats                       scheduler statistics of a running server
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, NoReturn, TypeVar

if TYPE_CHECKING:
    from rich.console import Console

from skqbench import kvexp, kvstore
from skqbench.control import check_control_path, default_control_path, query
from skqbench.loadgen import ARRIVALS, LoadGenerator, LoadSpec
from skqbench.protocol import KV_MAX_VALUE, MAX_SERVICE_NS
from skqbench.servers.base import DESIGNS, SERVED, ServerConfig, parse_policy
from skqbench.servers.harness import ServerProcess, run_server
from skqbench.service import WORK_KINDS, parse_dist, parse_duration_ns
from skqbench.sim.costs import Costs
from skqbench.sim.engine import DESIGNS as SIM_DESIGNS
from skqbench.sim.engine import WORKS, SimConfig
from skqbench.sim.run import SimPlan, Speed, run_sim
from skqbench.sweep import (
    RESULTS_FILE,
    Point,
    Progress,
    SweepPlan,
    SweepResults,
    load_results,
    run_interleaved,
    run_sweep,
)
from skqueue.sched import RTRESERVE_MAX

BENCH_EXTRA = "pip install 'skqueue[bench]'"
# Third-party modules (the bench extra) each command imports; checked before it runs.
NEEDS: dict[str, tuple[str, ...]] = {
    "reproduce": ("hdrh", "matplotlib", "rich"),
    "sweep": ("hdrh", "matplotlib", "rich"),
    "report": ("matplotlib", "rich"),
    "load": ("hdrh",),
    "kv": ("hdrh", "lmdb"),
    "crosscheck": ("hdrh",),
    "sim": ("matplotlib", "rich"),
    "validate": ("hdrh", "matplotlib", "rich"),
}

# The main demo (see ``reproduce_plan``): SKQ's imbalanced per-connection classes.
REPRO_CONNECTIONS = 64
REPRO_WORKERS = 4
REPRO_SKQ_QUICK = ("best2", "best2+ws")
REPRO_SKQ_FULL = tuple(
    p + ws for ws in ("", "+ws") for p in ("random", "queue", "cpu", "best2", "queue2", "cpu2")
)
REPRO_BASELINES = ("vanilla", "dispatch", "asyncio", "uvloop", "reuseport")
EXPERIMENTS = ("imbalance", "kv")
# reproduce's options that only one experiment reads: named with the other, an error.
EXPERIMENT_ONLY = {"imbalance": ("base_us", "work", "slo_factor"), "kv": ("keys", "probe")}
# 'sim validate' (issue 15): reproduce's plan, these designs, at least three SKQ policies.
VALIDATE_DESIGNS = ("vanilla", "skq", "dispatch", "asyncio")
VALIDATE_SKQ_QUICK = (*REPRO_SKQ_QUICK, "queue")
# The key-value point (issue 14): background mix and latency-sensitive GETs.
KV_RATE = 1000.0
KV_RT_RATE = 200.0
KV_RT_CONNECTIONS = 4
MAX_KEYS = 100_000_000
# Base service time: long enough that 4 workers saturate on service time (where
# scheduling matters) before this 2-core box runs out of CPU for Python dispatch
# (measured: see benchmarks/reproduce/README.md).
REPRO_BASE_US = 400.0


N = TypeVar("N", int, float)

MAX_PORT = 65535
MAX_SECONDS = 3600.0  # per point or per tool: the histograms hold up to an hour
MAX_RATE = 10_000_000.0
MAX_CONNECTIONS = 10_000
MAX_PROCESSES = 256
MAX_WORKERS = 1024
MAX_STEPS = 1000
MAX_LOAD = 100.0
DIST_HELP = (
    "fixed:T, exp:T, bimodal:LOW:HIGH:P, classes:BASE, pareto:MEAN:SHAPE (heavy-tailed) or "
    "kv:GET:PUT:NEXT (the key-value mix, from its store calls' costs)"
)
MAX_SIM_REQUESTS = 10_000_000  # per simulated point: every latency is kept in memory
MAX_SLO_FACTOR = 1e6
MAX_BASE_US = 100_000.0  # its 20x class stays under the protocol's MAX_SERVICE_NS
MAX_SEED = 2**63 - 1
MAX_PATH_BYTES = 4095  # PATH_MAX less the NUL
SKQ_ARG_MAX = 0xFF  # sargs and fargs are one byte each in FKQMULTI's argument
# 'skqueue serve ... & skqueue stats' runs stats before the server has bound its socket.
DEFAULT_WAIT_S = 10.0


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, ``skqueue serve: error: ...``: a subcommand's full usage
    is a screenful that buries the one thing that was wrong."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(
    kind: Callable[[str], N], low: N, high: N, what: str, above: bool = False
) -> Callable[[str], N]:
    """An argparse type for a finite ``kind`` in [low, high] (or (low, high] if ``above``)."""
    bounds = f"> {low:g}" if above else f">= {low:g}"
    expected = f"{what} {bounds} and <= {high:g}"

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            value = None
        # NaN and the infinities fail the comparison; a huge int never becomes a float.
        if value is None or not low <= value <= high or (above and value == low):
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}")
        return value

    parse.__name__ = what
    return parse


def _add_rtreserve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rtreserve",
        type=_number(int, 0, RTRESERVE_MAX, "a thread count"),
        default=0,
        help="skq design: KQTUNE_RTRESERVE, worker threads kept for the latency-sensitive "
        "(EV_REALTIME) connections, at most workers - 1 in effect (default %(default)s)",
    )


def _rates(text: str) -> list[float]:
    parts = text.split(",")
    if not any(r.strip() for r in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of rates separated by commas")
    return [_rate(r) for r in parts if r.strip()]


def _dist(text: str) -> str:
    try:
        mean_ns = parse_dist(text).mean_ns(1)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < mean_ns <= MAX_SERVICE_NS:
        raise argparse.ArgumentTypeError(
            f"bad service distribution {text!r}: the mean must be > 0 and "
            f"<= {MAX_SERVICE_NS / 1e9:.2f} s"
        )
    return text


def _fixed_or_exp(text: str) -> str:
    """sockperf's messages carry no service time, so the server draws it per message:
    per-connection classes cannot be the same for both tools."""
    if text.partition(":")[0] not in ("fixed", "exp"):
        raise argparse.ArgumentTypeError(f"bad service {text!r}: use fixed:T or exp:T")
    return _dist(text)


def _policy(text: str) -> str:
    try:
        policy = parse_policy(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if policy.sargs > SKQ_ARG_MAX or policy.steal > SKQ_ARG_MAX:
        raise argparse.ArgumentTypeError(
            f"bad SKQ policy {text!r}: N (bestN, queueN, cpuN) and K (+wsK) must be "
            f"<= {SKQ_ARG_MAX}"
        )
    return policy.name


def _path(text: str) -> str:
    raw = os.fsencode(text)
    if not raw or b"\0" in raw or len(raw) > MAX_PATH_BYTES:
        raise argparse.ArgumentTypeError(
            f"not a usable path ({len(raw)} bytes; must be 1 to {MAX_PATH_BYTES}, no NUL)"
        )
    return text


def _control_path(text: str) -> str:
    try:
        return check_control_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a control socket path: {exc}") from None


_port_any = _number(int, 0, MAX_PORT, "a port")
_port = _number(int, 1, MAX_PORT, "a port")
_seconds = _number(float, 0.0, MAX_SECONDS, "a number of seconds", above=True)
_seconds_or_zero = _number(float, 0.0, MAX_SECONDS, "a number of seconds")
_rate = _number(float, 0.0, MAX_RATE, "a rate", above=True)
_connections = _number(int, 1, MAX_CONNECTIONS, "a connection count")
_processes = _number(int, 1, MAX_PROCESSES, "a process count")
_workers = _number(int, 1, MAX_WORKERS, "a worker count")
_seed = _number(int, 0, MAX_SEED, "a seed")


def _duration(text: str) -> str:
    """A server limit such as 500ms or 2s: positive and at most MAX_SECONDS."""
    try:
        ns = parse_duration_ns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < ns <= MAX_SECONDS * 1e9:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration > 0 and <= {MAX_SECONDS:g} s (e.g. 500ms, 2s)"
        )
    return text


def _add_common(p: argparse.ArgumentParser, quick: bool) -> None:
    """What every load-generating command takes; ``quick`` if it has ``--quick``."""
    p.add_argument(
        "--connections",
        type=_connections,
        default=REPRO_CONNECTIONS,
        help="client connections (default %(default)s)",
    )
    p.add_argument(
        "--arrival",
        choices=ARRIVALS,
        default="poisson",
        help="arrival process (pareto: mutilate's fb_ia shape; default %(default)s)",
    )
    p.add_argument(
        "--processes",
        type=_processes,
        default=1,
        help="load generator processes (default %(default)s; 1 leaves a core "
        "to the server on a 2-core machine)",
    )
    p.add_argument(
        "--duration",
        type=_seconds,
        default=None,
        help="measured seconds per point (default "
        + ("1 with --quick, else 2.5)" if quick else "2.5)"),
    )
    p.add_argument(
        "--warmup",
        type=_seconds_or_zero,
        default=None,
        help="unmeasured seconds before each point (default "
        + ("0.3 with --quick, else 0.5)" if quick else "0.5)"),
    )
    p.add_argument("--seed", type=_seed, default=1, help="random seed (default %(default)s)")


def _add_sweep_options(p: argparse.ArgumentParser, quick: bool) -> None:
    """The options of a sweep (reproduce, sweep): servers it starts, SLO, report folder."""
    _add_common(p, quick)
    p.add_argument(
        "--work",
        choices=WORK_KINDS,
        default="sleep",
        help="server-side service routine (default %(default)s)",
    )
    _add_slo(p)
    p.add_argument(
        "--out", type=_path, default=None, help="report folder (default results/<command>-<time>)"
    )


def _add_slo(p: argparse.ArgumentParser) -> None:
    """The p99 SLO a report draws and counts low-latency throughput under."""
    slo = p.add_mutually_exclusive_group()
    slo.add_argument(
        "--slo-factor",
        type=_number(float, 0.0, MAX_SLO_FACTOR, "a factor", above=True),
        default=20.0,
        help="p99 SLO as a multiple of the mean service time (default %(default)s)",
    )
    slo.add_argument(
        "--slo-us",
        type=_number(float, 0.0, MAX_SECONDS * 1e6, "a number of microseconds", above=True),
        default=None,
        help="p99 SLO in microseconds",
    )


def _add_loads(p: argparse.ArgumentParser) -> None:
    """The offered loads: a list, or evenly spaced steps up to a fraction of capacity."""
    rates = p.add_mutually_exclusive_group()
    rates.add_argument(
        "--rates",
        type=_rates,
        help="offered loads in requests/s, comma separated",
    )
    rates.add_argument(
        "--steps",
        type=_number(int, 1, MAX_STEPS, "a step count"),
        default=10,
        help="number of evenly spaced loads up to --max-load (default %(default)s)",
    )
    p.add_argument(
        "--max-load",
        type=_number(float, 0.0, MAX_LOAD, "a load", above=True),
        default=1.0,
        help="highest load as a fraction of workers / mean service time (default %(default)s)",
    )
    p.add_argument(
        "--min-load",
        type=_number(float, 0.0, MAX_LOAD, "a load", above=True),
        default=None,
        help="lowest load, as --max-load; the steps are then spaced geometrically from it "
        "to --max-load, the same relative resolution at every load (default: evenly spaced)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="skqueue", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="benchmarks: reproduce, sweep, load, crosscheck, report")
    bsub = bench.add_subparsers(dest="bench_command", required=True)

    rep = bsub.add_parser("reproduce", help="SKQ vs the usual designs: imbalance, kv or both")
    rep.add_argument(
        "experiment",
        nargs="?",
        choices=EXPERIMENTS,
        help="imbalance (per-connection classes) or kv (latency-sensitive GETs); "
        "default both, each in its own subfolder of --out",
    )
    rep.add_argument("--quick", action="store_true", help="under three minutes each on 2 cores")
    _add_reproduce_shape(rep)
    rep.add_argument(
        "--keys",
        type=_number(int, 1, MAX_KEYS, "a key count"),
        default=None,
        help=f"kv: records in the store (default {kvstore.KEYS_FULL:,}; "
        f"{kvstore.KEYS_QUICK:,} with --quick)",
    )
    rep.add_argument(
        "--probe",
        action="store_true",
        help="kv: run a wake-up probe in every server (skqbench.probe); the summary then "
        "shows how late a woken server thread runs and the server's CPU use",
    )
    _add_sweep_options(rep, quick=True)
    rep.set_defaults(parser=rep, run=cmd_reproduce)

    sw = bsub.add_parser("sweep", help="latency vs load for any configurations")
    sw.add_argument(
        "--design",
        action="append",
        choices=list(DESIGNS),
        help="server design, repeatable (default skq)",
    )
    sw.add_argument(
        "--policy",
        action="append",
        type=_policy,
        help="SKQ policy for the skq design, repeatable (default best2)",
    )
    sw.add_argument(
        "--workers", action="append", type=_workers, help="worker count, repeatable (default 4)"
    )
    sw.add_argument(
        "--dist",
        type=_dist,
        default="classes:400us",
        help=f"{DIST_HELP} (default %(default)s)",
    )
    _add_loads(sw)
    _add_sweep_options(sw, quick=False)
    sw.set_defaults(parser=sw, plan=sweep_plan)

    ld = bsub.add_parser(
        "load", help="one load point against a running server ('skqueue serve'), printed as JSON"
    )
    ld.add_argument("--port", type=_port, required=True, help="the server's loopback port")
    ld.add_argument("--rate", type=_rate, required=True, help="offered requests/s")
    ld.add_argument(
        "--dist",
        type=_dist,
        default="classes:400us",
        help=f"service times the requests ask for: {DIST_HELP} (default %(default)s)",
    )
    _add_common(ld, quick=False)
    ld.set_defaults(parser=ld, run=cmd_load)

    kv = bsub.add_parser(
        "kv", help="one key-value point: latency-sensitive GETs beside the background mix"
    )
    kv.add_argument(
        "--quick",
        action="store_true",
        help=f"{kvstore.KEYS_QUICK:,} keys (loads in a second) and 1 s points",
    )
    kv.add_argument(
        "--design",
        action="append",
        choices=list(DESIGNS),
        help="server design, repeatable (default skq and dispatch)",
    )
    kv.add_argument(
        "--policy", type=_policy, default="best2", help="SKQ policy (default %(default)s)"
    )
    _add_rtreserve(kv)
    kv.add_argument(
        "--workers",
        type=_workers,
        default=REPRO_WORKERS,
        help="worker threads/processes per server (default %(default)s)",
    )
    kv.add_argument(
        "--rate",
        type=_rate,
        default=KV_RATE,
        help="background requests/s, the offered load (default %(default)s)",
    )
    kv.add_argument(
        "--rt-rate",
        type=_rate,
        default=KV_RT_RATE,
        help="latency-sensitive GETs/s over their connections (default %(default)s)",
    )
    kv.add_argument(
        "--rt-connections",
        type=_connections,
        default=KV_RT_CONNECTIONS,
        help="latency-sensitive connections (default %(default)s)",
    )
    kv.add_argument(
        "--keys",
        type=_number(int, 1, MAX_KEYS, "a key count"),
        default=None,
        help=f"records in the store (default {kvstore.KEYS_FULL:,}; "
        f"{kvstore.KEYS_QUICK:,} with --quick)",
    )
    kv.add_argument(
        "--max-scan",
        type=_number(int, 1, kvstore.MAX_SCAN, "a scan length"),
        default=kvstore.MAX_SCAN,
        help="longest SEEK run the clients ask for and the servers accept (default %(default)s)",
    )
    kv.add_argument(
        "--max-value",
        type=_number(int, kvstore.VALUE_MAX, KV_MAX_VALUE, "a value size"),
        default=ServerConfig.kv_max_value,
        help="largest PUT value in bytes the servers accept (default %(default)s)",
    )
    _add_common(kv, quick=True)
    kv.set_defaults(parser=kv, run=cmd_kv)

    cc = bsub.add_parser("crosscheck", help="our generator vs sockperf on the same server")
    cc.add_argument(
        "--design",
        choices=list(DESIGNS),
        default="vanilla",
        help="server design both tools load (default %(default)s)",
    )
    cc.add_argument(
        "--rate", type=_rate, default=500.0, help="offered requests/s (default %(default)s)"
    )
    cc.add_argument(
        "--service",
        type=_fixed_or_exp,
        default="fixed:1ms",
        help="fixed:T or exp:T (default %(default)s)",
    )
    cc.add_argument(
        "--duration",
        type=_number(int, 1, int(MAX_SECONDS), "a number of seconds"),
        default=5,
        help="seconds per tool (default %(default)s)",
    )
    cc.set_defaults(parser=cc, run=cmd_crosscheck)

    rp = bsub.add_parser("report", help="plots and table from a results folder")
    rp.add_argument("folder", type=_path, help="a folder with the results.json of a sweep")
    rp.add_argument(
        "--knee",
        type=_rate,
        default=None,
        help="a measured offered load to compare p99 at (default: vanilla's "
        "first load over the SLO)",
    )
    rp.set_defaults(parser=rp, run=cmd_report)

    sv = sub.add_parser("serve", help="run a server on loopback until Ctrl-C")
    sv.add_argument(
        "--design", choices=list(DESIGNS), default="skq", help="server design (default %(default)s)"
    )
    sv.add_argument(
        "--policy",
        type=_policy,
        default="best2",
        help="SKQ policy of the skq design: random, queue, cpu, bestN, queueN or cpuN, "
        "optionally +ws or +wsK (default %(default)s)",
    )
    _add_rtreserve(sv)
    sv.add_argument(
        "--workers", type=_workers, default=4, help="worker threads/processes (default %(default)s)"
    )
    sv.add_argument(
        "--port", type=_port_any, default=0, help="loopback port (default 0: any free port)"
    )
    sv.add_argument(
        "--work",
        choices=SERVED,
        default="sleep",
        help="service routine, or kv: the key-value store (default %(default)s)",
    )
    sv.add_argument(
        "--sockperf-service",
        type=_dist,
        default="fixed:400us",
        help="service time of sockperf messages, which carry none (default %(default)s)",
    )
    sv.add_argument(
        "--max-service",
        type=_duration,
        default=ServerConfig.max_service,
        help="longest service time a request may ask for; a request over it closes its "
        "connection (default %(default)s)",
    )
    sv.add_argument(
        "--send-timeout",
        type=_duration,
        default=ServerConfig.send_timeout,
        help="how long a reply may wait for a client that does not read before its "
        "connection is dropped (default %(default)s)",
    )
    sv.add_argument(
        "--max-inflight",
        type=_number(int, 0, MAX_CONNECTIONS, "a request count"),
        default=ServerConfig.max_inflight,
        help="requests one connection may have in a pooled design's pool "
        "(default %(default)s: workers - 1)",
    )
    sv.add_argument(
        "--control",
        type=_control_path,
        default=default_control_path(),  # a string default goes through the type check
        help="control socket path (default %(default)s)",
    )
    sv.set_defaults(parser=sv, run=cmd_serve)

    st = sub.add_parser("stats", help="statistics of a server started by 'skqueue serve'")
    st.add_argument(
        "--control",
        type=_control_path,
        default=default_control_path(),  # a string default goes through the type check
        help="control socket path (default %(default)s)",
    )
    st.add_argument(
        "--wait",
        type=_number(float, 0.0, MAX_SECONDS, "a number of seconds"),
        default=DEFAULT_WAIT_S,
        help="seconds to wait for a server that is still starting (default %(default)s)",
    )
    st.set_defaults(parser=st, run=cmd_stats)

    sim = sub.add_parser("sim", help="simulate a server on N cores with skqueue's own scheduler")
    simsub = sim.add_subparsers(dest="sim_command", required=True)
    sr = simsub.add_parser("run", help="simulated latency vs load, reported as a real sweep")
    _add_sim_options(sr)
    sr.set_defaults(parser=sr, run=cmd_sim_run)
    sg = simsub.add_parser("grid", help="p99 of every fixed SKQ policy and auto over a grid")
    sg.add_argument("--quick", action="store_true", help="a small grid, short points")
    sg.add_argument(
        "--out", type=_path, default=None, help="report folder (default results/grid-<time>)"
    )
    sg.set_defaults(parser=sg, run=cmd_sim_grid)
    _add_sim_validate(simsub)
    return parser


def _cost(text: str) -> tuple[str, float]:
    """NAME=US: one event-path cost of the simulation, in microseconds."""
    name, sep, value = text.partition("=")
    us = _number(float, 0.0, MAX_SECONDS * 1e6, "a number of microseconds")
    if not sep or name not in Costs.names():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=US with NAME one of {', '.join(Costs.names())}"
        )
    return name, us(value)


def _add_sim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--design",
        action="append",
        choices=SIM_DESIGNS,
        help="design, repeatable (default vanilla, dispatch and skq; kqueue: the "
        "legacy single-lock kqueue)",
    )
    p.add_argument(
        "--policy",
        action="append",
        type=_policy,
        help="SKQ policy for the skq design, repeatable (default "
        + " and ".join(REPRO_SKQ_QUICK)
        + ")",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        default=REPRO_WORKERS,
        help="worker threads (default %(default)s)",
    )
    p.add_argument(
        "--cores",
        type=_number(int, 1, MAX_WORKERS, "a core count"),
        default=None,
        help="cores the workers are pinned to, round-robin (default one per worker)",
    )
    p.add_argument(
        "--connections",
        type=_connections,
        default=REPRO_CONNECTIONS,
        help="client connections (default %(default)s)",
    )
    p.add_argument(
        "--dist",
        type=_dist,
        default=f"classes:{REPRO_BASE_US:g}us",
        help=f"{DIST_HELP} (default %(default)s)",
    )
    p.add_argument(
        "--arrival",
        choices=ARRIVALS,
        default="poisson",
        help="arrival process (pareto: mutilate's fb_ia shape; default %(default)s)",
    )
    _add_loads(p)
    window = p.add_mutually_exclusive_group()
    window.add_argument(
        "--duration",
        type=_seconds,
        default=1.0,
        help="measured simulated seconds per point (default %(default)s)",
    )
    window.add_argument(
        "--requests",
        type=_number(int, 1, MAX_SIM_REQUESTS, "a request count"),
        default=None,
        help="instead of --duration: about this many measured requests per point, after "
        "a warm-up of a quarter of that (loads far apart get equally good percentiles)",
    )
    p.add_argument(
        "--warmup",
        type=_seconds_or_zero,
        default=None,
        help="unmeasured simulated seconds before each point (default 0.1; not with --requests)",
    )
    p.add_argument("--seed", type=_seed, default=1, help="random seed (default %(default)s)")
    p.add_argument(
        "--work",
        choices=WORKS,
        default="cpu",
        help="cpu: service holds the worker's core; sleep: it waits off the core, as the "
        "real servers' sleep routine (default %(default)s)",
    )
    p.add_argument(
        "--realtime",
        type=_number(int, 0, MAX_CONNECTIONS, "a connection count"),
        default=0,
        help="connections registered EV_REALTIME (default %(default)s)",
    )
    p.add_argument(
        "--rt-rate",
        type=_number(float, 0, MAX_RATE, "a request rate", above=True),
        default=None,
        help="requests/s of a latency-sensitive population of its own on the --realtime "
        "connections (the kv mix's GETs), reported apart; the loads then go to the other "
        "connections (default: none)",
    )
    _add_rtreserve(p)
    p.add_argument(
        "--rtshare",
        type=_number(int, 1, 100, "a percentage"),
        default=100,
        help="KQTUNE_RTSHARE: percent of a wait realtime events may take (default %(default)s)",
    )
    p.add_argument(
        "--freq",
        type=_number(int, 0, int(MAX_RATE), "an event rate"),
        default=0,
        help="KQTUNE_FREQ: events/s per thread that caps a wait's batch (default 0: off)",
    )
    p.add_argument(
        "--cost",
        action="append",
        type=_cost,
        help="NAME=US, repeatable: one event-path cost (harvest, io, place, wakeup, steal, "
        "lock) in microseconds (defaults: measured, see skqbench/sim/costs.py)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="measure the costs on this machine first (about a second); --cost still wins",
    )
    _add_slo(p)
    p.add_argument(
        "--out", type=_path, default=None, help="report folder (default results/sim-<time>)"
    )


# ------------------------------------------------------------------------ commands


def _out_dir(args: argparse.Namespace, name: str) -> str:
    if args.out:
        out: str = args.out
        return out
    return os.path.join("results", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


def _load_template(args: argparse.Namespace, dist: str, quick: bool) -> LoadSpec:
    return LoadSpec(
        port=1,
        rate=1.0,
        duration_s=args.duration or (1.0 if quick else 2.5),
        warmup_s=args.warmup if args.warmup is not None else (0.3 if quick else 0.5),
        connections=args.connections,
        arrival=args.arrival,
        dist=dist,
        seed=args.seed,
    )


def _capacity_rates(
    workers: int, mean_us: float, steps: int, max_load: float, min_load: float | None = None
) -> list[float]:
    """``steps`` loads up to ``max_load`` x the nominal capacity: evenly spaced, or
    geometrically from ``min_load`` (where knees lie far apart, as a single-lock design's
    and a work-stealing one's, each is resolved to the same fraction of its load)."""
    capacity = workers / (mean_us / 1e6)
    if min_load is None:
        return [round(capacity * max_load * (i + 1) / steps) for i in range(steps)]
    if min_load >= max_load:
        raise ValueError(f"--min-load {min_load:g} must be below --max-load {max_load:g}")
    if steps == 1:
        return [round(capacity * max_load)]
    ratio = (max_load / min_load) ** (1 / (steps - 1))
    return [round(capacity * min_load * ratio**i) for i in range(steps)]


def reproduce_plan(args: argparse.Namespace) -> SweepPlan:
    """The main demo: per-connection classes (95 % 1x, 4 % 5x, 1 % 20x of ``--base-us``),
    ``--workers`` workers, SKQ's best configurations against every baseline.  Quick runs
    7 configurations at 10 loads of 1 s; the full one adds the other policies, 16 loads
    of 2.5 s."""
    dist = f"classes:{args.base_us:g}us"
    policies = REPRO_SKQ_QUICK if args.quick else REPRO_SKQ_FULL
    configs = [ServerConfig("vanilla", args.workers, work=args.work)]
    configs += [ServerConfig("skq", args.workers, p, work=args.work) for p in policies]
    configs += [ServerConfig(d, args.workers, work=args.work) for d in REPRO_BASELINES[1:]]
    load = _load_template(args, dist, args.quick)
    mean_us = parse_dist(dist).mean_ns(args.connections) / 1000
    steps = 10 if args.quick else 16
    return SweepPlan(
        configs,
        _capacity_rates(args.workers, mean_us, steps, 1.0),
        load,
        processes=args.processes,
        slo_factor=args.slo_factor,
        slo_us=args.slo_us or 0.0,
    )


def sweep_plan(args: argparse.Namespace) -> SweepPlan:
    """Every combination of --workers x --design x --policy (policies apply to skq)."""
    designs = args.design or ["skq"]
    policies = args.policy or ["best2"]
    configs = []
    for workers in args.workers or [4]:
        for design in designs:
            for policy in policies if design == "skq" else ["best2"]:
                configs.append(ServerConfig(design, workers, policy, work=args.work))
    load = _load_template(args, args.dist, False)
    mean_us = parse_dist(args.dist).mean_ns(args.connections) / 1000
    rates = args.rates or _capacity_rates(
        max(args.workers or [4]), mean_us, args.steps, args.max_load, args.min_load
    )
    return SweepPlan(
        configs,
        rates,
        load,
        processes=args.processes,
        slo_factor=args.slo_factor,
        slo_us=args.slo_us or 0.0,
    )


def run_plan(plan: SweepPlan, out_dir: str) -> int:
    """Run a sweep with a progress bar, then write and print the report."""
    from rich.console import Console

    return _run_reported(
        len(plan.configs),
        plan.rates,
        plan.slo_us,
        out_dir,
        lambda progress: run_sweep(plan, out_dir, progress),
        Console(),
    )


def kv_reproduce_plan(args: argparse.Namespace) -> SweepPlan:
    """The key-value experiment: every design, ``kvexp.REPEATS`` interleaved repeats."""
    keys = args.keys or (kvstore.KEYS_QUICK if args.quick else kvstore.KEYS_FULL)
    template = ServerConfig(
        workers=args.workers, work="kv", kv_keys=keys, kv_seed=args.seed, probe=args.probe
    )
    load = replace(
        _load_template(args, "fixed:0us", args.quick),
        workload="kv",
        rt_connections=KV_RT_CONNECTIONS,
        rt_rate=KV_RT_RATE,
        kv_keys=keys,
        kv_seed=args.seed,
        drain_s=kvexp.DRAIN_QUICK_S if args.quick else LoadSpec.drain_s,
    )
    if args.quick and args.warmup is None:
        load = replace(load, warmup_s=kvexp.WARMUP_QUICK_S)
    return kvexp.kv_plan(template, load, args.quick, args.processes, args.slo_us or kvexp.SLO_US)


def _kv_report(res: SweepResults, out_dir: str, console: Console) -> str:
    summary = kvexp.write_report(res, out_dir)
    with open(os.path.join(out_dir, "summary.md")) as f:
        console.print(f.read())
    at = summary["reference"]["measured_at"]
    console.print(f"reference load: {at:,.0f}/s" if at else "no reference load")
    return "results.json, summary.json, summary.md, " + ", ".join(kvexp.PLOTS.values())


def run_kv(plan: SweepPlan, out_dir: str) -> int:
    """Load the store (or find it cached), then the interleaved sweep and its report."""
    from rich.console import Console

    console = Console()
    start = time.monotonic()
    path = kvstore.load(kvstore.Dataset(plan.load.kv_keys, plan.load.kv_seed))
    console.print(f"store: {plan.load.kv_keys:,} keys in {path} ({time.monotonic() - start:.1f} s)")
    return _run_reported(
        len(plan.configs),
        plan.rates,
        plan.slo_us,
        out_dir,
        lambda progress: run_interleaved(plan, out_dir, progress),
        console,
        repeats=plan.repeats,
        report=_kv_report,
    )


def _refuse_unread(args: argparse.Namespace, names: list[str], where: str) -> None:
    """A usage error for the options given that only an experiment not in names reads
    (``where`` says where they belong, with ``{other}`` for that experiment's name)."""
    unread = [
        "--" + dest.replace("_", "-")
        for other, dests in EXPERIMENT_ONLY.items()
        if other not in names
        for dest in dests
        if getattr(args, dest) != args.parser.get_default(dest)
    ]
    if unread:
        other = next(n for n in EXPERIMENTS if n not in names)
        args.parser.error(f"{', '.join(unread)}: only for {where.format(other=other)}")


def cmd_reproduce(args: argparse.Namespace) -> int:
    """One experiment into --out, or both (imbalance first) into its subfolders; every
    plan is checked before the first one runs."""
    names = [args.experiment] if args.experiment else list(EXPERIMENTS)
    _refuse_unread(args, names, "reproduce {other} (or both)")
    out = _out_dir(args, "reproduce")
    makers = {"imbalance": (reproduce_plan, run_plan), "kv": (kv_reproduce_plan, run_kv)}
    try:
        runs = [(name, makers[name][0](args), makers[name][1]) for name in names]
    except ValueError as exc:  # a combination no single option could reject
        args.parser.error(str(exc))
    status = 0
    for name, plan, run in runs:
        code = run(plan, out if args.experiment else os.path.join(out, name))
        if code == 130:  # interrupted: do not start the next one
            return code
        status = max(status, code)
    return status


def _run_reported(
    configs: int,
    rates: list[float],
    slo_us: float,
    out_dir: str,
    sweep: Callable[[Progress], SweepResults],
    console: Console,
    repeats: int = 1,
    report: Callable[[SweepResults, str, Console], str] | None = None,
) -> int:
    """A sweep (measured or simulated) with a progress bar, then the report (default
    :func:`skqbench.report.write_report`'s; ``report`` returns the files it wrote)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from skqbench.report import write_report

    times = f" x {repeats} repeats, interleaved" if repeats > 1 else ""
    console.print(
        f"[bold]{configs} configurations x up to {len(rates)} loads{times} "
        f"({rates[0]:,.0f}..{rates[-1]:,.0f}/s), SLO p99 <= "
        f"{slo_us / 1000:.2f} ms; results in {out_dir}[/bold]"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("starting", total=configs * len(rates) * repeats)

        def progress(label: str, done: int, total: int, point: Point | None) -> None:
            bar.update(task, completed=done, description=label)
            if point is not None:
                r = point.result
                mark = f"\n    [red]saturated: {point.why}[/red]" if point.saturated else ""
                rt = point.populations.get("rt")
                also = f" rt p99 {rt['p99_us'] / 1000:7.2f} ms" if rt else ""
                bar.console.print(
                    f"{point.label:<18}{r['offered']:>7,.0f}/s ->{r['achieved']:>7,.0f}/s "
                    f"p50 {r['p50_us'] / 1000:6.2f} ms p99 {r['p99_us'] / 1000:7.2f} ms"
                    f"{also}{mark}"
                )

        results = sweep(progress)
    if report is None:
        write_report(results, out_dir, console)
        files = "results.json, p99.png, p99-story.png, p50.png, summary.md"
    else:
        files = report(results, out_dir, console)
    console.print(f"report: {os.path.abspath(out_dir)} ({files})")
    if results.interrupted:
        console.print("[yellow]interrupted: the report covers the points measured so far[/yellow]")
        return 130
    return 1 if results.errors and not results.points else 0


def sim_plan(args: argparse.Namespace) -> SimPlan:
    """Every design of --design (skq once per --policy) on one simulated machine."""
    costs = Costs()
    if args.calibrate:
        from skqbench.sim.calibrate import calibrate

        costs = calibrate()
    for name, us in args.cost or []:
        costs = costs.with_us(name, us)
    if args.requests and args.warmup is not None:
        raise ValueError("--warmup is not allowed with --requests (its warm-up is a quarter)")
    template = SimConfig(
        workers=args.workers,
        cores=args.cores or 0,
        connections=args.connections,
        dist=args.dist,
        arrival=args.arrival,
        duration_s=args.duration,
        warmup_s=0.1 if args.warmup is None else args.warmup,
        seed=args.seed,
        realtime=args.realtime,
        rt_rate=args.rt_rate or 0.0,
        rtshare=args.rtshare,
        freq=args.freq,
        work=args.work,
        costs=costs,
    )
    configs = []
    for design in args.design or ["vanilla", "dispatch", "skq"]:
        for policy in (args.policy or REPRO_SKQ_QUICK) if design == "skq" else ["best2"]:
            reserve = args.rtreserve if design == "skq" else 0
            configs.append(replace(template, design=design, policy=policy, rtreserve=reserve))
    mean_us = parse_dist(args.dist).mean_ns(args.connections) / 1000
    # Service on the core: no more requests in service than cores.
    slots = min(args.workers, template.n_cores) if args.work == "cpu" else args.workers
    rates = args.rates or _capacity_rates(slots, mean_us, args.steps, args.max_load, args.min_load)
    return SimPlan(
        configs,
        rates,
        slo_factor=args.slo_factor,
        slo_us=args.slo_us or 0.0,
        requests=args.requests or 0,
    )


def cmd_sim_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    try:
        plan = sim_plan(args)
    except ValueError as exc:  # a combination no single option could reject
        args.parser.error(str(exc))
    console = Console()
    c = plan.configs[0]
    window = f"{plan.requests:,} requests" if plan.requests else f"{c.duration_s:g} simulated s"
    console.print(
        f"simulating {c.workers} workers on {c.n_cores} cores, {c.connections} connections, "
        f"{c.dist}, {window} per point; costs (us): "
        + ", ".join(f"{k} {v / 1000:g}" for k, v in plan.describe()["costs_ns"].items())
    )
    return _simulate(plan, _out_dir(args, "sim"), console)[0]


def _simulate(plan: SimPlan, out_dir: str, console: Console) -> tuple[int, SweepResults | None]:
    """A simulated sweep, reported as a real one, then the simulator's own speed."""
    done: list[tuple[SweepResults, Speed]] = []

    def sweep(progress: Progress) -> SweepResults:
        done.append(run_sim(plan, out_dir, progress))
        return done[-1][0]

    code = _run_reported(len(plan.configs), plan.rates, plan.slo_us, out_dir, sweep, console)
    for _, s in done:
        console.print(
            f"simulator: {s.events:,} events in {s.wall_s:.1f} s, {s.per_s:,.0f} simulated events/s"
        )
    return code, done[-1][0] if done else None


def _add_reproduce_shape(p: argparse.ArgumentParser) -> None:
    """The imbalance experiment's workers and base service time (reproduce, sim validate)."""
    p.add_argument(
        "--workers",
        type=_workers,
        default=REPRO_WORKERS,
        help="worker threads/processes per server (default %(default)s)",
    )
    p.add_argument(
        "--base-us",
        type=_number(float, 1.0, MAX_BASE_US, "a number of microseconds"),
        default=REPRO_BASE_US,
        help="base service time of the 1x class in us (default %(default)s)",
    )


def _add_sim_validate(simsub: argparse._SubParsersAction[_Parser]) -> None:
    sv = simsub.add_parser(
        "validate",
        help="the real imbalance experiment and its simulation, compared",
        description="Run reproduce's plan (vanilla, dispatch, asyncio, SKQ "
        + ", ".join(VALIDATE_SKQ_QUICK)
        + ") for real, then simulate it with costs calibrated on this machine; plot both "
        "and check low-latency throughput within 15 % and p99 within 1.5x below "
        "saturation.  The real servers run with the wake-up probe: their CPU per request "
        "and wake-up lateness at each load go into the simulation.  --from-results DIR "
        "takes an existing real results folder instead of measuring (the plan's options "
        "are then ignored; without probe figures there, each design's server runs a few "
        "seconds to measure its CPU per request).  Exit 1 if a target is missed.",
    )
    sv.add_argument(
        "experiment",
        nargs="?",
        choices=EXPERIMENTS,
        default=EXPERIMENTS[0],
        help="the experiment to measure (default %(default)s; kv: reproduce kv's plan, "
        "each population compared apart); --from-results tells by its folder",
    )
    sv.add_argument("--quick", action="store_true", help="about two minutes on 2 cores")
    # reproduce kv's own options: its default keys, and always the probe (its CPU and
    # wake-up figures at every load are the simulation's serve and lateness).
    sv.set_defaults(keys=None, probe=True)
    _add_reproduce_shape(sv)
    _add_sweep_options(sv, quick=True)
    sv.add_argument(
        "--from-results",
        type=_results_dir,
        default=None,
        metavar="DIR",
        help="compare with this real results folder (a sweep's results.json) instead of "
        "rerunning the real experiment",
    )
    sv.set_defaults(parser=sv, run=cmd_sim_validate)


def _results_dir(text: str) -> str:
    """A folder holding a sweep's results.json."""
    if not os.path.isfile(os.path.join(_path(text), RESULTS_FILE)):
        raise argparse.ArgumentTypeError(f"no {RESULTS_FILE} in {text!r}")
    return text


def validate_plan(args: argparse.Namespace) -> SweepPlan:
    """reproduce's plan, its configurations of VALIDATE_DESIGNS and the SKQ policies of
    VALIDATE_SKQ_QUICK it lacks (the full plan has them all), each with the probe."""
    plan = reproduce_plan(args)
    skq = [c for c in plan.configs if c.design == "skq"]
    have = {c.policy for c in skq}
    configs = [c for c in plan.configs if c.design in VALIDATE_DESIGNS]
    configs += [replace(skq[0], policy=p) for p in VALIDATE_SKQ_QUICK if p not in have]
    configs.sort(key=lambda c: VALIDATE_DESIGNS.index(c.design))
    configs = [replace(c, probe=True) for c in configs]  # CPU and lateness at every load
    return replace(plan, configs=configs)


def cmd_sim_validate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from skqbench.sim.calibrate import calibrate
    from skqbench.sim.validate import (
        P99_FACTOR,
        by_population,
        compare,
        describe_lateness,
        describe_serve,
        interpreter_cores,
        is_kv,
        kv_dist,
        measure_serve,
        probed_lateness,
        probed_serve,
        repeat_spreads,
        sim_plan_for,
        write_validation,
    )

    if not args.from_results:
        _refuse_unread(args, [args.experiment], "sim validate {other}")
    console = Console()
    out_dir = _out_dir(args, "sim-validate")
    real_dir = args.from_results or os.path.join(out_dir, "real")
    if not args.from_results:
        if args.experiment == "kv":
            code = run_kv(kv_reproduce_plan(args), real_dir)
        else:
            code = run_plan(validate_plan(args), real_dir)
        if code:
            return code
    try:
        real = load_results(real_dir)
        costs = calibrate()
        cores = interpreter_cores()
        kv = kv_dist(real) if is_kv(real) else ""
        sim_plan_for(real, costs, cores, kv=kv)  # every configuration has a model
    except (OSError, ValueError, KeyError, TypeError) as exc:
        what = "argument --from-results" if args.from_results else "the measured run"
        args.parser.error(f"{what}: unusable results in {real_dir!r} ({exc})")
    serve = probed_serve(real, costs)
    if serve is None:
        console.print("measuring each design's server CPU per request (a few seconds)")
        serve = measure_serve(real, costs)
        whence = "at the lowest load"
    else:
        whence = "by the real run's probe, lowest to highest load"
    console.print(
        f"simulating the same plan on {cores} core(s) (the GIL's); costs calibrated here "
        "(us): "
        + ", ".join(f"{k} {v / 1000:g}" for k, v in asdict(costs).items())
        + f"; serve, Python + system calls (us), {whence}: {describe_serve(serve)}"
        + (f"; the store's calls, timed here: {kv}" if kv else "")
    )
    lateness = probed_lateness(real)
    if lateness:
        console.print(
            "wake-up lateness by the real run's probe, p99 (ms) lowest to highest load: "
            + describe_lateness(lateness)
        )
    plan = sim_plan_for(real, costs, cores, serve, kv, lateness)
    code, sim = _simulate(plan, os.path.join(out_dir, "sim"), console)
    if sim is None:
        return code
    spreads = repeat_spreads(real)
    if kv:  # each population apart
        real, sim = by_population(real), by_population(sim)
    verdicts = compare(real, sim, spreads)
    files = write_validation(out_dir, real, sim, verdicts, costs, cores, serve)
    table = Table(
        title=f"simulated vs measured (SLO p99 <= {real.slo_us / 1000:.2f} ms)",
        caption="worst p99 x: simulated against measured (the repeats' median), worst load "
        "below saturation; repeats' p99 x: the measured repeats' largest p99 over their "
        "smallest there (1.00: one repeat), how close the measurement is to itself",
    )
    columns = ("configuration", "llt measured", "llt simulated", "error", "worst p99 x")
    for column in (*columns, "repeats' p99 x", ""):
        table.add_column(column, justify="left" if not column or column[0] == "c" else "right")
    for v in verdicts:
        table.add_row(
            v.label,
            f"{v.llt_measured:,.0f}/s",
            f"{v.llt_simulated:,.0f}/s",
            f"{v.llt_error:.0%}" + ("" if v.llt_ok else " [red]>15 %[/red]"),
            f"{v.worst_p99_ratio:.2f}" + ("" if v.p99_ok else f" [red]>{P99_FACTOR:g}[/red]"),
            f"{v.worst_spread:.2f}",
            "[green]ok[/green]" if v.ok else "[red]miss[/red]",
        )
    console.print(table)
    console.print(f"validation: {os.path.abspath(files[0])} and {len(files) - 1} figures")
    return code or (0 if all(v.ok for v in verdicts) else 1)


def cmd_sim_grid(args: argparse.Namespace) -> int:
    """skqbench.sim.grid, each point printed when done; the table says if auto met its target."""
    from skqbench.sim.grid import plan_for, run_grid, table

    out_dir = _out_dir(args, "grid")
    grid = run_grid(plan_for(args.quick), out_dir, lambda row: print(row, flush=True))
    print(table(grid), end="")
    print(f"written: {out_dir}/grid.json, {out_dir}/grid.txt, {out_dir}/grid.png")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    """Drive an already running loopback server (for profiling it, or comparing tools)."""
    spec = replace(_load_template(args, args.dist, False), port=args.port, rate=args.rate)
    with LoadGenerator(args.processes) as gen:
        try:
            result = gen.run(spec)
        except RuntimeError as exc:
            print(f"skqueue bench load: {exc}", file=sys.stderr)
            return 1
    out = result.to_json()
    del out["histogram"]  # base64, for files not terminals
    print(json.dumps(out, indent=1))
    return 0


def kv_point(args: argparse.Namespace) -> tuple[list[ServerConfig], LoadSpec]:
    """The servers and the load of ``skqueue bench kv``."""
    keys = args.keys or (kvstore.KEYS_QUICK if args.quick else kvstore.KEYS_FULL)
    configs = [
        ServerConfig(
            design,
            args.workers,
            args.policy,
            rtreserve=args.rtreserve,
            work="kv",
            kv_keys=keys,
            kv_seed=args.seed,
            kv_max_value=args.max_value,
            kv_max_scan=args.max_scan,
        )
        for design in args.design or ["skq", "dispatch"]
    ]
    load = replace(
        _load_template(args, "fixed:0us", args.quick),
        rate=args.rate,
        workload="kv",
        rt_connections=args.rt_connections,
        rt_rate=args.rt_rate or 0.0,
        kv_keys=keys,
        kv_seed=args.seed,
        max_scan=args.max_scan,
    )
    return configs, load


def cmd_kv(args: argparse.Namespace) -> int:
    """Load the store (or find it cached), then one point per design, both populations."""
    configs, load = kv_point(args)
    start = time.monotonic()
    path = kvstore.load(kvstore.Dataset(load.kv_keys, load.kv_seed))
    print(f"store: {load.kv_keys:,} keys in {path} ({time.monotonic() - start:.1f} s)")
    print(
        f"background {load.rate:,.0f}/s on {load.connections} connections, "
        f"latency-sensitive {load.rt_rate:,.0f} GETs/s on {load.rt_connections}"
    )
    status = 0
    with LoadGenerator(args.processes) as gen:
        for cfg in configs:
            try:
                with ServerProcess(cfg) as server:
                    pops = gen.run_populations(replace(load, port=server.port))
            except RuntimeError as exc:
                print(f"{cfg.label}: {exc}", file=sys.stderr)
                status = 1
                continue
            line = [f"{cfg.label:<16}"]
            for name, what in (("rt", "latency-sensitive"), ("bg", "background")):
                r = pops[name]
                line.append(
                    f"{what} p50 {r.p50_us / 1000:7.2f} ms p99 {r.p99_us / 1000:7.2f} ms "
                    f"({r.achieved:,.0f}/s, {r.errors + r.timeouts} bad)"
                )
                if r.errors or r.timeouts:
                    status = 1
            print("  ".join(line), flush=True)
    return status


def cmd_crosscheck(args: argparse.Namespace) -> int:
    """Exit 0 when both tools agree within the stated tolerance, 1 otherwise."""
    from skqbench.crosscheck import SLACK_US, TOLERANCE, crosscheck

    try:
        res = crosscheck(args.design, args.rate, args.service, args.duration)
    except RuntimeError as exc:
        print(f"skqueue bench crosscheck: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(res.to_json(), indent=1))
    verdict = "agree" if res.agree else "DISAGREE"
    print(f"{verdict} (tolerance {TOLERANCE:.0%} or {SLACK_US:.0f} us on p50 and p99)")
    return 0 if res.agree else 1


def cmd_report(args: argparse.Namespace) -> int:
    from skqbench.report import UnmeasuredLoad, write_report

    try:
        res = load_results(args.folder)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        args.parser.error(f"argument folder: no results in {args.folder!r} ({why})")
    try:
        write_report(res, args.folder, knee=args.knee)
    except UnmeasuredLoad as exc:  # found before anything is written
        print(f"skqueue bench report: --knee {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = ServerConfig(
        args.design,
        args.workers,
        args.policy,
        args.work,
        args.port,
        rtreserve=args.rtreserve,
        sockperf_service=args.sockperf_service,
        max_service=args.max_service,
        send_timeout=args.send_timeout,
        max_inflight=args.max_inflight,
    )
    control = args.control

    def ready(port: int) -> None:
        print(
            f"{cfg.label} serving on 127.0.0.1:{port}; control socket {control} "
            "('skqueue stats'); Ctrl-C stops",
            flush=True,
        )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # service managers stop with TERM
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_server(cfg, control, ready, stop)
    except OSError as exc:  # the control socket (a path) or the port is taken, or not ours
        where = f"control socket {exc.filename}" if exc.filename else f"port {args.port}"
        print(f"skqueue serve: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print("stopped", file=sys.stderr)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    path = args.control
    try:
        stats = query(path, wait_s=args.wait)
    except OSError as exc:
        print(
            f"skqueue stats: no server answers on {path} ({exc}); start one with 'skqueue serve'",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(stats, indent=2))
    return 0


def _missing(modules: Sequence[str]) -> list[str]:
    """The modules of ``modules`` that cannot be imported (without importing them)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def _needs(args: argparse.Namespace) -> tuple[str, ...]:
    """The bench extra's modules this command will import: its own, and uvloop when it
    starts a uvloop server (reproduce always does)."""
    command: str = getattr(args, "bench_command", None) or args.command
    if getattr(args, "sim_command", None) == "validate":
        command = "validate"
    design = getattr(args, "design", None)
    designs = design if isinstance(design, list) else [design]
    starts_uvloop = "uvloop" in designs or command == "reproduce"
    opens_store = getattr(args, "work", None) == "kv" or (
        command == "reproduce" and args.experiment != "imbalance"
    )
    return (
        NEEDS.get(command, ())
        + (("uvloop",) if starts_uvloop else ())
        + (("lmdb",) if opens_store else ())
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = args.parser.prog
    missing = _missing(_needs(args))
    if missing:
        print(
            f"{prog}: error: needs the bench extra ({', '.join(missing)} not installed): "
            f"{BENCH_EXTRA}",
            file=sys.stderr,
        )
        return 2
    if "plan" not in args:
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    try:
        plan: SweepPlan = args.plan(args)
    except ValueError as exc:  # a combination of arguments no single option could reject
        args.parser.error(str(exc))
    return run_plan(plan, _out_dir(args, args.bench_command))


if __name__ == "__main__":
    sys.exit(main())
