"""The kqueue contract, run for every filter driver on a classic kqueue, an SKQ kqueue,
and an SKQ kqueue whose waits come from a second thread (support.WaiterThreadKqueue).

Each case is FreeBSD's documented behaviour (kqueue(2)) of registrations in
general; what is filter-specific comes from the driver (see ``drivers.py``).
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable, Iterator

import pytest

import skqueue
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_DISPATCH,
    EV_ENABLE,
    EV_ERROR,
    EV_ONESHOT,
    EV_RECEIPT,
)
from support import CONTRACT_KINDS, WaiterThreadKqueue, one

from .drivers import Driver, Reg, all_drivers

WAIT = 2.0  # upper bound for an expected event; waits end as soon as it comes

MakeKq = Callable[[], skqueue.kqueue]


@pytest.fixture(params=all_drivers(), ids=lambda cls: cls.name)
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    made: Driver = request.param()
    yield made
    made.close()


@pytest.fixture(params=sorted(CONTRACT_KINDS))
def make_kq(request: pytest.FixtureRequest) -> Iterator[MakeKq]:
    made: list[skqueue.kqueue] = []

    def make() -> skqueue.kqueue:
        kq = CONTRACT_KINDS[request.param]()
        made.append(kq)
        return kq

    yield make
    for kq in made:
        kq.close()


@pytest.fixture
def reg(driver: Driver, make_kq: MakeKq) -> Reg:
    return Reg(make_kq(), driver.open())


def change(driver: Driver, reg: Reg, flags: int, nevents: int = 0) -> list[skqueue.kevent]:
    """Apply one change that restates the driver's fflags, data and reg.udata."""
    ev = skqueue.kevent(reg.ident, driver.filter, flags, driver.fflags, driver.data, reg.udata)
    events = reg.kq.control([ev], nevents, 0)
    reg.touched = time.monotonic()
    return events


def wait_one(driver: Driver, reg: Reg, flags: int = 0) -> skqueue.kevent:
    """Exactly one event for reg, with the kept flags plus the filter's own."""
    ev = one(reg.kq, WAIT)
    reg.touched = time.monotonic()
    assert (ev.ident, ev.filter) == (reg.ident, driver.filter)
    assert ev.flags == flags | driver.implied_flags
    assert ev.udata is reg.udata
    driver.check(ev)
    return ev


def nothing(driver: Driver, reg: Reg) -> None:
    events = reg.kq.control(None, 4, driver.settle)
    assert driver.unexplained(events, time.monotonic() - reg.touched) == []


def fire_gone(driver: Driver, reg: Reg) -> None:
    """Fire what a deleted knote watched; a per-kqueue ident (USER) may refuse."""
    with contextlib.suppress(FileNotFoundError):
        driver.fire(reg)


def assert_enoent(driver: Driver, reg: Reg, flags: int) -> None:
    with pytest.raises(OSError) as info:
        change(driver, reg, flags)
    assert info.value.errno == errno.ENOENT


def adds_in_a_wait(
    request: pytest.FixtureRequest, driver: Driver, reg: Reg, raises: type[Exception]
) -> None:
    """For a test that adds its knote in a call with room for events: the waiter-thread
    kind runs that call on its second thread, where a driver whose first add must be on
    the main thread cannot add, by design.  Expected to fail there, and checked to."""
    if driver.main_thread_add and isinstance(reg.kq, WaiterThreadKqueue):
        reason = f"{driver.name}: the first knote can only be added on the main thread"
        request.applymarker(pytest.mark.xfail(strict=True, raises=raises, reason=reason))


def test_add(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD)
    nothing(driver, reg)
    driver.fire(reg)
    wait_one(driver, reg)
    if driver.level:  # still ready: reported again until it is not
        wait_one(driver, reg)
        driver.quiet(reg)
    nothing(driver, reg)


def test_delete(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD)
    change(driver, reg, EV_DELETE)
    fire_gone(driver, reg)
    nothing(driver, reg)
    assert_enoent(driver, reg, EV_DELETE)


@pytest.mark.parametrize("action", [EV_DELETE, EV_ENABLE, EV_DISABLE])
def test_missing_is_enoent(driver: Driver, reg: Reg, action: int) -> None:
    (err,) = change(driver, reg, action, nevents=1)
    assert (err.ident, err.filter, err.flags, err.data) == (
        reg.ident,
        driver.filter,
        EV_ERROR,
        errno.ENOENT,
    )
    assert err.udata is reg.udata
    assert_enoent(driver, reg, action)


def test_error_with_room_continues_without_room_stops(
    request: pytest.FixtureRequest, driver: Driver, reg: Reg
) -> None:
    adds_in_a_wait(request, driver, reg, OSError)  # ENOTSUP without room for it
    missing = skqueue.kevent(reg.ident, driver.filter, EV_DELETE)
    add = skqueue.kevent(reg.ident, driver.filter, EV_ADD, driver.fflags, driver.data, reg.udata)
    with pytest.raises(OSError):
        reg.kq.control([missing, add], 0)
    assert_enoent(driver, reg, EV_DELETE)  # the add after the error was not applied
    (err,) = reg.kq.control([missing, add], 1, 0)
    assert (err.flags, err.data) == (EV_ERROR, errno.ENOENT)
    driver.fire(reg)
    wait_one(driver, reg)  # the add after the reported error was applied


def test_disable_then_enable(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD)
    change(driver, reg, EV_DISABLE)
    driver.fire(reg)
    nothing(driver, reg)
    change(driver, reg, EV_ENABLE)
    wait_one(driver, reg)


def test_add_disabled(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD | EV_DISABLE)
    driver.fire(reg)
    nothing(driver, reg)
    change(driver, reg, EV_ENABLE)
    wait_one(driver, reg)


def test_oneshot(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD | EV_ONESHOT)
    nothing(driver, reg)
    driver.fire(reg)
    wait_one(driver, reg, EV_ONESHOT)
    fire_gone(driver, reg)
    nothing(driver, reg)
    assert_enoent(driver, reg, EV_DELETE)


def test_dispatch(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD | EV_DISPATCH)
    driver.fire(reg)
    wait_one(driver, reg, EV_DISPATCH)
    driver.fire(reg)
    nothing(driver, reg)  # disabled by the delivery, though ready again
    change(driver, reg, EV_ENABLE)
    wait_one(driver, reg, EV_DISPATCH)
    nothing(driver, reg)  # and disabled again
    change(driver, reg, EV_DELETE)  # still registered


def test_receipt(request: pytest.FixtureRequest, driver: Driver, reg: Reg) -> None:
    adds_in_a_wait(request, driver, reg, AssertionError)  # the receipt says ENOTSUP
    (receipt,) = change(driver, reg, EV_ADD | EV_RECEIPT, nevents=4)
    # A new knote's receipt echoes fflags and data as 0 (FreeBSD clears them).
    assert (receipt.ident, receipt.filter, receipt.flags, receipt.fflags, receipt.data) == (
        reg.ident,
        driver.filter,
        EV_ERROR,
        0,
        0,
    )
    assert receipt.udata is reg.udata
    driver.fire(reg)
    started = time.monotonic()
    receipts = reg.kq.control(
        [
            skqueue.kevent(
                reg.ident, driver.filter, flags | EV_RECEIPT, driver.fflags, driver.data, reg.udata
            )
            for flags in (EV_DISABLE, EV_ENABLE)
        ],
        4,
        WAIT,
    )
    # Receipts only: the pending event is not scanned for, and nothing waits.
    assert [(ev.flags, ev.data) for ev in receipts] == [(EV_ERROR, 0), (EV_ERROR, 0)]
    assert time.monotonic() - started < WAIT / 2
    wait_one(driver, reg, EV_RECEIPT)  # EV_RECEIPT is kept in the knote's flags


def test_udata_is_the_same_object(driver: Driver, reg: Reg) -> None:
    reg.udata = {"unhashable": [1, 2, 3]}
    change(driver, reg, EV_ADD)
    driver.fire(reg)
    assert wait_one(driver, reg).udata is reg.udata


def test_modify_replaces_udata(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD)
    reg.udata = object()
    change(driver, reg, EV_ADD)
    driver.fire(reg)
    wait_one(driver, reg)  # one knote, carrying the new udata


def test_modify_replaces_fflags(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD)
    fflags, data = driver.modified()
    reg.kq.control([skqueue.kevent(reg.ident, driver.filter, EV_ADD, fflags, data, reg.udata)], 0)
    driver.fire(reg)
    driver.check_modified(reg.kq.control(None, 4, driver.settle))


def test_disable_drains_pending_event(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD)
    driver.fire(reg)
    change(driver, reg, EV_DISABLE)
    nothing(driver, reg)
    change(driver, reg, EV_ENABLE)
    wait_one(driver, reg)  # the event was held back, not lost


def test_delete_drains_pending_event(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD)
    driver.fire(reg)
    change(driver, reg, EV_DELETE)
    nothing(driver, reg)
    fire_gone(driver, reg)
    nothing(driver, reg)


def test_same_ident_in_two_kqueues(driver: Driver, reg: Reg, make_kq: MakeKq) -> None:
    other = Reg(make_kq(), reg.ident)
    for r in (reg, other):
        change(driver, r, EV_ADD)
    driver.fire(reg)
    if not driver.shared:
        driver.fire(other)
    wait_one(driver, reg)
    wait_one(driver, other)
    change(driver, reg, EV_DELETE)
    if driver.level:
        driver.quiet(other)
    driver.fire(other)
    wait_one(driver, other)  # the other kqueue's knote outlives the delete
    nothing(driver, reg)


def test_clear_reports_each_trigger_once(driver: Driver, reg: Reg) -> None:
    change(driver, reg, EV_ADD | EV_CLEAR)
    driver.fire(reg)
    wait_one(driver, reg, EV_CLEAR)
    nothing(driver, reg)  # still ready, but already reported
    driver.fire(reg)
    wait_one(driver, reg, EV_CLEAR)
    nothing(driver, reg)


def test_waiter_kind_waits_on_a_second_thread(driver: Driver) -> None:
    """The third kind is what it says: one kevq, the waiter thread's, which owns what it
    was given while the test thread, which only changes and fires, has none."""
    with CONTRACT_KINDS["skq-waiter"]() as kq:
        reg = Reg(kq, driver.open())
        change(driver, reg, EV_ADD)
        driver.fire(reg)
        wait_one(driver, reg)
        (kevq,) = kq.stats()["kevqs"]
        assert kevq["thread_name"].startswith("kqueue-waiter"), kevq
        assert kevq["owned"] == 1, kevq
