"""CPU topology from /sys/devices/system/cpu: the CPU groups SKQ places events by.

A group is a physical core (its SMT siblings share it).  A thread's CPU is read
with sched_getcpu(3); pinning a thread with ``os.sched_setaffinity(0, {cpu})``
before its first wait makes its group stable.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

from ..backend.syscalls import current_cpu, getsockopt_int

__all__ = ["Topology", "current_cpu", "incoming_cpu", "topology"]

_SYSFS = Path("/sys/devices/system/cpu")
_SO_INCOMING_CPU = getattr(socket, "SO_INCOMING_CPU", 49)


def _parse_list(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


class Topology:
    """cpu -> group (lowest CPU number among its SMT siblings)."""

    def __init__(self, root: Path = _SYSFS) -> None:
        self.group_of: dict[int, int] = {}
        self.llc_of: dict[int, int] = {}
        for cpu in sorted(os.sched_getaffinity(0) | set(self._online(root))):
            topo = root / f"cpu{cpu}" / "topology"
            try:
                siblings = _parse_list((topo / "thread_siblings_list").read_text())
            except OSError:
                siblings = [cpu]
            self.group_of[cpu] = min(siblings)
            self.llc_of[cpu] = self._llc(root, cpu)

    @staticmethod
    def _online(root: Path) -> list[int]:
        try:
            return _parse_list((root / "online").read_text())
        except OSError:
            return list(range(os.cpu_count() or 1))

    @staticmethod
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

    @property
    def groups(self) -> list[int]:
        return sorted(set(self.group_of.values()))

    def group(self, cpu: int) -> int:
        return self.group_of.get(cpu, 0)

    def describe(self) -> dict[str, object]:
        return {
            "cpus": sorted(self.group_of),
            "groups": {str(c): g for c, g in self.group_of.items()},
            "llc": {str(c): g for c, g in self.llc_of.items()},
        }


@functools.cache
def topology() -> Topology:
    return Topology()


def incoming_cpu(fd: int) -> int | None:
    """SO_INCOMING_CPU of a socket: the CPU that processed its last packet."""
    try:
        cpu = getsockopt_int(fd, socket.SOL_SOCKET, _SO_INCOMING_CPU)
    except OSError:
        return None
    return cpu if cpu >= 0 else None
