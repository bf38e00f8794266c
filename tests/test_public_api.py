"""The public surface a user learns from help(): documented, no private knobs, clear errors."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

import skqueue
from skqueue.tunables import _KNOBS
from support import open_fds


def _public_callables() -> Iterator[tuple[str, Any]]:
    """Every class and function in skqueue.__all__, and the public members of each class."""
    for name in skqueue.__all__:
        obj = getattr(skqueue, name)
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue  # constants, and the tunables object (its class is checked below)
        yield name, obj
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if not member.startswith("_") and (
                    inspect.isroutine(value) or isinstance(value, property | classmethod)
                ):
                    yield f"{name}.{member}", getattr(obj, member)
    yield "tunables", type(skqueue.tunables)


PUBLIC = dict(_public_callables())


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_has_a_docstring(name: str) -> None:
    assert (PUBLIC[name].__doc__ or "").strip(), f"{name} has no docstring"


@pytest.mark.parametrize("name", sorted(n for n, v in PUBLIC.items() if callable(v)))
def test_no_signature_shows_a_private_parameter(name: str) -> None:
    try:
        signature = inspect.signature(PUBLIC[name])
    except ValueError:  # a builtin without a signature has no parameters to show
        return
    private = [p for p in signature.parameters if p.startswith("_")]
    assert not private, f"{name}{signature}"


def test_the_private_test_helpers_are_not_part_of_the_package() -> None:
    assert importlib.util.find_spec("skqueue._testing") is None


def test_tunables_repr_shows_every_knob_and_its_value() -> None:
    old = skqueue.tunables.aio_workers
    skqueue.tunables.aio_workers = old + 1
    try:
        text = repr(skqueue.tunables)
    finally:
        skqueue.tunables.aio_workers = old
    assert text.startswith("skqueue.tunables(")
    assert f"aio_workers={old + 1}" in text
    for name in _KNOBS:
        assert f"{name}=" in text


# Argument checks: the error names the argument, and nothing is left open -------------
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"sched": 1.5}, TypeError),
        ({"sched": ["best"]}, TypeError),
        ({"sched": "fastest"}, ValueError),
        ({"sched": "best", "sargs": "2"}, TypeError),
        ({"sched": "best", "sargs": -1}, ValueError),
        ({"sched": "best", "sargs": 256}, ValueError),
        ({"sched": "random", "steal": 1.5}, TypeError),
        ({"sched": "random", "steal": -1}, ValueError),
        ({"sched": "random", "feat": skqueue.KQ_SCHED_FEAT_WS, "fargs": 300}, ValueError),
        ({"sched": "random", "steal": 2, "fargs": 3}, ValueError),
        ({"steal": 2}, ValueError),  # without sched it would silently be a classic kqueue
        ({"sargs": 2}, ValueError),
        ({"sched": 0x40}, OSError),  # what FKQMULTI answers for an unknown policy
        ({"sched": "random", "feat": 2}, OSError),
    ],
)
def test_kqueue_refuses_bad_scheduler_arguments(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    before = len(open_fds())
    with pytest.raises(error) as caught:
        skqueue.kqueue(**kwargs)
    if error is OSError:
        assert caught.type is OSError and isinstance(caught.value, OSError)
        assert caught.value.errno == 22
    assert len(open_fds()) == before


def test_kqueue_takes_the_scheduler_arguments_it_documents() -> None:
    with skqueue.kqueue(sched="random", steal=2) as kq:
        assert kq.stats()["policy"].startswith("random")
    with skqueue.kqueue(sched=skqueue.KQ_SCHED_BEST, sargs=3) as kq:
        assert kq.stats()["policy"].startswith("best3")


@pytest.mark.parametrize("max_events", [1.5, "8", None])
def test_control_max_events_of_a_wrong_type_is_type_error(
    kq: skqueue.kqueue, max_events: Any
) -> None:
    with pytest.raises(TypeError):
        kq.control(None, max_events, 0)


def test_control_max_events_negative_is_value_error(kq: skqueue.kqueue) -> None:
    with pytest.raises(ValueError):
        kq.control(None, -1, 0)
    assert kq.control(None, True, 0) == []  # a bool is an int, as for select.kqueue
