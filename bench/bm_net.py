"""Socket benchmarks: ``echo`` (in-process ping-pong), ``echo_ext`` (ping-pong with
another process), ``echo_timer`` and ``echo_timeout`` (the same with a timer
pending, or a timeout per reply) and ``stream`` (bulk transfer)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from harness import Ctx, Metrics, now, with_far_timer

_MSG = b"x" * 64
_WARMUP_TRIPS = 1000
_CHECK_EVERY = 100  # round trips between clock reads
_PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "echo_peer.py")


async def _ping_pong(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    duration: float,
    timeout: float | None = None,
) -> float:
    """Client side: write 64 bytes, read 64 back; round trips per second.

    With ``timeout``, each read has a timer of its own, cancelled when the reply
    is in (``asyncio.timeout``'s pattern, written out: 3.10 has no
    ``asyncio.timeout``, and ``wait_for`` there makes a task per call)."""
    size = len(_MSG)
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None

    async def trip() -> None:
        writer.write(_MSG)
        await writer.drain()
        if timeout is None:
            await reader.readexactly(size)
        else:
            timer = loop.call_later(timeout, me.cancel)
            try:
                await reader.readexactly(size)
            finally:
                timer.cancel()

    for _ in range(_WARMUP_TRIPS):
        await trip()
    n = 0
    t0 = now()
    end = t0 + duration
    while True:
        for _ in range(_CHECK_EVERY):
            await trip()
        n += _CHECK_EVERY
        t = now()
        if t >= end:
            break
    return n / (t - t0)


async def _echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    size = len(_MSG)
    try:
        while True:
            data = await reader.readexactly(size)
            writer.write(data)
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()


async def echo(ctx: Ctx) -> Metrics:
    """Client and server in the same loop: when the client awaits its reply the
    server's request is already readable, so a zero-timeout poll always finds work
    (in guest mode the backend thread is never involved)."""
    server = await asyncio.start_server(_echo_handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rate = await _ping_pong(reader, writer, ctx.sizes.duration)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return {"rate": rate}


async def echo_ext(ctx: Ctx) -> Metrics:
    """The peer is another process, so after each write the loop has nothing to do
    until the reply arrives: every round trip is a real blocking wait (in guest mode,
    a hand-over to the backend thread and back). By default the loop runs on one CPU
    and the peer on another, like a remote peer (see README: unpinned, the OS's
    placement makes this figure bimodal, 13k or 45k round trips/s)."""
    return await _echo_with_peer(ctx)


async def echo_timer(ctx: Ctx) -> Metrics:
    """``echo_ext`` with one asyncio timer pending far off, as nearly every application
    has one (a periodic task's sleep, a request's timeout): each wait then has a
    deadline, which a host that owns the wait (the zero-thread strategy) must keep
    as one of its own timers across round trips."""
    return await with_far_timer(_echo_with_peer(ctx))


async def echo_timeout(ctx: Ctx) -> Metrics:
    """``echo_ext`` with each reply awaited under its own 10 s timeout (a timer made
    and cancelled per round trip, as ``asyncio.timeout`` and client libraries'
    read timeouts do): the loop's next deadline moves at every wait."""
    return await _echo_with_peer(ctx, timeout=10.0)


async def _echo_with_peer(ctx: Ctx, timeout: float | None = None) -> Metrics:
    peer = subprocess.Popen(
        [sys.executable, _PEER], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    try:
        ctx.pin_helper(peer.pid)
        assert peer.stdout is not None
        port = int(peer.stdout.readline())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        rate = await _ping_pong(reader, writer, ctx.sizes.duration, timeout)
        writer.close()
        await writer.wait_closed()
    finally:
        try:
            peer.wait(timeout=5)
        except subprocess.TimeoutExpired:
            peer.kill()
            peer.wait()
    return {"rate": rate}


_CHUNK = b"\0" * (64 << 10)
_READ_SIZE = 256 << 10


async def stream(ctx: Ctx) -> Metrics:
    """Bulk transfer through StreamWriter/StreamReader over loopback: the client writes
    64 KiB chunks with drain() for ``duration`` seconds, then EOF; the server reads
    256 KiB at a time. MB/s (1e6) from the first write until the server saw EOF."""
    received: asyncio.Queue[int] = asyncio.Queue()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while data := await reader.read(_READ_SIZE):
            n += len(data)
        received.put_nowait(n)
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def transfer(duration: float) -> tuple[int, float]:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        t0 = now()
        end = t0 + duration
        while True:
            for _ in range(16):  # 1 MiB between clock reads
                writer.write(_CHUNK)
                await writer.drain()
            sent += 16 * len(_CHUNK)
            if now() >= end:
                break
        writer.write_eof()
        got = await received.get()
        dt = now() - t0
        if got != sent:
            raise RuntimeError(f"sent {sent} bytes, server got {got}")
        writer.close()
        await writer.wait_closed()
        return got, dt

    await transfer(0.05)  # warm-up
    nbytes, dt = await transfer(ctx.sizes.duration)
    server.close()
    await server.wait_closed()
    ctx.extra["bytes"] = nbytes
    return {"rate": nbytes / 1e6 / dt}
