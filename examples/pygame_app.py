"""A 60 fps pygame game whose frame time stays steady while asyncio streams data.

    python examples/pygame_app.py            # a window: a bouncing ball, the stream's rate
    python examples/pygame_app.py --smoke    # headless, ~2 s: prints frame times and bytes
    python examples/pygame_app.py --screenshot out.png  # headless, the screen after ~1.5 s

asyncio runs on the game's own thread, inside its frame loop: each frame calls
``host.pump()``, which gives asyncio at most 4 ms (``budget``) of the 16.7 ms
frame, however much data is waiting. Meanwhile asyncio serves a loopback TCP
stream at full speed (a server task writing, a client task reading and
counting), and SPACE starts a coroutine through ``async_callback`` (a round
trip to a second loopback server, its latency shown). Closing the window
(``pygame.QUIT``) cancels ``main``; its ``finally`` closes the sockets, and
the loop ends once asyncio has shut down.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

if "--smoke" in sys.argv or "--screenshot" in sys.argv:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

from asyncio_guest import async_callback
from asyncio_guest import pygame as guest_pygame

CHUNK = b"x" * (256 << 10)


class Stats:
    received = 0
    rtt_ms: float | None = None
    screenshot: str | None = None  # a PNG to write once, ~1.5 s in


async def stream(stats: Stats) -> None:
    """A loopback server streaming as fast as it can, and a client counting bytes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                writer.write(CHUNK)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            # Return, not re-raise: a start_server handler that ends cancelled
            # is logged as an error by some asyncio versions (3.11, 3.12).
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            data = await reader.read(1 << 18)
            if not data:
                break
            stats.received += len(data)
    finally:
        writer.close()
        server.close()


async def main(stats: Stats, seconds: float | None) -> int:
    """The asyncio side: the stream, until the window closes (or ``seconds`` pass)."""
    task = asyncio.create_task(stream(stats))
    try:
        if seconds is None:
            await task
        else:
            await asyncio.sleep(seconds)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return stats.received


async def ping(stats: Stats) -> None:
    """SPACE: one round trip through a fresh loopback echo server."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    await reader.read(100)
    stats.rtt_ms = (time.perf_counter() - t0) * 1e3
    writer.close()
    server.close()
    await server.wait_closed()


def game(host: guest_pygame.PygameHost, stats: Stats, frame_times: list[float]) -> None:
    """The program's own frame loop: events, asyncio's slice, update, draw, tick."""
    screen = pygame.display.get_surface()
    font = pygame.font.Font(None, 24)
    clock = pygame.time.Clock()
    on_space = async_callback(ping, on_busy="ignore")
    x, y, dx, dy = 40.0, 40.0, 240.0, 180.0
    started = last = time.perf_counter()
    while host.running:
        for event in pygame.event.get():
            host.handle(event)  # QUIT cancels main; the loop goes on until asyncio is done
            if event.type == pygame.KEYDOWN and event.key == pygame.K_SPACE:
                on_space(stats)
        host.pump()  # asyncio's share of this frame (4 ms at most)
        now = time.perf_counter()
        dt, last = now - last, now
        frame_times.append(dt)
        x, y = x + dx * dt, y + dy * dt
        w, h = screen.get_size()
        if not 20 <= x <= w - 20:
            dx = -dx
        if not 20 <= y <= h - 20:
            dy = -dy
        screen.fill((20, 24, 32))
        pygame.draw.circle(screen, (240, 200, 60), (int(x), int(y)), 20)
        mb = stats.received / 1e6
        lines = [f"asyncio received {mb:,.0f} MB over loopback",
                 f"frame {dt * 1e3:5.1f} ms   SPACE: ping"
                 + ("" if stats.rtt_ms is None else f" ({stats.rtt_ms:.2f} ms)")]
        for i, text in enumerate(lines):
            screen.blit(font.render(text, True, (220, 220, 220)), (10, 10 + 24 * i))
        pygame.display.flip()
        if stats.screenshot and now - started > 1.5:
            pygame.image.save(screen, stats.screenshot)
            print(f"screenshot written to {stats.screenshot}")
            stats.screenshot = None
        clock.tick(60)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(seconds: float | None, screenshot: str | None = None) -> tuple[int, list[float]]:
    pygame.init()
    pygame.display.set_caption("asyncio-guest: pygame")
    pygame.display.set_mode((480, 320))
    stats = Stats()
    stats.screenshot = screenshot
    frame_times: list[float] = []
    try:
        received: Any = guest_pygame.run(
            main, stats, seconds, frame_loop=lambda host: game(host, stats, frame_times)
        )
    except asyncio.CancelledError:  # the window was closed
        received = stats.received
    finally:
        pygame.quit()
    return int(received), frame_times


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="headless, about 2 s, then report")
    parser.add_argument("--screenshot", metavar="PNG", help="save the screen as a PNG, then exit")
    args = parser.parse_args()
    received, frame_times = run(2.0 if args.smoke or args.screenshot else None, args.screenshot)
    steady = frame_times[10:]  # after the first frames (window set-up, first connect)
    if steady:
        print(f"frames {len(frame_times)}, frame time p50 {percentile(steady, 0.5) * 1e3:.2f} ms, "
              f"p99 {percentile(steady, 0.99) * 1e3:.2f} ms")
    print(f"asyncio moved {received:,} bytes over loopback")
    if args.smoke and (received <= 0 or len(frame_times) < 60):
        print("smoke test FAILED: no data, or too few frames", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
