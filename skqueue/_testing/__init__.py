"""Test helpers that ship with the package so they can run in a fresh interpreter."""

from __future__ import annotations

from collections.abc import Callable

from ..kqueue import kqueue

#: The two kinds of kqueue every semantic test runs against.
KQUEUE_KINDS: dict[str, Callable[[], kqueue]] = {
    "classic": kqueue,
    "skq": lambda: kqueue(sched="best", sargs=2),
}
