"""``KqueueSelector``: a ``selectors`` selector on skqueue, usable without install()."""

from __future__ import annotations

import os
import selectors
from typing import Any

from .constants import EV_ADD, EV_DELETE, EV_RECEIPT, EVFILT_READ, EVFILT_WRITE
from .event import kevent
from .kqueue import kqueue

_FileObj = Any  # int or object with fileno(), as selectors accepts
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_FILTERS = ((_READ, EVFILT_READ), (_WRITE, EVFILT_WRITE))


def _filters(events: int) -> list[int]:
    return [filt for flag, filt in _FILTERS if events & flag]


class KqueueSelector(selectors._BaseSelectorImpl):
    """Readiness selection through one skqueue kqueue (READ and WRITE filters).

    Behaves like CPython's BSD ``selectors.KqueueSelector``: one (key, mask) pair
    per ready filter.  Changes go in with EV_RECEIPT so that every change answers
    for itself: a refused registration leaves nothing half-registered behind.
    """

    _fd_to_key: dict[int, selectors.SelectorKey]  # set by _BaseSelectorImpl

    def __init__(self) -> None:
        super().__init__()
        self._selector = kqueue()
        self._max_events = 0

    def fileno(self) -> int:
        """The descriptor of the kqueue underneath."""
        return self._selector.fileno()

    def register(self, fileobj: _FileObj, events: int, data: Any = None) -> selectors.SelectorKey:
        """Watch fileobj for EVENT_READ/EVENT_WRITE; OSError(errno) if the kqueue refuses it."""
        key = super().register(fileobj, events, data)
        filters = _filters(events)
        try:
            receipts = self._change(key.fd, filters, EV_ADD)
        except BaseException:
            super().unregister(fileobj)
            raise
        failed = [ev.data for ev in receipts if ev.data]
        if failed:
            self._change(key.fd, filters, EV_DELETE)  # undo whichever change did succeed
            super().unregister(fileobj)
            raise OSError(failed[0], os.strerror(failed[0]))
        self._max_events += len(filters)
        return key

    def unregister(self, fileobj: _FileObj) -> selectors.SelectorKey:
        """Stop watching fileobj (also fine when it was closed since it was registered)."""
        key = super().unregister(fileobj)
        filters = _filters(key.events)
        self._max_events -= len(filters)
        # A receipt with an error means the fd was closed since it was
        # registered, and its registrations went with it: nothing to do.
        self._change(key.fd, filters, EV_DELETE)
        return key

    def _change(self, fd: int, filters: list[int], action: int) -> list[kevent]:
        """Apply one action to several filters of fd; one receipt per filter."""
        changes = [kevent(fd, filt, action | EV_RECEIPT) for filt in filters]
        return self._selector.control(changes, len(changes), 0)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Wait up to timeout seconds (None: forever, <= 0: poll) for registered files.

        One (key, mask) pair per ready filter; [] when interrupted by a signal.
        """
        timeout = None if timeout is None else max(timeout, 0)
        ready: list[tuple[selectors.SelectorKey, int]] = []
        try:
            # At least one event, or kqueue would return at once whatever the timeout.
            events = self._selector.control(None, max(self._max_events, 1), timeout)
        except InterruptedError:
            return ready
        fd_to_key, append = self._fd_to_key, ready.append
        for ev in events:  # per event: no call but the lookup
            key = fd_to_key.get(ev.ident)
            if key is not None:
                append((key, (_READ if ev.filter == EVFILT_READ else _WRITE) & key.events))
        return ready

    def close(self) -> None:
        """Close the kqueue underneath and forget every registration."""
        self._selector.close()
        super().close()
