"""A Trio program that uses an asyncio library inside it (``asyncio_guest.trio``).

The Trio side runs a line-based TCP "uppercase" server and a heartbeat task.
The asyncio side is written as an asyncio library would be (streams, a
``to_thread`` call, ``asyncio.gather``): a client that opens several
connections to the Trio server at once. It runs inside the same ``trio.run``,
on the same thread, through ``run_asyncio``; neither loop blocks the other.

    python examples/trio_app.py            # runs until Ctrl+C (a clean stop of both)
    python examples/trio_app.py --smoke    # a few seconds, exit status 0 on success (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import sys
import threading
from typing import Any

import trio

from asyncio_guest.trio import run_asyncio

HOST_THREAD = threading.get_ident()


# ------------------------------------------------------------------ the Trio side


async def uppercase_server(stream: trio.SocketStream) -> None:
    """Trio: answer each line with its upper-case version."""
    buffer = b""
    async with stream:
        async for data in stream:
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                await stream.send_all(line.upper() + b"\n")


async def heartbeat(beats: list[float]) -> None:
    """Trio: keeps its own schedule while the asyncio guest works."""
    while True:
        beats.append(trio.current_time())
        await trio.sleep(0.05)


# ------------------------------------------------------------------ the asyncio side


async def asyncio_client(port: int, connections: int, lines: int) -> dict[str, Any]:
    """asyncio library-style code: knows nothing about Trio."""
    assert threading.get_ident() == HOST_THREAD  # one thread for both loops

    async def one_connection(n: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(lines):
                writer.write(b"client %d line %d\n" % (n, i))
                await writer.drain()
                answer = await reader.readline()
                assert answer == b"CLIENT %d LINE %d\n" % (n, i), answer
        finally:
            writer.close()
            await writer.wait_closed()
        return lines

    # Blocking work goes to a thread, as an asyncio library would do it.
    digest = await asyncio.to_thread(lambda: hashlib.sha256(b"x" * 1_000_000).hexdigest())
    answered = await asyncio.gather(*(one_connection(n) for n in range(connections)))
    return {"lines": sum(answered), "digest": digest[:12]}


# ------------------------------------------------------------------ main


async def trio_main(smoke: bool) -> int:
    beats: list[float] = []
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, host="127.0.0.1")
        listeners = await nursery.start(serve, uppercase_server, 0)
        port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(heartbeat, beats)
        rounds = 3 if smoke else 1_000_000
        for n in range(rounds):
            with trio.fail_after(30):
                result = await run_asyncio(asyncio_client, port, 10, 50)
            print(f"round {n + 1}: asyncio client got {result['lines']} answers "
                  f"(sha256 {result['digest']}...), Trio heartbeats so far: {len(beats)}")
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    if smoke and len(beats) < 10:
        print(f"FAIL: Trio's heartbeat stalled ({len(beats)} beats)", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    args = ap.parse_args()
    try:
        return trio.run(trio_main, args.smoke)
    except BaseException as exc:  # Trio's nursery wraps the Ctrl+C in an exception group
        if not all(isinstance(e, KeyboardInterrupt) for e in _leaves(exc)):
            raise
        print("stopped (Ctrl+C): the asyncio guest had shut down first")
        return 130


def _leaves(exc: BaseException) -> list[BaseException]:
    group: Any = getattr(exc, "exceptions", None)
    return [leaf for e in group for leaf in _leaves(e)] if group else [exc]


if __name__ == "__main__":
    sys.exit(main())
