"""``start_guest_run``: ``asyncio.run`` started beside a host loop instead of blocking it.

Lifecycle of one run (all on the host thread):

1. set-up, before ``start_guest_run`` returns: a fresh guest loop becomes the
   thread's running loop; the run's async-generator hooks, which give the loop
   the generators first iterated in its ticks (``asyncgen_hooks.py``);
   Ctrl+C handling and the signal wakeup fd (main thread only);
   the main task; the backend thread; the first tick posted.
2. ticks, until the main task is done (or a callback lets ``KeyboardInterrupt``/
   ``SystemExit`` out, or ``loop.stop()`` is called).
3. shutdown, still hosted and non-blocking, as ``asyncio.run`` does it:
   leftover tasks cancelled and awaited, async generators finalized, the
   default executor shut down.
4. finalize: backend thread joined, everything from step 1 restored, loop
   closed, then ``done_callback(outcome)``.

Errors of our own machinery skip step 3's waiting: the loop is driven to the
end of its shutdown synchronously on the host thread, and ``done_callback``
gets an ``InternalError``.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import logging
import os
import signal
import sys
import threading
import types
import warnings
from asyncio import events
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast

import outcome

from . import PACKAGE_DIR
from .asyncgen_hooks import RunAsyncgenHooks
from .errors import InternalError, cleanup_twice
from .fd_watch import FdWatcher
from .guest_loop import GuestLoopMixin, as_guest_loop, default_loop_factory
from .handover import DEFAULT_TICK_BUDGET, Engine
from .interrupts import call_user_with, interrupt_lands_in_user_code

if TYPE_CHECKING:
    from .main_args import MainArgs, Unpack

_T = TypeVar("_T")
logger = logging.getLogger("asyncio_guest")
_THREAD_JOIN_TIMEOUT = 300.0  # what asyncio.run gives the default executor (3.12+)


def close_refused(main: object) -> None:
    """A run refused before it took ``main``: close a coroutine object given, so
    it is not reported as never awaited (the refusal is the error to see)."""
    if asyncio.iscoroutine(main):
        main.close()


_Entry = TypeVar("_Entry", bound=Callable[..., Any])


def closes_main_if_it_never_ran(entry: _Entry) -> _Entry:
    """For a host module's ``run``/``start_guest_run(main, ...)``: if it raises
    before ``main``'s coroutine took its first step (no display for Tk, no Qt
    binding, pygame not initialised...), close that coroutine, so the error is
    what the user sees, not a "coroutine ... was never awaited" after it."""

    @functools.wraps(entry)
    def entry_closing_main(main: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return entry(main, *args, **kwargs)
        except BaseException:
            if (
                inspect.iscoroutine(main)
                and inspect.getcoroutinestate(main) == inspect.CORO_CREATED
            ):
                main.close()
            raise

    return cast(_Entry, entry_closing_main)


# Shutdowns a Ctrl+C cut short, kept until the interpreter exits (see below).
_cut_short: list[asyncio.Task[None]] = []


def _leave_shutdown_pending(shutdown: asyncio.Task[None]) -> None:
    """Host thread: the run's own shutdown task is abandoned where it stands.

    Not closed, and never collected while the program runs: closing its
    coroutine runs the ``finally`` blocks of what it awaits, and on 3.10-3.11
    ``shutdown_default_executor``'s joins the executor's thread, which is just
    what the Ctrl+C was not to wait for; collected, the same join would run at
    whatever allocation set off the collection, on any thread (seen: inside
    ``Thread.start``, deadlocked on threading's own lock). Kept, it is closed at
    exit (``_close_cut_short``). One that has not begun is closed now (no "never
    awaited" warning, nothing to join).
    """
    shutdown._log_destroy_pending = False  # type: ignore[attr-defined]  # ours, on purpose
    coro: Any = shutdown.get_coro()  # (typeshed's type for it varies by version)
    if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        coro.close()
    else:
        if not _cut_short:
            atexit.register(_close_cut_short)  # once per batch (unregistered when it ran)
        _cut_short.append(shutdown)


def _close_cut_short() -> None:
    """At exit: close the shutdowns kept by ``_leave_shutdown_pending``.

    Interpreter exit joins the executor's threads first, then calls this, so a
    join in a ``finally`` returns at once, and the interpreter still works for
    what the ``finally`` blocks do (a debug-mode ``repr`` reads source lines).
    Left to the interpreter's last collection, that code ran with the import
    system torn down: "Exception ignored ... sys.meta_path is None" (3.13, -X dev).
    """
    atexit.unregister(_close_cut_short)
    while _cut_short:
        coro: Any = _cut_short.pop().get_coro()
        try:
            coro.close()
        except Exception:  # an abandoned clean-up's own failure, at exit: nothing to tell
            logger.debug("asyncio-guest: closing a cut-short shutdown failed", exc_info=True)


#: ``asyncio.run`` takes any awaitable from 3.14 on (``Runner.run`` wraps it in
#: a coroutine); before, only a coroutine.
_RUN_TAKES_AWAITABLES = sys.version_info >= (3, 14)


async def _awaiting(awaitable: Awaitable[_T]) -> _T:
    """An awaitable ``main`` as a coroutine (3.14+), as ``Runner.run`` wraps it."""
    return await awaitable


def _make_coroutine(main: Any, args: tuple[Any, ...]) -> Coroutine[Any, Any, Any]:
    """``main`` (and its ``args``) as the coroutine of the main task.

    A coroutine is what ``asyncio.iscoroutine`` says is one (native, or a
    ``collections.abc.Coroutine`` such as Cython's), as ``asyncio.run`` and
    ``Task`` take it; from 3.14 on any awaitable, as ``asyncio.run`` takes it.
    """
    if asyncio.iscoroutine(main):
        if args:
            main.close()  # refused (see close_refused)
            raise TypeError(
                "a coroutine object was given with extra arguments: give the async "
                "function and its arguments (main, 1, 2), or the coroutine alone (main(1, 2))"
            )
        return main
    if _RUN_TAKES_AWAITABLES and inspect.isawaitable(main) and not args:
        return _awaiting(main)
    if callable(main):
        coro = main(*args)
        if asyncio.iscoroutine(coro):
            return coro
        if inspect.isawaitable(coro):
            if _RUN_TAKES_AWAITABLES:
                return _awaiting(coro)
            raise TypeError(f"{main!r} returned {coro!r}, which is awaitable but not a coroutine")
        raise TypeError(f"{main!r} must be an async function (it returned {coro!r})")
    raise TypeError(f"a coroutine or an async function was expected, got {main!r}")


def _called_already(result: outcome.Outcome[Any]) -> None:
    """What a run's ``done_callback`` becomes once called (``RunLifecycle._deliver``)."""


def _stacklevel_of_caller() -> int:
    """``warnings.warn``'s stacklevel, from the function that calls it, of the
    first frame outside this package: the program's call that started the run."""
    package = PACKAGE_DIR + os.sep
    level = 1  # warnings.warn's caller, the frame this is called from
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame = frame.f_back
        level += 1
    return level


class RunLifecycle:
    """One guest run: the Engine's owner (host thread unless noted)."""

    def __init__(
        self,
        loop: GuestLoopMixin,
        done_callback: Callable[[outcome.Outcome[Any]], object],
        host_uses_signal_set_wakeup_fd: bool,
    ) -> None:
        self.loop = loop
        self.aloop: Any = loop  # the same loop, for asyncio's private attributes
        self.done_callback = done_callback
        self.host_uses_wakeup_fd = host_uses_signal_set_wakeup_fd
        # Whether a wakeup fd set before the run may be the host's: only where
        # the caller could have said so (host_uses_signal_set_wakeup_fd), and
        # is then warned. A one-call entry runs a host loop of ours, and Tk,
        # Qt, wx and pygame read no wakeup fd: the fd is the program's, which
        # the run borrows and puts back, as asyncio's add_signal_handler
        # takes it without a word.
        self.warn_if_wakeup_fd_taken = True
        self.engine: Engine | None = None
        self.main_task: asyncio.Task[Any] | None = None
        self.outcome: outcome.Outcome[Any] | None = None
        self.shutdown_task: asyncio.Task[None] | None = None
        self.host_ident = threading.get_ident()
        self.interrupts = 0
        self._sigint_installed = False
        self._unprotected = False  # Ctrl+C raises at once (emergency shutdown)
        self._delivered = False  # done_callback called (or the run abandoned)
        self.keep_sigint = False  # release_sigint is left to the caller (see there)
        # A one-call entry's own host loop, reached from any thread while it
        # runs the run (on_abandoned); None under a host the program runs.
        # The entry sets it on the host thread before its loop runs and clears
        # it there after; on_abandoned reads it on any thread, unlocked: a read
        # that races the clear posts into a loop that has stopped, where the
        # callback never runs, and off the host thread on_abandoned would
        # undo nothing anyway.
        self.end_abandoned_through: Callable[[Callable[[], object]], object] | None = None
        self._restore: list[Callable[[], None]] = []  # undo steps, run in reverse
        # Put back after the loop is closed: a proactor loop's close() resets it.
        self._wakeup_fd_to_restore: int | None = None

    # ------------------------------------------------------------ set-up

    def setup(self, engine: Engine, *, set_event_loop: bool = False) -> None:
        """Make the loop the thread's running loop, attached to ``engine``.

        ``set_event_loop``: also the policy's loop for the thread during the
        run, as ``asyncio.run`` makes the loop it creates (no ``loop_factory``):
        older code asks ``get_event_loop_policy().get_event_loop()``.

        Each undo step is registered *before* its action (every undo is
        harmless when its action did not happen), so a set-up that fails
        anywhere is undone completely by ``_teardown``.
        """
        loop = self.aloop
        self.engine = engine
        self._restore.append(lambda: loop._set_coroutine_origin_tracking(False))
        loop._set_coroutine_origin_tracking(loop._debug)
        self._restore.append(self._clear_thread_id)
        loop._thread_id = self.host_ident
        self._restore.append(lambda: events._set_running_loop(None))
        events._set_running_loop(loop)
        self._restore.append(self.loop._guest_detach)
        self.loop._guest_attach(engine)
        # Guest generators go to the loop's hooks, host generators keep the host's.
        hooks = RunAsyncgenHooks(loop, self.loop._guest_runs_loop_code)
        self._restore.append(hooks.restore)
        hooks.install()
        if threading.current_thread() is threading.main_thread():
            self._install_signal_handling()
        # After the signal handling: a child watcher of 3.10-3.13's policy
        # (SafeChildWatcher...) attaches here and adds its SIGCHLD handler,
        # which must find the run's wakeup fd in place (it took the self-pipe
        # for its own, which the run then saved as the program's and put back
        # once closed: EBADF, and under GLib every child exit lost).
        if set_event_loop:
            self._restore.append(lambda: events.set_event_loop(None))
            events.set_event_loop(loop)

    def create_main_task(self, coro: Coroutine[Any, Any, Any]) -> None:
        """After the first tick is posted (a host primitive that fails on its first
        call leaves no task behind to be reported as destroyed while pending).

        Made while the loop does not count as running, as ``asyncio.run`` makes
        ``main``'s task before its loop runs: an eager task factory then queues
        ``main``'s first step for the first tick instead of running it inside
        this call, where a ``sys.exit()`` before ``main``'s first ``await``
        would escape the set-up, past the shutdown that cancels the tasks
        ``main`` started (and ``main``'s exception was never retrieved).
        """
        loop = self.aloop
        loop._thread_id = None  # is_running() False: eager factories do not start it
        try:
            self.main_task = loop.create_task(coro)
        finally:
            loop._thread_id = self.host_ident
        self.main_task.add_done_callback(self._on_main_done)

    def _clear_thread_id(self) -> None:
        self.aloop._thread_id = None

    def _install_signal_handling(self) -> None:
        """Ctrl+C ends the run with KeyboardInterrupt, as ``asyncio.run`` does.

        Only when the host left SIGINT at Python's default. Then asyncio needs
        the signal wakeup fd (so Ctrl+C wakes the backend even while the host
        sleeps in C code), unless the host says it owns that fd.
        """
        loop = self.aloop
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._sigint_installed = True  # put back by release_sigint, last
            signal.signal(signal.SIGINT, self._on_sigint)
            take_fd = not self.host_uses_wakeup_fd
        else:
            take_fd = False
        self.loop._guest.host_owns_wakeup = self.host_uses_wakeup_fd
        if take_fd:
            fd = loop._csock.fileno()
            # Learnt (and recorded for the restore) before it is replaced.
            old_fd = signal.set_wakeup_fd(-1)
            self._wakeup_fd_to_restore = old_fd
            signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
            self.loop._guest.keep_wakeup_fd = fd
            if old_fd != -1 and self.warn_if_wakeup_fd_taken:
                warnings.warn(
                    f"asyncio-guest replaced the signal wakeup fd ({old_fd}) with its "
                    "own for this run and puts it back at the end; if the host reads "
                    "that fd (its own signal handling), pass "
                    "host_uses_signal_set_wakeup_fd=True and it is left alone",
                    RuntimeWarning,
                    stacklevel=_stacklevel_of_caller(),
                )

    def _restore_sigint(self) -> None:
        """Idempotent: the flag is cleared only once the handler is back."""
        if self._sigint_installed:
            if signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            self._sigint_installed = False

    def _on_sigint(self, signum: int, frame: types.FrameType | None) -> None:
        """Python-level SIGINT handler (main = host thread, any bytecode boundary).

        First Ctrl+C: cancel the main task, through the lock-free wake path.
        Again, or once main is done: ``KeyboardInterrupt``, as ``asyncio.run``
        does: raised at once in user code; deferred when it hits our own
        machinery (see ``interrupts.py``) and delivered by the engine at its
        next safe point, or by ``_deliver`` if the run is ending.
        """
        self.interrupts += 1
        task = self.main_task
        engine = self.engine
        if self.interrupts == 1 and task is not None and not task.done():
            self.aloop._call_soon(self._cancel_main_for_sigint, (), None)
            if engine is not None:
                engine.host_wake()
            return
        if engine is None or self._unprotected or interrupt_lands_in_user_code(frame):
            raise KeyboardInterrupt()
        engine.interrupt_pending = True
        engine.host_wake()

    def _cancel_main_for_sigint(self) -> None:
        try:
            if self.main_task is not None:
                self.main_task.cancel()
        except BaseException as exc:
            self._failed_in_callback(exc)

    # ------------------------------------------------------------ ending

    # The three methods below run as loop callbacks (asyncio catches and logs
    # what a callback raises): a failure in them is handed to the engine,
    # which ends the run with it at the end of the tick.

    def _on_main_done(self, task: asyncio.Task[Any]) -> None:
        try:
            if self.interrupts and task.cancelled():
                uncancel = getattr(task, "uncancel", None)
                if uncancel is None or uncancel() == 0:
                    self._begin_shutdown(outcome.Error(KeyboardInterrupt()))
                    return
            self._begin_shutdown(outcome.capture(task.result))
        except BaseException as exc:
            self._failed_in_callback(exc)

    def _failed_in_callback(self, exc: BaseException) -> None:
        engine = self.engine
        if engine is None:
            raise exc
        engine.fail_soon(exc)

    def _begin_shutdown(
        self, result: outcome.Outcome[Any], *, cancel_now: bool = False
    ) -> None:
        """Record the outcome (the first one stands) and start the shutdown once.

        ``cancel_now``: an exception escaped a callback (``on_callback_raised``).
        ``asyncio.run`` then cancels every task at once, before any callback
        still queued runs: a task whose first step or wake-up is queued starts
        or resumes with ``CancelledError``, never with one more normal step.
        So the tasks are cancelled here, not in the shutdown task's first step,
        which runs after those callbacks.
        """
        if self.outcome is None:
            self.outcome = result
        if self.shutdown_task is None:
            cancelled = self._cancel_tasks(()) if cancel_now else []
            self.shutdown_task = self.aloop.create_task(self._shutdown(cancelled))
            self.shutdown_task.add_done_callback(self._on_shutdown_done)

    def _cancel_tasks(
        self, cancelled_already: Collection[asyncio.Task[Any]]
    ) -> list[asyncio.Task[Any]]:
        """Cancel the loop's unfinished tasks, but the current one and those in
        ``cancelled_already``; return the ones cancelled. Each task is cancelled
        once, as ``asyncio.run`` does (a second ``cancel()`` counts again for
        ``uncancel()``)."""
        loop = self.aloop
        me = asyncio.current_task(loop)
        tasks = [
            t for t in asyncio.all_tasks(loop) if t is not me and t not in cancelled_already
        ]
        for task in tasks:
            task.cancel()
        return tasks

    async def _shutdown(self, cancelled: list[asyncio.Task[Any]] | None = None) -> None:
        """``asyncio.run``'s clean-up: cancel and await the tasks (``cancelled``:
        those ``_begin_shutdown`` cancelled already), then shut down async
        generators and the default executor."""
        loop = self.aloop
        cancelled = cancelled or []
        to_cancel = cancelled + self._cancel_tasks(set(cancelled))
        if to_cancel:
            await asyncio.gather(*to_cancel, return_exceptions=True)
        for task in to_cancel:
            if task.cancelled():
                continue
            if task.exception() is not None:
                loop.call_exception_handler({
                    "message": "unhandled exception during asyncio-guest run shutdown",
                    "exception": task.exception(),
                    "task": task,
                })
        await loop.shutdown_asyncgens()
        if sys.version_info >= (3, 12):
            await loop.shutdown_default_executor(_THREAD_JOIN_TIMEOUT)
        else:
            await loop.shutdown_default_executor()

    def _on_shutdown_done(self, task: asyncio.Task[None]) -> None:
        try:
            if not task.cancelled() and task.exception() is not None:
                self.outcome = outcome.Error(task.exception())  # type: ignore[arg-type]
            assert self.engine is not None
            self.engine.request_finish()
        except BaseException as exc:
            self._failed_in_callback(exc)

    # ------------------------------------------------ Engine owner protocol

    def on_loop_stopped(self) -> None:
        """``loop.stop()`` inside a guest run ends it, as in ``asyncio.run``."""
        self.aloop._stopping = False
        task = self.main_task
        if task is not None and task.done():
            return  # the main task's own done callback handles it
        self._begin_shutdown(
            outcome.Error(RuntimeError("Event loop stopped before Future completed."))
        )

    def on_callback_raised(self, exc: BaseException) -> None:
        """A callback let ``exc`` out (a ``KeyboardInterrupt`` or ``SystemExit``),
        or a Ctrl+C was deferred to here: the run ends with it.

        Before the shutdown, the shutdown begins with it as the outcome. Once
        the shutdown has begun, ``exc`` cuts it short, as a second Ctrl+C cuts
        short ``asyncio.run``'s clean-up: the outcome becomes ``exc`` (chained
        to an earlier error, as one raised while handling it), what the
        shutdown still waits for is left as it stands (a task's slow
        ``finally``, a ``to_thread`` call the executor's join waits for), and
        the run finishes now, closing the loop. Otherwise a Ctrl+C would be
        dropped until the shutdown ended, up to the executor's 300 s join.
        """
        shutdown = self.shutdown_task
        if shutdown is None:
            self._begin_shutdown(outcome.Error(exc), cancel_now=True)
            return
        self._cut_shutdown_short(shutdown, exc)
        assert self.engine is not None
        self.engine.request_finish()

    def _cut_shutdown_short(self, shutdown: asyncio.Task[None], exc: BaseException) -> None:
        """``exc`` is the outcome (chained to an earlier error, as one raised
        while handling it); the shutdown is left where it stands."""
        earlier = self.outcome
        if isinstance(earlier, outcome.Error) and earlier.error is not exc:
            if exc.__context__ is None:
                exc.__context__ = earlier.error
        self.outcome = outcome.Error(exc)
        if not shutdown.done():  # (done: the run is finishing anyway)
            _leave_shutdown_pending(shutdown)

    def finalize(self) -> None:
        """The engine finished the run (host thread, inside a tick)."""
        result = self.outcome
        if result is None:
            result = outcome.Error(InternalError("guest run finished without an outcome"))
        self._deliver(result)

    def on_fatal(self, exc: BaseException) -> None:
        """The engine is stopped. Shut the loop down synchronously, then report."""
        try:
            self._emergency_shutdown()
        except BaseException as cleanup_exc:
            exc.__context__ = cleanup_exc
        self._deliver(outcome.Error(exc))

    def end_now(self, exc: BaseException) -> None:
        """Host thread, outside any tick: the host loop raised ``exc`` and is gone.

        For host modules' one-call entries (``asyncio_guest.run``,
        ``win32.run``): the guest is shut down synchronously here, as
        ``asyncio.run`` does after an interrupt, and the outcome (``exc``) is
        delivered. Nothing of the engine needs to work for this, so it also
        ends a run whose machinery failed where no tick could report it.
        """
        if self._delivered:
            return
        engine = self.engine
        if engine is not None:
            try:
                engine.stop()
            except BaseException as stop_exc:
                exc.__context__ = stop_exc
        shutdown = self.shutdown_task
        if isinstance(exc, KeyboardInterrupt) and shutdown is not None:
            # A Ctrl+C raised in the program's own host loop (pygame's frame
            # loop) while the shutdown waits: it cuts the shutdown short, as a
            # deferred one does (on_callback_raised); not finished here.
            self._cut_shutdown_short(shutdown, exc)
        self.on_fatal(exc)  # delivers exc itself: whatever outcome was recorded yields to it

    def on_abandoned(self) -> None:
        """The run's token died unfinished (a finalizer, maybe on another thread).

        Under a host the program runs, the host dropped the run: nobody can be
        told, and only the host thread's own state is undone. A one-call
        entry's host loop is ours, and it runs until ``done_callback`` stops
        it: left alone, the entry would wait for ever. There the run is shut
        down on the host thread, as when the host loop raises (``end_now``),
        and the entry raises ``InternalError``.
        """
        post = self.end_abandoned_through
        if post is not None and not self._delivered:
            exc = InternalError(
                "the guest run was abandoned: a tick was lost on its way to the host "
                "loop (see the RuntimeWarning); the run was shut down"
            )
            try:
                post(functools.partial(self._end_abandoned, exc))
                return
            except BaseException:
                pass  # that loop cannot be reached either: as under any host
        if threading.get_ident() != self.host_ident:
            return  # the thread-local state cannot be undone from here
        self._delivered = True  # nobody can be told: the host is gone
        try:
            self._teardown()
        except BaseException:
            pass
        self._restore_sigint()

    def _end_abandoned(self, exc: BaseException) -> None:
        """Host thread, a host callback: shut down a run abandoned under a one-call entry."""
        engine = self.engine
        if engine is not None:
            engine.retire_backend()
        self.end_now(exc)

    # --------------------------------------------------------- helpers

    def _deliver(self, result: outcome.Outcome[Any]) -> None:
        """Tear down, then ``done_callback(result)`` exactly once.

        What ``done_callback`` raises propagates into the host loop, as in
        Trio's guest mode (the engine re-raises it out of the tick). The SIGINT
        handler is put back last: until then a Ctrl+C in our own teardown is
        deferred and turns the outcome into ``KeyboardInterrupt`` (or, once
        ``done_callback`` has run, is raised into the host).
        """
        if self._delivered:
            return
        self._delivered = True
        try:
            self._teardown()
        except BaseException as exc:
            result = outcome.Error(exc)
            cleanup_twice(self._teardown, [])  # idempotent: finishes what was cut short
        engine = self.engine
        # Let go of it as it is called: the run's objects are in reference
        # cycles (engine and lifecycle), and the callback is the host's (it may
        # hold a window, a Tcl interpreter), which must be freed by reference
        # counting on the host thread, not by a collection on another thread.
        done_callback, self.done_callback = self.done_callback, _called_already
        try:
            if engine is not None and engine.interrupt_pending:
                engine.interrupt_pending = False
                result = outcome.Error(KeyboardInterrupt())
            call_user_with(done_callback, result)
        finally:
            if not self.keep_sigint:
                self.release_sigint()

    def release_sigint(self) -> None:
        """Put the host's SIGINT handler back; raise a Ctrl+C deferred until now.

        ``_deliver`` calls it after ``done_callback``. A host module's one-call
        entry (``keep_sigint=True``) calls it last, after its own clean-up, so
        that a Ctrl+C there cannot interrupt that clean-up either: it comes out
        of the entry as ``KeyboardInterrupt`` afterwards.
        """
        self._restore_sigint()
        # The run is over: let go of the engine, which holds this lifecycle (its
        # owner). Left as a cycle, the run's objects (loop, tasks, finalizers)
        # were freed by a later collection, anywhere: a Ctrl+C landing in a
        # finalizer's Python code there is lost ("Exception ignored").
        engine, self.engine = self.engine, None
        if engine is not None and engine.interrupt_pending:
            engine.interrupt_pending = False
            raise KeyboardInterrupt

    def _emergency_shutdown(self) -> None:
        """Drive the remaining shutdown on this thread with the plain loop.

        The running loop is unset first, then the stopped backend thread is
        joined (a blocking call, never inside a running loop), then the loop is
        detached (a proactor loop finishes what that thread dequeued) and run
        by the stock iteration until the shutdown is done. A Ctrl+C meanwhile
        raises at once: no engine is left to deliver a deferred one.
        """
        self._unprotected = True
        events._set_running_loop(None)
        self.aloop._thread_id = None
        engine = self.engine
        if engine is not None:
            engine.join_backend()
        self.loop._guest_detach()
        loop = self.aloop
        if loop.is_closed():
            return
        # Our engine is stopped and detached, so the stock iteration can run
        # here, blocking this thread until the shutdown completes. A shutdown
        # the run had begun is finished, not started again beside itself.
        finished = self.shutdown_task
        if finished in _cut_short:
            return  # a second Ctrl+C cut it short (end_now): left as it stands
        if finished is None:
            finished = loop.create_task(self._shutdown())
            # Cancelling the main task calls _on_main_done: with this set, it
            # records nothing new and starts no second shutdown.
            self.shutdown_task = finished
        if finished.done():
            return
        finished.add_done_callback(lambda _: loop.stop())
        self.loop._guest_run_forever_stock()
        if not finished.done():
            finished.cancel()

    def _teardown(self) -> None:
        """Undo the set-up and close the loop; idempotent.

        Each step is tried once more if it fails (every step is idempotent: a
        failure part-way must not leave a thread, a descriptor or a changed
        process setting behind); the first error is raised at the end.
        """
        errors: list[BaseException] = []
        while self._restore:
            cleanup_twice(self._restore[-1], errors)
            self._restore.pop()
        loop = self.aloop
        cleanup_twice(loop.close, errors)
        if self._wakeup_fd_to_restore is not None:
            cleanup_twice(self._put_wakeup_fd_back, errors)
        if errors:
            raise errors[0]

    def _put_wakeup_fd_back(self) -> None:
        fd = self._wakeup_fd_to_restore
        if fd is not None:
            _restore_wakeup_fd(fd)
            self._wakeup_fd_to_restore = None


def _make_loop(factory: Callable[[], asyncio.AbstractEventLoop]) -> Any:
    """Call the loop factory; leave the process's signal wakeup fd as it was.

    A proactor loop made in the main thread points the wakeup fd at its own
    self-socket (``BaseProactorEventLoop.__init__``). Whether the run takes that
    fd is decided later, in ``RunLifecycle._install_signal_handling`` (the host may
    own it), so the constructor's choice is undone here.
    """
    if threading.current_thread() is not threading.main_thread():
        return factory()
    before = signal.set_wakeup_fd(-1)
    loop = None
    try:
        signal.set_wakeup_fd(before)
        loop = factory()
        signal.set_wakeup_fd(before)
        return loop
    except BaseException:
        # Nothing made here may outlive a failure here.
        cleanup_twice(lambda: signal.set_wakeup_fd(before), [])
        if loop is not None:
            cleanup_twice(loop.close, [])
        raise


def _restore_wakeup_fd(old_fd: int) -> None:
    try:
        signal.set_wakeup_fd(old_fd)
    except (ValueError, OSError):
        pass  # not the main thread any more (cannot happen), or the fd is closed


def start_guest_run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    run_sync_soon_threadsafe: Callable[[Callable[[], object]], object],
    done_callback: Callable[[outcome.Outcome[_T]], object],
    run_sync_soon_not_threadsafe: Callable[[Callable[[], object]], object] | None = None,
    host_uses_signal_set_wakeup_fd: bool = False,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
    fd_watcher: FdWatcher | None = None,
) -> asyncio.Task[_T]:
    """Start ``main`` as an asyncio run hosted by another event loop.

    ``main`` is a coroutine object, or an async function followed by ``*args``.
    ``run_sync_soon_threadsafe(fn)`` must run ``fn()`` on the host thread soon
    and may be called from any thread; ``run_sync_soon_not_threadsafe`` is an
    optional cheaper variant only ever called from the host thread.
    ``done_callback(outcome)`` is called once, on the host thread, after the run
    has shut down like ``asyncio.run`` (tasks cancelled, async generators and
    the default executor shut down, loop closed); what it raises propagates
    into the host loop.

    Returns the main ``asyncio.Task`` (``cancel()`` works from host code).
    Errors in setting up raise from this call; everything later goes to
    ``done_callback``. ``tick_budget`` bounds how many seconds of asyncio
    callbacks one host callback runs before handing the thread back.

    ``fd_watcher`` (optional, Unix): a host that can watch an fd and set a
    timer itself (``asyncio_guest.FdWatcher``). Where the loop's selector is
    one pollable fd (epoll, kqueue), the run then needs no backend thread: the
    host watches that fd and one timer (``docs/design.md``, the two wait
    strategies). ``ASYNCIO_GUEST_WAIT=thread|fd|auto`` overrides the choice.
    """
    run = start(
        main,
        *args,
        run_sync_soon_threadsafe=run_sync_soon_threadsafe,
        done_callback=done_callback,
        run_sync_soon_not_threadsafe=run_sync_soon_not_threadsafe,
        host_uses_signal_set_wakeup_fd=host_uses_signal_set_wakeup_fd,
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
        fd_watcher=fd_watcher,
    )
    task = run.main_task
    assert task is not None
    return task


asyncio_guest_run = start_guest_run


def start(
    main: Coroutine[Any, Any, _T] | Callable[..., Awaitable[_T]],
    *args: Any,
    run_sync_soon_threadsafe: Callable[[Callable[[], object]], object],
    done_callback: Callable[[outcome.Outcome[_T]], object],
    run_sync_soon_not_threadsafe: Callable[[Callable[[], object]], object] | None = None,
    host_uses_signal_set_wakeup_fd: bool = False,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
    fd_watcher: FdWatcher | None = None,
    warn_if_wakeup_fd_taken: bool = True,
) -> RunLifecycle:
    """``start_guest_run`` for host modules: returns the run itself (see ``end_now``).

    ``warn_if_wakeup_fd_taken``: see ``RunLifecycle.warn_if_wakeup_fd_taken``.
    """
    if tick_budget <= 0:
        close_refused(main)
        raise ValueError("tick_budget must be positive")
    if events._get_running_loop() is not None:
        close_refused(main)
        raise RuntimeError(
            "start_guest_run() cannot be called while an asyncio event loop is "
            "running in this thread"
        )
    coro = _make_coroutine(main, args)
    loop: Any = None
    run: RunLifecycle | None = None
    engine: Engine | None = None
    try:
        loop = _make_loop(loop_factory or default_loop_factory)
        loop = as_guest_loop(loop)  # a TypeError here still closes the loop below
        if debug is not None:
            loop.set_debug(debug)
        run = RunLifecycle(loop, done_callback, host_uses_signal_set_wakeup_fd)
        run.warn_if_wakeup_fd_taken = warn_if_wakeup_fd_taken
        engine = Engine(
            loop,
            run,
            run_sync_soon_threadsafe=run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=run_sync_soon_not_threadsafe,
            tick_budget=tick_budget,
            fd_watcher=fd_watcher,
        )
        run.setup(engine, set_event_loop=loop_factory is None)
        engine.start()
        if engine._finished:
            # Abandoned already: the host dropped the first tick it was handed,
            # inside that call (the warning said so), and the loop is closed.
            raise RuntimeError(
                "the guest run could not start: the host's run_sync_soon_* dropped "
                "the first callback it was handed without running it"
            )
        run.create_main_task(coro)
        return run
    except BaseException:
        coro.close()
        if engine is not None:
            engine.stop()
        if run is not None:
            run.main_task = None
            try:
                run._teardown()
            except BaseException:
                pass
            run._restore_sigint()
        elif loop is not None:
            loop.close()
        raise
