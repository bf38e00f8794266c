"""SKQ: four worker threads serve one kqueue; the scheduler places every event on one.

Run it: ``python examples/skq_workers.py``.  A producer sends fixed-size requests
over 16 socket pairs; the workers wait on the same SKQ kqueue (best-of-2 with work
stealing) and each event goes to exactly one of them, which owns it until its next
wait, so no EV_DISPATCH and no re-arm call are needed.  It prints what each worker
handled and the scheduler's own counters, and exits when every request is served.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter

import skqueue
from skqueue import EV_ADD, EVFILT_READ, kevent

WORKERS = 4
SOCKETS = 16
REQUESTS = 25  # per socket
REQUEST = b"request!"  # 8 bytes, so a read can count whole requests


def main() -> None:
    kq = skqueue.kqueue(sched="best", sargs=2, steal=1)
    pairs = [socket.socketpair() for _ in range(SOCKETS)]
    for _, server in pairs:
        server.setblocking(False)
    kq.control([kevent(server, EVFILT_READ, EV_ADD, udata=server) for _, server in pairs], 0)

    total = SOCKETS * REQUESTS
    handled: Counter[str] = Counter()
    # Bytes of a request not yet complete, per socket: only the thread that got the
    # socket's event touches its entry, since SKQ gives that event to no one else.
    partial: dict[int, int] = {}
    lock = threading.Lock()
    done = threading.Event()

    def worker() -> None:
        name = threading.current_thread().name
        while not done.is_set():
            for ev in kq.control(None, 8, 0.2):
                got = len(ev.udata.recv(ev.data)) + partial.get(ev.ident, 0)
                whole, partial[ev.ident] = divmod(got, len(REQUEST))
                with lock:
                    handled[name] += whole
                    if sum(handled.values()) == total:
                        done.set()

    threads = [threading.Thread(target=worker, name=f"worker {n}") for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for _ in range(REQUESTS):
        for client, _ in pairs:
            client.sendall(REQUEST)
    finished = done.wait(30)
    for thread in threads:
        thread.join(10)
    stats = kq.stats()
    kq.close()
    for client, server in pairs:
        client.close()
        server.close()
    if not finished:
        raise SystemExit(f"only {sum(handled.values())} of {total} requests served in 30 s")

    print(f"{WORKERS} workers on one SKQ kqueue (policy {stats['policy']})")
    print(f"handled {sum(handled.values())} requests from {SOCKETS} sockets")
    for thread in threads:
        print(f"  {thread.name}: {handled[thread.name]} requests")
    print(f"placements: {stats['placements']}, {stats['place_avg_us']:.1f} us each on average")
    retired = stats["retired"]  # a worker's kevq retires into this sum as its thread exits
    print(
        f"retired kevqs: {retired['kevqs']}, {retired['events']} events, {retired['steals']} stolen"
    )


if __name__ == "__main__":
    main()
