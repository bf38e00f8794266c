"""The kevq's WaitQueue: a condition that counts the threads it has not woken yet."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from skqueue.sched.kevq import WaitQueue


def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.001)
    return False


def test_timeout_leaves_no_sleeper() -> None:
    lock = threading.Lock()
    queue = WaitQueue(lock)
    with lock:
        assert queue.wait(0.01) is False
        assert not queue.unwoken


def test_notify_counts_down_before_the_sleeper_runs() -> None:
    """A notified thread no longer counts, though it has not run yet (no swallowed wake-up)."""
    lock = threading.Lock()
    queue = WaitQueue(lock)
    woken: list[bool] = []

    def sleeper() -> None:
        with lock:
            woken.append(queue.wait(30))

    threads = [threading.Thread(target=sleeper) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert _until(lambda: len(queue.unwoken) == 2)
    with lock:
        queue.notify()
        assert len(queue.unwoken) == 1  # the first is picked, the second still waits
        queue.notify()
        assert not queue.unwoken
        queue.notify()  # nobody left: harmless
    for thread in threads:
        thread.join(5)
    assert woken == [True, True]


def test_notify_all() -> None:
    lock = threading.Lock()
    queue = WaitQueue(lock)
    done = threading.Event()

    def sleeper() -> None:
        with lock:
            queue.wait(None)
        done.set()

    thread = threading.Thread(target=sleeper)
    thread.start()
    assert _until(lambda: bool(queue.unwoken))
    with lock:
        queue.notify_all()
        assert not queue.unwoken
    assert done.wait(5)
    thread.join(5)
