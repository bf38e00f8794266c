"""SKQ scaling and overhead: events/s with 1, 2, 4, 8 threads on always-ready pipes.

Designs, all with a tiny handler (count the event, nothing else):
  skq       one multi kqueue (best-of-2); ownership, no re-arm calls
  dispatch  one classic kqueue shared by all threads, EV_DISPATCH + EV_ENABLE per event
  perthread one classic kqueue per thread, pipes split between them
Ratios are against ``dispatch`` with the same thread count, in the same run.
Then the average cost of one placement per policy (from kq.stats()).
"""

from __future__ import annotations

import argparse
import os
import threading
import time

from _common import write_results

import skqueue
from skqueue import EV_ADD, EV_DISPATCH, EV_ENABLE, EVFILT_READ, kevent

POLICIES = {
    "random": dict(sched=0),
    "queue": dict(sched=skqueue.KQ_SCHED_QUEUE),
    "cpu": dict(sched=skqueue.KQ_SCHED_CPU),
    "best2": dict(sched=skqueue.KQ_SCHED_BEST, sargs=2),
    "queue2": dict(sched=skqueue.KQ_SCHED_QUEUE, sargs=2),
    "best2+ws": dict(sched=skqueue.KQ_SCHED_BEST, sargs=2, feat=skqueue.KQ_SCHED_FEAT_WS, fargs=1),
}


def ready_pipes(n: int) -> list[tuple[int, int]]:
    pipes = [os.pipe() for _ in range(n)]
    for _, w in pipes:
        os.write(w, b"r")  # never read: the read end stays ready
    return pipes


def run_threads(
    work: list[tuple[skqueue.kqueue, list[kevent]]], duration: float, dispatch: bool
) -> int:
    counts = [0] * len(work)
    stop = threading.Event()

    def worker(i: int) -> None:
        kq, _ = work[i]
        changes: list[kevent] = []
        n = 0
        while not stop.is_set():
            events = kq.control(changes, 8, 0.05)
            n += len(events)
            if dispatch:
                changes = [kevent(ev.ident, EVFILT_READ, EV_ENABLE) for ev in events]
        counts[i] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join(10)
    return sum(counts)


def design(
    name: str,
    threads: int,
    pipes: list[tuple[int, int]],
    duration: float,
    policy: dict[str, int] | None = None,
) -> tuple[float, dict[str, object]]:
    fds = [r for r, _ in pipes]
    if name == "perthread":
        kqs = [skqueue.kqueue() for _ in range(threads)]
        for i, fd in enumerate(fds):
            kqs[i % threads].control([kevent(fd, EVFILT_READ, EV_ADD)], 0)
        work = [(kq, []) for kq in kqs]
    else:
        kq = skqueue.kqueue(**(policy or POLICIES["best2"])) if name == "skq" else skqueue.kqueue()
        flags = EV_ADD | (EV_DISPATCH if name == "dispatch" else 0)
        kq.control([kevent(fd, EVFILT_READ, flags) for fd in fds], 0)
        kqs = [kq]
        work = [(kq, []) for _ in range(threads)]
    total = run_threads(work, duration, dispatch=name == "dispatch")
    stats = kqs[0].stats()
    for kq in kqs:
        kq.close()
    return total / duration, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--pipes", type=int, default=64)
    args = parser.parse_args()
    pipes = ready_pipes(args.pipes)
    rows = []
    print(
        f"{'threads':>7}{'skq ev/s':>12}{'dispatch ev/s':>15}{'perthread ev/s':>16}"
        f"{'skq/dispatch':>14}{'skq/perthread':>15}"
    )
    for threads in (1, 2, 4, 8):
        rate = {
            name: design(name, threads, pipes, args.duration)[0]
            for name in ("skq", "dispatch", "perthread")
        }
        rows.append({"threads": threads, **rate})
        print(
            f"{threads:>7}{rate['skq']:>12,.0f}{rate['dispatch']:>15,.0f}"
            f"{rate['perthread']:>16,.0f}{rate['skq'] / rate['dispatch']:>14.2f}"
            f"{rate['skq'] / rate['perthread']:>15.2f}"
        )
    placement = {}
    print(f"\n{'policy':<10}{'ev/s (4 threads)':>18}{'placement us':>14}")
    for policy, params in POLICIES.items():
        rate, stats = design("skq", 4, pipes, args.duration, params)
        placement[policy] = {"events_per_s": rate, "place_avg_us": stats["place_avg_us"]}
        print(f"{policy:<10}{rate:>18,.0f}{stats['place_avg_us']:>14.2f}")
    for r, w in pipes:
        os.close(r)
        os.close(w)
    print(f"wrote {write_results('skq_scaling', {'scaling': rows, 'placement': placement})}")


if __name__ == "__main__":
    main()
