"""asyncio as the guest of Tk's main loop (tkinter), on Tk's own thread.

Three ways in, from the simplest:

* ``run(main, root)`` runs ``root.mainloop()`` with ``main`` as the guest
  and returns ``main``'s result or raises its exception (contract below).
* ``start_guest_run(main, root, done_callback=...)`` for a program that runs
  ``root.mainloop()`` (or a ``root.update()`` loop) itself: it returns the main
  task at once.
* ``TkHost(root)``: the two host primitives, for ``asyncio_guest.start_guest_run``
  and for anything else that needs "run this on Tk's thread soon".

How Tk is woken (``TkHost``). A worker's Tk call is a synchronous round trip
through Tcl's notifier: it blocks until the Tk thread takes it, forever if that
thread is busy waiting for the worker, and it raises "main thread is not in main
loop" after 1 s when ``mainloop()`` is not running (a ``root.update()`` loop does
not count). The backend thread and ``call_soon_threadsafe`` callers must never
block like that, so no thread but Tk's ever calls Tk here. Callbacks go to a
deque (``CoalescingQueue``: at most one wake-up in flight) and a worker's wake-up
is one byte written to a non-blocking pipe whose read end Tk watches
(``createfilehandler``): a system call that never waits for Tk. On the Tk thread
the wake-up is an ``after 0`` timer instead (no pipe, no notifier hop).

Keeping the GUI smooth: Tcl runs idle handlers (geometry, redraws, the
program's ``after idle`` scripts) only when no other event is due, so a busy
guest, whose next tick is always due, would never let the window repaint. So
each drain ends with one idle pass of its own (``dooneevent`` with idle events
only: the handlers queued so far, no poll), run as a program's callback: after
the drain, so the next tick is already posted (an idle handler that opens a
dialog does not freeze asyncio), and a Ctrl+C lands in a stuck idle handler as
in any other callback of the program's (``run_host_callback``). A tick that leaves work
schedules the next one as an ``after 0`` timer: it runs beside the program's
own due ``after`` timers (an ``after 0`` chain of the program's included), and
costs one trip through Tcl's threaded notifier per tick (about 0.1 ms here).
Scheduled as ``after idle after 0`` (Tk's idle work, then a timer), as it once
was, it cost two, and a program that kept Tk from being idle (its own ``after
0`` chain) starved the guest, its timers and I/O waiting behind that wake-up.
(A bare ``after idle`` chain can starve every ``after`` timer on Tk 8.6.)

Errors: what a callback raises (``done_callback``'s exception, a Ctrl+C) must
come out of ``mainloop()``. Tkinter re-raises what a *file handler* raises from
``mainloop()``, while a Tcl command's exception would also make Tcl report a
background error (a dialog). So our ``after`` commands catch it, keep it, and
write a byte: the file handler raises it.

Windows: tkinter has no ``createfilehandler`` there. Tk's Windows notifier is a
Win32 message loop that dispatches every window message of the thread, so
``TkHost`` hands its callbacks to an ``asyncio_guest.win32.Win32Host`` (a
message-only window on the Tk thread, one coalesced ``PostMessageW``: never
blocks either). Not exercised by the Linux test suite.

Thread rule: every method runs on the thread that made the ``TkHost`` (the Tcl
interpreter's thread), except ``run_sync_soon_threadsafe`` and ``_post``, which
touch only the queue (its own lock), ``_wfd`` and ``_closed``.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import gc
import itertools
import os
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import outcome

from ._core.errors import toolkit_missing

try:
    import _tkinter
    import tkinter
except ImportError as _exc:
    raise toolkit_missing(
        "asyncio_guest.tk",
        "tkinter",
        "a Python built with Tk (python.org's and Windows' installers include it; "
        "Debian, Ubuntu: apt install python3-tk)",
        _exc,
    ) from _exc

from ._core.entry import run_beside, start_with_host
from ._core.handover import DEFAULT_TICK_BUDGET
from ._core.interrupts import run_host_callback, run_host_loop
from ._core.lifecycle import closes_main_if_it_never_ran
from ._core.select_limit import SELECT_FD_LIMIT
from ._core.wake_queue import CoalescingQueue
from .modal import run_modal

__all__ = ["TkHost", "run", "run_dialog", "start_guest_run", "wait_window"]

if TYPE_CHECKING:
    from ._core.main_args import MainArgs, Unpack

_T = TypeVar("_T")
_serial = itertools.count()
_IDLE_PASS = _tkinter.DONT_WAIT | _tkinter.IDLE_EVENTS
_TCL_UPDATE = tkinter.Misc.update.__code__  # whose Tcl ``update`` runs our drains (_drain)



class TkHost:
    """Runs callbacks on Tk's thread, through its event loop (see module doc).

    Make it on the Tk thread (the one that made ``root`` and runs its
    ``mainloop``). ``close()`` (Tk thread) removes what it registered with Tcl
    and closes its pipe; callbacks still queued are dropped.
    """

    watch_fd_limit = SELECT_FD_LIMIT
    """Tcl's notifier waits with ``select()``, which takes no fd at or above
    ``FD_SETSIZE``: given one, glibc aborts the process. A loop whose selector
    is beyond it waits in the backend thread (``FdWatcher``)."""

    def __init__(self, root: tkinter.Misc) -> None:
        # The Tcl interpreter, until close() lets go of it (see _finish_close).
        self._tk: Any = root.tk
        self.thread_id = threading.get_ident()
        self._closed = False
        self._error: BaseException | None = None  # raised by the next file handler call
        # Drains running (nested in a modal loop: more than one). close() from
        # inside one (a done_callback) only asks; the last drain to leave, or
        # the file handler that raises a pending error, finishes the close.
        self._depth = 0
        # The Tk-thread wake-up's after: 1 inside update (_drain). Tk thread
        # only: _post reads it on that thread's branch alone.
        self._busy_delay_ms = 0
        self._close_requested = False
        # call_later's Tcl command -> its after id and what it runs
        self._later: dict[str, tuple[str, Callable[[], None]]] = {}
        self._watched: set[int] = set()  # the fds of watch_readable's handlers
        prefix = f"asyncio_guest_tk{os.getpid()}_{next(_serial)}"
        self._cmd = prefix + "_drain"
        self._fds: list[int] = []
        self._win32: Any = None
        self._queue: CoalescingQueue
        self._write: Callable[[], object]
        if sys.platform == "win32":
            from .win32 import Win32Host

            self._win32 = Win32Host()
            self._rfd = self._wfd = -1
            return
        self._tk.createcommand(self._cmd, self._drain_from_tcl)
        try:
            self._fds.extend(os.pipe())
            self._rfd, self._wfd = self._fds
            if self._rfd >= SELECT_FD_LIMIT:
                raise RuntimeError(
                    f"asyncio_guest.tk: Tcl's notifier watches file descriptors with "
                    f"select(), which takes none at or above {SELECT_FD_LIMIT}, and "
                    f"every lower one is in use (the wake-up pipe got fd {self._rfd})"
                )
            os.set_blocking(self._rfd, False)
            os.set_blocking(self._wfd, False)
            self._tk.createfilehandler(self._rfd, tkinter.READABLE, self._on_readable)
        except BaseException:
            self._tk.deletecommand(self._cmd)
            _close_fds(self._fds)
            raise
        self._write = functools.partial(os.write, self._wfd, b"\0")
        self._queue = CoalescingQueue(self._post)  # busy wake-ups too (_post)

    # ----------------------------------------------------------- primitives

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Any thread: run ``fn()`` on the Tk thread soon (order kept).

        Never calls Tk from another thread and never waits for the Tk thread:
        at most a deque append, a lock and a one-byte non-blocking write.
        """
        if self._closed:
            raise RuntimeError("this TkHost is closed")
        if self._win32 is not None:
            self._win32.run_sync_soon_threadsafe(fn)
            return
        self._queue.submit(fn)

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """Tk thread only: the same; from inside one of our callbacks it costs no pipe byte.

        Inside a drain the wake-up for the next one (an ``after 0`` timer) is
        sent at once rather than when the drain ends: should the callback that
        runs now open a nested Tk loop (``wait_window`` from a task), that loop
        then runs ``fn`` (the engine's debug probe says so, naming ``run_modal``).
        """
        if self._closed:
            raise RuntimeError("this TkHost is closed")
        if self._win32 is not None:
            self._win32.run_sync_soon_not_threadsafe(fn)
            return
        self._queue.submit_local(fn)
        if self._depth:
            self._queue.wake_busy_now()

    def _post(self) -> None:
        """Any thread: wake the Tk thread for a drain (the queue's ``post``).

        On the Tk thread an ``after 0`` timer; elsewhere one pipe byte (the
        only thing another thread does here: never a Tk call). A drain that
        left work (the queue's busy wake-up, always on the Tk thread) posts
        the same timer: one trip through Tcl's threaded notifier per busy
        tick (it answers each poll from another thread: about 0.1 ms here),
        and the timer runs beside the program's own due ``after`` timers, an
        ``after 0`` chain of its own included (``after 1`` inside Tcl's
        ``update``: see ``_drain``). Tk's idle work gets its turn as each
        drain ends (module doc).
        """
        if threading.get_ident() == self.thread_id:
            self._tk.call("after", self._busy_delay_ms, self._cmd)
            return
        try:
            self._write()
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is pending anyway

    # ------------------------------------------------------------- drains

    def _on_readable(self, _fd: int, _mask: int) -> None:
        """Tk thread, a file handler: consume the pipe's bytes, then drain.

        What this raises comes out of ``mainloop()`` (tkinter re-raises a file
        handler's exception there, and Tcl reports nothing).
        """
        try:
            while len(os.read(self._rfd, 4096)) == 4096:
                pass
        except (BlockingIOError, InterruptedError):
            pass
        error = self._error
        if error is not None:
            self._error = None
            if self._close_requested and not self._depth:
                self._finish_close()
            raise error
        if self._closed:
            return
        self._depth += 1
        try:
            self._drain(sys._getframe(1).f_code)
        finally:
            self._left_drain()

    def _drain_from_tcl(self) -> None:
        """Tk thread, our ``after`` command: drain; an error goes out through the pipe."""
        if self._closed:
            return
        self._depth += 1
        try:
            self._drain(sys._getframe(1).f_code)
        except BaseException as exc:
            self._raise_from_file_handler(exc)  # (before a close the drain asked for)
        finally:
            self._left_drain()

    def _drain(self, tcl_caller: types.CodeType) -> None:
        """Tk thread: run the queue, then one pass of Tk's idle work (module doc).

        ``tcl_caller``: the Python code that entered Tcl, which called us. In
        Tcl's ``update`` (tkinter's ``Misc.update``: a program's own frame loop,
        or a handler that pumps the GUI as it works) a busy guest's next tick is
        an ``after 1``: ``update`` runs events until none is due, and an ``after
        0`` always is, so it never returned while the guest had work. So there
        the guest gets a tick per ``update()``, as a frame budget.
        """
        outer = self._busy_delay_ms
        self._busy_delay_ms = 1 if tcl_caller is _TCL_UPDATE else 0
        try:
            self._queue.drain()
            # No Python frame of ours in between (a partial of a builtin): a
            # Ctrl+C in a stuck idle handler sees the program's callback right
            # under run_host_callback.
            run_host_callback(functools.partial(self._tk.dooneevent, _IDLE_PASS))
        finally:
            self._busy_delay_ms = outer

    def _left_drain(self) -> None:
        self._depth -= 1
        if self._close_requested and not self._depth and self._error is None:
            self._finish_close()

    def _raise_from_file_handler(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        try:
            self._write()
        except BlockingIOError:
            pass

    # ------------------------------------------------ the fd-watcher methods

    def watch_readable(self, fd: int, callback: Callable[[], object]) -> Callable[[], None]:
        """Tk thread: call ``callback()`` whenever ``fd`` is readable; returns ``unwatch``.

        Tcl keeps one handler per descriptor: watching the same ``fd`` again
        replaces the callback. Unix only (tkinter has no file handlers on
        Windows). What ``callback`` raises comes out of ``mainloop()``.
        """
        if self._win32 is not None or not hasattr(self._tk, "createfilehandler"):
            raise NotImplementedError("Tk file handlers are not available on this platform")
        if self._closed:
            raise RuntimeError("this TkHost is closed")
        if fd >= SELECT_FD_LIMIT:
            raise ValueError(
                f"fd {fd}: Tcl's notifier watches no fd at or above {SELECT_FD_LIMIT} "
                "(select()); glibc would abort the process"
            )
        self._tk.createfilehandler(fd, tkinter.READABLE, lambda _fd, _mask: callback())
        self._watched.add(fd)

        def unwatch() -> None:
            if fd in self._watched:  # (close() removes the handlers left)
                self._watched.discard(fd)
                self._tk.deletefilehandler(fd)

        return unwatch

    def call_later(self, delay: float, callback: Callable[[], object]) -> Callable[[], None]:
        """Tk thread: call ``callback()`` once after ``delay`` seconds (a Tk ``after``
        timer, rounded up to whole milliseconds); returns ``cancel``."""
        if self._closed:
            raise RuntimeError("this TkHost is closed")
        name = f"{self._cmd}_later{next(_serial)}"

        def fire() -> None:
            self._forget(name)
            # Counted as a drain: a close() from inside (the run's last tick
            # ending in start_guest_run's done_callback) must keep the pipe
            # until what the callback raised has gone out through it.
            self._depth += 1
            try:
                callback()
            except BaseException as exc:
                self._raise_from_file_handler(exc)
            finally:
                self._left_drain()

        self._tk.createcommand(name, fire)
        try:
            ms = max(0, int(delay * 1000.0 + 0.999))
            self._later[name] = (str(self._tk.call("after", ms, name)), fire)
        except BaseException:
            self._tk.deletecommand(name)
            raise

        def cancel() -> None:
            timer = self._later.get(name)
            if timer is not None:
                self._tk.call("after", "cancel", timer[0])
                self._forget(name)

        return cancel

    def _forget(self, name: str) -> None:
        if self._later.pop(name, None) is not None:
            try:
                self._tk.deletecommand(name)
            except tkinter.TclError:
                pass  # deleted by the program's after_cancel (see revive)

    def revive(self) -> None:
        """Tk thread: give back what a program that cancelled every ``after`` took.

        A common close handler cancels each id of ``after info`` with tkinter's
        ``after_cancel`` (which also deletes the script's command) before it
        destroys the root: ours went with them. A drain that was due would never
        come (the queue's wake-up stays pending, so none is posted again: the
        run's shutdown hung), nor would asyncio's next timer. So: a pending
        wake-up with no ``after`` of ours left goes out through the pipe (our
        drain command is made again if it went too), and a timer whose
        ``after`` is gone fires now (asyncio plans the next one).
        Cheap (one scan of ``after info``); ``run`` calls it while it waits for the
        guest's shutdown with the root gone.
        """
        if self._closed or self._tk is None or self._win32 is not None:
            return
        tk = self._tk
        if not tk.call("info", "commands", self._cmd):  # deleted with its after
            tk.createcommand(self._cmd, self._drain_from_tcl)
        ours = self._our_afters()  # call_later's scripts name our command too
        if self._queue.pending and not any(script == self._cmd for _, script in ours):
            try:
                self._write()
            except BlockingIOError:
                pass  # the pipe is full: a drain is due anyway
        scheduled = {after_id for after_id, _ in ours}
        for after_id, fire in list(self._later.values()):
            if after_id not in scheduled:
                fire()

    # ------------------------------------------------------------- ending

    def close(self) -> None:
        """Tk thread: unregister from Tcl, close the pipe (idempotent).

        Called from inside one of our callbacks (``start_guest_run``'s
        ``done_callback``), the host is closed at once to new callbacks, and
        released when that callback's drain has returned (or, if the drain
        raised, once its error has come out of ``mainloop()``).
        """
        if self._closed:
            return
        self._closed = True
        if self._win32 is not None:
            self._win32.close()
            self._tk = None  # (see _finish_close)
            return
        self._queue.clear()
        if self._depth:
            self._close_requested = True
            return
        self._finish_close()

    def _finish_close(self) -> None:
        if self._tk is None:
            return  # finished already
        self._close_requested = False
        self._error = None
        errors: list[BaseException] = []
        for name, (after_id, _) in list(self._later.items()):
            _try(errors, self._tk.call, "after", "cancel", after_id)
            self._later.pop(name, None)
            _try(errors, _delete_command, self._tk, name)
        # Our own pending ``after 0``/``after idle`` scripts name the command:
        # cancel them, so no "invalid command name" error is reported later.
        _try(errors, self._cancel_our_afters)
        _try(errors, _delete_command, self._tk, self._cmd)
        while self._watched:
            _try(errors, self._tk.deletefilehandler, self._watched.pop())
        if self._fds:
            _try(errors, self._tk.deletefilehandler, self._rfd)
        _try(errors, _close_fds, self._fds)
        # Let go of the interpreter: this host is in reference cycles (with its
        # queue, and with a run's engine through the primitives it was given),
        # which only a garbage collection frees, and that may run on any
        # thread. Freed there, the interpreter aborts the process ("Tcl_AsyncDelete:
        # async handler deleted by the wrong thread"). Without this reference,
        # the program's last reference to the root frees it on Tk's thread.
        self._tk = None
        if errors:
            raise errors[0]

    def _our_afters(self) -> list[tuple[str, str]]:
        """Tk thread: ``(after id, script)`` of the pending ``after`` scripts
        that name our commands (the drain's, and call_later's ``..._later<n>``)."""
        ours = []
        for after_id in self._tk.splitlist(self._tk.call("after", "info")):
            try:
                script = str(self._tk.call("after", "info", after_id)[0])
            except tkinter.TclError:
                continue
            if self._cmd in script:
                ours.append((str(after_id), script))
        return ours

    def _cancel_our_afters(self) -> None:
        for after_id, _ in self._our_afters():
            self._tk.call("after", "cancel", after_id)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> TkHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _delete_command(tk: Any, name: str) -> None:
    """Delete one of our Tcl commands, unless the program did (tkinter's
    ``after_cancel`` deletes the command its ``after`` script names)."""
    if tk.call("info", "commands", name):
        tk.deletecommand(name)


def _try(errors: list[BaseException], fn: Callable[..., object], *args: Any) -> None:
    try:
        fn(*args)
    except BaseException as exc:
        errors.append(exc)


def _close_fds(fds: list[int]) -> None:
    while fds:
        os.close(fds.pop())


# ------------------------------------------------------------- entries


@closes_main_if_it_never_ran
def start_guest_run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    root: tkinter.Misc,
    *args: Unpack[MainArgs],
    done_callback: Callable[[outcome.Outcome[_T]], object],
    host: TkHost | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> asyncio.Task[_T]:
    """Start ``main`` as the guest of ``root``'s event loop, which the caller runs.

    Call on the Tk thread, then run ``root.mainloop()`` (or ``root.update()``
    in a loop: a busy guest then gets a tick per ``update()``, which returns).
    ``done_callback(outcome)`` runs on the Tk thread once the run has shut
    down; without a ``host`` one is made and closed after ``done_callback``
    returns. What ``done_callback`` raises comes out of ``mainloop()`` (tkinter
    raises a file handler's exception there only: an ``update()`` loop does not
    see it, so catch inside ``done_callback`` there). Keep the Tcl interpreter
    alive until then (destroying the root window is fine if something still
    calls ``root.tk.dooneevent()``). Returns the main task. As for ``run``,
    the root goes second, by position or by name, and ``main``'s own
    arguments follow it.
    """
    _check_root("start_guest_run", root, "root")
    _free_kept_roots()  # before the caller's loop runs (see run)
    the_host = host if host is not None else TkHost(root)
    return start_with_host(
        main,
        args,
        host=the_host,
        own_host=host is None,
        done_callback=done_callback,
        # Unix: Tk watches the guest's epoll fd itself (no backend thread).
        fd_watcher=None if sys.platform == "win32" else the_host,
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
    )


def _check_root(entry: str, root: object, placeholder: str, kind: type = tkinter.Misc) -> None:
    """Refuse a ``root`` that is no Tk widget (of ``kind``): as a rule, one of
    ``main``'s arguments written where the root goes (the second parameter)."""
    if not isinstance(root, kind):
        if isinstance(root, tkinter.Misc):
            fix = "a window (run watches its closing): its Tk root or a Toplevel"
        else:
            fix = f"main's own arguments follow the root: {entry}(main, {placeholder}, *args)"
        raise TypeError(
            f"asyncio_guest.tk.{entry}: root must be a tkinter.Tk, not "
            f"{type(root).__name__}; {fix}"
        )


def _window_exists(root: tkinter.Misc) -> bool:
    try:
        return bool(root.winfo_exists())
    except tkinter.TclError:
        return False


@closes_main_if_it_never_ran
def run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    root: tkinter.Tk | tkinter.Toplevel | None = None,
    *args: Unpack[MainArgs],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> _T:
    """Run ``main`` with ``root.mainloop()`` in charge; return its result or raise.

    ``run(main, root)`` and ``run(main, root=root)`` are the same call; what
    follows the root goes to ``main`` (``run(main, root, 1, 2)`` awaits
    ``main(1, 2)``; ``run(main, None, 1, 2)`` with a root made here).

    ``root=None``: a ``tkinter.Tk()`` is made first (it becomes tkinter's
    default root, so widgets made without a master go into it) and destroyed
    at the end. A root given is left as it is when ``main`` ends (build your
    window before, reuse it after), unless the user closed it. It may be a
    ``Toplevel`` too: closing that window then ends the run.

    * ``main`` returns: ``mainloop()`` returns and so does ``run``.
    * The user closes the window (``WM_DELETE_WINDOW``, when the program set no
      handler of its own), or the program calls ``root.quit()`` or destroys the
      root: ``main`` is cancelled; Tk keeps running until the guest has shut
      down (a destroyed root's interpreter is driven by ``dooneevent``); then
      the window is destroyed and ``run`` returns ``main``'s value if it handled
      the cancellation, else raises ``asyncio.CancelledError``.
    * An exception from ``main`` propagates after the shutdown.
    * Ctrl+C: the first cancels ``main`` and ``run`` raises ``KeyboardInterrupt``
      after the shutdown, as ``asyncio.run`` does (the signal wakes the backend
      thread, whose wake-up wakes Tk, whose next callback runs Python's
      handler); a second raises ``KeyboardInterrupt`` at once.

    The backend thread is joined before ``mainloop()`` returns.
    """
    # A root made by an earlier run that raised: free it here, on Tk's thread,
    # before this run's Tk loop could run its interpreter's idle handlers.
    _free_kept_roots()
    if root is not None:
        _check_root("run", root, "None", tkinter.Wm)
    made: tkinter.Tk | None = None
    the_root: tkinter.Tk | tkinter.Toplevel
    if root is None:
        made = the_root = tkinter.Tk()
    else:
        the_root = root
    try:
        result = _run(main, args, the_root, made is not None, loop_factory, debug, tick_budget)
    except BaseException:
        if made is not None:
            _keep_root(made)
        raise
    if made is not None:
        # The root made here is in reference cycles (each widget and its
        # master): collect it now, on Tk's thread. Left to a collection in
        # another thread (a worker's), its Tcl interpreter would be deleted
        # there, and Tcl aborts the process ("async handler deleted by the
        # wrong thread").
        made = None
        del the_root
        gc.collect()
    return result


# Tk's thread only: the roots ``run`` made whose run raised. The exception
# going out holds them: its traceback's frames (``mainloop``'s ``self``, the
# run's own) are in a reference cycle with the main task, which only a
# collection frees, and that may happen on any thread, where freeing a Tcl
# interpreter aborts the process. Kept here, each is freed on its own thread:
# by the next ``run`` there, or at exit (the main thread's). A thread's list
# goes when the thread ends, on that thread: its roots go with it then, unless
# an exception the program still holds keeps them.
_kept = threading.local()


def _keep_root(root: tkinter.Tk) -> None:
    kept: list[tkinter.Tk] | None = getattr(_kept, "roots", None)
    if kept is None:
        kept = _kept.roots = []
    kept.append(root)


def _free_kept_roots() -> None:
    """Tk's thread: let go of the roots kept by ``_keep_root`` and collect them here."""
    kept: list[tkinter.Tk] | None = getattr(_kept, "roots", None)
    if kept:
        kept.clear()
        gc.collect()


atexit.register(_free_kept_roots)  # the main thread's, before the interpreter goes


def _run(
    main: Coroutine[Any, Any, _T] | Callable[..., Awaitable[_T]],
    args: tuple[Any, ...],
    the_root: tkinter.Tk | tkinter.Toplevel,
    own_root: bool,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
    debug: bool | None,
    tick_budget: float,
) -> _T:
    host: TkHost | None = None
    state = {"done": False, "closed": False, "gone": False}
    protocol_set = False
    on_close_name = ""
    try:
        host = TkHost(the_root)
        task_ref: list[asyncio.Task[Any]] = []

        def cancel_main() -> None:
            # Once per request to end (a close, a quit()): main may decline
            # one ("unsaved changes: quit anyway?"), and the next cancels it again.
            if task_ref:
                task_ref[0].cancel()

        def on_close() -> None:
            state["closed"] = True
            cancel_main()

        # tkinter's own handler (``Tk.__init__`` sets ``self.destroy``) is
        # replaced for the run; a handler of the program's is left alone (if
        # it destroys the root, that ends the run as described above).
        previous = str(the_root.protocol("WM_DELETE_WINDOW"))
        if not previous or previous.endswith("destroy"):
            # Registered here, so that close_host can delete it again: a root
            # the program reuses for run after run gains no Tcl command per run.
            on_close_name = the_root.register(on_close)
            protocol_set = True
            the_root.protocol("WM_DELETE_WINDOW", on_close_name)

        def run_host(task: asyncio.Task[Any]) -> None:
            task_ref.append(task)
            try:
                while not state["done"]:
                    if host is not None:
                        host.revive()  # a close handler that cancelled every after
                    # The program's Tk callbacks run under it: a second Ctrl+C
                    # raises in them at once (interrupts.py).
                    if _window_exists(the_root):
                        run_host_loop(the_root.mainloop, tkinter)
                        if not state["done"]:
                            # root.quit(), or the root destroyed: main is told
                            # (of the destruction once: dooneevent returns below
                            # after each event).
                            state["gone"] = not _window_exists(the_root)
                            cancel_main()
                    else:
                        if not state["gone"]:  # destroyed before the run began
                            state["gone"] = True
                            cancel_main()
                        run_host_loop(functools.partial(the_root.tk.dooneevent, 0), tkinter)
            finally:
                task_ref.clear()

        def stop_host() -> None:
            state["done"] = True
            the_root.quit()

        def close_host() -> None:
            errors: list[BaseException] = []
            if host is not None:
                _try(errors, host.close)
            if protocol_set and _window_exists(the_root):
                # The handler as it was (tkinter's own command, still there).
                _try(errors, the_root.protocol, "WM_DELETE_WINDOW", previous)
                _try(errors, the_root.deletecommand, on_close_name)
            if (own_root or state["closed"]) and _window_exists(the_root):
                _try(errors, the_root.destroy)
            if errors:
                raise errors[0]

        the_host = host
        result: _T = run_beside(
            main,
            args,
            run_sync_soon_threadsafe=the_host.run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=the_host.run_sync_soon_not_threadsafe,
            run_host=run_host,
            stop_host=stop_host,
            close_host=close_host,
            entry_name="asyncio_guest.tk.run",
            fd_watcher=None if sys.platform == "win32" else the_host,
            loop_factory=loop_factory,
            debug=debug,
            tick_budget=tick_budget,
        )
        return result
    except BaseException:
        # Set-up failed before run_beside took over the clean-up (or it raised
        # after doing it: all of this is idempotent).
        if host is not None:
            try:
                host.close()
            except Exception:
                pass
        if own_root and _window_exists(the_root):
            the_root.destroy()
        raise


# ------------------------------------------------------------- helpers


async def wait_window(window: tkinter.Misc) -> None:
    """Await the destruction of ``window`` (a Toplevel, a dialog) without a nested loop.

    Unlike ``window.wait_window()`` (a nested event loop: called from a task it
    pauses asyncio until the window is gone), this awaits a future that a
    ``<Destroy>`` binding resolves, so asyncio keeps running. Returns at once if
    the window no longer exists.

    The binding is on a tag of its own, put first in the window's bindtags
    while the wait lasts: the program's own ``window.bind("<Destroy>", ...)``
    (which replaces the window's binding) or a handler returning "break"
    cannot take it away, and a wait that ends otherwise (cancelled, timed
    out) leaves neither a binding nor a Tcl command behind.
    """
    if not _window_exists(window):
        return
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()
    tag = f"asyncio_guest_wait_window{next(_serial)}"

    def on_destroy() -> None:
        if not gone.done():
            gone.set_result(None)

    # The command is the root's (``register`` records it there, so the root's
    # destroy() deletes it if this wait is still on) and the binding is plain
    # Tcl: tkinter's bind_class/unbind_class keep a record of the command on
    # 3.11+ (and delete it on 3.15) but not on 3.10, and deleting it behind
    # that record made the root's destroy() fail ("can't delete Tcl command").
    root = window.nametowidget(".")  # the Tk of window's interpreter
    command = root.register(on_destroy)
    window.tk.call("bind", tag, "<Destroy>", command)
    window.bindtags((tag, *window.bindtags()))
    try:
        await gone
    finally:
        try:
            if _window_exists(window):
                window.bindtags(tuple(t for t in window.bindtags() if t != tag))
            window.tk.call("bind", tag, "<Destroy>", "")
            root.deletecommand(command)  # the command and the root's record of it
        except tkinter.TclError:
            pass  # the interpreter's application was destroyed: nothing is left


async def run_dialog(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``await run_dialog(messagebox.askyesno, "Quit?", "Really?", parent=root)``.

    ``run_modal`` with keyword arguments: the dialog's nested Tk loop runs
    outside any asyncio tick, so asyncio keeps running while it is open, and
    its return value comes back here. Cancelling the awaiting task does not
    close the dialog (its result is then dropped).
    """
    call: Callable[[], _T] = functools.partial(fn, *args, **kwargs)
    result: _T = await run_modal(call)
    return result
