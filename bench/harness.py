"""Runs one benchmark coroutine under plain asyncio or under asyncio-guest.

Everything a workload needs to be mode-agnostic lives in ``Ctx``; the only
mode-specific operation is ``host_call_later`` (the *host's* timer: the
reference host's own timer in guest mode, ``loop.call_later`` in plain mode,
which is what a plain asyncio application would use for the same job).

``host`` picks the guest mode's host: ``reference`` (``asyncio_guest.run`` on a
``ReferenceHost``) or ``trio`` (``asyncio_guest.trio.run``: asyncio as the guest
of ``trio.run``; its host timer is a Trio deadline, ``TrioFdWatcher.call_later``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import types
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from spec import Sizes

Metrics = dict[str, float]
Workload = Callable[["Ctx"], Coroutine[Any, Any, Metrics]]
SyncWorkload = Callable[["Ctx"], Metrics]


@dataclass
class Ctx:
    mode: str
    sizes: Sizes
    seed: int
    affinity: str = "none"
    host: Any = None  # asyncio_guest.ReferenceHost in guest mode
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, goes to --json
    helper_cpu: int | None = None  # set by apply_affinity("split")
    host_kind: str = "reference"  # the guest mode's host: "reference" or "trio"

    def pin_helper(self, pid: int = 0) -> None:
        """Move a helper (a process id, or 0 = the calling thread) to the helper CPU."""
        if self.helper_cpu is not None:
            os.sched_setaffinity(pid, {self.helper_cpu})

    def host_call_later(self, delay: float, fn: Callable[[], object]) -> float:
        """Arm a host timer ``delay`` s from now; return its due time (time.monotonic)."""
        if self.host_kind == "trio" and self.mode == "guest":
            if self.host is None:
                from asyncio_guest.trio import TrioFdWatcher

                self.host = TrioFdWatcher()  # inside trio.run: the workload runs there
            due = time.monotonic() + delay  # Trio's clock has its own offset
            self.host.call_later(delay, fn)
            return due
        if self.host is not None:
            timer = self.host.call_later(delay, fn)
            return float(timer.when)
        handle = asyncio.get_running_loop().call_later(delay, fn)
        return handle.when()  # loop.time() is time.monotonic() on every stdlib loop


def warm_allocator(total: int = 8 << 20, chunk: int = 256 << 10) -> None:
    """Allocate and free a few MB in 256 KiB chunks before timing anything.

    glibc serves >= 128 KiB blocks with mmap until a freed mmapped block raises
    its dynamic threshold; until then every 256 KiB asyncio read buffer costs an
    mmap/munmap pair, which makes echo-style figures swing by ~2x depending on
    what else the process happened to allocate (see shared/toolkits.md).
    """
    blocks = [bytearray(chunk) for _ in range(total // chunk)]
    del blocks
    blocks = [bytearray(chunk) for _ in range(total // chunk)]
    del blocks


def apply_affinity(ctx: Ctx) -> None:
    """Pin the calling (main) thread per ``ctx.affinity``; threads and processes it
    starts later inherit that CPU unless moved with ``ctx.pin_helper``.

    Linux only; elsewhere, or with a single CPU available, this does nothing.
    """
    if ctx.affinity == "none" or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return
    os.sched_setaffinity(0, {cpus[0]})
    if ctx.affinity == "split":
        ctx.helper_cpu = cpus[1]
    ctx.extra["cpus"] = {"loop": cpus[0], "helper": ctx.helper_cpu}


def run_in_mode(ctx: Ctx, workload: Workload | SyncWorkload) -> Metrics:
    """Run ``workload(ctx)`` to completion in a fresh loop of ``ctx.mode``.

    A plain function (not a coroutine function) manages its own loops; it is
    called as it is, outside any running loop.
    """
    if not inspect.iscoroutinefunction(workload):
        return workload(ctx)  # type: ignore[return-value]
    if ctx.mode == "plain":
        return asyncio.run(workload(ctx))
    if ctx.mode == "guest" and ctx.host_kind == "trio":
        import asyncio_guest.trio

        trio_result: Metrics = asyncio_guest.trio.run(workload, ctx)
        return trio_result
    if ctx.mode == "guest":
        import asyncio_guest

        ctx.host = asyncio_guest.ReferenceHost()
        result: Metrics = asyncio_guest.run(workload, ctx, host=ctx.host)
        return result
    if ctx.mode == "tk":
        return _run_in_tk(ctx, workload)
    raise ValueError(f"unknown mode {ctx.mode!r}")


class _TkTimers:
    """``host_call_later`` in tk mode: a Tk ``after`` timer (whole ms, rounded up)."""

    def __init__(self, root: Any) -> None:
        self.root = root

    def call_later(self, delay: float, fn: Callable[[], object]) -> Any:
        when = time.monotonic() + delay
        self.root.after(max(0, int(delay * 1000 + 0.999)), fn)
        return types.SimpleNamespace(when=when)


def _run_in_tk(ctx: Ctx, workload: Workload) -> Metrics:
    """``tk`` mode (``child.py NAME tk``, not in run.py's table yet): the guest of
    ``root.mainloop()`` through ``asyncio_guest.tk.run``; needs a display."""
    import tkinter

    import asyncio_guest.tk

    root = tkinter.Tk()
    root.geometry("100x50")
    root.update()
    ctx.host = _TkTimers(root)
    try:
        result: Metrics = asyncio_guest.tk.run(workload, ctx, root=root)
        return result
    finally:
        root.destroy()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def now() -> float:
    return time.perf_counter()
