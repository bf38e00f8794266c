"""Shared helpers for the benchmarks: result files and ratio tables."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(
    os.environ.get("SKQUEUE_RESULTS", Path(__file__).resolve().parent.parent / "results")
)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write payload as results/<name>.json with the machine it ran on."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "kernel": platform.release(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2))
    return path
