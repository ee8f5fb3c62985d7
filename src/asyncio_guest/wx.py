"""asyncio as the guest of wxPython's main loop (``wx.App.MainLoop``), on wx's thread.

Three ways in, from the simplest:

* ``run(main)`` runs the application's ``MainLoop()`` with ``main`` inside it
  and returns ``main``'s result (or raises its exception), as ``asyncio.run``
  does. Make the ``wx.App`` and the first frame before (``app=None``: the
  existing application, else one made here and kept for the process).
* ``start_guest_run(main, done_callback=...)`` for a program that calls
  ``app.MainLoop()`` itself: it returns the main task at once.
* ``WxHost`` for glue of one's own: the two host primitives.

How the host wakes up: callbacks go to a deque (``_core/wake_queue.py``) and
at most one wake-up is pending. A wake-up from any thread is what
``wx.CallAfter`` does, a ``wx.PostEvent`` to the application (thread-safe,
never waits for the GUI thread), but of an event type of the host's own,
bound to its own method rather than to ``CallAfter``'s lambda: so the first
Python frame a wake-up runs is ours, and a Ctrl+C whose handler runs there is
recognised as landing in our machinery and delivered by the engine. (In wx's
lambda, under a program's own ``MainLoop()`` with no frame of ours below, it
would count as user code and raise into wxPython, which prints and drops it.)
wxGTK handles posted events in its idle source, at GLib's ``G_PRIORITY_LOW``:
after input, timers and redraw.

A busy guest (a tick that used its budget and left work) must not re-post
such an event: wx's ``ProcessPendingEvents`` keeps handling events posted
while it runs, so such a chain never returns to the toolkit and a ``wx.Timer``
never fires again (measured: 0 fires of a 10 ms timer in a second). The next
tick is an *idle-event* turn instead: ``wx.WakeUpIdle()`` and our ``EVT_IDLE``
handler on the application, bound for as long as work is left, which asks
for more idle events (``RequestMore``) meanwhile. wx sends idle events only
while no toolkit event is pending, so input, timers and paint go first
(``tests/test_wx_host.py`` measures a ``wx.Timer``'s lateness while 200
tasks spin). Idle events and posted events are also handled inside nested
loops (``ShowModal``), so asyncio keeps running under a modal dialog opened
with ``run_modal`` (``show_modal``).

The wait: wxPython cannot watch a file descriptor (wxWidgets'
``wxEventLoopSource`` is not wrapped). But wxGTK's event loop is GLib's main
loop (``gtk_main`` on the default main context, nested loops too): where
PyGObject imports, the host watches the selector's fd and sets the guest's
timer with GLib sources there (``asyncio_guest.glib.GLibHost``), so the guest
needs no backend thread, and a worker's ``call_soon_threadsafe`` is a write on
the loop's worker wake fd (``_core/worker_wake.py``) rather than a posted
event. Elsewhere (wxMSW, wxMac, no PyGObject) the guest waits on its
selector in the backend thread, and ``ASYNCIO_GUEST_WAIT=fd`` raises
``WaitChoiceError``. The fd watch runs at GLib's default priority, above
wx's pending events (handled when idle): a
wake-up that finds a tick already owed removes the watch until the tick has
run (``_core/fd_watch.py``), so a readable fd cannot starve it.

Ending (``run``): the last top-level window closed (wx then calls
``ExitMainLoop``) or ``app.ExitMainLoop()`` before ``main`` is done cancels
``main`` (the ``CancelledError`` says why); a ``wx.GUIEventLoop`` of ours
keeps wx running until the guest has shut down (callbacks still queued run),
then ``run`` returns ``main``'s value if it handled the cancellation, else
raises the ``CancelledError``.

Ctrl+C: ``wx.App()`` sets SIGINT to ``SIG_DFL`` (a Ctrl+C kills the process).
``run`` puts Python's handler in place for the run (and ``SIG_DFL`` back
after), so the first Ctrl+C cancels ``main`` and ``run`` raises
``KeyboardInterrupt`` after the shutdown: the signal's wakeup fd wakes the
backend thread, whose wake-up reaches wx, whose next Python call runs the
handler. ``start_guest_run`` leaves the handler as the program set it.

Errors: wxPython prints and swallows what an event handler raises, so what a
drain of ours raises is kept in ``WxHost.errors``: inside ``run`` it ends the
run and is raised from it; otherwise ``KeyboardInterrupt``/``SystemExit``
make ``MainLoop()`` return (and wait in ``errors``), anything else is logged.

Thread rule: everything here runs on wx's main thread (the *host thread*),
except ``WxHost.run_sync_soon_threadsafe`` and ``_post``, which touch only
``_lock``, ``_closed`` and the queue, and call ``wx.PostEvent``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import outcome

from ._core.errors import raise_first, toolkit_missing

try:
    import wx
except ImportError as _exc:
    raise toolkit_missing(
        "asyncio_guest.wx",
        "wxPython",
        "pip install 'asyncio-guest[wx]' (Windows, macOS); on Linux, the distribution's "
        "package (Debian, Ubuntu: apt install python3-wxgtk4.0)",
        _exc,
    ) from _exc

from ._core.entry import run_beside, start_with_host
from ._core.handover import DEFAULT_TICK_BUDGET
from ._core.interrupts import run_host_loop
from ._core.lifecycle import closes_main_if_it_never_ran
from ._core.wake_queue import CoalescingQueue
from .modal import run_modal

__all__ = ["WxHost", "run", "show_modal", "start_guest_run"]

logger = logging.getLogger("asyncio_guest")

if TYPE_CHECKING:
    from ._core.main_args import MainArgs, Unpack

_T = TypeVar("_T")

# Applications ``run`` made: wx allows one per process, so it lives on.
_created_apps: list[Any] = []

CLOSED_MESSAGE = (
    "asyncio_guest.wx.run: the wx main loop ended (last top-level window closed, "
    "or ExitMainLoop) before main finished"
)


class WxHost:
    """Runs callbacks on wx's main thread, through its event loop (module doc).

    Make it on that thread, with the ``wx.App`` made (``app=None``:
    ``wx.GetApp()``). ``close()`` unbinds its idle handler; callbacks still
    queued are dropped.
    """

    def __init__(self, app: Any = None) -> None:
        if app is None:
            app = wx.GetApp()
            if app is None:
                raise RuntimeError(
                    "WxHost needs a wx.App: make one first (or use asyncio_guest.wx.run)"
                )
        if not wx.IsMainThread():
            raise RuntimeError("make the WxHost on wx's main thread")
        self.app: Any = app
        self.thread_id = threading.get_ident()
        self.errors: list[BaseException] = []  # see _report
        self.on_error: Callable[[], object] | None = None  # set by run: end the run
        self._depth = 0  # host thread: drains running (nested loops nest them)
        # Host thread: the next drain is an idle-event turn, and our idle
        # handler is bound (only then: see _post_busy).
        self._busy = False
        # _lock orders _closed against posts from other threads: no
        # wake-up is posted once close() has set it.
        self._lock = threading.Lock()
        self._closed = False
        self._queue = CoalescingQueue(self._post, self._post_busy)
        # Our wake-up event (module doc): a type per host, so that a host's
        # events never reach another's handler, and unbinding drops its own.
        self._wake_type: int = wx.NewEventType()
        self._wake_binder = wx.PyEventBinder(self._wake_type)
        self._wake_handler = self._on_wake
        self._idle_handler = self._on_idle
        app.Bind(self._wake_binder, self._wake_handler)
        self._glib: Any = _glib_watcher()  # wxGTK + PyGObject: the fd watch (module doc)

    # --------------------------------- waits for a zero-thread wait (wxGTK)

    @property
    def watches_fds(self) -> bool:
        """True where the host can watch an fd (wxGTK with PyGObject): no backend thread."""
        return self._glib is not None

    @property
    def worker_wakes_by_fd(self) -> bool:
        """An fd wakes a watching host sooner than a posted event (``FdWatcher``)."""
        return self._glib is not None

    def watch_readable(self, fd: int, callback: Callable[[], object]) -> Callable[[], object]:
        """Host thread: call ``callback()`` while ``fd`` is readable (a GLib source)."""
        if self._glib is None:
            raise RuntimeError("this WxHost cannot watch fds (wxGTK with PyGObject only)")
        unwatch: Callable[[], object] = self._glib.watch_readable(fd, self._then_idle(callback))
        return unwatch

    def call_later(self, delay: float, callback: Callable[[], object]) -> Callable[[], object]:
        """Host thread: call ``callback()`` once after ``delay`` seconds (a GLib timeout)."""
        if self._glib is None:
            raise RuntimeError("this WxHost cannot set GLib timers (wxGTK with PyGObject only)")
        cancel: Callable[[], object] = self._glib.call_later(delay, self._then_idle(callback))
        return cancel

    @staticmethod
    def _then_idle(callback: Callable[[], object]) -> Callable[[], None]:
        """``callback()`` from a GLib source, then wx's idle processing asked for.

        wx defers work to idle time (a closed frame is deleted there, and the
        last one's deletion ends ``MainLoop``); after its own event handlers
        it asks for that turn itself, not after a GLib source of ours. The
        guest's ticks run wx code (``frame.Close()`` in a task or a
        ``done_callback``), so each ends as a wx handler would.
        """

        def call() -> None:
            try:
                callback()
            finally:
                wx.WakeUpIdle()

        return call

    # ----------------------------------------------------------- primitives

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Any thread: run ``fn()`` on wx's thread soon (order kept); never blocks."""
        if self._closed:
            raise RuntimeError("this WxHost is closed")
        self._queue.submit(fn)

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """Host thread only: the same.

        Inside a drain the busy wake-up is sent at once rather than at the
        drain's end, so a nested loop that the running callback opens
        (``ShowModal()`` straight from a task) still runs it (the engine's
        debug probe then names ``run_modal``).
        """
        if self._closed:
            raise RuntimeError("this WxHost is closed")
        self._queue.submit_local(fn)
        if self._depth:
            self._queue.wake_busy_now()

    def _post(self) -> None:
        """Any thread: post one wake-up event (the queue keeps it to one pending)."""
        event = wx.PyEvent()
        event.SetEventType(self._wake_type)
        with self._lock:
            if self._closed:
                raise RuntimeError("this WxHost is closed")
            wx.PostEvent(self.app, event)

    def _post_busy(self) -> None:
        """Host thread: a drain left work; the next one at idle time (module doc).

        Our idle handler is bound only while the guest is busy. wx sends the
        application an idle event after each of its own events and after each
        tick of the fd watch (``_then_idle``); a Python handler bound for good
        runs there every time, for nothing while the guest is not busy, and
        delays a worker's next wake-up (bench ``threadsafe``, zero-thread wait,
        p10 latency: 1.42-1.47x of plain asyncio bound for good, 1.35-1.40x
        bound while busy; wx's own idle processing is most of what is left).
        """
        if not self._busy:
            self._busy = True
            self.app.Bind(wx.EVT_IDLE, self._idle_handler)
        wx.WakeUpIdle()

    # ------------------------------------------------------------- drains

    def _on_wake(self, _event: Any) -> None:
        """Host thread, our posted event: drain."""
        if not self._closed:
            self._drain()

    def _on_idle(self, event: Any) -> None:
        """Host thread, the application's idle event: a busy guest's next tick."""
        event.Skip()  # the program's own idle handlers still run
        if not self._busy or self._closed:
            return
        self._drain()
        if self._queue or self._queue.pending:
            # Work is left, or a wake-up is pending that may be a busy one
            # (the drain's extra one, sent while callbacks waited behind the
            # running one: they ran, the flag stays set until a drain clears
            # it): more idle turns while no toolkit event waits. The flag is
            # read without the queue's lock: one a worker sets meanwhile is
            # for its posted event, which _on_wake serves bound or not.
            event.RequestMore()
        else:
            self._busy = False
            self.app.Unbind(wx.EVT_IDLE, handler=self._idle_handler)

    def _drain(self) -> None:
        """Run the queue. Nothing may escape into wx (it would only print it)."""
        self._depth += 1
        try:
            self._queue.drain()
        except BaseException as exc:
            self._report(exc)
        finally:
            self._depth -= 1

    def _report(self, exc: BaseException) -> None:
        """An exception reached the host loop (module doc: "Errors")."""
        if self.on_error is not None:
            self.errors.append(exc)
            self.on_error()
        elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
            self.errors.append(exc)
            self.app.ExitMainLoop()
        else:
            logger.error("asyncio_guest.wx: a host callback raised", exc_info=exc)

    def raise_errors(self) -> None:
        """Host thread: raise the first exception ``_report`` kept, if any (and forget them)."""
        raise_first(self.errors)

    # ------------------------------------------------------------- ending

    def close(self) -> None:
        """Host thread: refuse new callbacks, drop queued ones, unbind (idempotent).

        A wake-up event already posted finds no handler (or the host closed)
        and does nothing. Safe from inside one of our own callbacks (wx allows a
        handler to be unbound while events are being dispatched).
        """
        if self._closed:
            return
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("WxHost.close() must run on wx's main thread")
        with self._lock:
            self._closed = True
        self._queue.clear()
        self._busy = False
        if self._glib is not None:
            self._glib.close()  # its fd watch and timers
        try:
            self.app.Unbind(wx.EVT_IDLE, handler=self._idle_handler)
            self.app.Unbind(self._wake_binder, handler=self._wake_handler)
        except RuntimeError:
            pass  # the application's C++ object is gone already: nothing to unbind

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> WxHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _glib_watcher() -> Any:
    """A ``GLibHost`` on the default main context, where wx's loop is GLib's; else None."""
    if sys.platform == "win32" or wx.Platform != "__WXGTK__":
        return None
    try:
        with warnings.catch_warnings():
            # Some PyGObject builds (Debian's, for its Python 3.11) warn from
            # their own importer ("DynamicImporter.exec_module() not found"):
            # their noise, which -W error would turn into a failed wx run.
            warnings.simplefilter("ignore", ImportWarning)
            from gi.repository import GLib

            from .glib import GLibHost
    except ImportError:
        return None
    return GLibHost(GLib.MainContext.default())


# ------------------------------------------------------------- entries


@closes_main_if_it_never_ran
def start_guest_run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    done_callback: Callable[[outcome.Outcome[_T]], object],
    app: Any = None,
    host: WxHost | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> asyncio.Task[_T]:
    """Start ``main`` as the guest of wx's event loop (which the caller runs: ``app.MainLoop()``).

    Call on wx's main thread, with the application made.
    ``done_callback(outcome)`` runs there once the run has shut down (it may
    call ``app.ExitMainLoop()``). Without a ``host``, a ``WxHost`` is made here
    and closed after ``done_callback`` returns. Returns the main task; cancel
    it to end the run (e.g. from a frame's ``EVT_CLOSE``).
    """
    the_host = host if host is not None else WxHost(app)
    if the_host.closed:
        raise RuntimeError("this WxHost is closed")
    return start_with_host(
        main,
        args,
        host=the_host,
        own_host=host is None,
        done_callback=done_callback,
        fd_watcher=the_host if the_host.watches_fds else None,  # module doc, "The wait"
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
    )


def _live_top_level_windows(app: Any) -> list[Any]:
    """The top-level windows that keep ``MainLoop()`` running: not those a
    ``Destroy()`` made before the run left for deletion at the next idle time
    (which would end ``MainLoop`` at once, and the run with it)."""
    return [w for w in wx.GetTopLevelWindows() if not app.IsScheduledForDestruction(w)]


def _the_app(app: Any) -> Any:
    if app is not None:
        return app
    app = wx.GetApp()
    if app is None:
        app = wx.App(False)  # output stays on the terminal
        _created_apps.append(app)
    return app


@closes_main_if_it_never_ran
def run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    app: Any = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> _T:
    """Run ``main`` inside ``app.MainLoop()``; return its result or raise.

    * The application: ``app``, else ``wx.GetApp()``, else a ``wx.App`` made
      here (kept for the process).
    * The loop: ``app.MainLoop()`` when a top-level window exists (wxPython's
      ``MainLoop`` returns at once without one; a window ``Destroy()`` left for
      deletion does not count); else a ``wx.GUIEventLoop`` of ours, which runs
      until ``main`` ends.
    * ``main`` returns: the loop is told to exit (once a modal dialog's loop
      nested in it has returned) and ``run`` returns its result.
    * The last top-level window closed, or ``ExitMainLoop()`` called first:
      ``main`` is cancelled (module doc, "Ending").
    * Ctrl+C: the first cancels ``main`` and ``run`` raises
      ``KeyboardInterrupt`` after the shutdown (module doc).
    * An exception from ``main`` propagates after the shutdown.
    """
    the_app = _the_app(app)
    host = WxHost(the_app)
    finished = False
    in_main_loop = False
    own_loops: list[Any] = []  # our wx.GUIEventLoops running, innermost last

    def exit_loops() -> None:
        # ScheduleExit, not ExitMainLoop() or Exit(): those act only on the
        # *active* loop (wx's IsRunning), so with a modal dialog's loop nested
        # inside (one ``show_modal`` is ending, or one still open) they did
        # nothing and the run never ended. A scheduled exit is taken as soon
        # as the loops nested inside have returned.
        if in_main_loop:
            main_loop = the_app.GetMainLoop()
            if main_loop is not None:
                main_loop.ScheduleExit()
            else:
                the_app.ExitMainLoop()
        for loop in own_loops:  # each is inside its Run() (see run_host)
            loop.ScheduleExit()
        # A GLib source of wx's, due at once: wxGTK's idle handling loops while
        # the program's EVT_IDLE asks for more (RequestMore) and no GTK event
        # is pending, so an exit scheduled from a posted event or an idle turn
        # never got back to gtk_main (plain wx hangs the same way).
        wx.CallLater(1, _nothing)

    def run_host(task: asyncio.Task[_T]) -> None:
        nonlocal in_main_loop
        host.on_error = exit_loops
        if not finished and _live_top_level_windows(the_app):
            in_main_loop = True
            try:
                run_host_loop(the_app.MainLoop, wx)  # (see glib.py's run_loop)
            finally:
                in_main_loop = False
            host.raise_errors()
            if not finished:
                task.cancel(CLOSED_MESSAGE)
        while not finished:
            # Not MainLoop() again (it returns at once with no window left):
            # a loop of ours, for the rest of the guest's run or its shutdown.
            loop = wx.GUIEventLoop()
            own_loops.append(loop)
            try:
                run_host_loop(loop.Run, wx)
            finally:
                own_loops.remove(loop)
            host.raise_errors()

    def stop_host() -> None:
        nonlocal finished
        finished = True
        exit_loops()

    # wx.App() set SIGINT to SIG_DFL; Python's handler for the run (module doc).
    sigint_was_default = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) == signal.SIG_DFL
    )
    if sigint_was_default:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_beside(
            main,
            args,
            run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
            run_host=run_host,
            stop_host=stop_host,
            close_host=host.close,
            entry_name="asyncio_guest.wx.run",
            fd_watcher=host if host.watches_fds else None,
            loop_factory=loop_factory,
            debug=debug,
            tick_budget=tick_budget,
        )
    finally:
        if sigint_was_default:
            signal.signal(signal.SIGINT, signal.SIG_DFL)


async def show_modal(dialog: Any) -> int:
    """``dialog.ShowModal()`` with asyncio running meanwhile; its return code.

    Built on ``run_modal``: the dialog's nested loop runs outside any tick,
    so the guest keeps running while it is open. If the awaiting task is
    cancelled, the dialog is ended (``EndModal(wx.ID_CANCEL)``), so no dialog
    is left open with nobody awaiting it. That works for ``wx.Dialog`` and its
    wx-drawn subclasses only: a native dialog (on GTK ``wx.MessageDialog``,
    ``wx.FileDialog``...) runs GTK's own loop (asyncio still runs under it),
    reports ``IsModal()`` False and cannot be ended from code, so it stays
    open until the user answers it.

    Two dialogs open at once (two tasks each awaiting one) nest: the second
    one's loop runs inside the first's. ``EndModal`` ends only the innermost
    loop, so a dialog with another one open above it is ended through its
    own loop (``ScheduleExit``), which returns once the dialog above closes;
    the run's end, which cancels both, then ends both.
    """
    own_loop: Any = None  # the dialog's modal loop, once noted
    # Done once ShowModal has returned: its loop is gone, never touch it again.
    returned: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def note_own_loop() -> None:
        # Called from the first pending-event pass of the dialog's loop.
        nonlocal own_loop
        if not returned.done() and own_loop is None and dialog and dialog.IsModal():
            own_loop = wx.EventLoopBase.GetActive()

    def show() -> Any:
        wx.CallAfter(note_own_loop)
        try:
            return dialog.ShowModal()
        finally:
            returned.set_result(None)  # host code, outside a tick: wakes the task

    try:
        return int(await run_modal(show))
    except asyncio.CancelledError:
        if not returned.done() and dialog and dialog.IsModal():
            loop = own_loop
            dialog.EndModal(wx.ID_CANCEL)
            if loop is not None and not loop.IsRunning():
                # Another modal loop runs inside this one: EndModal ended
                # nothing (it ends the active loop only).
                loop.ScheduleExit(wx.ID_CANCEL)
            else:
                # Ended: the cancelled task goes on only once ShowModal has
                # returned. Its next lines (``finally: dialog.Destroy()``, as
                # wx code is written) ran inside the dialog's ending loop,
                # whose idle pass then freed the dialog under ShowModal (a
                # segfault). (Under another dialog, or a native one that code
                # cannot end, it would wait for the user: the task ends at
                # once there, as documented.)
                await _returned(returned)
        raise


async def _returned(returned: asyncio.Future[None]) -> None:
    """Await ``returned`` through further cancellations (the caller re-raises
    the first one afterwards): ShowModal, ended already, returns soon."""
    while not returned.done():
        try:
            await asyncio.shield(returned)
        except asyncio.CancelledError:
            continue


def _nothing() -> None:
    """A timer's callback that only makes wx's loop turn (see ``run``)."""
