"""asyncio as the guest of a Qt event loop (PySide6, PyQt6; PySide2, PyQt5 if present).

Three ways in, from the simplest:

* ``run(main)`` runs the application's ``exec()`` with ``main`` inside it and
  returns ``main``'s result (or raises its exception), as ``asyncio.run``
  does. If no application object exists, one is made: a ``QApplication``
  (widgets) when QtWidgets imports, else a ``QGuiApplication`` or a
  ``QCoreApplication``; it is kept for the rest of the process (Qt allows one
  per process, and later runs reuse it). Make your own first to choose.
* ``start_guest_run(main, done_callback=...)`` for a program that calls
  ``app.exec()`` itself: it returns the main task at once.
* ``QtHost`` for glue of one's own: the host primitives and the two waits a
  zero-thread strategy needs (``watch_readable``, ``call_later``).

Which binding: the one the program imported (see ``_qt_binding``), or
``use_binding(name)``, or ``ASYNCIO_GUEST_QT=pyside6|pyqt6|pyside2|pyqt5``.
``import asyncio_guest.qt`` imports no binding; the first call that needs one
does.

How the host wakes up: callbacks go to a deque, and at most one custom event
is posted (``QCoreApplication.postEvent``: thread-safe, never blocks) to a
receiver ``QObject`` living on the GUI thread, whose ``event()`` drains the
deque (``_core/wake_queue.py``). A posted event, not ``QTimer.singleShot``
(from a thread Qt did not start, a single-shot timer never fires) nor a
queued signal (needs a slot declared per binding). Posted events are also
delivered inside nested loops (``QDialog.exec()``, ``QMessageBox``), so
asyncio keeps running under a modal dialog opened with ``run_modal``. On
Linux and macOS, where a watch of the loop's epoll/kqueue fd does the
waiting (no backend thread), a worker's ``call_soon_threadsafe`` skips the
deque: its write on the loop's worker wake fd fires a second watch
(``worker_wakes_by_fd``, ``_core/worker_wake.py``), which nested loops serve
as well. A watch is a ``QSocketNotifier``, or where Qt's loop is GLib's
(Linux: every binding's wheels) a GLib source of the host's own on that
loop (``_qt_glib_fds.py``), which calls into Python once per wake-up where a
notifier's signal converts two arguments on the way.

Keeping the GUI smooth: a tick runs at most the engine's tick budget (1 ms)
of asyncio callbacks. When it leaves work, the next tick is posted from
inside the drain; Qt delivers events posted while it is delivering posted
events in its *next* pass, after it has looked at timers, sockets and the
window system, so a busy guest takes turns with paint, input and QTimers
(``tests/test_qt_host.py`` measures a repeating QTimer's lateness with 200
tasks spinning).

Ending: ``app.quit()``, the last window closed (``quitOnLastWindowClosed``) or
anything else that makes ``exec()`` return before ``main`` is done cancels
``main``; ``run`` then runs ``app.exec()`` again until the guest has shut
down (windows still paint meanwhile), and returns or raises (not a
``QEventLoop``: after a second ``exit()`` a new one returns at once).

Ctrl+C: Qt's loop does not run Python signal handlers while it sleeps, but
the run's signal wakeup fd wakes the guest (its byte fires the notifier, or
wakes the backend thread, whose wake-up is a posted event): the handler runs
as soon as our code runs Python,
so the first Ctrl+C cancels ``main`` promptly and ``run`` raises
``KeyboardInterrupt`` (``host_uses_signal_set_wakeup_fd`` stays False: Qt
does not use that fd).

Exceptions that would escape into Qt (a ``done_callback`` that raises, a
second Ctrl+C) are never left to the binding (PyQt aborts the process on an
exception escaping a virtual method): inside ``run`` they end the run and
are raised from it; otherwise ``KeyboardInterrupt``/``SystemExit`` make the
application's ``exec()`` return (code 1) and wait in ``QtHost.errors``, and
anything else is logged.

Thread rule: everything here runs on the application's thread (the *host
thread*), except ``QtHost.run_sync_soon_threadsafe`` and ``_post_wake``,
which touch only ``_post_lock``, ``_closed``, the receiver (to post to it) and
the queue (itself thread-safe).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import outcome

from . import _qt_binding, _qt_glib_fds
from ._core.entry import run_beside, start_with_host
from ._core.errors import raise_first
from ._core.handover import DEFAULT_TICK_BUDGET
from ._core.lifecycle import closes_main_if_it_never_ran
from ._core.wake_queue import CoalescingQueue
from .modal import run_modal

__all__ = ["QtHost", "binding_name", "exec_dialog", "run", "start_guest_run", "use_binding"]

logger = logging.getLogger("asyncio_guest")

if TYPE_CHECKING:
    from ._core.main_args import MainArgs, Unpack

_T = TypeVar("_T")

# Per binding (one per process in practice): the receiver class and the event type.
_receiver_classes: dict[str, Any] = {}
_wake_types: dict[str, Any] = {}
# Applications ``run`` made: Qt allows one per process, so it lives on.
_created_apps: list[Any] = []


def use_binding(name: str) -> None:
    """Choose the Qt binding (``"pyside6"``, ``"pyqt6"``...) before first use.

    Importing it happens here. Once a binding is in use, naming another is a
    RuntimeError: two bindings cannot share a process.
    """
    _qt_binding.get(name)


def binding_name() -> str:
    """The binding in use (choosing it now if none is yet): ``"PySide6"``..."""
    return _qt_binding.get().name


def _binding_for(app: Any, binding: str | None) -> _qt_binding.Binding:
    if app is not None:
        return _qt_binding.get(_qt_binding.binding_of_app(app))
    return _qt_binding.get(binding)


def _receiver_class(b: _qt_binding.Binding) -> Any:
    """A ``QObject`` subclass whose ``event()`` hands our wake-up to its host."""
    cls = _receiver_classes.get(b.name)
    if cls is None:

        class _Receiver(b.QObject):  # type: ignore[misc, name-defined]
            def __init__(self, host: QtHost, wake_type: Any) -> None:
                super().__init__()
                self._host = host
                self._wake_type = wake_type
                self.setObjectName("asyncio_guest.QtHost")

            def event(self, ev: Any) -> bool:
                if ev.type() == self._wake_type:
                    self._host._on_wake()
                    return True
                return bool(super().event(ev))

        _receiver_classes[b.name] = cls = _Receiver
    return cls


def _wake_type(b: _qt_binding.Binding) -> Any:
    """Our custom event type: registered once per process (Qt has ~64k of them)."""
    wake = _wake_types.get(b.name)
    if wake is None:
        wake = b.QEvent.Type(b.QEvent.registerEventType())
        _wake_types[b.name] = wake
    return wake


class QtHost:
    """Runs callbacks on the application's thread, through its event loop.

    Make it on the application's thread, with the application made
    (``app=None``: ``QCoreApplication.instance()``). Thread rule:
    ``run_sync_soon_threadsafe`` from any thread; everything else on that
    thread. ``close()`` deletes the receiver; callbacks still queued are dropped.
    """

    # A worker's call_soon_threadsafe wakes an fd watch (of the loop's worker
    # wake fd, _core/worker_wake.py) rather than posting an event: a posted
    # event costs the worker a QEvent made in Python and Qt a Python event()
    # call, a watch neither (threadsafe median, PySide6, 3.11, same run: 18.8
    # -> 15.9 us through a notifier; a pipe read by a bare QSocketNotifier
    # slot takes 6.9 us, a bare postEvent 13.4 us, plain asyncio 8.0 us).
    worker_wakes_by_fd = True

    def __init__(self, app: Any = None, *, binding: str | None = None) -> None:
        b = _binding_for(app, binding)
        if app is None:
            app = b.QCoreApplication.instance()
            if app is None:
                raise RuntimeError(
                    "QtHost needs a Qt application object: make a QApplication first "
                    "(or use asyncio_guest.qt.run, which makes one)"
                )
        if app.thread() != b.QThread.currentThread():
            raise RuntimeError("make the QtHost on the Qt application's thread")
        self.binding = b
        self.app = app
        self.thread_id = threading.get_ident()
        self.errors: list[BaseException] = []  # see _report
        # Host thread: how many callbacks of ours are on the stack (drains,
        # notifier and timer emissions; a nested loop nests them), and what
        # waits for none to be (see _dispose and close).
        self._depth = 0
        self._doomed: list[Any] = []
        self._close_when_idle = False
        self._running = 0  # host thread: inside run()'s loops (errors end the run)
        # _post_lock orders _closed against posts from other threads: the
        # receiver is deleted only after _closed is set under the lock, so no
        # post is in progress (or starts later) on a deleted receiver.
        self._post_lock = threading.Lock()
        self._closed = False
        self._wake_event_type = _wake_type(b)
        self._receiver: Any = _receiver_class(b)(self, self._wake_event_type)
        self._queue = CoalescingQueue(self._post_wake, self._post_wake)
        # Host thread, called by the receiver's ``event()``: drain (a slot of ours).
        self._on_wake: Callable[[], None] = self._slot(self._queue.drain)
        self._children: set[Any] = set()  # our notifiers and timers, host thread
        # Where Qt's loop is GLib's (Linux), fd watches are GLib sources of our
        # own rather than QSocketNotifiers (_qt_glib_fds.py); host thread.
        self._glib_fds = _qt_glib_fds.for_qt(b, app)

    # ----------------------------------------------------------- primitives

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Any thread: run ``fn()`` on the host thread soon (order kept)."""
        if self._closed:
            raise RuntimeError("this QtHost is closed")
        self._queue.submit(fn)

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """Host thread only: the same.

        Posts at once even inside a drain (``submit``, not ``submit_local``):
        a busy guest's next tick is the same posted event either way (Qt
        already delivers it after the GUI's turn), and posted now it also
        reaches a nested loop that a callback opens before the drain ends (a
        ``dialog.exec()`` run straight from a task): the engine's debug probe
        then runs there and names ``run_modal``. Still one event per drain.
        """
        if self._closed:
            raise RuntimeError("this QtHost is closed")
        self._queue.submit(fn)

    def _post_wake(self) -> None:
        """Any thread: post one wake-up event (the queue keeps it to one pending).

        Qt takes ownership of the event. Events posted while Qt is delivering
        posted events wait for its next pass (after timers, sockets and window
        system events), which is what gives a busy guest's next tick its turn
        behind the GUI (module doc).
        """
        with self._post_lock:
            if self._closed:
                raise RuntimeError("this QtHost is closed")
            self.binding.QCoreApplication.postEvent(
                self._receiver, self.binding.QEvent(self._wake_event_type)
            )

    def _slot(self, fn: Callable[[], object]) -> Callable[..., None]:
        """``fn`` as a slot of ours: extra signal arguments dropped, exceptions
        reported, and counted in ``_depth`` while it runs (see ``_dispose``).

        A count, not a flag: a callback that opens a nested loop (a dialog's
        ``exec()`` straight from a task) lets the same notifier fire again
        inside it. One frame, as the guard alone was: the notifier's slot is
        on every zero-thread wake-up's path (bench ``threadsafe``).
        """

        def slot(*_: Any) -> None:
            self._depth += 1
            try:
                fn()
            except BaseException as exc:
                self._report(exc)
            finally:
                self._depth -= 1
                if not self._depth and (self._doomed or self._close_when_idle):
                    self._after_callbacks()

        return slot

    def _report(self, exc: BaseException) -> None:
        """An exception reached the host loop (module doc: "Exceptions")."""
        if self._running or isinstance(exc, (KeyboardInterrupt, SystemExit)):
            self.errors.append(exc)
            self.binding.QCoreApplication.exit(1)
        else:
            logger.error("asyncio_guest.qt: a host callback raised", exc_info=exc)

    def raise_errors(self) -> None:
        """Host thread: raise the first exception ``_report`` kept, if any (and forget them)."""
        raise_first(self.errors)

    # ------------------------------------------- waits for a zero-thread wait

    def watch_readable(self, fd: int, callback: Callable[[], object]) -> Callable[[], None]:
        """Host thread: call ``callback()`` whenever ``fd`` is readable; return ``unwatch``.

        A ``QSocketNotifier`` (read type), or where Qt's loop is GLib's a GLib
        source of our own on it (``_qt_glib_fds.py``: one call into Python
        per wake-up, not a signal's): level-triggered, so the callback must
        consume the readiness (or unwatch). ``unwatch()`` is idempotent.
        """
        self._check_open()
        glib_fds = self._glib_fds
        if glib_fds is not None:
            key = glib_fds.add(fd, self._slot(callback))
            return lambda: glib_fds.remove(key)
        notifier = self.binding.QSocketNotifier(fd, self.binding.SocketRead, self._receiver)
        notifier.activated.connect(self._slot(callback))
        notifier.setEnabled(True)
        self._children.add(notifier)
        return lambda: self._dispose(notifier)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Callable[[], None]:
        """Host thread: call ``callback()`` once after ``delay`` seconds; return ``cancel``.

        A single-shot precise ``QTimer`` made here, on the host thread (from
        another thread a QTimer never fires). Milliseconds, rounded up, so it
        never fires early. ``cancel()`` is idempotent.
        """
        self._check_open()
        timer = self.binding.QTimer(self._receiver)
        timer.setSingleShot(True)
        timer.setTimerType(self.binding.PreciseTimer)
        def fire() -> None:
            self._dispose(timer)
            callback()

        timer.timeout.connect(self._slot(fire))
        self._children.add(timer)
        timer.start(max(0, math.ceil(delay * 1000)))
        return lambda: self._dispose(timer)

    def _after_callbacks(self) -> None:
        """Host thread: no callback of ours is on the stack; finish what waited for that."""
        doomed, self._doomed = self._doomed, []
        for child in doomed:
            self._delete_later(child)
        if self._close_when_idle:
            self.close()

    def _dispose(self, child: Any) -> None:
        """Host thread: stop a notifier or timer of ours and let Qt delete it.

        Disposed while a callback of ours is on the stack (a watch removed
        by a callback it ran, maybe in a nested loop that callback opened; a
        timer as it fires), a child is only stopped, and its ``deleteLater``
        waits until none is (``_after_callbacks``). Asked for inside a nested
        loop, the delete ran when that loop processed it, under the outer
        emission of the same notifier (PyQt6: a segmentation fault once the
        emission unwound).
        """
        if child not in self._children:
            return
        self._children.discard(child)
        if self.binding.is_valid(child):
            if hasattr(child, "stop"):
                child.stop()
            else:
                child.setEnabled(False)
            if self._depth:
                self._doomed.append(child)
            else:
                self._delete_later(child)

    def _delete_later(self, child: Any) -> None:
        if self.binding.is_valid(child):
            child.deleteLater()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this QtHost is closed")
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("this QtHost method must be called on the Qt application's thread")

    # ------------------------------------------------------------- ending

    def close(self) -> None:
        """Host thread: delete the receiver, timers and notifiers (idempotent).

        From inside one of our own callbacks (a drain, a notifier's or a
        timer's), the close happens when the outermost one returns.
        """
        if self._closed:
            return
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("QtHost.close() must run on the Qt application's thread")
        if self._depth:
            # Deleting the receiver deletes its children at once: never under
            # a callback of ours (see _dispose). The last one to return closes.
            self._close_when_idle = True
            return
        with self._post_lock:
            self._closed = True
        self._queue.clear()
        for child in list(self._children):
            self._dispose(child)
        if self._glib_fds is not None:
            self._glib_fds.close()
        receiver, self._receiver = self._receiver, None
        if self.binding.is_valid(receiver):
            # Deleting a QObject removes its posted events: no wake-up can
            # reach a deleted receiver.
            self.binding.delete(receiver)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> QtHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@closes_main_if_it_never_ran
def start_guest_run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    done_callback: Callable[[outcome.Outcome[_T]], object],
    app: Any = None,
    host: QtHost | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> asyncio.Task[_T]:
    """Start ``main`` as the guest of the Qt event loop (which the caller runs: ``app.exec()``).

    Call on the application's thread, with the application made.
    ``done_callback(outcome)`` runs there once the run has shut down (it may
    call ``app.quit()``). Without a ``host``, a ``QtHost`` is made here and
    closed after ``done_callback`` returns. Returns the main task; cancel it
    to end the run.

    The guest runs only while Qt's loop runs, and its shutdown needs it too.
    ``aboutToQuit`` is emitted as ``exec()`` returns: cancelling ``main`` there
    leaves nothing to run the shutdown (``main``'s ``finally`` never runs, the
    run is reported abandoned). Run the loop again until ``done_callback``
    has been called (it quits it), cancelling ``main`` each time Qt's loop
    returns early::

        done = []
        task = start_guest_run(main, done_callback=lambda o: (done.append(o), app.quit()))
        app.exec()
        while not done:
            task.cancel()
            app.exec()

    ``run`` does this (and more) for you.
    """
    the_host = host if host is not None else QtHost(app)
    if the_host.closed:
        raise RuntimeError("this QtHost is closed")
    return start_with_host(
        main,
        args,
        host=the_host,
        own_host=host is None,
        done_callback=done_callback,
        host_uses_signal_set_wakeup_fd=False,
        # A watch of the guest's epoll/kqueue fd (watch_readable): no backend thread.
        fd_watcher=the_host,
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
    )


@closes_main_if_it_never_ran
def run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    app: Any = None,
    binding: str | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> _T:
    """Run ``main`` inside the Qt application's ``exec()``; return its result.

    * The application: ``app``, else the existing one, else one made here
      (module doc). ``binding`` picks the binding when none is in use yet.
    * When ``main`` ends, ``exec()`` is made to return (``QCoreApplication.exit(0)``,
      which also emits ``aboutToQuit``), and ``run`` returns its result.
    * Quitting first (``app.quit()``, the last window closed) cancels ``main``;
      ``exec()`` runs again until the guest has shut down (each return emits
      ``aboutToQuit``, as Qt does); a further quit cancels ``main`` again (it
      may decline each: "unsaved changes: quit anyway?"); then ``run`` returns
      ``main``'s result if it still produced one, else raises
      ``asyncio.CancelledError``.
    * Ctrl+C: the first cancels ``main`` and ``run`` raises
      ``KeyboardInterrupt`` after the shutdown; a second raises at once.
    * An exception from ``main`` propagates from ``run`` after the shutdown.
    """
    b = _binding_for(app, binding)
    if app is None:
        app = b.QCoreApplication.instance()
        if app is None:
            app = b.new_app()
            _created_apps.append(app)
    host = QtHost(app)
    finished = False

    def run_host(task: asyncio.Task[_T]) -> None:
        host._running += 1
        try:
            if not finished:
                b.exec(app)
                host.raise_errors()
            while not finished:
                # The application was told to quit before main was done: each
                # request cancels main (which may decline, as with "unsaved
                # changes: quit anyway?"), and Qt runs on for the rest of the
                # guest's run. In app.exec() again, not a QEventLoop: Qt
                # delivers quit() only inside app.exec(), and after a second
                # exit() every new QEventLoop returns at once (its "quit now"
                # flag is reset only by app.exec()): a busy loop that hung.
                task.cancel()
                b.exec(app)
                host.raise_errors()
        finally:
            host._running -= 1

    def stop_host() -> None:
        nonlocal finished
        finished = True
        # Makes every loop of this thread return: exec(), our QEventLoop, and
        # a modal dialog still open (the run is over).
        b.QCoreApplication.exit(0)

    return run_beside(
        main,
        args,
        run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
        run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
        run_host=run_host,
        stop_host=stop_host,
        close_host=host.close,
        entry_name="asyncio_guest.qt.run",
        fd_watcher=host,
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
    )


async def exec_dialog(dialog: Any) -> int:
    """``dialog.exec()`` with asyncio running meanwhile; its result code.

    Built on ``run_modal``: the dialog's nested loop runs outside any tick,
    so the guest keeps running while it is open. If the awaiting task is
    cancelled, the dialog is rejected (closed), so no dialog is left open
    with nobody awaiting it.
    """
    b = _qt_binding.get()
    try:
        return int(await run_modal(b.exec, dialog))
    except asyncio.CancelledError:
        if b.is_valid(dialog) and dialog.isVisible():
            dialog.reject()
        raise
