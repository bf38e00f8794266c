"""asyncio on skqueue: install() makes asyncio's selector loop run on a skqueue kqueue.

Run it: ``python examples/asyncio_on_skqueue.py``.  After ``skqueue.install()``,
``selectors.DefaultSelector`` is skqueue's KqueueSelector, so the loop that
``asyncio.run`` makes waits in skqueue's kevent.  An ordinary asyncio program, an
echo server with three stream clients and a timeout, then runs unchanged.
``skqueue.uninstall()`` puts select and selectors back as they were.
"""

from __future__ import annotations

import asyncio

import skqueue

CLIENTS = 3


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def client(port: int, number: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"hello from client {number}\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    await writer.wait_closed()
    return answer.decode().strip()


async def main() -> None:
    selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    print(f"asyncio's loop waits in {type(selector).__module__}.{type(selector).__name__}")
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        answers = await asyncio.gather(*(client(port, n) for n in range(CLIENTS)))
    for answer in answers:
        print(f"echoed: {answer}")
    await asyncio.sleep(0.05)  # a timer, too, goes through the kqueue's wait
    print(f"done: {len(answers)} clients served on skqueue")


if __name__ == "__main__":
    skqueue.install()
    try:
        asyncio.run(main())
    finally:
        skqueue.uninstall()
