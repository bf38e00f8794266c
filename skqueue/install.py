"""Opt-in: make ``select.kqueue`` and friends (and so selectors/asyncio) use skqueue."""

from __future__ import annotations

import select
import selectors
import threading
from typing import Any

from . import constants
from .event import kevent
from .kqueue import kqueue
from .selector import KqueueSelector

_MISSING = object()
_saved: dict[tuple[Any, str], object] = {}
_lock = threading.Lock()


def _patch(module: Any, name: str, value: object) -> None:
    _saved.setdefault((module, name), getattr(module, name, _MISSING))
    setattr(module, name, value)


def install() -> None:
    """Point select.kqueue/kevent/KQ_* and selectors' Kqueue/Default selector at skqueue."""
    with _lock:
        _patch(select, "kqueue", kqueue)
        _patch(select, "kevent", kevent)
        for name in constants.SELECT_NAMES:
            _patch(select, name, getattr(constants, name))
        _patch(selectors, "KqueueSelector", KqueueSelector)
        _patch(selectors, "DefaultSelector", KqueueSelector)


def uninstall() -> None:
    """Undo install(): restore exactly what was there before."""
    with _lock:
        for (module, name), old in _saved.items():
            if old is _MISSING:
                delattr(module, name)
            else:
                setattr(module, name, old)
        _saved.clear()


def installed() -> bool:
    """Whether install() is in effect: code that needs select.kqueue can check first."""
    with _lock:
        return bool(_saved)
