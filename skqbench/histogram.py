"""The latency histogram every measurement here records into (HdrHistogram)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

HIST_MAX_NS = 3600 * 1_000_000_000
HIST_DIGITS = 3


def new_histogram() -> HdrHistogram:
    """1 ns to an hour at 3 significant digits.  hdrh is imported here, not at the top:
    it is in the bench extra, and the ``skqueue`` command must start (and say so)
    without it."""
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(1, HIST_MAX_NS, HIST_DIGITS)
