"""asyncio as the guest of a GLib main loop (PyGObject): bare GLib, GTK 3, GTK 4.

Three ways in, from the simplest:

* ``run(main)`` runs the host's main loop with ``main`` inside it and returns
  ``main``'s result (or raises its exception), as ``asyncio.run`` does. Which
  loop: ``application=app`` runs ``app.run()`` (a ``Gtk.Application``, GTK 4
  or 3, or any ``Gio.Application``); ``loop=GLib.MainLoop()`` runs that loop;
  with neither, ``Gtk.main()`` if GTK 3 has been imported (so the usual
  ``window.connect("destroy", Gtk.main_quit)`` ends the run), else a new
  ``GLib.MainLoop`` of the thread's main context.
* ``start_guest_run(main, done_callback=...)`` for a program that runs its
  loop itself (``Gtk.main()``, ``app.run()``...): it returns the main task.
* ``GLibHost`` for glue of one's own: the host primitives and the two waits a
  zero-thread strategy needs (``watch_readable``, ``call_later``).

How the host wakes up: callbacks go to a deque (``_core/wake_queue.py``), and
at most one GLib idle source of ours is attached to the context at a time; it
drains the deque. ``g_source_attach`` takes the context's lock and wakes the
context, so ``run_sync_soon_threadsafe`` only enqueues and wakes, from any
thread, and never waits for the GLib thread. Any loop iterating the context
dispatches the source, nested ones too (``Gtk.Dialog.run()``), so asyncio
keeps running under a modal dialog opened with ``run_modal``.

Priorities (GLib dispatches, in each iteration, only the ready sources of the
best priority present):

* a wake-up (a worker's ``call_soon_threadsafe``, the backend thread's "I/O is
  ready", the guest's first tick) is an idle source at ``PRIORITY_DEFAULT``,
  the priority of input events and of ``GLib.timeout_add``;
* a busy guest's *next* tick (a tick that used its budget and left work) is an
  idle source at ``PRIORITY_DEFAULT_IDLE`` (200): below input and timeouts
  (0) and below GTK's relayout and redraw (``GDK_PRIORITY_REDRAW``, 120), so
  a guest that always has work takes the turns the GUI leaves, and never
  starves it (``tests/test_glib_host.py`` measures a 10 ms GLib timeout's
  lateness while 200 tasks spin). Idle sources of the program's own at 200
  share those turns with it.
* the zero-thread wait's fd watch (the guest loop's epoll fd) and timer are at
  ``PRIORITY_DEFAULT``. While a busy tick is pending, the fd watch is lowered
  to the busy priority: it is level-triggered, and a readable fd at a better
  priority would be dispatched at every iteration and starve the very tick
  that reads it.

Errors: GLib cannot carry a Python exception out of ``MainLoop.run()``
(PyGObject prints it and goes on). So what a drain or a watch callback of
ours raises is kept in ``GLibHost.errors``; inside ``run`` it ends the run and
is raised from it; otherwise it is logged.

Ctrl+C: PyGObject's ``MainLoop.run``/``Gtk.main``/``Application.run`` take
the signal wakeup fd for the time they run (a socket GLib watches) and put
back the previous one when they return. So the guest leaves that fd to them
(``host_uses_signal_set_wakeup_fd=True``: had it set its own, the loop would
put back a descriptor the finished run had closed): a Ctrl+C wakes GLib,
Python runs the run's SIGINT handler, the first cancels ``main`` and ``run``
raises ``KeyboardInterrupt`` after the shutdown. A program that iterates the
context from C or with ``context.iteration()`` gets no such wake-up: Ctrl+C
is then handled at the next event.

Thread rule: everything here runs on the context's thread (the *host
thread*), except ``GLibHost.run_sync_soon_threadsafe`` and ``_post``, which
touch only ``_lock``, ``_closed``, ``_wake_source`` and the queue.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import outcome

from ._core.errors import raise_first, toolkit_missing

try:
    import gi
    from gi.repository import GLib
except ImportError as _exc:
    raise toolkit_missing(
        "asyncio_guest.glib", "PyGObject", "pip install 'asyncio-guest[glib]'", _exc
    ) from _exc

from ._core.entry import run_beside, start_with_host
from ._core.handover import DEFAULT_TICK_BUDGET
from ._core.interrupts import run_host_loop
from ._core.lifecycle import closes_main_if_it_never_ran
from ._core.wake_queue import CoalescingQueue

__all__ = ["BUSY_PRIORITY", "WAKE_PRIORITY", "GLibHost", "run", "run_dialog", "start_guest_run"]

logger = logging.getLogger("asyncio_guest")

if TYPE_CHECKING:
    from ._core.main_args import MainArgs, Unpack

_T = TypeVar("_T")

WAKE_PRIORITY: int = GLib.PRIORITY_DEFAULT
"""A wake-up's idle source, and the fd watch and timer of the zero-thread wait."""
BUSY_PRIORITY: int = GLib.PRIORITY_DEFAULT_IDLE
"""A busy guest's next tick: after input, timeouts and GTK's redraw (module doc)."""

_FD_CONDITION = GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR


class GLibHost:
    """Runs callbacks on a GLib main context's thread, through its main loop.

    ``context=None``: the thread's default context
    (``GLib.MainContext.ref_thread_default()``); make the host on the thread
    that iterates it. Thread rule: ``run_sync_soon_threadsafe`` from any
    thread; everything else on that thread. ``close()`` destroys every source
    it attached; callbacks still queued are dropped.
    """

    # A worker's call_soon_threadsafe wakes an fd watch through the loop's
    # worker wake fd (_core/worker_wake.py): GLib's C fd source is sooner than a GLib.Idle made per
    # wake-up in Python (threadsafe latency 39.6 -> 29.9 us, 3.11).
    worker_wakes_by_fd = True

    def __init__(self, context: Any = None) -> None:
        if context is None:
            context = GLib.MainContext.ref_thread_default()
        self.context: Any = context
        self.thread_id = threading.get_ident()
        self.errors: list[BaseException] = []  # see _report
        self.on_error: Callable[[], object] | None = None  # set by run: end the run
        self._depth = 0  # host thread: drains running (nested loops nest them)
        self._close_when_idle = False
        # _lock orders _closed and _wake_source against posts from other threads.
        self._lock = threading.Lock()
        self._closed = False
        self._wake_source: Any = None  # our idle source attached and not yet run
        self._busy = False  # that source is a busy tick (BUSY_PRIORITY)
        self._fd_sources: set[Any] = set()  # host thread
        self._timers: set[Any] = set()  # host thread
        self._queue = CoalescingQueue(self._post, self._post_busy)

    # ----------------------------------------------------------- primitives

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Any thread: run ``fn()`` on the host thread soon (order kept); never blocks."""
        if self._closed:
            raise RuntimeError("this GLibHost is closed")
        self._queue.submit(fn)

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """Host thread only: the same.

        Inside a drain (the guest's next tick) the wake-up is the busy one,
        sent at once rather than at the drain's end, so a nested loop that the
        running callback opens (``dialog.run()`` straight from a task) still
        runs it (the engine's debug probe then names ``run_modal``).
        """
        if self._closed:
            raise RuntimeError("this GLibHost is closed")
        self._queue.submit_local(fn)
        if self._depth:
            self._queue.wake_busy_now()

    def _post(self) -> None:
        """Any thread: attach one wake-up source (the queue keeps it to one pending)."""
        self._attach_wake(WAKE_PRIORITY)

    def _post_busy(self) -> None:
        """Host thread: a drain left work; the next one after the GUI's turn (module doc)."""
        self._attach_wake(BUSY_PRIORITY)
        for source in self._fd_sources:
            source.set_priority(BUSY_PRIORITY)

    def _attach_wake(self, priority: int) -> None:
        source = GLib.Idle(priority)
        # Set it again: PyGObject's Idle() skips set_priority when given
        # PRIORITY_DEFAULT, leaving GLib's idle default (200), which put every
        # wake-up below the fd watch (a readable fd then starved the tick).
        source.set_priority(priority)
        source.set_callback(self._on_wake, source)
        with self._lock:
            if self._closed:
                raise RuntimeError("this GLibHost is closed")
            self._wake_source = source
            self._busy = priority == BUSY_PRIORITY
            source.attach(self.context)

    def _on_wake(self, source: Any) -> bool:
        """Host thread, our idle source: drain. Nothing may escape into GLib."""
        with self._lock:
            if self._wake_source is source:
                self._wake_source = None
            if self._busy:
                self._busy = False
                for fd_source in self._fd_sources:
                    fd_source.set_priority(WAKE_PRIORITY)
        if self._closed:
            return False
        self._depth += 1
        try:
            self._queue.drain()
        except BaseException as exc:
            self._report(exc)
        finally:
            self._depth -= 1
        if self._close_when_idle and not self._depth:
            self.close()
        return False  # GLib.SOURCE_REMOVE

    def _guarded(self, fn: Callable[[], object]) -> Callable[[], None]:
        def call() -> None:
            try:
                fn()
            except BaseException as exc:
                self._report(exc)

        return call

    def _report(self, exc: BaseException) -> None:
        """An exception reached the host loop (module doc: "Errors")."""
        self.errors.append(exc)
        if self.on_error is not None:
            self.on_error()
        else:
            logger.error("asyncio_guest.glib: a host callback raised", exc_info=exc)

    def raise_errors(self) -> None:
        """Host thread: raise the first exception ``_report`` kept, if any (and forget them)."""
        raise_first(self.errors)

    # ------------------------------------------- waits for a zero-thread wait

    def watch_readable(self, fd: int, callback: Callable[[], object]) -> Callable[[], None]:
        """Host thread: call ``callback()`` whenever ``fd`` is readable; return ``unwatch``.

        A GLib source polling ``fd`` (``g_source_add_unix_fd``) on the host's
        context at ``WAKE_PRIORITY``: level-triggered, so the callback must
        consume the readiness (or unwatch). ``unwatch()`` is idempotent.
        """
        self._check_open()
        # GLib's own C source (g_unix_fd_source_new), not a GLib.Source
        # subclass: that one's prepare/check run Python at every iteration of
        # the context, a cost every round trip paid. Attached to our context
        # (GLib.unix_fd_add_full only knows the default one).
        source = GLib.unix_fd_source_new(fd, _FD_CONDITION)
        call = self._guarded(callback)

        def dispatch(*_: object) -> bool:
            call()
            return True  # GLib.SOURCE_CONTINUE: level-triggered, until unwatched

        source.set_callback(dispatch)
        source.set_priority(BUSY_PRIORITY if self._busy else WAKE_PRIORITY)
        source.attach(self.context)
        self._fd_sources.add(source)

        def unwatch() -> None:
            if source in self._fd_sources:
                self._fd_sources.discard(source)
                source.destroy()

        return unwatch

    def call_later(self, delay: float, callback: Callable[[], object]) -> Callable[[], None]:
        """Host thread: call ``callback()`` once after ``delay`` seconds; return ``cancel``.

        A GLib timeout source at ``WAKE_PRIORITY`` (``GLib.timeout_add``'s).
        GLib counts milliseconds: rounded up, so it never fires early.
        ``cancel()`` is idempotent.
        """
        self._check_open()
        source = GLib.Timeout(max(0, math.ceil(delay * 1000)), WAKE_PRIORITY)
        call = self._guarded(callback)

        def fire(*_: object) -> bool:
            self._timers.discard(source)
            call()
            return False  # GLib.SOURCE_REMOVE

        source.set_callback(fire)
        source.attach(self.context)
        self._timers.add(source)

        def cancel() -> None:
            if source in self._timers:
                self._timers.discard(source)
                source.destroy()

        return cancel

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this GLibHost is closed")
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("this GLibHost method must be called on the GLib context's thread")

    # ------------------------------------------------------------- ending

    def close(self) -> None:
        """Host thread: destroy every source of ours (idempotent).

        From inside one of our own callbacks (a ``done_callback``), new
        callbacks are refused at once and the sources are destroyed when that
        drain returns.
        """
        if self._closed and not self._close_when_idle:
            return
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("GLibHost.close() must run on the GLib context's thread")
        with self._lock:
            self._closed = True
            wake, self._wake_source = self._wake_source, None
        self._queue.clear()
        if self._depth:
            self._close_when_idle = True
            return
        self._close_when_idle = False
        if wake is not None:
            wake.destroy()
        for source in [*self._fd_sources, *self._timers]:
            source.destroy()
        self._fd_sources.clear()
        self._timers.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> GLibHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ------------------------------------------------------------- entries


@closes_main_if_it_never_ran
def start_guest_run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    done_callback: Callable[[outcome.Outcome[_T]], object],
    host: GLibHost | None = None,
    context: Any = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> asyncio.Task[_T]:
    """Start ``main`` as the guest of a GLib main context (which the caller iterates).

    Call on the context's thread (``context=None``: the thread's default
    context), then run its loop (``GLib.MainLoop().run()``, ``Gtk.main()``,
    ``app.run()``). ``done_callback(outcome)`` runs there once the run has
    shut down (it may quit the loop). Without a ``host``, a ``GLibHost`` is
    made here and closed after ``done_callback`` returns. Returns the main
    task; cancel it to end the run (e.g. from a window's ``destroy``).
    """
    the_host = host if host is not None else GLibHost(context)
    if the_host.closed:
        raise RuntimeError("this GLibHost is closed")
    return start_with_host(
        main,
        args,
        host=the_host,
        own_host=host is None,
        done_callback=done_callback,
        host_uses_signal_set_wakeup_fd=True,  # PyGObject's loops take it (module doc)
        # A GLib fd source on the guest's epoll fd: no backend thread.
        fd_watcher=None if sys.platform == "win32" else the_host,
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
    )


def _gtk3() -> Any:
    """``Gtk`` if the program imported GTK 3, else None."""
    gtk = sys.modules.get("gi.repository.Gtk")
    if gtk is not None and gtk.get_major_version() == 3:
        return gtk
    return None


@closes_main_if_it_never_ran
def run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    loop: Any = None,
    application: Any = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> _T:
    """Run ``main`` with a GLib main loop in charge; return its result or raise.

    The loop (on the thread's default context, this thread):

    * ``application``: ``application.run()`` (a ``Gtk.Application``, GTK 4 or
      3, or a ``Gio.Application``). Until its first window, the application
      is held (``hold()``), so it lives while ``main`` runs even with no
      window open; from then on its own use count decides, as without us
      (its windows and the program's holds). When ``main`` ends,
      ``application.quit()`` makes ``run()`` return. The application
      quitting first (``quit()``, or its last window closed with no hold of
      the program's left) cancels ``main``.
    * ``loop``: that ``GLib.MainLoop``; ``loop.quit()`` before ``main`` is
      done cancels ``main``.
    * neither: ``Gtk.main()`` if GTK 3 has been imported (``Gtk.main_quit()``
      cancels ``main``), else a new ``GLib.MainLoop``.

    When the loop is told to quit before ``main`` is done, ``main`` is
    cancelled and a ``GLib.MainLoop`` keeps the context running until the
    guest has shut down (windows still paint meanwhile); then ``run``
    returns ``main``'s value if it handled the cancellation, else raises
    ``asyncio.CancelledError``. An exception from ``main`` propagates after
    the shutdown. Ctrl+C: the first cancels ``main`` and ``run`` raises
    ``KeyboardInterrupt`` after the shutdown.
    """
    if loop is not None and application is not None:
        raise TypeError("run(): give loop= or application=, not both")
    host = GLibHost()
    finished = False
    quits: list[Callable[[], object]] = []  # how to make each running loop return
    gtk = _gtk3() if loop is None and application is None else None
    window_added: list[int] = []
    held = False

    def run_loop(run_it: Callable[[], object], quit_it: Callable[[], object]) -> None:
        quits.append(quit_it)
        try:
            # The program's callbacks run under the loop: a second Ctrl+C
            # raises in them at once (interrupts.py).
            run_host_loop(run_it, gi)
        finally:
            quits.remove(quit_it)

    def end_run_for_error() -> None:
        for quit_it in quits:
            quit_it()

    def run_host(task: asyncio.Task[_T]) -> None:
        host.on_error = end_run_for_error
        if not finished:
            if application is not None:
                run_loop(functools.partial(application.run, None), application.quit)
            elif loop is not None:
                run_loop(loop.run, loop.quit)
            elif gtk is not None:
                run_loop(gtk.main, gtk.main_quit)
            else:
                own = GLib.MainLoop(host.context)
                run_loop(own.run, own.quit)
            host.raise_errors()
        if not finished:
            # The loop was told to quit before main was done.
            task.cancel()
        while not finished:
            # Not the program's loop again: only the guest's shutdown.
            trailing = GLib.MainLoop(host.context)
            run_loop(trailing.run, trailing.quit)
            host.raise_errors()

    def stop_host() -> None:
        nonlocal finished
        finished = True
        for quit_it in quits:
            quit_it()

    if application is not None:
        # Held until its first window: an application with no window yet (its
        # activate still to come, or none at all: a Gio.Application serving
        # D-Bus) lives while main runs. From its first window on, it lives by
        # its own use count, as it would without us: each window holds it,
        # and so does every hold() of the program's; once none is left, after
        # a main-loop iteration, application.run() returns and main is
        # cancelled. Hence a window closed and another opened in one callback
        # (a login window giving way to the main window) or a program that
        # holds a windowless application keeps the run going, as without us.
        windows = getattr(application, "get_windows", None)
        if windows is None or not windows():
            application.hold()
            held = True
        if held and windows is not None:

            def on_window_added(app: Any, _window: Any) -> None:
                nonlocal held
                if held:
                    held = False
                    app.release()  # the window holds it now (see above)

            window_added.append(application.connect("window-added", on_window_added))

    def close_host() -> None:
        nonlocal held
        try:
            host.close()
        finally:
            if application is not None:
                for handler in window_added:
                    application.disconnect(handler)
                window_added.clear()
                if held:
                    held = False
                    application.release()

    return run_beside(
        main,
        args,
        run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
        run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
        run_host=run_host,
        stop_host=stop_host,
        close_host=close_host,
        entry_name="asyncio_guest.glib.run",
        host_uses_signal_set_wakeup_fd=True,
        fd_watcher=None if sys.platform == "win32" else host,
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
    )


# ------------------------------------------------------------- dialogs

_RESPONSE_NONE = -1
"""``Gtk.ResponseType.NONE``: what ``Dialog.run()`` returns for a dialog destroyed unanswered."""


async def run_dialog(dialog: Any) -> int:
    """``dialog.run()`` without its nested loop: show a ``Gtk.Dialog`` modally,
    await its response id (GTK 3 or 4).

    The dialog is made modal and presented, and the id its ``response``
    signal carries comes back here (``Gtk.ResponseType`` values are negative:
    ``DELETE_EVENT`` when the window manager closed it); a dialog destroyed
    unanswered gives ``NONE`` (-1), as ``run()`` does. As after ``run()``,
    hiding or destroying the dialog is then the caller's.

    Nothing nests, unlike ``run_modal(dialog.run)``, whose nested main loop
    the run cannot end: there ``main``'s end, a closed main window and Ctrl+C
    all wait until the user answers. Here they go on as usual, and if the
    awaiting task is cancelled the dialog is hidden (nobody awaits it).
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[int] = loop.create_future()

    def settle(response_id: int) -> None:
        # GTK calls this on the host thread, maybe outside any tick: a
        # future's callbacks then wake the guest as any host code's call_soon.
        if not answer.done():
            answer.set_result(int(response_id))

    handlers = [
        dialog.connect("response", lambda _dialog, response_id: settle(response_id)),
        dialog.connect("destroy", lambda _dialog: settle(_RESPONSE_NONE)),
    ]
    try:
        dialog.set_modal(True)
        dialog.present()
        return await answer
    except asyncio.CancelledError:
        dialog.set_visible(False)  # answered or not, nobody will take it now
        raise
    finally:
        for handler in handlers:
            if dialog.handler_is_connected(handler):
                dialog.disconnect(handler)
