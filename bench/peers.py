"""Peer modes (``peer:NAME``): the same asyncio workload run by what a user would
pick instead of asyncio-guest on the same host (``spec.PEERS``).

None of these is a dependency of asyncio-guest: they are installed only in the
bench venv (``bench/README.md``, "Peers"). A peer that is missing or fails
raises here, and the child reports the error's first line (``failed`` in the
table).

Each runner sets ``ctx.timer`` to the host's own timer (Tk ``after``, a Qt
single-shot precise ``QTimer``, a Trio deadline), exactly as the guest mode of
that host does, so the ``responsive`` figure is the host's timer in every mode.

* Qt: ``qasync`` (``qasync.run``: asyncio's loop replaced by a ``QEventLoop``);
  ``qtasyncio`` (``PySide6.QtAsyncio.run(coro, keep_running=False)``: asyncio's
  loop reimplemented on Qt); ``aioguest`` (``aioguest.start_guest_run``: asyncio
  as a guest through greenlets and a select thread), posting into Qt through
  ``asyncio_guest.qt.QtHost``'s two primitives (aioguest ships no host glue).
* Tk: ``async-tkinter-loop`` (``async_mainloop(root, loop)``: asyncio in charge,
  Tk's events pumped every 10 ms); ``aioguest`` on ``root.mainloop()``, posting
  through ``asyncio_guest.tk.TkHost``'s primitives.
* Trio: ``trio-asyncio`` (``trio_asyncio.open_loop()`` inside ``trio.run``, the
  workload run with ``aio_as_trio``: an asyncio loop whose callbacks run as Trio
  work); ``aioguest`` inside ``trio.run`` (posting with ``TrioToken.run_sync_soon``,
  as Trio's guest mode itself does); ``trio-guest``: Trio's own guest mode the
  other way round (``trio.lowlevel.start_guest_run`` hosted by ``asyncio.run``):
  the asyncio workload is then the host's main, with a Trio run beside it, and
  the host timer of ``responsive`` is a Trio deadline in that guest run.
* GLib: ``gi-events`` (PyGObject's ``gi.events.GLibEventLoopPolicy`` with
  ``asyncio.run``: asyncio's loop reimplemented on GLib's main context, in charge).
* wx: ``wxasync`` (``await WxAsyncApp.MainLoop()`` inside ``asyncio.run``: asyncio
  in charge, wx's events dispatched between ``asyncio.sleep(0.02)`` naps).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable
from typing import Any

from harness import (
    Ctx,
    HostTimer,
    Metrics,
    Workload,
    glib_timer,
    qt_app,
    qt_timer,
    tk_root,
    tk_timer,
    trio_timer,
    wx_app,
    wx_timer,
)


def run_peer(ctx: Ctx, workload: Workload, name: str) -> Metrics:
    runner = RUNNERS.get((ctx.host_kind, name))
    if runner is None:
        raise ValueError(f"no peer {name!r} on host {ctx.host_kind!r}")
    return runner(ctx, workload)


# ------------------------------------------------------------------ Qt


def _qt_qasync(ctx: Ctx, workload: Workload) -> Metrics:
    b, _app = qt_app()  # imports the binding first: qasync uses the one imported
    import qasync

    ctx.timer = qt_timer(b)
    result: Metrics = qasync.run(workload(ctx))
    return result


def _qt_qtasyncio(ctx: Ctx, workload: Workload) -> Metrics:
    b, _app = qt_app()
    if b.name != "PySide6":
        raise RuntimeError(f"QtAsyncio is PySide6's; the binding in use is {b.name}")
    # In PySide6-Addons, not PySide6-Essentials (importlib: the Essentials stubs
    # the lint venv has do not know the module).
    qtasyncio: Any = importlib.import_module("PySide6.QtAsyncio")

    ctx.timer = qt_timer(b)
    # quit_qapp stays True: with keep_running=False and quit_qapp=False, 6.11's
    # loop.stop() never makes exec() return, and run() hangs after the coroutine.
    result: Metrics = qtasyncio.run(workload(ctx), keep_running=False)
    return result


def _qt_aioguest(ctx: Ctx, workload: Workload) -> Metrics:
    import aioguest

    from asyncio_guest.qt import QtHost

    b, app = qt_app()
    ctx.timer = qt_timer(b)
    host = QtHost(app)
    outcomes: list[Any] = []

    def done(result: Any) -> None:
        outcomes.append(result)
        b.QCoreApplication.exit(0)

    try:
        aioguest.start_guest_run(
            workload(ctx),
            run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
            done_callback=done,
        )
        while not outcomes:
            b.exec(app)
            host.raise_errors()
    finally:
        host.close()
    metrics: Metrics = outcomes[0].unwrap()
    return metrics


# ------------------------------------------------------------------ Tk


def _tk_async_tkinter_loop(ctx: Ctx, workload: Workload) -> Metrics:
    from async_tkinter_loop import async_mainloop

    root = tk_root()
    ctx.timer = tk_timer(root)
    loop = asyncio.new_event_loop()

    async def main() -> Metrics:
        try:
            return await workload(ctx)
        finally:
            root.destroy()  # ends async_mainloop's pump (the library's way out)

    try:
        task = loop.create_task(main())
        async_mainloop(root, loop)  # runs until the root is destroyed
        if not task.done():
            raise RuntimeError("async_mainloop returned before the workload finished")
        return task.result()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def _tk_aioguest(ctx: Ctx, workload: Workload) -> Metrics:
    import aioguest

    from asyncio_guest.tk import TkHost

    root = tk_root()
    ctx.timer = tk_timer(root)
    host = TkHost(root)
    outcomes: list[Any] = []

    def done(result: Any) -> None:
        outcomes.append(result)
        root.quit()

    try:
        aioguest.start_guest_run(
            workload(ctx),
            run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
            done_callback=done,
        )
        while not outcomes:
            root.mainloop()
    finally:
        host.close()
        root.destroy()
    metrics: Metrics = outcomes[0].unwrap()
    return metrics


# ------------------------------------------------------------------ Trio


def _trio_trio_asyncio(ctx: Ctx, workload: Workload) -> Metrics:
    import trio
    import trio_asyncio

    ctx.timer = trio_timer()

    async def trio_main() -> Metrics:
        async with trio_asyncio.open_loop():
            metrics: Metrics = await trio_asyncio.aio_as_trio(workload)(ctx)
        return metrics

    result: Metrics = trio.run(trio_main)
    return result


def _trio_aioguest(ctx: Ctx, workload: Workload) -> Metrics:
    import aioguest
    import trio

    ctx.timer = trio_timer()

    async def trio_main() -> Metrics:
        token = trio.lowlevel.current_trio_token()
        finished = trio.Event()
        outcomes: list[Any] = []

        def done(result: Any) -> None:  # runs in a run_sync_soon callback: Trio context
            outcomes.append(result)
            finished.set()

        aioguest.start_guest_run(
            workload(ctx), run_sync_soon_threadsafe=token.run_sync_soon, done_callback=done
        )
        await finished.wait()
        metrics: Metrics = outcomes[0].unwrap()
        return metrics

    result: Metrics = trio.run(trio_main)
    return result


def _trio_guest(ctx: Ctx, workload: Workload) -> Metrics:
    """Trio's guest mode hosted by asyncio: the workload is ``asyncio.run``'s main and
    a Trio run (idle but for the benchmark's host timers) lives beside it."""
    import trio

    async def main() -> Metrics:
        loop = asyncio.get_running_loop()
        trio_done: asyncio.Future[Any] = loop.create_future()
        ready = asyncio.Event()
        state: dict[str, Any] = {}

        async def trio_main() -> None:
            state["token"] = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                state["nursery"] = nursery
                ready.set()  # Trio's guest code runs in the host's callbacks: same thread
                await trio.sleep_forever()

        def trio_finished(result: Any) -> None:
            if not trio_done.done():
                trio_done.set_result(result)

        trio.lowlevel.start_guest_run(
            trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=trio_finished,
        )
        await ready.wait()
        ctx.timer = _trio_guest_timer(state["token"], state["nursery"])
        try:
            return await workload(ctx)
        finally:
            state["token"].run_sync_soon(state["nursery"].cancel_scope.cancel)
            (await trio_done).unwrap()

    return asyncio.run(main())


def _trio_guest_timer(token: Any, nursery: Any) -> HostTimer:
    """A Trio deadline in the guest Trio run, armed from asyncio code (the host side)."""
    import trio

    async def sleeper(deadline: float, fn: Callable[[], object]) -> None:
        await trio.sleep_until(deadline)
        fn()

    def timer(delay: float, fn: Callable[[], object]) -> float:
        due = time.monotonic() + delay

        def arm() -> None:  # in Trio's context: convert to Trio's clock there
            nursery.start_soon(sleeper, trio.current_time() + max(0.0, due - time.monotonic()), fn)

        token.run_sync_soon(arm)
        return due

    return timer


# ------------------------------------------------------------------ GLib


def _glib_gi_events(ctx: Ctx, workload: Workload) -> Metrics:
    """PyGObject's own asyncio integration (``gi.events``, PyGObject >= 3.50):
    asyncio's loop reimplemented on the thread's GLib main context, in charge."""
    gi_events: Any = importlib.import_module("gi.events")

    ctx.timer = glib_timer()
    previous = asyncio.get_event_loop_policy()
    policy = gi_events.GLibEventLoopPolicy()
    asyncio.set_event_loop_policy(policy)
    # The documented way on the main thread: the loop of the default main
    # context (the one GTK and GLib.timeout_add use); asyncio.run's
    # new_event_loop() would refuse here (it makes a loop on a new context).
    loop = policy.get_event_loop()
    try:
        result: Metrics = loop.run_until_complete(workload(ctx))
        return result
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            asyncio.set_event_loop_policy(previous)


# ------------------------------------------------------------------ wx


def _wx_wxasync(ctx: Ctx, workload: Workload) -> Metrics:
    from wxasync import WxAsyncApp

    app, frame = wx_app(WxAsyncApp)
    ctx.timer = wx_timer()

    async def main() -> Metrics:
        try:
            return await workload(ctx)
        finally:
            app.ExitMainLoop()  # wxasync's way out of its MainLoop coroutine

    async def both() -> Metrics:
        task = asyncio.create_task(main())
        await app.MainLoop()
        return await task

    try:
        return asyncio.run(both())
    finally:
        frame.Destroy()


RUNNERS: dict[tuple[str, str], Callable[[Ctx, Workload], Metrics]] = {
    ("qt", "qasync"): _qt_qasync,
    ("qt", "qtasyncio"): _qt_qtasyncio,
    ("qt", "aioguest"): _qt_aioguest,
    ("tk", "async-tkinter-loop"): _tk_async_tkinter_loop,
    ("tk", "aioguest"): _tk_aioguest,
    ("trio", "trio-asyncio"): _trio_trio_asyncio,
    ("trio", "aioguest"): _trio_aioguest,
    ("trio", "trio-guest"): _trio_guest,
    ("glib", "gi-events"): _glib_gi_events,
    ("wx", "wxasync"): _wx_wxasync,
}
