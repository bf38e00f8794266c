"""Fixtures shared by the test modules: a kqueue of each kind and a socketpair."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import skqueue
from support import KQUEUE_KINDS


@pytest.fixture(params=sorted(KQUEUE_KINDS))
def kq(request: pytest.FixtureRequest) -> Iterator[skqueue.kqueue]:
    """A classic kqueue, then an SKQ one (best-of-2) driven from one thread."""
    made = KQUEUE_KINDS[request.param]()
    yield made
    made.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()
