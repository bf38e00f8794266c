"""EVFILT_USER: events the application triggers itself (NOTE_TRIGGER, NOTE_FF*)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..constants import (
    EV_CLEAR,
    NOTE_FFAND,
    NOTE_FFCOPY,
    NOTE_FFCTRLMASK,
    NOTE_FFLAGSMASK,
    NOTE_FFOR,
    NOTE_TRIGGER,
)
from ..knote import REPORT, SKIP, Delivery, Filter, Knote

if TYPE_CHECKING:
    from ..event import kevent


class UserFilter(Filter):
    """hook = triggered?; sfflags keeps the 24 user bits, sdata the user's data."""

    def attach(self, kn: Knote) -> None:
        kn.hook = False
        self._apply(kn, kn.sfflags, first=True)

    def touch(self, kn: Knote, ev: kevent) -> None:
        kn.sdata = ev.data
        self._apply(kn, ev.fflags, first=False)
        if ev.flags & EV_CLEAR:  # FreeBSD: a change with EV_CLEAR resets the trigger
            kn.hook = False

    def _apply(self, kn: Knote, fflags: int, first: bool) -> None:
        if fflags & NOTE_TRIGGER:
            kn.hook = True
        bits = fflags & NOTE_FFLAGSMASK
        op = fflags & NOTE_FFCTRLMASK
        current = kn.sfflags
        if first:  # FreeBSD stores the registering fflags as given
            current = bits
        elif op == NOTE_FFAND:
            current &= bits
        elif op == NOTE_FFOR:
            current |= bits
        elif op == NOTE_FFCOPY:
            current = bits
        kn.sfflags = current & NOTE_FFLAGSMASK

    def deliver(self, kn: Knote) -> Delivery:
        kn.fflags = kn.sfflags
        kn.data = kn.sdata
        kn.oflags = 0
        return REPORT if kn.hook else SKIP

    def clear(self, kn: Knote) -> None:
        kn.hook = False

    def recheck(self, kn: Knote) -> None:
        if kn.hook:
            self.kq.activate(kn)
