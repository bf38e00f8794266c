"""Run CPython's own kqueue/selectors/asyncio test cases on skqueue.

Usage: ``python tests/support/cpython_suites.py SUITE`` (skqueue importable).  The test modules
come from the interpreter's installed ``test`` package; they decide at import
time whether kqueue exists, so ``skqueue.install()`` runs first.  The last line
printed is a JSON summary that ``tests/test_cpython_suites.py`` checks.  Run it
in a fresh process: install() and asyncio's policy state are process-wide.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import select
import selectors
import sys
import unittest

import skqueue

#: suite name -> the module of CPython's test package that holds it.
SUITES: dict[str, str] = {
    "kqueue": "test.test_kqueue",
    "selectors": "test.test_selectors",
    "asyncio_events": "test.test_asyncio.test_events",
    "asyncio_sock_lowlevel": "test.test_asyncio.test_sock_lowlevel",
    "asyncio_sendfile": "test.test_asyncio.test_sendfile",
}


def _on_kqueue(name: str) -> bool:
    """The cases that run on kqueue: *Kqueue* classes and the DefaultSelector ones."""
    return "kqueue" in name.lower() or name.startswith("DefaultSelector")


def _check_installed() -> str:
    """Prove that select, selectors and asyncio really run on skqueue.

    This also makes sure that a module CPython skips (SkipTest at import, e.g.
    test_kqueue without select.kqueue) is skipped for a reason that is not ours.
    Returns the name of the selector class asyncio uses.
    """
    if getattr(select, "kqueue", None) is not skqueue.kqueue:
        raise AssertionError("select.kqueue is not skqueue's")
    default: type = selectors.DefaultSelector
    if default is not skqueue.KqueueSelector:
        raise AssertionError(f"DefaultSelector is {default!r}")
    if getattr(selectors, "KqueueSelector", None) is not skqueue.KqueueSelector:
        raise AssertionError("selectors.KqueueSelector is not skqueue's")
    loop = asyncio.new_event_loop()
    try:
        selector = loop._selector  # type: ignore[attr-defined]
        if not isinstance(selector, skqueue.KqueueSelector):
            raise AssertionError(f"asyncio loop selector is {selector!r}")
    finally:
        loop.close()
    return f"{type(selector).__module__}.{type(selector).__qualname__}"


def load(suite: str) -> unittest.TestSuite:
    """Import the suite's module (after install()) and collect its kqueue cases."""
    module = importlib.import_module(SUITES[suite])
    loader = unittest.TestLoader()
    tests = unittest.TestSuite()
    for name in sorted(vars(module)):
        obj = getattr(module, name)
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and _on_kqueue(name):
            tests.addTests(loader.loadTestsFromTestCase(obj))
    return tests


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SUITES:
        print(f"usage: cpython_suites {{{','.join(SUITES)}}}", file=sys.stderr)
        return 2
    skqueue.install()
    summary: dict[str, object] = {"suite": argv[0], "selector": _check_installed()}
    try:
        tests = load(argv[0])
    except unittest.SkipTest as skip:  # CPython skips the whole module on this host
        summary["module_skipped"] = str(skip)
        print(json.dumps(summary))
        return 0
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(tests)
    summary |= {
        "ran": result.testsRun,
        "skipped": len(result.skipped),
        "failures": len(result.failures),
        "errors": len(result.errors),
        "unexpected_successes": len(result.unexpectedSuccesses),
        "skip_reasons": sorted({reason for _, reason in result.skipped}),
    }
    print(json.dumps(summary))
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
