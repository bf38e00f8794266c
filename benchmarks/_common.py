"""Shared helpers for the benchmarks: result files and ratio tables."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import skqueue.core

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


@contextlib.contextmanager
def pure_path() -> Iterator[None]:
    """Meanwhile, kqueues take the pure-Python path (``skqueue.core.speedups`` is the
    switch), so that both paths run interleaved in one process."""
    saved = skqueue.core.speedups
    skqueue.core.speedups = None
    try:
        yield
    finally:
        skqueue.core.speedups = saved


@contextlib.contextmanager
def c_floor(name: str) -> Iterator[Callable[[], float] | None]:
    """benchmarks/<name>.c, compiled: a call runs it and returns what it prints
    (microseconds of a floor no Python code can beat, measured here).  None without gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / name
        source = Path(__file__).with_name(f"{name}.c")
        subprocess.run([gcc, "-O2", "-pthread", "-o", str(exe), str(source)], check=True)

        def run() -> float:
            out = subprocess.run([exe], check=True, capture_output=True, text=True, timeout=60)
            return float(out.stdout)

        yield run
