"""skqueue.install() / uninstall(): what they change, and that undoing is exact."""

from __future__ import annotations

import asyncio
import json
import select
import selectors
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import skqueue
from skqueue import constants
from skqueue.install import installed

ROOT = Path(__file__).resolve().parent.parent

Snapshot = dict[str, dict[str, object]]

# Prints the select/selectors names that importing skqueue added, removed or rebound.
IMPORT_SCRIPT = """
import json, select, selectors
before = {m.__name__: dict(vars(m)) for m in (select, selectors)}
import skqueue
after = {m.__name__: dict(vars(m)) for m in (select, selectors)}
print(json.dumps(sorted(
    f"{m}.{n}" for m in before for n in before[m].keys() | after[m].keys()
    if before[m].get(n, before) is not after[m].get(n, before))))
"""


def snapshot() -> Snapshot:
    return {module.__name__: dict(vars(module)) for module in (select, selectors)}


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    """Names added, removed or rebound (compared by identity) between two snapshots."""
    missing = object()
    return sorted(
        f"{module}.{name}"
        for module, names in before.items()
        for name in names.keys() | after[module].keys()
        if names.get(name, missing) is not after[module].get(name, missing)
    )


@pytest.fixture
def before() -> Iterator[Snapshot]:
    """The select/selectors namespaces untouched; install() never outlives a test."""
    assert not installed()
    state = snapshot()
    yield state
    skqueue.uninstall()


def test_importing_skqueue_changes_nothing() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_install_points_select_and_selectors_at_skqueue(before: Snapshot) -> None:
    skqueue.install()
    assert installed()
    assert vars(select)["kqueue"] is skqueue.kqueue
    assert vars(select)["kevent"] is skqueue.kevent
    for name in constants.SELECT_NAMES:
        assert getattr(select, name) == getattr(constants, name), name
    assert (vars(select)["KQ_FILTER_READ"], vars(select)["KQ_EV_ADD"]) == (-1, 1)  # FreeBSD's
    assert vars(selectors)["KqueueSelector"] is skqueue.KqueueSelector
    default: type = selectors.DefaultSelector
    assert default is skqueue.KqueueSelector


def test_installed_selector_and_asyncio_loop_run_on_skqueue(before: Snapshot) -> None:
    skqueue.install()
    with selectors.DefaultSelector() as sel:
        assert isinstance(sel, skqueue.KqueueSelector)
    a, b = socket.socketpair()
    a.setblocking(False)

    async def echo() -> bytes:
        loop = asyncio.get_running_loop()
        assert isinstance(loop._selector, skqueue.KqueueSelector)  # type: ignore[attr-defined]
        await loop.sock_sendall(a, b"ping")
        return await loop.sock_recv(a, 16)

    with a, b:
        b.sendall(b"pong")
        assert asyncio.run(echo()) == b"pong"
        assert b.recv(16) == b"ping"


def test_uninstall_restores_exactly(before: Snapshot) -> None:
    skqueue.install()
    assert differences(before, snapshot())  # something did change
    skqueue.uninstall()
    assert not installed()
    assert differences(before, snapshot()) == []
    if sys.platform == "linux":  # CPython defines these only on BSD and macOS
        assert not hasattr(select, "kqueue")
        assert not hasattr(selectors, "KqueueSelector")


def test_install_twice_then_uninstall_once(before: Snapshot) -> None:
    skqueue.install()
    skqueue.install()  # must not record its own patches as the originals
    skqueue.uninstall()
    assert differences(before, snapshot()) == []


def test_uninstall_without_install_changes_nothing(before: Snapshot) -> None:
    skqueue.uninstall()
    assert differences(before, snapshot()) == []
