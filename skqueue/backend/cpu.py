"""sched_getcpu: the CPU a thread runs on, SKQ's default activation CPU."""

from __future__ import annotations

import ctypes

from ._libc import libc

__all__ = ["current_cpu"]

_sched_getcpu = libc.sched_getcpu
_sched_getcpu.argtypes = ()
_sched_getcpu.restype = ctypes.c_int


def current_cpu() -> int:
    """The CPU the calling thread runs on now (sched_getcpu(3))."""
    cpu: int = _sched_getcpu()
    return max(cpu, 0)
