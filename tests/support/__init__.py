"""Helpers the tests share: the kinds of kqueue to run against (one of them waits on a
second thread), one-event waits, fd counts, polling for clean-up another thread does,
threads that must not hang, and the environment of a child interpreter that imports
this checkout."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from skqueue.event import kevent
from skqueue.kqueue import kqueue

#: The checkout's root, where a child interpreter imports skqueue from.
ROOT = Path(__file__).resolve().parents[2]


class WaiterThreadKqueue(kqueue):
    """An SKQ kqueue whose waits all come from one second, long-lived thread.

    Every control() with room for events (a wait, in SKQ's terms) runs on the waiter
    thread, and changes alone run on the caller's.  So what a wait hands out belongs to
    the waiter until its next wait while the caller changes, fires and deletes the very
    knotes it owns: a test run against this kind checks SKQ's ownership rule across two
    threads without a line about threads in it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before the kqueue: close(), which a failed __init__ reaches through __del__, uses it.
        self._waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kqueue-waiter")
        super().__init__(*args, **kwargs)

    def control(
        self,
        changelist: Iterable[kevent] | None,
        max_events: int,
        timeout: float | None = None,
    ) -> list[kevent]:
        call = super().control
        if not isinstance(max_events, int) or max_events <= 0:
            return call(changelist, max_events, timeout)  # and argument errors, as they are
        return self._waiter.submit(call, changelist, max_events, timeout).result()

    def close(self) -> None:
        super().close()  # wakes the waiter if another thread left it waiting
        self._waiter.shutdown(wait=True)


#: The two kinds of kqueue every semantic test runs against.
KQUEUE_KINDS: dict[str, Callable[[], kqueue]] = {
    "classic": kqueue,
    "skq": lambda: kqueue(sched="best", sargs=2),
}

#: Those two and an SKQ kqueue whose waits come from a second thread: the contract suite.
CONTRACT_KINDS: dict[str, Callable[[], kqueue]] = {
    **KQUEUE_KINDS,
    "skq-waiter": lambda: WaiterThreadKqueue(sched="best", sargs=2),
}


def one(kq: kqueue, timeout: float = 5.0) -> kevent:
    """The one event that must come (the wait ends as soon as it does)."""
    events = kq.control(None, 8, timeout)
    assert len(events) == 1, events
    return events[0]


def nothing(kq: kqueue, quiet: float = 0.05) -> None:
    """No event may come within ``quiet`` seconds."""
    events = kq.control(None, 8, quiet)
    assert events == [], events


def checkout_env() -> dict[str, str]:
    """This environment with the checkout first on PYTHONPATH, for a child interpreter."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def open_fds() -> set[int]:
    """The numbers of this process's open fds (the listing's own fd among them)."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll predicate() until it holds or timeout passes: for what another thread (or
    the kernel) finishes on its own time, never as a stand-in for an event."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)
    return True


def start_thread(target: Callable[..., object], *args: object) -> threading.Thread:
    """target(*args) on a new daemon thread (a hung one cannot keep pytest alive)."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def join_all(threads: Iterable[threading.Thread], timeout: float) -> None:
    """Join every thread within one shared timeout; a thread still alive fails the test."""
    threads = list(threads)
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [thread.name for thread in threads if thread.is_alive()]
    assert not hung, f"threads hung: {hung}"
