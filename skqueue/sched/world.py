"""The real world: this machine's clock, CPUs and /sys, as the scheduler's inputs.

The only module of ``sched/`` that asks the operating system anything (with
:mod:`.threads`, which knows the real threads).  The kqueue makes its scheduler
with :func:`real_scheduler`; a test or a simulator makes a :class:`Scheduler`
with a clock, CPUs and a topology of its own instead.
"""

from __future__ import annotations

import functools
import os
import random
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..backend.cpu import current_cpu
from ..backend.fdinfo import getsockopt_int
from .policy import Scheduler
from .topology import Topology

if TYPE_CHECKING:
    from ..knote import Knote

__all__ = ["current_cpu", "incoming_cpu", "machine_topology", "read_topology", "real_scheduler"]

_SYSFS = Path("/sys/devices/system/cpu")
_SO_INCOMING_CPU = getattr(socket, "SO_INCOMING_CPU", 49)


def real_scheduler(sched: int, sargs: int, feat: int, fargs: int) -> Scheduler:
    """A scheduler on real time, real activation CPUs and this machine's topology."""
    return Scheduler(
        sched,
        sargs,
        feat,
        fargs,
        topology=machine_topology(),
        clock=time.monotonic_ns,
        cpu_of=activation_cpu,
        rng=PerThreadRandom() if _FREE_THREADED else random.Random(),
    )


# A generator per thread costs a Python call per draw (about 110 ns more on 3.11); under
# the GIL one shared generator is never contended, so it is only worth it without.
_FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()


class PerThreadRandom(random.Random):
    """random.Random drawing from a generator of the calling thread's own.

    Placement draws at every activation, in every thread that harvests; one shared
    generator would serialise them on free-threaded CPython (each call takes the
    generator's lock, and a contended one parks the thread).
    """

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def _mine(self) -> random.Random:
        try:
            rng: random.Random = self._local.rng
        except AttributeError:
            rng = self._local.rng = random.Random()
        return rng

    def random(self) -> float:
        return self._mine().random()

    def getrandbits(self, k: int, /) -> int:
        return self._mine().getrandbits(k)


def activation_cpu(kn: Knote) -> int:
    """The CPU kn's activation happened on, as its filter knows it."""
    return kn.ops.activation_cpu(kn)


def incoming_cpu(fd: int) -> int | None:
    """SO_INCOMING_CPU of a socket: the CPU that processed its last packet."""
    try:
        cpu = getsockopt_int(fd, socket.SOL_SOCKET, _SO_INCOMING_CPU)
    except OSError:
        return None
    return cpu if cpu >= 0 else None


@functools.cache
def machine_topology() -> Topology:
    """This machine's topology, read once per process."""
    return read_topology()


def read_topology(root: Path = _SYSFS) -> Topology:
    """The topology under a sysfs cpu directory (SMT siblings, last-level caches)."""
    group_of: dict[int, int] = {}
    llc_of: dict[int, int] = {}
    for cpu in sorted(os.sched_getaffinity(0) | set(_online(root))):
        try:
            siblings = _parse_list(
                (root / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text()
            )
        except OSError:
            siblings = [cpu]
        group_of[cpu] = min(siblings)
        llc_of[cpu] = _llc(root, cpu)
    return Topology(group_of, llc_of)


def _online(root: Path) -> list[int]:
    try:
        return _parse_list((root / "online").read_text())
    except OSError:
        return list(range(os.cpu_count() or 1))


def _llc(root: Path, cpu: int) -> int:
    best = cpu
    best_level = -1
    for index in sorted((root / f"cpu{cpu}" / "cache").glob("index*")):
        try:
            level = int((index / "level").read_text())
            shared = _parse_list((index / "shared_cpu_list").read_text())
        except (OSError, ValueError):
            continue
        if level > best_level:
            best_level, best = level, min(shared)
    return best


def _parse_list(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus
