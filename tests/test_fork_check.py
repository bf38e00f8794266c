"""The conftest check: a test that forks while other threads run fails unless it is marked,
and only a marked test may get Python's warning about such a fork."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent

FORKING_TESTS = """
import os
import threading
import warnings

import pytest

# What Python 3.12+ says when a threaded process forks (3.11 says nothing).
FORK_WARNING = (
    "This process (pid=1) is multi-threaded, use of fork() may lead to deadlocks in the child."
)


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


@pytest.mark.forks_with_threads
def test_marked_test_may_get_the_fork_warning():
    warnings.warn(FORK_WARNING, DeprecationWarning, stacklevel=1)


def test_unmarked_test_may_not():
    warnings.warn(FORK_WARNING, DeprecationWarning, stacklevel=1)
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
    # As pyproject.toml has it: a DeprecationWarning is an error.
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error::DeprecationWarning", timeout=100
    )
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["FAILED *::test_unmarked_test_may_not*"])
    result.stdout.fnmatch_lines(["E *Failed: forked while 2 threads ran*"])
    result.stdout.fnmatch_lines(["FAILED *::test_unmarked_fork_with_a_thread*"])
