"""Which per-event path is in use: the C accelerator (``skqueue._accel``) or pure Python.

The pure-Python path is the reference: it defines the semantics and runs wherever the
extension was not built.  The accelerator does only what that path does, with the same
system calls in the same order (a property test compares the two event for event).
``SKQUEUE_PURE=1`` in the environment, read at import, forces the pure path.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("SKQUEUE_PURE", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module(f"{__package__}._accel")
    except ImportError:
        return None


#: The C module, or None on the pure-Python path.
speedups = _load()

#: True when the C accelerator serves the per-event path.
accelerated = speedups is not None
