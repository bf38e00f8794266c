"""asyncio on skqueue against asyncio on epoll: the drop-in's cost to an application.

One process, one event loop per round: ``connections`` streams over socketpairs, each a
client coroutine that sends a small message and awaits its echo from a server
coroutine, ``messages`` times.  The same program runs on asyncio's selector loop over
``selectors.EpollSelector`` (the default on Linux) and over ``skqueue.KqueueSelector``
(what ``skqueue.install()`` makes the default), alternating rounds; the best round of
each is compared.  A round-trip is two events (the server's read, the client's read).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import selectors
import socket
import time
from collections.abc import Callable

from _common import pure_path, write_results

import skqueue

MESSAGE = b"x" * 64


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    for _ in range(n):
        writer.write(MESSAGE)
        await writer.drain()
        await reader.readexactly(len(MESSAGE))
    writer.close()


async def _session(connections: int, messages: int) -> float:
    tasks = []
    for _ in range(connections):
        a, b = socket.socketpair()
        server = await asyncio.open_connection(sock=a)
        tasks.append(asyncio.create_task(_echo(*server)))
        tasks.append(asyncio.create_task(_client(*await asyncio.open_connection(sock=b), messages)))
    start = time.perf_counter()
    await asyncio.gather(*tasks)
    return connections * messages / (time.perf_counter() - start)


def run(selector: Callable[[], selectors.BaseSelector], connections: int, messages: int) -> float:
    """Round-trips per second on a fresh selector event loop."""
    loop = asyncio.SelectorEventLoop(selector())
    try:
        return loop.run_until_complete(_session(connections, messages))
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    loops: dict[str, Callable[[], selectors.BaseSelector]] = {
        "asyncio on epoll": selectors.EpollSelector,
        "asyncio on skqueue": skqueue.KqueueSelector,
    }
    if skqueue.accelerated:  # both paths, side by side
        loops["asyncio on skqueue, pure"] = skqueue.KqueueSelector
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, make in loops.items():
            with pure_path() if name.endswith("pure") else contextlib.nullcontext():
                rates[name].append(run(make, args.connections, args.messages))
    best = {name: max(values) for name, values in rates.items()}
    ratios = {name: best[name] / best["asyncio on epoll"] for name in loops}
    ratio = ratios["asyncio on skqueue"]
    print(f"{'loop':<26}{'best round-trips/s':>20}{'vs epoll':>10}   rounds")
    for name, values in rates.items():
        print(
            f"{name:<26}{best[name]:>20,.0f}{ratios[name]:>9.2f}x   "
            + " ".join(f"{v:,.0f}" for v in values)
        )
    path_name = "accelerated" if skqueue.accelerated else "pure Python"
    print(f"asyncio on skqueue ({path_name}) / asyncio on epoll = {ratio:.2f}x (target >= 0.9x)")
    path = write_results(
        "asyncio",
        {
            "connections": args.connections,
            "messages": args.messages,
            "rates": rates,
            "best": best,
            "ratio": ratio,
            "accelerated": skqueue.accelerated,
            "ratio_pure": ratios.get("asyncio on skqueue, pure", ratio),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
