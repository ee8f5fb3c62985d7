"""pygame frame-loop benchmark: a 60 fps game while asyncio reads loopback TCP at full speed.

    .venv/pygame-ce-3.12/bin/python bench/bm_frames.py [--rounds 3] [--seconds 3]
        [--budget 0.004] [--wait fd,thread] [--json out.json]

Modes, each a fresh child process per round (the order rotates each round, so
a noisy machine's drift hits all alike), all running the *same* game loop
(events, asyncio's share, draw, ``flip``, ``clock.tick(60)``) and the same
asyncio code (a stream server task reading what the sender writes):

* ``guest[fd]``, ``guest[thread]``: ``asyncio_guest.pygame.run`` and
  ``host.pump(budget)`` each frame (the zero-thread wait, the backend thread);
* ``plain``: ``asyncio.run`` with the frame loop a coroutine that gives
  asyncio the *same budget* each frame: ``await asyncio.sleep(0)`` repeated
  until ``budget`` has passed (the bar: guest throughput >= 0.8x this);
* ``sleep0``: the common pattern as people write it, ``asyncio.run`` and one
  ``await asyncio.sleep(0)`` per frame (one loop iteration a frame).

The data comes from a sender process (blocking ``sendall`` of 256 KiB chunks,
as fast as the socket takes them), pinned to another CPU than the game's
process when there are two (``os.sched_setaffinity``), so the figures measure
what asyncio gets through in its budget, not the sender competing for a core.

Reported per mode (medians over rounds): frame time p50/p99 (between
successive ``clock.tick`` returns, first 0.5 s dropped), throughput MB/s, and
throughput relative to ``plain``. Then idle CPU: the same game loop for
``--seconds`` with asyncio idle (``await`` on an event nobody sets), process
CPU time (all threads) minus that of the bare game loop without asyncio, per
3 s, and the time spent inside ``pump()`` per 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
CHUNK = 256 << 10
WARMUP = 0.5


def _pin(cpu_index: int) -> None:
    if not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[cpu_index % len(cpus)]})


# ------------------------------------------------------------ sender process


def sender(port: int) -> None:
    """Connect and write as fast as the socket takes it, until the reader closes."""
    _pin(1)
    chunk = b"\0" * CHUNK
    with socket.create_connection(("127.0.0.1", port)) as sock:
        try:
            while True:
                sock.sendall(chunk)
        except OSError:
            pass


# ------------------------------------------------------------ child: one mode


class Game:
    """The frame loop's own work and measurements (the same in every mode)."""

    def __init__(self, seconds: float) -> None:
        import pygame

        self.pg = pygame
        self.screen = pygame.display.set_mode((320, 240))
        self.clock = pygame.time.Clock()
        self.seconds = seconds
        self.start = time.perf_counter()
        self.last = self.start
        self.frame_times: list[float] = []
        self.received = 0
        self.measured_from = 0  # bytes received when the warm-up ended
        self.measuring = False
        self.pump_time = 0.0
        self.x = 0

    def begin_frame(self) -> None:
        for _ in self.pg.event.get():
            pass

    def end_frame(self) -> bool:
        """Draw, flip, tick; record; return False when the time is up."""
        pg = self.pg
        self.x = (self.x + 4) % 320
        self.screen.fill((0, 0, 0))
        pg.draw.rect(self.screen, (255, 200, 0), (self.x, 100, 20, 20))
        pg.display.flip()
        self.clock.tick(60)
        now = time.perf_counter()
        if now - self.start >= WARMUP:
            if not self.measuring:
                self.measuring = True
                self.measured_from = self.received
                self.t_measure = now
                self.cpu_measure = time.process_time()
                self.pump_time = 0.0
            else:
                self.frame_times.append(now - self.last)
        self.last = now
        if now - self.start < WARMUP + self.seconds:
            return True
        self.cpu_end = time.process_time()
        return False

    def result(self) -> dict[str, Any]:
        ft = sorted(self.frame_times)
        elapsed = self.last - self.t_measure
        return {
            "frames": len(ft),
            "p50_ms": ft[len(ft) // 2] * 1e3,
            "p99_ms": ft[min(len(ft) - 1, int(len(ft) * 0.99))] * 1e3,
            "max_ms": ft[-1] * 1e3,
            "mb_s": (self.received - self.measured_from) / elapsed / 1e6,
            "pump_s_per_3s": self.pump_time / elapsed * 3,
            # Process CPU (all threads) over the measured frames only: not the
            # imports, the set-up or the shutdown.
            "cpu_s_per_3s": (self.cpu_end - self.cpu_measure) / elapsed * 3,
        }


async def reading_server(game: Game, idle: bool) -> tuple[asyncio.AbstractServer, Any]:
    """A server whose handler reads and counts; starts the sender process (unless idle)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(1 << 18)
                if not data:
                    break
                game.received += len(data)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    proc = None
    if not idle:
        port = server.sockets[0].getsockname()[1]
        proc = subprocess.Popen([sys.executable, HERE, "--sender", str(port)])
    return server, proc


async def _stop(server: asyncio.AbstractServer, proc: Any) -> None:
    server.close()
    if proc is not None:
        proc.kill()
        await asyncio.to_thread(proc.wait)


def child(mode: str, seconds: float, budget: float, idle: bool) -> dict[str, Any]:
    """Run one mode in this process; return its measurements."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    _pin(0)
    import pygame

    pygame.display.init()
    game = Game(seconds)

    if mode == "bare":  # the game loop alone: idle CPU's baseline
        while True:
            game.begin_frame()
            if not game.end_frame():
                break
    elif mode.startswith("guest"):
        from asyncio_guest import pygame as agp

        async def main() -> None:
            server, proc = await reading_server(game, idle)
            try:
                await asyncio.Event().wait()
            finally:
                await _stop(server, proc)

        def frame_loop(host: agp.PygameHost) -> None:
            while True:
                game.begin_frame()
                t = time.perf_counter()
                host.pump(budget)
                game.pump_time += time.perf_counter() - t
                if not game.end_frame():
                    break

        try:
            agp.run(main, frame_loop=frame_loop)
        except asyncio.CancelledError:
            pass
    else:
        one_iteration = mode == "sleep0"

        async def game_main() -> None:
            server, proc = await reading_server(game, idle)
            try:
                while True:
                    game.begin_frame()
                    t = time.perf_counter()
                    if one_iteration:
                        await asyncio.sleep(0)
                    else:
                        deadline = t + budget
                        while True:
                            await asyncio.sleep(0)
                            if time.perf_counter() >= deadline:
                                break
                    game.pump_time += time.perf_counter() - t
                    if not game.end_frame():
                        break
            finally:
                await _stop(server, proc)

        asyncio.run(game_main())
    out = game.result()
    pygame.quit()
    return out


# ------------------------------------------------------------ parent


def run_child(mode: str, args: argparse.Namespace, idle: bool) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(ROOT, "src"),
                                                       env.get("PYTHONPATH")]))
    name = mode
    if mode.startswith("guest["):
        env["ASYNCIO_GUEST_WAIT"] = mode[len("guest["):-1]
        name = "guest"
    cmd = [sys.executable, HERE, "--child", name, "--seconds", str(args.seconds),
           "--budget", str(args.budget)] + (["--idle"] if idle else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode}: exit {proc.returncode}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def rotated(items: list[str], k: int) -> list[str]:
    k %= len(items)
    return items[k:] + items[:k]


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--budget", type=float, default=0.004, help="asyncio's seconds per frame")
    ap.add_argument("--wait", default="fd,thread", help="the guest's wait strategies")
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-CPU measurement")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--sender", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--idle", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.sender is not None:
        sender(args.sender)
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.seconds, args.budget, args.idle)))
        return 0

    import pygame

    guests = [f"guest[{w}]" for w in args.wait.split(",") if w]
    io_modes = [*guests, "plain", "sleep0"]
    idle_modes = [*guests, "bare"]
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in io_modes}
    idle: dict[str, list[dict[str, Any]]] = {m: [] for m in idle_modes}
    flavour = "pygame-ce" if getattr(pygame, "IS_CE", 0) else "pygame"
    print(f"pygame {pygame.version.ver} ({flavour})"
          f", SDL {'.'.join(map(str, pygame.get_sdl_version()))}, Python {sys.version.split()[0]}, "
          f"budget {args.budget * 1e3:g} ms/frame, {args.seconds:g} s x {args.rounds} rounds, "
          f"CPUs {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")
    for r in range(args.rounds):
        for mode in rotated(io_modes, r):
            results[mode].append(run_child(mode, args, idle=False))
        if not args.no_idle:
            for mode in rotated(idle_modes, r):
                idle[mode].append(run_child(mode, args, idle=True))
        print(f"  round {r + 1}/{args.rounds} done", flush=True)

    plain_mb = median_of(results["plain"], "mb_s")
    print()
    plain_per_s = median_of(results["plain"], "mb_s") / median_of(results["plain"], "pump_s_per_3s")
    print(f"{'mode':<15}{'frame p50':>11}{'frame p99':>11}{'max':>9}{'MB/s':>9}"
          f"{'vs plain':>10}{'asyncio s/3s':>14}{'per asyncio s':>15}")
    for mode in io_modes:
        runs = results[mode]
        mb = median_of(runs, "mb_s")
        # The last column: throughput per second actually spent in asyncio's
        # share (a pump may overrun its budget by up to about a tick, 1 ms).
        per_s = mb / median_of(runs, "pump_s_per_3s")
        print(f"{mode:<15}{median_of(runs, 'p50_ms'):>9.2f}ms{median_of(runs, 'p99_ms'):>9.2f}ms"
              f"{median_of(runs, 'max_ms'):>7.1f}ms{mb:>9.0f}{mb / plain_mb:>9.2f}x"
              f"{median_of(runs, 'pump_s_per_3s'):>14.3f}{per_s / plain_per_s:>14.2f}x")
    if not args.no_idle:
        bare = median_of(idle["bare"], "cpu_s_per_3s")
        print()
        print(f"idle CPU per 3 s (process, all threads), beyond the bare game loop's {bare:.4f} s:")
        for mode in guests:
            runs = idle[mode]
            extra = [r["cpu_s_per_3s"] - b["cpu_s_per_3s"] for r, b in zip(runs, idle["bare"])]
            print(f"  {mode:<15} {statistics.median(extra):+.4f} s "
                  f"(per round: {', '.join(f'{e:+.4f}' for e in extra)}); "
                  f"inside pump(): {median_of(runs, 'pump_s_per_3s'):.4f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"io": results, "idle": idle, "args": vars(args)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
