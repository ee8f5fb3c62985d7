"""``responsive``: does the host keep its own timers on time while asyncio is busy?"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import resource
import statistics
import time

from harness import Ctx, Metrics

_TASKS = 200
_WORK = 50e-6  # s of busy work between two awaits of each task
_MIN_DELAY, _MAX_DELAY = 0.005, 0.015
_WARMUP = 0.2
_STOLEN_LIMIT = 100e-6  # off-CPU time in a period above which it counts as preempted
_MIN_CLEAN = 20  # unpreempted periods a round needs for its max (else no data: NaN)


async def responsive(ctx: Ctx) -> Metrics:
    """200 tasks each busy-wait ~50 µs then ``await asyncio.sleep(0)``, forever (one
    loop iteration is ~10 ms of callbacks). Meanwhile a host timer is re-armed every
    5-15 ms (random, seeded per round so both modes get the same delays); lateness =
    time it ran - time it was due. Guest mode: the reference host's own timer
    (``ReferenceHost.call_later``), which runs between guest ticks. Plain mode: a
    ``loop.call_later`` on the same loop, which is what a plain asyncio app has.

    Periods in which the OS gave the timer's thread's CPU to someone else (another
    process on a shared machine) are counted (``preempted``), and ``max`` is taken
    over the others (``max_raw`` over all). On Linux a period is preempted when the
    thread had an involuntary context switch in it (``getrusage(RUSAGE_THREAD)``):
    a host that sleeps inside its own dispatch (Tk's threaded notifier waits on a
    condition variable at every event) switches voluntarily, which is not lost CPU.
    Elsewhere the thread is assumed never to sleep here, and wall time minus its CPU
    time (``time.thread_time``) above 100 µs counts as preempted."""
    loop = asyncio.get_running_loop()
    perf = time.perf_counter
    stopping = False

    async def spinner() -> None:
        sleep = asyncio.sleep
        while not stopping:
            end = perf() + _WORK
            while perf() < end:
                pass
            await sleep(0)

    tasks = [asyncio.create_task(spinner()) for _ in range(_TASKS)]
    await asyncio.sleep(_WARMUP)

    rng = random.Random(ctx.seed)
    lateness: list[float] = []
    clean: list[float] = []  # lateness of periods without involuntary switches
    finished: asyncio.Future[None] = loop.create_future()
    t_end = time.monotonic() + ctx.sizes.responsive_seconds
    due = 0.0
    armed_wall = armed_cpu = 0.0  # without RUSAGE_THREAD: preempted = off-CPU time
    armed_switches = 0  # with it: preempted = involuntary context switches
    mono, thread_time = time.monotonic, time.thread_time
    by_switches = hasattr(resource, "RUSAGE_THREAD")
    thread_usage = functools.partial(resource.getrusage, getattr(resource, "RUSAGE_THREAD", 0))

    def arm() -> None:
        nonlocal due, armed_wall, armed_cpu, armed_switches
        if by_switches:
            armed_switches = thread_usage().ru_nivcsw
        else:
            armed_wall, armed_cpu = mono(), thread_time()
        due = ctx.host_call_later(rng.uniform(_MIN_DELAY, _MAX_DELAY), fire)

    def fire() -> None:
        t = mono()
        late = t - due
        lateness.append(late)
        if by_switches:
            unpreempted = thread_usage().ru_nivcsw == armed_switches
        else:
            unpreempted = (t - armed_wall) - (thread_time() - armed_cpu) < _STOLEN_LIMIT
        if unpreempted:
            clean.append(late)
        if t < t_end:
            arm()
        elif not finished.done():
            finished.set_result(None)  # from host code in guest mode: wakes the guest

    arm()
    await finished
    stopping = True
    await asyncio.gather(*tasks)
    ctx.extra["timer_fires"] = len(lateness)
    ctx.extra["unpreempted_fires"] = len(clean)
    return {
        "median": statistics.median(lateness),
        # Judged on enough periods only: on a loaded machine nearly every period
        # loses the CPU, and a max over the one or two left passed by chance.
        "max": max(clean) if len(clean) >= _MIN_CLEAN else math.nan,
        "max_raw": max(lateness),
        "preempted": 1 - len(clean) / len(lateness),
        "unpreempted": float(len(clean)),
    }
