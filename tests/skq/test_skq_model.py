"""A multi kqueue served by several threads against a sequential model (hypothesis).

Changes and triggers of EV_CLEAR user events are applied by the test; waits run on
three worker threads (each owns what it receives until its next wait).  The model
counts how many times each event went from idle to pending; after a final drain the
multiset of delivered events must equal it: nothing lost, nothing delivered twice.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import skqueue
from skqueue import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_ENABLE,
    EVFILT_USER,
    NOTE_TRIGGER,
    kevent,
)

IDENTS = st.integers(min_value=1, max_value=6)
WORKERS = 3


class Worker:
    """A thread that waits on the kqueue when told to, and reports what it got."""

    def __init__(self, kq: skqueue.kqueue) -> None:
        self.kq = kq
        self.orders: queue.Queue[int | None] = queue.Queue()
        self.results: queue.Queue[list[int] | BaseException] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (n := self.orders.get()) is not None:
            try:
                self.results.put([ev.ident for ev in self.kq.control(None, n, 0)])
            except BaseException as exc:
                self.results.put(exc)

    def wait(self, n: int) -> list[int]:
        self.orders.put(n)
        result = self.results.get(timeout=10)
        if isinstance(result, BaseException):
            raise result
        return result

    def stop(self) -> None:
        self.orders.put(None)
        self.thread.join(10)
        assert not self.thread.is_alive()


class MultiKqueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.kq = skqueue.kqueue(sched="best", sargs=2)
        self.workers = [Worker(self.kq) for _ in range(WORKERS)]
        self.registered: set[int] = set()
        self.disabled: set[int] = set()
        self.pending: set[int] = set()  # triggered and not yet delivered
        self.expected: Counter[int] = Counter()
        self.delivered: Counter[int] = Counter()

    @rule(ident=IDENTS)
    def add(self, ident: int) -> None:
        self.kq.control([kevent(ident, EVFILT_USER, EV_ADD | EV_CLEAR)], 0)
        self.registered.add(ident)
        if ident in self.pending:  # FreeBSD: a change carrying EV_CLEAR resets the trigger
            self.pending.discard(ident)
            self.expected[ident] -= 1

    @precondition(lambda self: self.registered)
    @rule(data=st.data())
    def trigger(self, data: Any) -> None:
        ident = data.draw(st.sampled_from(sorted(self.registered)))
        self.kq.control([kevent(ident, EVFILT_USER, 0, NOTE_TRIGGER)], 0)
        if ident not in self.pending:
            self.pending.add(ident)
            self.expected[ident] += 1

    @precondition(lambda self: self.registered)
    @rule(data=st.data())
    def delete(self, data: Any) -> None:
        ident = data.draw(st.sampled_from(sorted(self.registered)))
        self.kq.control([kevent(ident, EVFILT_USER, EV_DELETE)], 0)
        self.registered.discard(ident)
        self.disabled.discard(ident)
        if ident in self.pending:  # a delete drops the pending event
            self.pending.discard(ident)
            self.expected[ident] -= 1

    @precondition(lambda self: self.registered)
    @rule(data=st.data(), enable=st.booleans())
    def toggle(self, data: Any, enable: bool) -> None:
        ident = data.draw(st.sampled_from(sorted(self.registered)))
        self.kq.control([kevent(ident, EVFILT_USER, EV_ENABLE if enable else EV_DISABLE)], 0)
        (self.disabled.discard if enable else self.disabled.add)(ident)

    @rule(worker=st.integers(0, WORKERS - 1), n=st.integers(1, 4))
    def wait(self, worker: int, n: int) -> None:
        for ident in self.workers[worker].wait(n):
            assert ident in self.pending, f"event {ident} delivered without a pending trigger"
            assert ident not in self.disabled
            self.pending.discard(ident)
            self.delivered[ident] += 1

    @invariant()
    def never_more_than_expected(self) -> None:
        for ident, count in self.delivered.items():
            assert count <= self.expected[ident]

    def teardown(self) -> None:
        try:
            for ident in list(self.disabled):
                self.kq.control([kevent(ident, EVFILT_USER, EV_ENABLE)], 0)
                self.disabled.discard(ident)
            idle_rounds = 0
            while idle_rounds < 2:  # two rounds: owned events are released, then taken
                got = 0
                for worker in self.workers:
                    for ident in worker.wait(8):
                        self.delivered[ident] += 1
                        got += 1
                idle_rounds = idle_rounds + 1 if got == 0 else 0
            assert +self.delivered == +self.expected
        finally:
            for worker in self.workers:
                worker.stop()
            self.kq.close()


MultiKqueueMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
test_multi_kqueue_matches_model = MultiKqueueMachine.TestCase
