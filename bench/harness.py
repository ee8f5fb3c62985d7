"""Runs one benchmark coroutine under plain asyncio, under asyncio-guest, or under a peer.

Everything a workload needs to be mode-agnostic lives in ``Ctx``; the only
mode-specific operation is ``host_call_later`` (the *host's* timer: the host's
own timer in guest and peer modes, ``loop.call_later`` in plain mode, which is
what a plain asyncio application would use for the same job). ``host_routes``
(guest modes only) gives the benchmarks of the host's own floor its wake-up
routes, bypassing asyncio.

``host_kind`` picks the guest mode's host: ``reference`` (``asyncio_guest.run``
on a ``ReferenceHost``), ``trio`` (``asyncio_guest.trio.run``: asyncio as the
guest of ``trio.run``; its host timer is a Trio deadline), ``tk``
(``asyncio_guest.tk.run`` on a real Tk root; a Tk ``after`` timer) or ``qt``
(``asyncio_guest.qt.run`` in a ``QApplication``; a single-shot precise
``QTimer``). Peer modes (``peer:NAME``) live in ``peers.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from spec import Sizes

Metrics = dict[str, float]
Workload = Callable[["Ctx"], Coroutine[Any, Any, Metrics]]
SyncWorkload = Callable[["Ctx"], Metrics]


HostTimer = Callable[[float, Callable[[], object]], float]


@dataclass
class HostRoutes:
    """The two ways a worker thread can wake the host itself, asyncio not involved
    (``bm_latency.host_wake``): the host's thread-safe post, and its fd watch
    (level-triggered, host thread); ``close`` releases what was made for them."""

    post: Callable[[Callable[[], object]], object]
    watch_readable: Callable[[int, Callable[[], object]], Callable[[], object]]
    close: Callable[[], object]


@dataclass
class Ctx:
    mode: str  # "plain", "guest" or "peer:NAME"
    sizes: Sizes
    seed: int
    affinity: str = "none"
    host: Any = None  # asyncio_guest.ReferenceHost in guest mode on the reference host
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, goes to --json
    helper_cpu: int | None = None  # set by apply_affinity("split")
    host_kind: str = "reference"  # the guest mode's host: spec.HOSTS
    # The host's own timer, set by the runner of a guest or peer mode:
    # timer(delay, fn) arms it and returns its due time (time.monotonic).
    timer: HostTimer | None = None
    # The host's own wake-up routes, set by the runner of a guest mode and
    # called on the loop thread inside the run (bm_latency.host_wake): the
    # floor under ``threadsafe`` on that host.
    host_routes: Callable[[], HostRoutes] | None = None

    def pin_helper(self, pid: int = 0) -> None:
        """Move a helper (a process id, or 0 = the calling thread) to the helper CPU."""
        if self.helper_cpu is not None:
            os.sched_setaffinity(pid, {self.helper_cpu})

    def host_call_later(self, delay: float, fn: Callable[[], object]) -> float:
        """Arm a host timer ``delay`` s from now; return its due time (time.monotonic)."""
        if self.timer is not None:
            return self.timer(delay, fn)
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
    if ctx.mode == "guest":
        return GUEST_RUNNERS[ctx.host_kind](ctx, workload)
    if ctx.mode.startswith("peer:"):
        import peers

        return peers.run_peer(ctx, workload, ctx.mode.removeprefix("peer:"))
    raise ValueError(f"unknown mode {ctx.mode!r}")


def _run_reference(ctx: Ctx, workload: Workload) -> Metrics:
    import asyncio_guest

    ctx.host = asyncio_guest.ReferenceHost()

    def timer(delay: float, fn: Callable[[], object]) -> float:
        return float(ctx.host.call_later(delay, fn).when)

    ctx.timer = timer
    ctx.host_routes = lambda: _own_host(ctx.host, close=False)
    result: Metrics = asyncio_guest.run(workload, ctx, host=ctx.host)
    return result


def trio_timer() -> HostTimer:
    """A Trio deadline (``TrioFdWatcher.call_later``), for asyncio code running inside
    ``trio.run`` (the watcher is made at the first call, which is inside the run)."""
    watchers: list[Any] = []

    def timer(delay: float, fn: Callable[[], object]) -> float:
        if not watchers:
            from asyncio_guest.trio import TrioFdWatcher

            watchers.append(TrioFdWatcher())
        due = time.monotonic() + delay  # Trio's clock has its own offset
        watchers[0].call_later(delay, fn)
        return due

    return timer


def _run_trio(ctx: Ctx, workload: Workload) -> Metrics:
    import asyncio_guest.trio

    ctx.timer = trio_timer()
    ctx.host_routes = _trio_routes
    result: Metrics = asyncio_guest.trio.run(workload, ctx)
    return result


def _whole_ms(delay: float) -> int:
    """Tk's ``after`` and ``QTimer`` take whole milliseconds: round up, never early."""
    return max(0, math.ceil(delay * 1000 - 1e-9))


def tk_root() -> Any:
    """A real, mapped Tk root (needs a display: run under ``xvfb-run -a``)."""
    import tkinter

    root = tkinter.Tk()
    root.geometry("100x50")
    root.update()
    return root


def tk_timer(root: Any) -> HostTimer:
    """``host_call_later`` on Tk: an ``after`` timer. Its due time is the whole
    milliseconds asked of Tk, so the rounding is not counted as lateness."""

    def timer(delay: float, fn: Callable[[], object]) -> float:
        ms = _whole_ms(delay)
        due = time.monotonic() + ms / 1000
        root.after(ms, fn)
        return due

    return timer


def _run_tk(ctx: Ctx, workload: Workload) -> Metrics:
    """The guest of ``root.mainloop()`` through ``asyncio_guest.tk.run``."""
    import asyncio_guest.tk

    root = tk_root()
    ctx.timer = tk_timer(root)
    ctx.host_routes = lambda: _own_host(asyncio_guest.tk.TkHost(root))
    try:
        result: Metrics = asyncio_guest.tk.run(workload, root, ctx)
        return result
    finally:
        root.destroy()


def qt_app() -> tuple[Any, Any]:
    """(binding, application): the binding ``asyncio_guest.qt`` picks (``ASYNCIO_GUEST_QT``,
    default PySide6) and a ``QApplication`` (made here if none exists)."""
    from asyncio_guest import _qt_binding

    b = _qt_binding.get()
    app = b.QCoreApplication.instance()
    if app is None:
        app = b.new_app()
        _keep.append(app)
    return b, app


_keep: list[Any] = []  # the QApplication lives as long as the process


def qt_timer(b: Any) -> HostTimer:
    """``host_call_later`` on Qt: a single-shot precise ``QTimer`` made here, on the
    GUI thread. Due time: the whole milliseconds asked of Qt (as for Tk)."""
    parent = b.QObject()
    live: set[Any] = set()

    def timer(delay: float, fn: Callable[[], object]) -> float:
        ms = _whole_ms(delay)
        due = time.monotonic() + ms / 1000
        qtimer = b.QTimer(parent)
        qtimer.setSingleShot(True)
        qtimer.setTimerType(b.PreciseTimer)

        def fire() -> None:
            live.discard(qtimer)
            qtimer.deleteLater()
            fn()

        qtimer.timeout.connect(fire)
        live.add(qtimer)
        qtimer.start(ms)
        return due

    _keep.append(parent)
    return timer


def _run_qt(ctx: Ctx, workload: Workload) -> Metrics:
    """The guest of the ``QApplication``'s ``exec()`` through ``asyncio_guest.qt.run``."""
    import asyncio_guest.qt

    b, app = qt_app()
    ctx.timer = qt_timer(b)
    ctx.host_routes = lambda: _own_host(asyncio_guest.qt.QtHost(app))
    result: Metrics = asyncio_guest.qt.run(workload, ctx, app=app)
    return result


def glib_timer() -> HostTimer:
    """``host_call_later`` on GLib: ``GLib.timeout_add`` on the default main
    context (whole milliseconds, as for Tk), at ``PRIORITY_DEFAULT``."""
    from gi.repository import GLib

    def timer(delay: float, fn: Callable[[], object]) -> float:
        ms = _whole_ms(delay)
        due = time.monotonic() + ms / 1000

        def fire() -> bool:
            fn()
            return False  # GLib.SOURCE_REMOVE: once

        GLib.timeout_add(ms, fire)
        return due

    return timer


def _run_glib(ctx: Ctx, workload: Workload) -> Metrics:
    """The guest of a ``GLib.MainLoop`` through ``asyncio_guest.glib.run``."""
    from gi.repository import GLib

    import asyncio_guest.glib

    ctx.timer = glib_timer()
    ctx.host_routes = lambda: _own_host(asyncio_guest.glib.GLibHost())
    result: Metrics = asyncio_guest.glib.run(workload, ctx, loop=GLib.MainLoop())
    return result


def wx_app(app_class: Any = None) -> tuple[Any, Any]:
    """(application, frame): a ``wx.App`` (or ``app_class``) and a frame shown
    (wx's ``MainLoop`` needs a top-level window). Needs a display.

    An X connection is opened first: without one, wxGTK 4.2.0 under Xvfb
    fails to start in some 15% of processes (see tests/wx_display.py).
    """
    import ctypes
    import ctypes.util

    libx11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    libx11.XOpenDisplay.restype = ctypes.c_void_p
    libx11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    _keep.append(libx11.XOpenDisplay(None))
    import wx

    app = (app_class or wx.App)(False)
    frame = wx.Frame(None, title="bench", size=(100, 50))
    frame.Show()
    _keep.append(app)
    return app, frame


def wx_timer() -> HostTimer:
    """``host_call_later`` on wx: a ``wx.CallLater`` (a one-shot ``wx.Timer``).
    Due time: the whole milliseconds asked of wx (as for Tk)."""
    import wx

    def timer(delay: float, fn: Callable[[], object]) -> float:
        ms = _whole_ms(delay)
        due = time.monotonic() + ms / 1000
        wx.CallLater(ms, fn)
        return due

    return timer


def _run_wx(ctx: Ctx, workload: Workload) -> Metrics:
    """The guest of the ``wx.App``'s ``MainLoop()`` through ``asyncio_guest.wx.run``."""
    import asyncio_guest.wx

    app, frame = wx_app()
    ctx.timer = wx_timer()
    ctx.host_routes = lambda: _own_host(asyncio_guest.wx.WxHost(app))
    try:
        result: Metrics = asyncio_guest.wx.run(workload, ctx, app=app)
        return result
    finally:
        if frame:
            frame.Destroy()


def _own_host(host: Any, close: bool = True) -> HostRoutes:
    """A host object's routes. Tk, Qt, GLib, wx: a second one of our module's,
    of its own (its own pipe, event type or source): its post is the toolkit's
    wake-up and a deque; its fd watch is the toolkit's."""
    return HostRoutes(host.run_sync_soon_threadsafe, host.watch_readable,
                      host.close if close else _nothing)


def _trio_routes() -> HostRoutes:
    """Trio's own: ``TrioToken.run_sync_soon``, and ``wait_readable`` in a task."""
    import trio

    from asyncio_guest.trio import TrioFdWatcher

    watcher = TrioFdWatcher()
    return HostRoutes(trio.lowlevel.current_trio_token().run_sync_soon,
                      watcher.watch_readable, watcher.close)


def _nothing() -> None:
    pass


GUEST_RUNNERS: dict[str, Callable[[Ctx, Workload], Metrics]] = {
    "reference": _run_reference,
    "trio": _run_trio,
    "tk": _run_tk,
    "qt": _run_qt,
    "glib": _run_glib,
    "wx": _run_wx,
}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def now() -> float:
    return time.perf_counter()


async def with_far_timer(work: Awaitable[Metrics]) -> Metrics:
    """Await ``work`` with one loop timer pending far off (another task's
    ``asyncio.sleep(3600)``), as nearly every application has one (a periodic
    task, a timeout): each of the loop's waits then has a deadline."""
    pending = asyncio.ensure_future(asyncio.sleep(3600))
    try:
        return await work
    finally:
        pending.cancel()
