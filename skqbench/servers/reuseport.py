"""SO_REUSEPORT baseline: N processes bound to the same port, each its own asyncio loop
with ONE service thread, as a gunicorn/uvicorn deployment with N workers.  The kernel
hashes each new connection to a process, which keeps it for life: N service slots in
total like the other designs at N workers, but statically assigned, and no GIL shared.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import socket
from collections import Counter
from dataclasses import replace
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from typing import Any

from skqbench.osutil import child_process_setup
from skqbench.probe import merge
from skqbench.servers.asyncio_pool import AsyncioServer
from skqbench.servers.base import LOOPBACK, Server, ServerConfig

START_TIMEOUT_S = 30.0


def _process_main(cfg: ServerConfig, pipe: Pipe) -> None:
    """One worker process: serve until told to stop (or until the parent dies)."""
    child_process_setup()
    server = AsyncioServer(cfg)
    with server.running():
        pipe.send("ready")
        while True:
            try:
                msg = pipe.recv()
            except EOFError:
                break
            if msg == "stats":
                pipe.send(server.stats())
            else:
                break


class ReuseportServer(Server):
    """Starts ``cfg.workers`` processes sharing one port."""

    serves_here = False

    def start(self) -> int:
        # A bound, non-listening socket reserves the port without joining the group
        # that the kernel balances connections over.
        reserve = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserve.bind((LOOPBACK, self.cfg.port))
        port: int = reserve.getsockname()[1]
        child = replace(self.cfg, design="asyncio", workers=1, port=port, reuseport=True)
        ctx = mp.get_context("spawn")
        self._procs: list[tuple[BaseProcess, Pipe]] = []
        try:
            for i in range(self.cfg.workers):
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(
                    target=_process_main, args=(child, theirs), name=f"reuseport-{i}", daemon=True
                )
                proc.start()
                theirs.close()
                self._procs.append((proc, mine))
            for started, pipe in self._procs:
                if not pipe.poll(START_TIMEOUT_S) or pipe.recv() != "ready":
                    raise RuntimeError(f"{started.name} did not start")
        except BaseException:
            self.stop()
            raise
        finally:
            reserve.close()
        return port

    def stop(self) -> None:
        for _, pipe in self._procs:
            with contextlib.suppress(OSError):
                pipe.send("stop")
        for proc, pipe in self._procs:
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
            pipe.close()
        self._procs = []

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        served = {}
        events = Counter[str]()
        probes = []
        for proc, pipe in self._procs:
            pipe.send("stats")
            child = pipe.recv()
            served[f"{proc.name} pid {proc.pid}"] = child["served_total"]
            events.update(child["events"])
            if "probe" in child:
                probes.append(child["probe"])
        out["served"] = served
        out["served_total"] = sum(served.values())
        out["events"] = dict(events)
        if probes:
            out["probe"] = merge(probes)
        return out


DESIGN = ReuseportServer
