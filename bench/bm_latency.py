"""Latency and idle benchmarks: ``threadsafe`` (and ``threadsafe_timer``, and
the hosts' own floor under it, ``host_wake`` and ``host_wake_fd``), ``idle`` and
``timers``."""

from __future__ import annotations

import asyncio
import collections
import functools
import math
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable

from harness import Ctx, HostRoutes, Metrics, percentile, with_far_timer

_THREADSAFE_WARMUP = 200
_THREADSAFE_GAP = 0.0002  # s the worker sleeps between calls, so the loop is asleep


async def threadsafe(ctx: Ctx) -> Metrics:
    """A worker thread calls ``loop.call_soon_threadsafe(cb, t0)`` one call at a time
    (it waits for ``cb`` to run before sleeping briefly and sending the next), so
    every call finds the loop asleep and has to wake it. Latency = perf_counter()
    in ``cb`` on the loop thread minus perf_counter() just before the call."""
    return await _threadsafe(ctx)


async def threadsafe_timer(ctx: Ctx) -> Metrics:
    """``threadsafe`` with one loop timer pending far off (a periodic task's sleep,
    a timeout), as in most applications: each of the loop's waits has a deadline."""
    return await with_far_timer(_threadsafe(ctx))


async def host_wake(ctx: Ctx) -> Metrics:
    """``threadsafe`` with the worker waking the host through the host's own
    thread-safe post instead (guest mode: the reference host's,
    ``TrioToken.run_sync_soon``, or a second host object of the toolkit's, with
    its own pipe, event or source), asyncio not involved: how fast the host
    itself can be woken from a thread, the floor under ``threadsafe`` on that
    host. Plain mode: ``call_soon_threadsafe`` (the same as ``threadsafe``).
    Peer modes: not measured (NaN)."""
    return await _through_host(ctx, lambda routes: (routes.post, lambda: None))


async def host_wake_fd(ctx: Ctx) -> Metrics:
    """``host_wake`` through the host's fd watch instead: the worker queues the
    callback and writes one byte to a pipe the host watches, whose callback
    drains the pipe and runs what is queued (the zero-thread path's floor: a
    worker's ``call_soon_threadsafe`` writes the loop's self-pipe, which the
    host's watch of the selector sees)."""

    def by_fd(routes: HostRoutes) -> tuple[Callable[[Callable[[], object]], object],
                                           Callable[[], None]]:
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        queued: collections.deque[Callable[[], object]] = collections.deque()
        write, read = functools.partial(os.write, wfd, b"\0"), os.read

        def post(fn: Callable[[], object]) -> None:
            queued.append(fn)
            write()

        def on_readable() -> None:
            try:
                read(rfd, 4096)
            except BlockingIOError:
                return
            while queued:
                queued.popleft()()

        unwatch = routes.watch_readable(rfd, on_readable)

        def close() -> None:
            unwatch()
            os.close(rfd)
            os.close(wfd)

        return post, close

    return await _through_host(ctx, by_fd)


async def _through_host(
    ctx: Ctx,
    route: Callable[[HostRoutes], tuple[Callable[[Callable[[], object]], object],
                                        Callable[[], None]]],
) -> Metrics:
    if ctx.mode == "plain":
        return await _threadsafe(ctx)
    if ctx.host_routes is None:
        return {"median": math.nan, "p10": math.nan, "p90": math.nan}
    routes = ctx.host_routes()
    try:
        post, close = route(routes)
        try:
            return await _threadsafe(ctx, post)
        finally:
            close()
    finally:
        routes.close()


async def _threadsafe(
    ctx: Ctx, host_post: Callable[[Callable[[], object]], object] | None = None
) -> Metrics:
    loop = asyncio.get_running_loop()
    n = ctx.sizes.threadsafe_n
    total = _THREADSAFE_WARMUP + n
    latencies: list[float] = []
    ran = threading.Event()
    loop_thread = threading.get_ident()
    wrong_thread: list[int] = []

    def cb(t0: float) -> None:
        latencies.append(time.perf_counter() - t0)
        if threading.get_ident() != loop_thread:
            wrong_thread.append(threading.get_ident())
        ran.set()

    done: asyncio.Future[None] = loop.create_future()

    def worker() -> None:
        ctx.pin_helper()
        sleep, perf = time.sleep, time.perf_counter
        for _ in range(total):
            sleep(_THREADSAFE_GAP)
            ran.clear()
            if host_post is None:
                loop.call_soon_threadsafe(cb, perf())
            else:
                host_post(functools.partial(cb, perf()))
            if not ran.wait(10):
                break
        loop.call_soon_threadsafe(done.set_result, None)

    thread = threading.Thread(target=worker)
    thread.start()
    await done
    thread.join()
    if wrong_thread or len(latencies) != total:
        raise RuntimeError("threadsafe: callback missing or on the wrong thread")
    timed = latencies[_THREADSAFE_WARMUP:]
    return {
        "median": statistics.median(timed),
        "p10": percentile(timed, 10),  # the path's own cost, least touched by noise
        "p90": percentile(timed, 90),
    }


async def idle(ctx: Ctx) -> Metrics:
    """``await asyncio.sleep(T)`` with nothing else to do: CPU seconds of the whole
    process (all threads) during it, scaled to 3 s, plus context switches (wakeups)."""
    seconds = ctx.sizes.idle_seconds
    await asyncio.sleep(0.05)  # let start-up settle
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = time.process_time()
    await asyncio.sleep(seconds)
    c1 = time.process_time()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    switches = (ru1.ru_nvcsw - ru0.ru_nvcsw) + (ru1.ru_nivcsw - ru0.ru_nivcsw)
    scale = 3.0 / seconds
    return {"cpu": (c1 - c0) * scale, "wakeups": switches * scale}


_TIMER_DELAY = 0.002
_TIMERS_WARMUP = 20


async def timers(ctx: Ctx) -> Metrics:
    """Sequential ``await asyncio.sleep(0.002)``: overshoot = elapsed - 2 ms."""
    perf, sleep = time.perf_counter, asyncio.sleep
    over: list[float] = []
    for _ in range(_TIMERS_WARMUP + ctx.sizes.timers_n):
        t0 = perf()
        await sleep(_TIMER_DELAY)
        over.append(perf() - t0 - _TIMER_DELAY)
    timed = over[_TIMERS_WARMUP:]
    return {"median": statistics.median(timed), "p99": percentile(timed, 99)}
