"""asyncio as the guest of a host loop: the reference host, with a host-side timer.

The host (``asyncio_guest.ReferenceHost``) plays the part of a GUI main loop: it
has its own timer, which keeps firing on time while asyncio runs a TCP echo
server, a client, a subprocess and a worker thread as its guest, all on the
host's thread.

    python examples/reference_demo.py
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time

import asyncio_guest

HOST_THREAD = threading.get_ident()
host = asyncio_guest.ReferenceHost()
host_ticks: list[float] = []


def host_timer() -> None:
    """A host-side periodic job, like a GUI's animation timer."""
    host_ticks.append(time.monotonic())
    host.call_later(0.01, host_timer)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main() -> str:
    host.call_later(0.01, host_timer)
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.perf_counter()
    for i in range(2000):
        writer.write(b"ping %d\n" % i)
        await reader.readline()
    dt = time.perf_counter() - t0
    on_host = threading.get_ident() == HOST_THREAD
    print(f"2000 TCP round trips in {dt * 1e3:.0f} ms, on the host thread: {on_host}")
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print('hello from a subprocess')",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    print("subprocess said:", out.decode().strip())

    worker = await asyncio.to_thread(lambda: threading.current_thread().name)
    print("to_thread ran on:", worker)
    await asyncio.sleep(0.2)
    gaps = [b - a for a, b in itertools.pairwise(host_ticks)]
    print(
        f"host timer fired {len(host_ticks)} times meanwhile, "
        f"largest gap {max(gaps) * 1e3:.1f} ms (period 10 ms)"
    )
    return "guest finished cleanly"


if __name__ == "__main__":
    print(asyncio_guest.run(main(), host=host))
