"""How fast can a worker thread reach code on Trio's thread, with no asyncio at all?

    .venv/3.13/bin/python bench/trio_wake_routes.py [--calls 4000] [--rounds 3]

The floor under ``threadsafe`` inside ``trio.run`` (README, "A worker's wake-up").
A worker sleeps 0.2 ms (so the loop thread is asleep), stamps the time, posts, and
waits until the loop thread has run the callback; the latency is the stamp to the
callback. Five routes, each in a fresh loop, in turn, ``--rounds`` times:

- ``asyncio add_reader``: the worker writes an eventfd that the asyncio loop
  watches (``add_reader``); the reader runs the callback. asyncio's raw wake-up.
- ``asyncio call_soon_threadsafe``: plain asyncio's own route (the reference).
- ``trio after_io_wait``: the worker appends to a deque and writes an eventfd that
  a Trio task waits on (``wait_readable``); a Trio instrument's ``after_io_wait``
  runs the callback, before Trio's task steps. The quickest route into Trio's
  thread that a library can take (the guest's own zero-thread route in Trio).
- ``trio run_sync_soon``: ``TrioToken.run_sync_soon``.
- ``guest call_soon_threadsafe``: asyncio as Trio's guest
  (``asyncio_guest.trio.run_asyncio``), the worker calling the guest loop's
  ``call_soon_threadsafe``.

Linux only (``os.eventfd``); needs trio.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable

import trio

_GAP = 0.0002
_WARMUP = 200
Post = Callable[[float], object]


class _Bench:
    """One route's measurement: the worker's loop and the callback it waits for."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.ran = threading.Event()
        self.latencies: list[float] = []

    def callback(self, t0: float) -> None:
        """Loop thread: the posted call arrived."""
        self.latencies.append(time.perf_counter() - t0)
        self.ran.set()

    def start(self, post: Post) -> threading.Thread:
        def worker() -> None:
            perf = time.perf_counter
            for _ in range(_WARMUP + self.calls):
                time.sleep(_GAP)
                self.ran.clear()
                post(perf())
                if not self.ran.wait(10):
                    raise RuntimeError("a posted call never ran")

        thread = threading.Thread(target=worker)
        thread.start()
        return thread

    def median_us(self) -> float:
        return statistics.median(self.latencies[_WARMUP:]) * 1e6


class _EventfdPost:
    """A post through an eventfd: the worker queues its stamp, then writes.

    Thread rule: ``post`` on the worker, ``run_posted`` and ``drain`` on the
    loop thread; the deque's append and popleft are atomic, and a stamp is
    queued before its write, so whoever sees the write finds the stamp.
    """

    def __init__(self, bench: _Bench) -> None:
        self.bench = bench
        self.fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.stamps: collections.deque[float] = collections.deque()

    def post(self, t0: float) -> None:
        self.stamps.append(t0)
        os.eventfd_write(self.fd, 1)

    def run_posted(self) -> None:
        while self.stamps:
            self.bench.callback(self.stamps.popleft())

    def drain(self) -> None:
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)


async def _asyncio_wait(thread: threading.Thread) -> None:
    while thread.is_alive():
        await asyncio.sleep(0.05)


async def _trio_wait(thread: threading.Thread) -> None:
    while thread.is_alive():
        await trio.sleep(0.05)


def asyncio_add_reader(calls: int) -> float:
    bench = _Bench(calls)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        route = _EventfdPost(bench)

        def on_readable() -> None:
            route.drain()
            route.run_posted()

        loop.add_reader(route.fd, on_readable)
        try:
            await _asyncio_wait(bench.start(route.post))
        finally:
            loop.remove_reader(route.fd)
            route.close()

    asyncio.run(main())
    return bench.median_us()


async def _through_call_soon_threadsafe(bench: _Bench) -> None:
    """In a running asyncio loop (plain or guest): the worker posts with its
    ``call_soon_threadsafe``."""
    loop = asyncio.get_running_loop()
    await _asyncio_wait(bench.start(lambda t0: loop.call_soon_threadsafe(bench.callback, t0)))


def asyncio_call_soon_threadsafe(calls: int) -> float:
    bench = _Bench(calls)
    asyncio.run(_through_call_soon_threadsafe(bench))
    return bench.median_us()


class _RunPosted(trio.abc.Instrument):
    """Runs the posted callbacks right after Trio's I/O wait returns."""

    def __init__(self, route: _EventfdPost) -> None:
        self.route = route

    def after_io_wait(self, timeout: float) -> None:
        self.route.run_posted()


def trio_after_io_wait(calls: int) -> float:
    bench = _Bench(calls)

    async def main() -> None:
        route = _EventfdPost(bench)

        async def drain() -> None:
            while True:
                await trio.lowlevel.wait_readable(route.fd)
                route.drain()
                route.run_posted()  # a write the read took after the instrument ran

        trio.lowlevel.add_instrument(_RunPosted(route))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain)
                await _trio_wait(bench.start(route.post))
                nursery.cancel_scope.cancel()
        finally:
            route.close()

    trio.run(main)
    return bench.median_us()


def trio_run_sync_soon(calls: int) -> float:
    bench = _Bench(calls)

    async def main() -> None:
        token = trio.lowlevel.current_trio_token()
        await _trio_wait(bench.start(lambda t0: token.run_sync_soon(bench.callback, t0)))

    trio.run(main)
    return bench.median_us()


def guest_call_soon_threadsafe(calls: int) -> float:
    import asyncio_guest.trio

    bench = _Bench(calls)

    async def main() -> None:
        await asyncio_guest.trio.run_asyncio(_through_call_soon_threadsafe, bench)

    trio.run(main)
    return bench.median_us()


ROUTES: dict[str, Callable[[int], float]] = {
    "asyncio add_reader": asyncio_add_reader,
    "asyncio call_soon_threadsafe": asyncio_call_soon_threadsafe,
    "trio after_io_wait": trio_after_io_wait,
    "trio run_sync_soon": trio_run_sync_soon,
    "guest call_soon_threadsafe": guest_call_soon_threadsafe,
}
REFERENCE = "asyncio call_soon_threadsafe"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=4000, help="timed calls per route and round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, trio {trio.__version__}, {args.calls} calls, "
          f"median latency per route (ratio to {REFERENCE} in the same round)")
    for n in range(args.rounds):
        medians = {name: route(args.calls) for name, route in ROUTES.items()}
        ref = medians[REFERENCE]
        print(f"round {n + 1}: " + " | ".join(
            f"{name} {us:.2f} us ({us / ref:.2f}x)" for name, us in medians.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
