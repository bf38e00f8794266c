"""The conftest check: a test that forks while other threads run fails unless it is marked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent

FORKING_TESTS = """
import os
import threading

import pytest


def fork_and_reap(with_thread: bool) -> None:
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, args=(10,), daemon=True)
    if with_thread:
        helper.start()
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    finally:
        stop.set()
        if with_thread:
            helper.join(10)


def test_unmarked_fork_with_a_thread():
    fork_and_reap(with_thread=True)


@pytest.mark.forks_with_threads
def test_marked_fork_with_a_thread():
    fork_and_reap(with_thread=True)


def test_fork_with_no_other_thread():
    fork_and_reap(with_thread=False)
"""


@pytest.mark.timeout(120)
def test_fork_with_threads_fails_unless_marked(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    pytester.makepyfile(test_forking=FORKING_TESTS)
    # The copied conftest imports skqueue and the tests' support package.
    paths = [str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=100)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["E *Failed: forked while 2 threads ran*"])
    result.stdout.fnmatch_lines(["FAILED *::test_unmarked_fork_with_a_thread*"])
