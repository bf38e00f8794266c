"""The timeout argument of a wait, checked and converted as ``select.kqueue.control``.

CPython (Modules/selectmodule.c) converts it with ``_PyTime_FromSecondsObject``,
rounding away from zero (``_PyTime_ROUND_TIMEOUT``), into a signed 64-bit count of
nanoseconds.  Whatever that conversion refuses (not a float nor an integer, NaN,
an infinity, more than about 292 years) comes out as TypeError; a negative timeout
is ValueError.  Doing the same here means no NaN or infinity ever reaches a deadline
computation, where it would turn a wait into a busy loop or an OverflowError.
"""

from __future__ import annotations

import math
import operator
from typing import SupportsIndex

__all__ = ["timeout_ns"]

_NS_PER_S = 1_000_000_000
_PYTIME_END = 1 << 63  # _PyTime_t holds [-2**63, 2**63) nanoseconds


def timeout_ns(timeout: object) -> int | None:
    """timeout (seconds; None blocks) in nanoseconds, refused as CPython refuses it."""
    if timeout is None:
        return None
    ns = _as_pytime(timeout)
    if ns is None:
        raise TypeError(f"timeout argument must be a number or None, got {type(timeout).__name__}")
    if ns < 0:
        raise ValueError("timeout must be positive or None")
    return ns


def _as_pytime(timeout: object) -> int | None:
    """_PyTime_FromSecondsObject(ROUND_TIMEOUT): None where CPython fails."""
    if isinstance(timeout, float):
        scaled = float(timeout) * 1e9
        if not -_PYTIME_END <= scaled < _PYTIME_END:  # also false for NaN
            return None
        return math.ceil(scaled) if scaled >= 0 else math.floor(scaled)
    if isinstance(timeout, int):
        seconds = int(timeout)
    elif isinstance(timeout, SupportsIndex):  # PyLong_AsLongLong: __index__, no __float__
        seconds = operator.index(timeout)
    else:
        return None
    ns = seconds * _NS_PER_S
    return ns if -_PYTIME_END <= ns < _PYTIME_END else None
