"""SKQ scaling and overhead: events/s with 1, 2, 4, 8 threads on always-ready pipes.

Designs, each with a handler that counts the event and then spins for ``--work-us``
microseconds of pure Python (0: the tiny handler):
  skq        one multi kqueue (best-of-2); ownership, no re-arm calls
  dispatch   one classic kqueue shared by all threads, EV_DISPATCH + EV_ENABLE per event
  perthread  one classic kqueue per thread, pipes split between them
  ceiling    no kqueue: one raw epoll set shared by all threads, EPOLLONESHOT items,
             and per event the calls an SKQ delivery makes (FIONREAD, the re-arm):
             what a leaderless pure-Python harvest could reach at best
Rounds are interleaved (every design and thread count once per round) and each
figure is the median over rounds with its min-max spread.  Ratios: skq against its
own 1-thread figure (scaling) and against perthread with the same thread count (the
price of scheduling).  Then the average cost of one placement per policy, and where
an skq thread's time goes: a second process with SKQUEUE_LOCK_TIMING=1 adds up how
long the threads waited for the kqueue lock and held it, per event (on free-threaded
CPython an SKQ wait runs without it, see skqueue/core.py, "The SKQ wait").  Run it on both
interpreters: on free-threaded CPython the threads really run at once.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import statistics
import subprocess
import sys
import termios
import threading
import time
from array import array
from collections.abc import Callable

from _common import write_results

import skqueue
from skqueue import EV_ADD, EV_DISPATCH, EV_ENABLE, EVFILT_READ, kevent

DESIGNS = ("skq", "dispatch", "perthread", "ceiling")
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


def spinner(work_us: float) -> Callable[[], None]:
    """A pure-Python busy loop of about work_us microseconds on this interpreter."""
    if work_us <= 0:
        return lambda: None
    probe = 50_000
    timings = []
    for _ in range(5):  # the fastest probe: the others were preempted
        t0 = time.perf_counter()
        for _ in range(probe):
            pass
        timings.append(time.perf_counter() - t0)
    per_iteration = min(timings) / probe
    count = max(1, round(work_us * 1e-6 / per_iteration))

    def spin() -> None:
        for _ in range(count):
            pass

    return spin


def run_threads(workers: list[Callable[[threading.Event], int]], duration: float) -> int:
    counts = [0] * len(workers)
    stop = threading.Event()

    def run(i: int) -> None:
        counts[i] = workers[i](stop)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join(10)
        if t.is_alive():
            raise SystemExit("a benchmark thread hung")
    return sum(counts)


def kqueue_worker(
    kq: skqueue.kqueue, spin: Callable[[], None], dispatch: bool
) -> Callable[[threading.Event], int]:
    def work(stop: threading.Event) -> int:
        changes: list[kevent] = []
        n = 0
        while not stop.is_set():
            events = kq.control(changes, 8, 0.05)
            n += len(events)
            for _ in events:
                spin()
            if dispatch:
                changes = [kevent(ev.ident, EVFILT_READ, EV_ENABLE) for ev in events]
        return n

    return work


def ceiling_worker(ep: select.epoll, spin: Callable[[], None]) -> Callable[[threading.Event], int]:
    mask = select.EPOLLIN | select.EPOLLONESHOT

    def work(stop: threading.Event) -> int:
        size = array("i", [0])
        n = 0
        while not stop.is_set():
            for fd, _ in ep.poll(0.05, 8):
                fcntl.ioctl(fd, termios.FIONREAD, size)
                n += 1
                spin()
                ep.modify(fd, mask)  # released: the owner's re-arm
        return n

    return work


def design(
    name: str,
    threads: int,
    pipes: list[tuple[int, int]],
    duration: float,
    spin: Callable[[], None],
    policy: dict[str, int] | None = None,
) -> tuple[float, dict[str, object]]:
    fds = [r for r, _ in pipes]
    stats: dict[str, object] = {}
    if name == "ceiling":
        with select.epoll() as ep:
            for fd in fds:
                ep.register(fd, select.EPOLLIN | select.EPOLLONESHOT)
            total = run_threads([ceiling_worker(ep, spin) for _ in range(threads)], duration)
        return total / duration, stats
    if name == "perthread":
        kqs = [skqueue.kqueue() for _ in range(threads)]
        for i, fd in enumerate(fds):
            kqs[i % threads].control([kevent(fd, EVFILT_READ, EV_ADD)], 0)
        workers = [kqueue_worker(kq, spin, False) for kq in kqs]
    else:
        kq = skqueue.kqueue(**(policy or POLICIES["best2"])) if name == "skq" else skqueue.kqueue()
        flags = EV_ADD | (EV_DISPATCH if name == "dispatch" else 0)
        kq.control([kevent(fd, EVFILT_READ, flags) for fd in fds], 0)
        kqs = [kq]
        workers = [kqueue_worker(kq, spin, name == "dispatch") for _ in range(threads)]
    total = run_threads(workers, duration)
    stats = kqs[0].stats()
    for kq in kqs:
        kq.close()
    return total / duration, stats


def _numbers(kind: Callable[[str], float]) -> Callable[[str], list[float]]:
    def parse(text: str) -> list[float]:
        values = [kind(part) for part in text.split(",")]
        if not values or min(values) < 0:
            raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
        return values

    return parse


def gil_state() -> str:
    enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    return "GIL" if enabled else "free-threaded (GIL off)"


def lock_profile(threads_list: list[int], works: list[float], duration: float) -> list[dict]:
    """In this process (SKQUEUE_LOCK_TIMING=1): per event, the thread time spent waiting
    for the kqueue lock, holding it, and outside it, for each thread count."""
    pipes = ready_pipes(64)
    rows = []
    for work in works:
        spin = spinner(work)
        for threads in threads_list:
            rate, stats = design("skq", threads, pipes, duration, spin)
            lock = stats["lock"]
            assert isinstance(lock, dict), "run with SKQUEUE_LOCK_TIMING=1"
            events = rate * duration
            thread_ns = threads * duration * 1e9 / events
            wait, hold = lock["wait_ns"] / events, lock["hold_ns"] / events
            rows.append(
                {
                    "work_us": work,
                    "threads": threads,
                    "events_per_s": rate,
                    "thread_us_per_event": thread_ns / 1e3,
                    "lock_wait_us_per_event": wait / 1e3,
                    "lock_hold_us_per_event": hold / 1e3,
                    "outside_us_per_event": (thread_ns - wait - hold) / 1e3,
                    "acquisitions_per_event": lock["acquisitions"] / events,
                }
            )
    for r, w in pipes:
        os.close(r)
        os.close(w)
    return rows


def print_lock_profile(rows: list[dict]) -> None:
    print("\nwhere an skq thread's time goes, us per event (SKQUEUE_LOCK_TIMING=1, one run):")
    print(
        f"{'work us':>7}{'threads':>8}{'ev/s':>10}{'thread time':>12}{'lock wait':>10}"
        f"{'lock held':>10}{'outside':>9}{'acq/ev':>8}"
    )
    for row in rows:
        print(
            f"{row['work_us']:>7g}{row['threads']:>8}{row['events_per_s']:>10,.0f}"
            f"{row['thread_us_per_event']:>12.2f}{row['lock_wait_us_per_event']:>10.2f}"
            f"{row['lock_hold_us_per_event']:>10.2f}{row['outside_us_per_event']:>9.2f}"
            f"{row['acquisitions_per_event']:>8.2f}"
        )
    print(
        "(the kqueue lock; lock held: serial work; lock wait: what serialising costs the\n"
        " others.  On free-threaded CPython an SKQ wait takes it only to lead or to join, so\n"
        " the time is outside it; SKQUEUE_LOCK_TIMING times the fd guards and kevq locks\n"
        " too, in Python, which inflates the thread time)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per run")
    parser.add_argument("--pipes", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--threads", type=_numbers(int), default=[1, 2, 4, 8])
    parser.add_argument(
        "--work-us", type=_numbers(float), default=[0.0, 5.0], help="handler work per event"
    )
    parser.add_argument("--lock-profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lock_profile:  # the child process of the lock-time table
        print(json.dumps(lock_profile(args.threads, args.work_us, args.duration)))
        return
    pipes = ready_pipes(args.pipes)
    print(f"python {sys.version.split()[0]}, {gil_state()}, {os.cpu_count()} CPUs")
    threads_list = [int(t) for t in args.threads]
    samples: dict[tuple[float, int, str], list[float]] = {}
    spins = {work: spinner(work) for work in args.work_us}
    for rnd in range(args.rounds):
        for work in args.work_us:
            for threads in threads_list:
                for name in DESIGNS:
                    rate, _ = design(name, threads, pipes, args.duration, spins[work])
                    samples.setdefault((work, threads, name), []).append(rate)
        print(f"round {rnd + 1}/{args.rounds} done")
    rows = []
    for work in args.work_us:
        print(f"\nhandler work {work:g} us: median ev/s over {args.rounds} rounds (min-max)")
        print(
            f"{'threads':>7}"
            + "".join(f"{name:>24}" for name in DESIGNS)
            + f"{'skq/skq(1)':>12}{'skq/perthread':>15}"
        )
        base = statistics.median(samples[(work, threads_list[0], "skq")])
        for threads in threads_list:
            med = {n: statistics.median(samples[(work, threads, n)]) for n in DESIGNS}
            cells = "".join(
                f"{med[n]:>10,.0f} ({min(samples[(work, threads, n)]):,.0f}-"
                f"{max(samples[(work, threads, n)]):,.0f})".rjust(24)
                for n in DESIGNS
            )
            print(
                f"{threads:>7}{cells}{med['skq'] / base:>12.2f}"
                f"{med['skq'] / med['perthread']:>15.2f}"
            )
            rows.append(
                {
                    "work_us": work,
                    "threads": threads,
                    **{n: med[n] for n in DESIGNS},
                    "samples": {n: samples[(work, threads, n)] for n in DESIGNS},
                    "skq_vs_skq1": med["skq"] / base,
                    "skq_vs_perthread": med["skq"] / med["perthread"],
                }
            )
    placement = {}
    print(f"\n{'policy':<10}{'ev/s (4 threads)':>18}{'placement us':>14}")
    for policy, params in POLICIES.items():
        rate, stats = design("skq", 4, pipes, args.duration, spins[args.work_us[0]], params)
        placement[policy] = {"events_per_s": rate, "place_avg_us": stats["place_avg_us"]}
        print(f"{policy:<10}{rate:>18,.0f}{stats['place_avg_us']:>14.2f}")
    for r, w in pipes:
        os.close(r)
        os.close(w)
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--lock-profile",
            *("--duration", str(args.duration)),
            *("--threads", ",".join(map(str, threads_list))),
            *("--work-us", ",".join(f"{w:g}" for w in args.work_us)),
        ],
        env={**os.environ, "SKQUEUE_LOCK_TIMING": "1", "SKQUEUE_CHECK_LOCKS": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    locks = json.loads(child.stdout)
    print_lock_profile(locks)
    result = {
        "gil": gil_state(),
        "rounds": args.rounds,
        "scaling": rows,
        "placement": placement,
        "lock_time": locks,
    }
    print(f"wrote {write_results('skq_scaling', result)}")


if __name__ == "__main__":
    main()
