"""Run the C accelerator under valgrind's memcheck: no invalid access, no leak of its own.

    python tools/accel_memcheck.py

runs a workload that takes every branch of skqueue/_accel.c (plain READs reported
whole, runs cut short by EV_CLEAR, EV_DISPATCH, a hang-up and a closed fd, the room
running out, an SKQ scan's unlocked deliveries on sockets and a pipe) in a child
interpreter under ``valgrind --leak-check=full`` with ``PYTHONMALLOC=malloc``, and fails
(exit 1) if any error or definitely-lost block has the accelerator on its stack.
CPython's own reports (it frees little at exit, and reads some uninitialised words on
purpose) are not the accelerator's and are not counted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

ROUNDS = 300
VALGRIND = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite", "--num-callers=30"]


def workload() -> int:
    """Events the accelerated harvest returned; every branch of it is taken."""
    import socket

    import skqueue
    from skqueue import EV_ADD, EV_CLEAR, EV_DISPATCH, EV_ENABLE, EVFILT_READ, kevent

    if not skqueue.accelerated:
        raise SystemExit("the accelerator is not in use: nothing to check")
    pairs = [socket.socketpair() for _ in range(6)]
    kq = skqueue.kqueue()
    kq.control([kevent(a, EVFILT_READ, EV_ADD) for a, _ in pairs[:4]], 0)
    kq.control(
        [
            kevent(pairs[4][0], EVFILT_READ, EV_ADD | EV_CLEAR),
            kevent(pairs[5][0], EVFILT_READ, EV_ADD | EV_DISPATCH),
        ],
        0,
    )
    for _, b in pairs:
        b.send(b"x" * 70_000)  # data past the small-int cache: a new int per event
    count = 0
    for _ in range(ROUNDS):
        count += len(kq.control(None, 5, 0))  # the room runs out
        count += len(kq.control([kevent(pairs[5][0], EVFILT_READ, EV_ENABLE)], 8, 0))
    pairs[0][1].shutdown(socket.SHUT_WR)  # a hang-up: the general path
    count += len(kq.control(None, 8, 0))
    pairs[1][0].close()  # a closed fd
    count += len(kq.control(None, 8, 0))
    kq.close()
    # An SKQ kqueue: its scan's unlocked deliveries (measure_plain), a pipe's among them.
    skq = skqueue.kqueue(sched="best", sargs=2)
    r, w = os.pipe()
    os.write(w, b"p")
    skq.control([kevent(a, EVFILT_READ, EV_ADD) for a, _ in pairs[2:4]], 0)
    skq.control([kevent(r, EVFILT_READ, EV_ADD)], 0)
    for _ in range(ROUNDS):
        count += len(skq.control(None, 2, 0))
    os.close(w)  # the pipe's hang-up
    count += len(skq.control(None, 4, 0))
    skq.close()
    os.close(r)
    return count


def ours(report: str) -> list[str]:
    """The error and leak records of valgrind's report with the accelerator on the stack."""
    records = re.split(r"\n==\d+== \n", report)
    kinds = ("definitely lost", "Invalid", "uninitialised")
    return [r for r in records if "_accel" in r and any(kind in r for kind in kinds)]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--workload":
        print(f"events {workload()}")
        return 0
    if shutil.which("valgrind") is None:
        print("accel_memcheck: valgrind is not installed (apt-get install valgrind)")
        return 2
    child = subprocess.run(
        [*VALGRIND, sys.executable, __file__, "--workload"],
        env={**os.environ, "PYTHONMALLOC": "malloc"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if child.returncode != 0 or not child.stdout.startswith("events "):
        print(child.stdout, child.stderr[-3000:], sep="\n")
        print(f"accel_memcheck: the workload failed (exit {child.returncode})")
        return 1
    found = ours(child.stderr)
    for record in found:
        print(record, end="\n\n")
    events = child.stdout.split()[1]
    print(f"accel_memcheck: {events} events, {len(found)} reports on the accelerator's stack")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
