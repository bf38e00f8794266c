"""SKQ design: one multi-threaded (schedulable) kqueue shared by N worker threads.

Sockets are registered once, level-triggered, with no EV_DISPATCH: SKQ gives a delivered
event to one thread, which owns it until it waits again, so no re-arm call is needed.
Each wait asks for one event, so a thread never sits on work an idle thread could take;
the policy (``ServerConfig.policy``) decides which thread's queue each activation joins.
A connection that says it is latency-sensitive (a key-value HELLO) is registered with
EV_REALTIME, so its events go to the realtime FIFO of whichever kevq they join, or, with
``ServerConfig.rtreserve`` (KQTUNE_RTRESERVE), to the kevqs of the threads kept for them.
"""

from __future__ import annotations

from typing import Any

import skqueue
from skqbench.servers.base import Connection, parse_policy
from skqbench.servers.kq import KqueueServer, read_event


class SkqServer(KqueueServer):
    """N threads on one SKQ kqueue with a configurable scheduling policy."""

    def make_kqueues(self) -> list[skqueue.kqueue]:
        policy = parse_policy(self.cfg.policy)
        self.kq = skqueue.kqueue(
            sched=policy.kind,  # the policy names skqueue.kqueue(sched=...) takes
            sargs=policy.sargs,
            feat=skqueue.KQ_SCHED_FEAT_WS if policy.steal else 0,
            fargs=policy.steal,
        )
        if self.cfg.rtreserve:
            self.kq.ioctl(
                skqueue.FKQTUNE, skqueue.KQTUNE_MAKE(skqueue.KQTUNE_RTRESERVE, self.cfg.rtreserve)
            )
        self.kq.control([read_event(self.listener.fileno(), skqueue.EV_ADD)], 0)
        return [self.kq]

    def register(self, conn: Connection) -> None:
        self.kq.control([read_event(conn.fd, skqueue.EV_ADD, conn)], 0)

    def prioritise(self, kq: skqueue.kqueue, conn: Connection) -> None:
        """Re-register the socket with EV_REALTIME: a knote's realtime class is fixed when
        it is added, so it is deleted and added again, in one call."""
        kq.control(
            [
                read_event(conn.fd, skqueue.EV_DELETE),
                read_event(conn.fd, skqueue.EV_ADD | skqueue.EV_REALTIME, conn),
            ],
            0,
        )

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["kqueue"] = self.kq.stats()
        return out


DESIGN = SkqServer
