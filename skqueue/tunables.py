"""Process-wide tunables: skqueue's sysctls, readable and settable at run time."""

from __future__ import annotations

import threading
from typing import Any

#: name -> (default, lowest, highest)
_KNOBS: dict[str, tuple[int, int, int]] = {
    # SKQ scheduler.
    "cache_penalty_ns": (1_000, 0, 1_000_000_000),
    "steal_scan_factor": (2, 1, 64),
    # AIO.
    "aio_max_queue": (4096, 1, 1 << 20),
    "aio_max_per_fd": (1024, 1, 1 << 20),
    "aio_workers": (4, 1, 256),
    "tx_zcopy": (1, 0, 1),
    "tx_zcopy_min": (16 * 1024, 0, 1 << 30),
}


class Tunables:
    """skqueue's process-wide knobs, read and set as attributes (``tunables.tx_zcopy = 0``).

    * ``cache_penalty_ns``: how much better (ns of expected start time) another kevq
      must be before a queue/cpu hybrid policy moves an event off its affinity.
    * ``steal_scan_factor``: busy kevqs an idle thread probes per steal (it robs the fullest).
    * ``aio_max_queue``, ``aio_max_per_fd``: AIO jobs queued in all and per fd (EAGAIN beyond).
    * ``aio_workers``: threads serving file AIO.
    * ``tx_zcopy`` (0/1), ``tx_zcopy_min``: zero-copy socket writes, and the smallest
      write that goes zero-copy.

    Each is an int in a fixed range: TypeError or ValueError (naming the range)
    otherwise.  Writes are atomic under a lock, not the GIL.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {name: default for name, (default, _, _) in _KNOBS.items()}

    def __getattr__(self, name: str) -> int:
        values = self.__dict__.get("_values")
        if values is None or name not in values:
            raise AttributeError(name)
        value: int = values[name]
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        self.set(name, value)

    def set(self, name: str, value: int | bool) -> None:
        """Set one tunable; ValueError names the allowed range when value is outside it."""
        if name not in _KNOBS:
            raise AttributeError(f"no tunable named {name!r}")
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int):
            raise TypeError(f"{name} takes an int, not {type(value).__name__}")
        _, low, high = _KNOBS[name]
        if not low <= value <= high:
            raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
        with self._lock:
            self._values[name] = value

    def as_dict(self) -> dict[str, int]:
        """Every tunable and its current value, one consistent snapshot."""
        with self._lock:
            return dict(self._values)

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *_KNOBS]

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={value}" for name, value in self.as_dict().items())
        return f"skqueue.tunables({values})"


#: The one tunables object of this process.
tunables = Tunables()
