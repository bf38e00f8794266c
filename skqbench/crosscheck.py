"""Cross-check our load generator against sockperf (Debian package ``sockperf``).

Both drive the same server process, one after the other, at the same fixed rate over one
TCP connection, with the same service time (ours sends it in each frame; for sockperf's
messages the server draws it from ``ServerConfig.sockperf_service``).  sockperf is asked
for every message to be answered and for full round-trip times (``--reply-every 1
--full-rtt``).  sockperf times a message from its actual send, so it is compared
with our latency from the actual send (``from_send_*``); our headline latency, from the
scheduled time, is reported beside it and is higher by the generator's own lateness.
The two must agree on p50 and p99 within :data:`TOLERANCE` (relative) or
:data:`SLACK_US` (absolute, whichever is larger): the slack covers what a Python client
adds to every round trip over a C one.

sockperf paces its sends by busy-waiting, so it occupies a core while it runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from skqbench.loadgen import LoadGenerator, LoadSpec
from skqbench.servers.base import LOOPBACK, ServerConfig
from skqbench.servers.harness import ServerProcess

TOLERANCE = 0.25
SLACK_US = 150.0
_PERCENTILE = re.compile(r"percentile\s+([0-9.]+)\s*=\s*([0-9.]+)")


@dataclass
class CrossCheck:
    """Latencies in microseconds from both tools, and whether they agree."""

    design: str
    rate: float
    service: str
    ours_p50_us: float
    ours_p99_us: float
    ours_sched_p50_us: float  # from the scheduled send time, our headline figure
    ours_sched_p99_us: float
    sockperf_p50_us: float
    sockperf_p99_us: float
    agree: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sockperf_binary() -> str | None:
    """Path of the sockperf program, or None if it is not installed."""
    return shutil.which("sockperf")


def parse_sockperf(output: str) -> dict[float, float]:
    """Percentile -> microseconds from sockperf's summary lines."""
    found = {float(q): float(v) for q, v in _PERCENTILE.findall(output)}
    if 50.0 not in found or 99.0 not in found:
        raise RuntimeError(f"no percentiles in sockperf output:\n{output[-2000:]}")
    return found


def run_sockperf(port: int, rate: float, duration_s: int) -> dict[float, float]:
    """Run ``sockperf under-load`` against a loopback port; percentiles in us."""
    binary = sockperf_binary()
    if binary is None:
        raise RuntimeError("sockperf is not installed (apt-get install sockperf)")
    cmd = [
        binary,
        "under-load",
        "--tcp",
        "-i",
        LOOPBACK,
        "-p",
        str(port),
        "--mps",
        str(round(rate)),
        "-t",
        str(duration_s),
        "--reply-every",
        "1",
        "--full-rtt",
        "-m",
        "14",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"sockperf failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return parse_sockperf(proc.stdout + proc.stderr)


def agree(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= max(TOLERANCE * theirs, SLACK_US)


def crosscheck(
    design: str = "vanilla",
    rate: float = 500.0,
    service: str = "fixed:1ms",
    duration_s: int = 5,
    workers: int = 4,
) -> CrossCheck:
    """Measure one server with both tools, ours first."""
    cfg = ServerConfig(design, workers, sockperf_service=service)
    with ServerProcess(cfg) as server, LoadGenerator(1) as gen:
        ours = gen.run(
            LoadSpec(
                server.port,
                rate,
                duration_s=duration_s,
                warmup_s=0.5,
                connections=1,
                arrival="fixed",
                dist=service,
            )
        )
        theirs = run_sockperf(server.port, rate, duration_s)
    return CrossCheck(
        design=design,
        rate=rate,
        service=service,
        ours_p50_us=ours.from_send_p50_us,
        ours_p99_us=ours.from_send_p99_us,
        ours_sched_p50_us=ours.p50_us,
        ours_sched_p99_us=ours.p99_us,
        sockperf_p50_us=theirs[50.0],
        sockperf_p99_us=theirs[99.0],
        agree=agree(ours.from_send_p50_us, theirs[50.0])
        and agree(ours.from_send_p99_us, theirs[99.0]),
    )
