"""The CPU topology SKQ places events by, as data: the group and the cache of each CPU.

A group is a physical core (its SMT siblings share it), named by the lowest CPU
number among them.  The scheduler is given a Topology when it is made and never
reads /sys: :func:`skqueue.sched.world.machine_topology` reads this machine's, and
a test or a simulator writes one down.
"""

from __future__ import annotations

from collections.abc import Mapping


class Topology:
    """cpu -> group, and cpu -> last-level cache (the lowest CPU sharing it)."""

    __slots__ = ("group_of", "llc_of")

    def __init__(self, group_of: Mapping[int, int], llc_of: Mapping[int, int] | None = None):
        self.group_of = dict(group_of)
        self.llc_of = dict(group_of if llc_of is None else llc_of)

    @property
    def groups(self) -> list[int]:
        return sorted(set(self.group_of.values()))

    def group(self, cpu: int) -> int:
        """The group of cpu; 0 for a CPU the topology does not know."""
        return self.group_of.get(cpu, 0)

    def describe(self) -> dict[str, object]:
        return {
            "cpus": sorted(self.group_of),
            "groups": {str(c): g for c, g in self.group_of.items()},
            "llc": {str(c): g for c, g in self.llc_of.items()},
        }
