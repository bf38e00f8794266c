"""Fixtures the filter tests share beyond tests/conftest.py: a scripted child process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.proc import Child


@pytest.fixture
def child() -> Iterator[Child]:
    made = Child()
    yield made
    made.close()
