"""``KqueueSelector``: a ``selectors`` selector on skqueue, usable without install()."""

from __future__ import annotations

import selectors
from typing import Any

from .constants import EV_ADD, EV_DELETE, EVFILT_READ, EVFILT_WRITE
from .event import kevent
from .kqueue import kqueue

_FileObj = Any  # int or object with fileno(), as selectors accepts


class KqueueSelector(selectors._BaseSelectorImpl):
    """Readiness selection through one skqueue kqueue (read and write filters)."""

    def __init__(self) -> None:
        super().__init__()
        self._selector = kqueue()
        self._max_events = 0

    def fileno(self) -> int:
        return self._selector.fileno()

    def register(
        self, fileobj: _FileObj, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        try:
            changes = []
            if events & selectors.EVENT_READ:
                changes.append(kevent(key.fd, EVFILT_READ, EV_ADD))
                self._max_events += 1
            if events & selectors.EVENT_WRITE:
                changes.append(kevent(key.fd, EVFILT_WRITE, EV_ADD))
                self._max_events += 1
            self._selector.control(changes, 0, 0)
        except BaseException:
            super().unregister(fileobj)
            raise
        return key

    def unregister(self, fileobj: _FileObj) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        for flag, filt in ((selectors.EVENT_READ, EVFILT_READ),
                           (selectors.EVENT_WRITE, EVFILT_WRITE)):
            if key.events & flag:
                self._max_events -= 1
                try:
                    self._selector.control([kevent(key.fd, filt, EV_DELETE)], 0, 0)
                except OSError:
                    pass  # closed before unregister: its knote is already gone
        return key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        timeout = None if timeout is None else max(timeout, 0)
        ready: list[tuple[selectors.SelectorKey, int]] = []
        try:
            events = self._selector.control(None, max(self._max_events, 1), timeout)
        except InterruptedError:
            return ready
        for ev in events:
            key = self._key_from_fd(ev.ident)
            if key is None:
                continue
            mask = selectors.EVENT_READ if ev.filter == EVFILT_READ else selectors.EVENT_WRITE
            ready.append((key, mask & key.events))
        return ready

    def close(self) -> None:
        self._selector.close()
        super().close()
