"""Filters: one module per kqueue filter, behind the interface in ``skqueue.knote``."""

from __future__ import annotations

from ..constants import (
    EVFILT_AIO,
    EVFILT_LIO,
    EVFILT_PROC,
    EVFILT_READ,
    EVFILT_SIGNAL,
    EVFILT_TIMER,
    EVFILT_USER,
    EVFILT_VNODE,
    EVFILT_WRITE,
)
from ..knote import Filter
from .aio import AioFilter
from .fd import FdFilter
from .proc import ProcFilter
from .signal import SignalFilter
from .timer import TimerFilter
from .user import UserFilter
from .vnode import VnodeFilter

#: Filter number -> filter class; numbers sharing a class share one instance.
registry: dict[int, type[Filter]] = {
    EVFILT_READ: FdFilter,
    EVFILT_WRITE: FdFilter,
    EVFILT_TIMER: TimerFilter,
    EVFILT_USER: UserFilter,
    EVFILT_AIO: AioFilter,
    EVFILT_LIO: AioFilter,
    EVFILT_SIGNAL: SignalFilter,
    EVFILT_PROC: ProcFilter,
    EVFILT_VNODE: VnodeFilter,
}
