"""What waking the chosen thread costs an SKQ kqueue, against what it cannot go below.

An SKQ leader places an activation on another thread's kevq and wakes that thread
through the kevq's wait queue (``skqueue.sched.kevq.WaitQueue``, a lock per sleeper on
the kqueue lock; before it, a ``threading.Condition``).  Two threads hand a turn back
and forth under one lock, each sleeping on its own queue, as a leader and a follower do;
printed per hand-over (one wake-up and its running) and the waker's own time in
notify(), for ``threading.Condition``, the WaitQueue, and the same hand-over in C
through POSIX semaphores (``wake_cost.c``): the kernel's part, which no wait queue, in
Python or in C, goes below.  Rounds alternate; the best of each is compared.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import Protocol

from _common import c_floor, write_results

from skqueue.sched.kevq import WaitQueue


class Queue(Protocol):
    def notify(self) -> None: ...


def condition_wait(cond: threading.Condition) -> None:
    cond.wait()


def queue_wait(queue: WaitQueue) -> None:
    queue.wait(None)


QUEUES: dict[str, tuple[Callable[[threading.Lock], Queue], Callable[..., None]]] = {
    "threading.Condition": (threading.Condition, condition_wait),
    "skqueue WaitQueue": (WaitQueue, queue_wait),
}


def hand_overs(
    make: Callable[[threading.Lock], Queue], wait: Callable[..., None], n: int
) -> tuple[float, float]:
    """(us per hand-over, us of the waker's notify() per hand-over)."""
    lock = threading.Lock()
    queues = (make(lock), make(lock))
    turn = [0]
    notify_ns = [0, 0]

    def side(me: int) -> None:
        with lock:
            for _ in range(n):
                while turn[0] != me:
                    wait(queues[me])
                turn[0] = 1 - me
                start = time.perf_counter_ns()
                queues[1 - me].notify()
                notify_ns[me] += time.perf_counter_ns() - start

    other = threading.Thread(target=side, args=(1,))
    start = time.perf_counter()
    other.start()
    side(0)
    other.join()
    elapsed = time.perf_counter() - start
    return elapsed / (2 * n) * 1e6, sum(notify_ns) / (2 * n) / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hand-overs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in QUEUES}
    floors: list[float] = []
    with c_floor("wake_cost") as wake_cost:
        for _ in range(args.rounds):
            for name, (make, wait) in QUEUES.items():
                samples[name].append(hand_overs(make, wait, args.hand_overs))
            if wake_cost is not None:
                floors.append(wake_cost())
    best = {name: min(values) for name, values in samples.items()}
    floor = min(floors) if floors else None
    print(f"{'wait queue':<22}{'us per wake-up':>16}{'us in notify':>14}")
    for name, (per_wake, notify) in best.items():
        print(f"{name:<22}{per_wake:>16.2f}{notify:>14.2f}")
    if floor is not None:
        print(f"{'C, POSIX semaphores':<22}{floor:>16.2f}")
    condition, queue = best["threading.Condition"][0], best["skqueue WaitQueue"][0]
    print(f"WaitQueue / Condition = {queue / condition:.2f}x per wake-up (target <= 0.5x)")
    if floor is not None:
        print(
            f"the kernel's part, one wake-up: {floor:.2f} us ({floor / condition:.2f}x of "
            f"Condition's figure); a WaitQueue hand-over costs {queue / floor:.2f} of them"
        )
    path = write_results(
        "wake",
        {
            "hand_overs": args.hand_overs,
            "samples_us": {n: [list(s) for s in v] for n, v in samples.items()},
            "best_us": {n: {"per_wake": w, "notify": t} for n, (w, t) in best.items()},
            "c_semaphore_us": floor,
            "c_semaphore_samples_us": floors,
            "ratio_vs_condition": queue / condition,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
