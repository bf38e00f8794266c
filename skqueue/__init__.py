"""skqueue: FreeBSD's kqueue and SKQ, the schedulable kqueue, for Python on Linux.

``kqueue`` and ``kevent`` are drop-ins for ``select.kqueue`` / ``select.kevent``;
``kqueue(sched=...)`` makes one kqueue that many threads share, with SKQ's event
scheduling.  ``install()`` makes ``select``, ``selectors`` and asyncio use it.
``accelerated`` says whether the optional C accelerator serves the per-event path.
"""

from __future__ import annotations

from . import aio, constants
from .accel import accelerated
from .aio import *  # noqa: F403 - the aio(4) calls and constants
from .constants import *  # noqa: F403 - the kqueue vocabulary is the public surface
from .event import kevent
from .install import install, uninstall
from .kqueue import kqueue
from .selector import KqueueSelector
from .tunables import tunables

__version__ = "0.1.0"
__all__ = [
    *constants.__all__,
    *aio.__all__,
    "KqueueSelector",
    "accelerated",
    "install",
    "kevent",
    "kqueue",
    "tunables",
    "uninstall",
]
