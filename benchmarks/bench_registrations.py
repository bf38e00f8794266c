"""100,000 registrations on one kqueue: add, wait, delete; memory per registration.

Measures USER, TIMER and READ (socketpair) knotes.  Memory is the traced Python
allocation (tracemalloc) of the kqueue's structures per registration; times are
for the whole batch, printed per registration.  The wait returns only the few
triggered events, showing that a wait does not scan all registrations.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import socket
import time
import tracemalloc
from collections.abc import Callable

from _common import write_results

import skqueue
from skqueue import EV_ADD, EV_DELETE, EVFILT_READ, EVFILT_TIMER, EVFILT_USER, NOTE_TRIGGER, kevent


def _add_all(kq: skqueue.kqueue, idents: list[int], filt: int, fflags: int, data: int) -> None:
    for start in range(0, len(idents), 1000):
        kq.control([kevent(i, filt, EV_ADD, fflags, data) for i in idents[start : start + 1000]], 0)


def _traced_bytes(idents: list[int], filt: int, fflags: int, data: int) -> float:
    """Memory per registration, on a separate kqueue: tracing slows what follows."""
    kq = skqueue.kqueue()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    _add_all(kq, idents, filt, fflags, data)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    kq.close()
    return (after - before) / len(idents)


def measure(
    name: str,
    idents: list[int],
    filt: int,
    fflags: int,
    data: int,
    fire: Callable[[skqueue.kqueue], int],
) -> dict[str, float]:
    per_knote = _traced_bytes(idents, filt, fflags, data)
    kq = skqueue.kqueue()
    t0 = time.perf_counter()
    _add_all(kq, idents, filt, fflags, data)
    t_add = time.perf_counter() - t0
    expected = fire(kq)
    t0 = time.perf_counter()
    got = kq.control(None, 64, 5 if expected else 0)
    t_wait = time.perf_counter() - t0
    assert len(got) == expected, (name, len(got), expected)
    t0 = time.perf_counter()
    for start in range(0, len(idents), 1000):
        kq.control([kevent(i, filt, EV_DELETE) for i in idents[start : start + 1000]], 0)
    t_del = time.perf_counter() - t0
    kq.close()
    n = len(idents)
    row = {
        "registrations": n,
        "bytes_per_registration": per_knote,
        "add_us": t_add / n * 1e6,
        "wait_ms": t_wait * 1e3,
        "events_returned": len(got),
        "delete_us": t_del / n * 1e6,
    }
    print(
        f"{name:<7}{n:>9,}{row['bytes_per_registration']:>10.0f} B{row['add_us']:>10.2f} us"
        f"{row['wait_ms']:>10.2f} ms{row['delete_us']:>10.2f} us"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    n = args.n
    print(f"{'filter':<7}{'knotes':>9}{'memory':>12}{'add':>13}{'wait':>13}{'delete':>13}")
    results = {}

    def trigger_user(kq: skqueue.kqueue) -> int:
        kq.control([kevent(i, EVFILT_USER, 0, NOTE_TRIGGER) for i in range(0, n, n // 10)], 0)
        return 10

    results["user"] = measure("USER", list(range(n)), EVFILT_USER, 0, 0, trigger_user)
    results["timer"] = measure("TIMER", list(range(n)), EVFILT_TIMER, 0, 3_600_000, lambda kq: 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * n + 1000
    if soft < want:
        # Root may raise the hard limit too (CAP_SYS_RESOURCE); a container may not.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    n_fds = min(n, (limit - 1000) // 2)  # two fds per socketpair
    if n_fds >= 1000:
        if n_fds < n:
            print(f"READ    limited to {n_fds:,} sockets by RLIMIT_NOFILE {limit}")
        pairs = [socket.socketpair() for _ in range(n_fds)]

        def write_some(kq: skqueue.kqueue) -> int:
            for _, writer in pairs[:: n_fds // 10]:
                writer.send(b"x")
            return 10

        results["read"] = measure(
            "READ", [r.fileno() for r, _ in pairs], EVFILT_READ, 0, 0, write_some
        )
        for reader, writer in pairs:
            reader.close()
            writer.close()
    else:
        print(f"READ    skipped: RLIMIT_NOFILE {limit} is too low")
    print(f"wrote {write_results('registrations', {'n': n, 'results': results})}")


if __name__ == "__main__":
    main()
