"""Every example in examples/ runs to the end in a fresh interpreter and says what it did."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: example -> the starts of lines its output must contain (regular expressions, in order).
EXPECTED: dict[str, list[str]] = {
    "echo.py": [r"echo server on 127\.0\.0\.1:\d+", r"done: 3 clients x 3 lines echoed"],
    "skq_workers.py": [
        r"4 workers on one SKQ kqueue \(policy best2\+ws1\)",
        r"handled 400 requests from 16 sockets",
        *(rf"  worker {n}: \d+ requests" for n in range(4)),
        r"placements: \d+",
        r"retired kevqs: 4, \d+ events, \d+ stolen",
    ],
    "aio_zerocopy_send.py": [
        r"queued aio_write of 8388608 bytes",
        r"completion event: filter=EVFILT_AIO udata='the 8 MiB send' errno=0",
        r"aio_return: 8388608 bytes sent; the reader got 8388608 bytes, identical",
        r"zero-copy sends: [1-9]\d* carrying 8388608 bytes",
    ],
    "asyncio_on_skqueue.py": [
        r"asyncio's loop waits in skqueue\.selector\.KqueueSelector",
        r"echoed: hello from client 2",
        r"done: 3 clients served on skqueue",
    ],
}


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


def _run(name: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=100,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_reports(name: str) -> None:
    proc = _run(name)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stderr == ""
    lines = iter(proc.stdout.splitlines())
    for pattern in EXPECTED[name]:
        assert any(re.match(pattern, line) for line in lines), (pattern, proc.stdout)


def test_readme_first_snippet_runs() -> None:
    """The README's first Python block is a whole program: it runs and reports the read."""
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", readme, re.S)
    assert snippet is not None
    done = subprocess.run(
        [sys.executable, "-c", snippet.group(1)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["-1 5 my connection"]
