"""CPython's own kqueue, selectors and asyncio suites, run on skqueue.

Each suite runs in its own interpreter (``tests/support/cpython_suites.py``):
install() and asyncio's policy and child-watcher state are process-wide and
must not leak into the other tests.  The runner checks that selectors and
asyncio really use skqueue before it imports the test modules.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from support import ROOT, checkout_env
from support.cpython_suites import SUITES

if importlib.util.find_spec("test.support") is None:
    pytest.skip(
        "this interpreter has no `test` package (Debian/Ubuntu: libpython3.X-testsuite)",
        allow_module_level=True,
    )


@pytest.mark.timeout(170)
@pytest.mark.parametrize("suite", sorted(SUITES))
def test_cpython_suite(suite: str) -> None:
    # The runner is a script in the test tree; skqueue comes from this checkout.
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "support" / "cpython_suites.py"), suite],
        cwd=ROOT,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=160,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no summary from the runner:\n{proc.stderr[-4000:]}"
    summary = json.loads(lines[-1])
    assert summary["selector"] == "skqueue.selector.KqueueSelector"
    if "module_skipped" in summary:
        pytest.skip(f"CPython skips {suite} here: {summary['module_skipped']}")
    print(
        f"{suite}: ran={summary['ran']} skipped={summary['skipped']} "
        f"failed={summary['failures'] + summary['errors']} "
        f"skip reasons={summary['skip_reasons']}"
    )
    details = proc.stderr[-8000:]
    assert summary["ran"] > summary["skipped"], details
    assert summary["failures"] == 0, details
    assert summary["errors"] == 0, details
    assert summary["unexpected_successes"] == 0, details
    assert proc.returncode == 0, details
