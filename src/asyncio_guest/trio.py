"""asyncio as the guest of Trio: ``await run_asyncio(main)`` inside ``trio.run``.

The Trio thread is the host thread: every asyncio callback runs on it, between
Trio's own tasks, and neither loop blocks the other. Three entries::

    result = await asyncio_guest.trio.run_asyncio(main, *args)   # inside trio.run
    result = asyncio_guest.trio.run(main, *args)                 # trio.run around it
    threadsafe, local = asyncio_guest.trio.trio_host_primitives()  # for start_guest_run

How the pieces map onto Trio (why each was chosen):

* **Thread-safe posts** (the backend thread's "the OS wait returned", worker
  threads' ``call_soon_threadsafe``) go through ``TrioToken.run_sync_soon``:
  the only way into a Trio run from another thread. The tick then runs in
  Trio's entry-queue task.
* **Host-thread posts** (a tick that leaves work posts the next one) go to a
  deque drained by the task that awaits ``run_asyncio``: an append and, if that
  task is parked, ``trio.lowlevel.reschedule``. No lock, no wake-up socket
  write, no system call. (``run_sync_soon`` costs a lock and a ``send`` on
  Trio's wake-up socket per post, and a ``recv`` to drain it.)
* **Ctrl+C** is Trio's: Trio's SIGINT handler is in place, so the guest does not
  install its own (``start_guest_run`` only does so when SIGINT is at Python's
  default) and Trio keeps the signal wake-up fd
  (``host_uses_signal_set_wakeup_fd=True``). Guest code runs KeyboardInterrupt-
  protected, as Trio's own system tasks do (the ticks run in the entry-queue
  task, or in ``run_asyncio``'s drive loop, which is marked protected), so a
  Ctrl+C never lands inside the hand-over: Trio delivers it to its main task at
  a checkpoint. If that task is the one awaiting ``run_asyncio``, the first
  Ctrl+C cancels asyncio's main task and ``run_asyncio`` raises
  ``KeyboardInterrupt`` once the guest has shut down (``asyncio.run``'s
  behaviour); a second one during that shutdown ends it at once, synchronously.
  A single asyncio callback that never returns cannot be interrupted (exactly
  as protected Trio code cannot).
* **One guest per thread at a time.** For the whole guest run the guest loop is
  the thread's running asyncio loop (``docs/design.md``, section 1): Trio code
  in the same ``trio.run`` sees it from ``asyncio.get_running_loop()`` and may
  call ``loop.call_soon``, ``queue.put_nowait`` and the like directly. A second
  ``run_asyncio`` while one runs is refused (``RuntimeError``); start more
  asyncio tasks inside the running guest instead.

``TrioFdWatcher`` is the host side of the zero-thread wait strategy (the host
watches the guest loop's selector fd itself; ``watch_readable`` and
``call_later``), built on ``trio.lowlevel.wait_readable`` and Trio deadlines.

Thread rule for this module: everything here runs on the Trio thread, inside
``trio.run``, except what ``TrioToken.run_sync_soon`` is given (it is called
from the guest's backend thread and worker threads, as Trio allows).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from asyncio import events
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import outcome

from ._core.errors import toolkit_missing

try:
    import trio
except ImportError as _exc:
    raise toolkit_missing(
        "asyncio_guest.trio", "Trio", "pip install 'asyncio-guest[trio]'", _exc
    ) from _exc

from ._core.guest_loop import engine_of
from ._core.handover import DEFAULT_TICK_BUDGET
from ._core.lifecycle import RunLifecycle, close_refused, start

__all__ = ["TrioFdWatcher", "run", "run_asyncio", "trio_host_primitives"]

if TYPE_CHECKING:
    from ._core.main_args import MainArgs, Unpack

_T = TypeVar("_T")
HostFn = Callable[[], object]


class _LocalPoster:
    """``run_sync_soon_not_threadsafe`` for Trio: a deque drained by one Trio task.

    Thread invariant: every method runs on the Trio thread inside ``trio.run``
    (``start_guest_run`` calls the not-threadsafe primitive only there). Only
    the draining task parks; ``_parked`` is set exactly while it is parked and
    reschedulable, and whoever takes it out of ``_parked`` reschedules it, so
    the task is never rescheduled twice.
    """

    __slots__ = ("_closed", "_fallback", "_parked", "queue")

    def __init__(self, fallback: Callable[[HostFn], object]) -> None:
        self.queue: collections.deque[HostFn] = collections.deque()
        self._parked: trio.lowlevel.Task | None = None
        self._closed = False
        self._fallback = fallback  # once the drain has ended: Trio's own entry queue

    def __call__(self, fn: HostFn) -> None:
        if self._closed:
            self._fallback(fn)
            return
        self.queue.append(fn)
        self.wake()

    def wake(self) -> None:
        task = self._parked
        if task is not None:
            self._parked = None
            trio.lowlevel.reschedule(task)

    def run_queued(self) -> None:
        """Run what is queued now (not what those callbacks queue: bounded work)."""
        queue = self.queue
        for _ in range(len(queue)):
            queue.popleft()()

    async def park(self, abort: Callable[[Any], trio.lowlevel.Abort]) -> None:
        """Yield to Trio; come back at once if work is queued, else when woken.

        Either way the task passes through ``wait_task_rescheduled``, so a
        cancellation or a Ctrl+C for it reaches ``abort`` (which must return
        ``Abort.FAILED``: this task reschedules itself, never Trio).
        """
        me = trio.lowlevel.current_task()
        if self.queue:
            trio.lowlevel.reschedule(me)
        else:
            self._parked = me
        await trio.lowlevel.wait_task_rescheduled(abort)

    def close(self) -> None:
        """Later posts go to Trio's entry queue; what is queued is posted there too."""
        self._closed = True
        while self.queue:
            self._fallback(self.queue.popleft())

    @trio.lowlevel.enable_ki_protection
    async def serve(self) -> None:
        """Drain until cancelled (for ``trio_host_primitives``' system task)."""

        def abort(raise_cancel: Any) -> trio.lowlevel.Abort:
            if self._parked is not None:
                self._parked = None
                return trio.lowlevel.Abort.SUCCEEDED  # trio.run is ending
            return trio.lowlevel.Abort.FAILED  # rescheduled already: run the queue first

        try:
            while True:
                self.run_queued()
                await self.park(abort)
        finally:
            self.close()
            _end_a_run_left_behind(self)


def _end_a_run_left_behind(poster: _LocalPoster) -> None:
    """``trio.run`` is ending (its system tasks are cancelled) under a guest run
    that posts with ``poster`` or with this ``trio.run``'s ``TrioToken`` alone
    (``run_sync_soon_not_threadsafe`` is optional): nothing will run its ticks
    again. End it now, so that its loop is closed and no longer this thread's
    running loop; its ``done_callback`` gets the error."""
    engine = engine_of(events._get_running_loop())
    if engine is None or not (
        engine.posts_with(poster) or engine.posts_with(poster._fallback)
    ):
        return
    error = RuntimeError(
        "trio.run() ended while an asyncio guest run it carried was still going; "
        "wait for the run's done_callback before leaving trio.run"
    )
    try:
        engine.host_loop_ended(error)
    except BaseException as exc:  # done_callback's own failure: nowhere to go but the log
        logging.getLogger("asyncio_guest").error(
            "asyncio_guest.trio: done_callback raised while trio.run ended", exc_info=exc
        )


def trio_host_primitives() -> tuple[Callable[[HostFn], object], Callable[[HostFn], object]]:
    """``(run_sync_soon_threadsafe, run_sync_soon_not_threadsafe)`` for ``start_guest_run``.

    Call inside ``trio.run``. The first is ``TrioToken.run_sync_soon``; the
    second is a cheaper host-thread-only queue drained by a Trio system task
    (started here, ended with ``trio.run``). Also pass
    ``host_uses_signal_set_wakeup_fd=True``: Trio owns the signal wake-up fd.
    ``run_asyncio`` does all of this itself; use this only to call
    ``start_guest_run`` with your own ``done_callback``.
    """
    token = trio.lowlevel.current_trio_token()
    poster = _run_poster.get()
    if poster is None:  # one queue (and one draining system task) per trio.run
        poster = _LocalPoster(token.run_sync_soon)
        trio.lowlevel.spawn_system_task(poster.serve, name="asyncio_guest.trio host queue")
        _run_poster.set(poster)
    return token.run_sync_soon, poster


_run_poster: trio.lowlevel.RunVar[_LocalPoster | None] = trio.lowlevel.RunVar(
    "asyncio_guest.trio poster", default=None
)


def _clock_is_real_time() -> bool:
    """Does Trio's clock run at the system's pace (not a ``MockClock``)?

    The zero-thread wait sets asyncio's timers as Trio deadlines; on a clock
    that is frozen, scaled or jumps ahead (``trio.testing.MockClock``) they
    would fire late, never, or early. There the backend thread waits instead,
    on asyncio's own clock.
    """
    clock = trio.lowlevel.current_clock()
    return type(clock).__name__ == "SystemClock" and type(clock).__module__.startswith("trio.")


class _GuestRun:
    """One ``run_asyncio`` call: the guest's lifecycle and the Trio task waiting on it.

    Thread invariant: Trio thread only. ``abort`` runs inside Trio's scheduler
    (or inside whatever code cancelled our scope, possibly a guest tick): it
    only records and asks asyncio's main task to cancel, which is safe from
    any host-thread code.
    """

    def __init__(self, poster: _LocalPoster) -> None:
        self.poster = poster
        self.result: outcome.Outcome[Any] | None = None
        self.lifecycle: RunLifecycle | None = None
        self.trio_exc: BaseException | None = None  # trio.Cancelled or KeyboardInterrupt
        self.raise_cancel: Callable[[], Any] | None = None
        # Ctrl+Cs for the guest's run itself: all but one that cancelled main
        # (a Ctrl+C once main is done, or cancelled already, ends the run).
        self.interrupts = 0
        self.cancel_sent = False  # main is cancelled once, as asyncio.run does

    def done(self, result: outcome.Outcome[Any]) -> None:
        """The guest's ``done_callback``: after its full shutdown (Trio thread)."""
        self.result = result
        self.poster.wake()

    def abort(self, raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
        """Trio wants the waiting task back: cancelled, or Trio's Ctrl+C.

        Always FAILED: the task comes back only once the guest has shut down
        (``asyncio.run``'s semantics). Calling ``raise_cancel`` tells the two
        apart and, for a Ctrl+C, consumes Trio's pending flag, so a second
        Ctrl+C is seen as such.
        """
        try:
            raise_cancel()
        except KeyboardInterrupt as exc:
            if self.trio_exc is None or isinstance(self.trio_exc, trio.Cancelled):
                self.trio_exc = exc
            if not self.cancel_main():
                self.interrupts += 1
        except BaseException as exc:  # trio.Cancelled
            if self.trio_exc is None:
                self.trio_exc = exc
                self.raise_cancel = raise_cancel
            self.cancel_main()
        # Trio tries one abort per park: come back and park again (shielded
        # from now on), so that a later Ctrl+C still finds an abort to call.
        self.poster.wake()
        return trio.lowlevel.Abort.FAILED

    def cancel_main(self) -> bool:
        """Cancel main, once: a second cancel() would interrupt its own clean-up.
        Says whether this call did (not if main is done or cancelled already)."""
        lifecycle = self.lifecycle
        task = None if lifecycle is None else lifecycle.main_task
        if self.cancel_sent or self.result is not None or task is None or task.done():
            return False
        self.cancel_sent = True
        task.cancel()
        return True

    @trio.lowlevel.enable_ki_protection
    async def drive(self) -> None:
        """Run host-thread ticks until the guest has delivered its outcome.

        KeyboardInterrupt-protected: Trio never raises a Ctrl+C inside the
        hand-over; it reaches ``abort`` at a park instead.
        """
        poster = self.poster
        lifecycle = self.lifecycle
        assert lifecycle is not None
        passed_on = 0  # Ctrl+Cs given to the guest so far
        while self.result is None:
            if self.interrupts > passed_on:
                # A Ctrl+C that did not cancel main (a further one, or one once
                # main was done or cancelled by Trio): to the guest as one a
                # callback let out, as asyncio.run takes it. Before the shutdown
                # it begins it; during it, it cuts it short (the run ends at
                # once, not after a slow ``finally`` or the executor's join).
                # Trio keeps running meanwhile.
                passed_on = self.interrupts
                assert self.trio_exc is not None
                lifecycle.on_callback_raised(self.trio_exc)
            poster.run_queued()
            if self.result is not None:
                break
            if self.trio_exc is None:
                await poster.park(self.abort)
            else:
                # Cancelled already: more cancel attempts would only spin. A
                # Ctrl+C is outside every cancel scope, so it still arrives.
                with trio.CancelScope(shield=True):
                    await poster.park(self.abort)


async def run_asyncio(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> _T:
    """Run ``main(*args)`` as ``asyncio.run`` would, as a guest of the running Trio loop.

    Returns ``main``'s result or raises its exception. Both loops run on this
    thread, each between the other's callbacks. Cancellation:

    * Trio cancels us (a cancel scope, a timeout, a nursery failing): asyncio's
      main task is cancelled, the guest shuts down completely (leftover tasks
      cancelled, async generators and the default executor shut down, loop
      closed), then ``trio.Cancelled`` is raised. If ``main`` answers the
      cancellation with another exception, that exception is raised instead;
      if ``main`` had ended already (the guest was shutting down), its own
      result or exception stands.
    * Trio's Ctrl+C reaching this task: the same, then ``KeyboardInterrupt``.
    * asyncio code cancels ``main``'s task itself: ``asyncio.CancelledError`` is
      raised (as ``asyncio.run`` raises it). It is not ``trio.Cancelled``: no
      Trio scope asked for it, so no Trio scope may swallow it.

    Only one guest at a time per thread: raises ``RuntimeError`` if an asyncio
    loop is already running here (another ``run_asyncio``, say).
    """
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        close_refused(main)
        raise RuntimeError(
            "asyncio_guest.trio.run_asyncio() must be awaited inside trio.run: it runs "
            "asyncio as Trio's guest (in asyncio code, await main() itself)"
        ) from None
    if events._get_running_loop() is not None:
        close_refused(main)
        raise RuntimeError(
            "asyncio_guest.trio.run_asyncio(): an asyncio event loop is already running "
            "in this thread (another run_asyncio() in this trio.run?); one guest at a "
            "time: start more tasks inside the running one instead"
        )
    try:
        await trio.lowlevel.checkpoint_if_cancelled()  # a Trio checkpoint, as all of Trio's
    except BaseException:
        close_refused(main)  # refused before it began: no "never awaited" for it
        raise
    token = trio.lowlevel.current_trio_token()
    poster = _LocalPoster(token.run_sync_soon)
    guest = _GuestRun(poster)
    # Trio watches the guest's epoll/kqueue fd itself: no backend thread.
    watcher = TrioFdWatcher() if _clock_is_real_time() else None
    try:
        guest.lifecycle = start(
            main,
            *args,
            run_sync_soon_threadsafe=token.run_sync_soon,
            run_sync_soon_not_threadsafe=poster,
            done_callback=guest.done,
            host_uses_signal_set_wakeup_fd=True,  # Trio's wake-up socket holds it
            fd_watcher=watcher,
            loop_factory=loop_factory,
            debug=debug,
            tick_budget=tick_budget,
        )
        guest.lifecycle.keep_sigint = True  # released below, after our clean-up
        # While we await it, a run abandoned under Trio is ended in Trio's loop.
        guest.lifecycle.end_abandoned_through = token.run_sync_soon
        await guest.drive()
    except BaseException as exc:
        # Our own machinery failed (drive() lets nothing else out): end the guest now.
        if guest.lifecycle is not None and guest.result is None:
            guest.lifecycle.end_now(exc)
        raise
    finally:
        if guest.lifecycle is not None:
            guest.lifecycle.end_abandoned_through = None
        poster.close()
        if watcher is not None:
            watcher.close()
        if guest.lifecycle is not None:
            guest.lifecycle.release_sigint()
    # The other half of a checkpoint: a main that ended in the first tick
    # never parked, and a loop of such calls must still let Trio schedule.
    await trio.lowlevel.cancel_shielded_checkpoint()
    result = guest.result
    assert result is not None
    if guest.cancel_sent or isinstance(guest.trio_exc, KeyboardInterrupt):
        # We asked for the cancellation: Trio's exception, unless main answered
        # it with an error of its own. (A Trio cancel that came once main had
        # ended, during the guest's shutdown, reached nothing: main's outcome
        # stands, as for any Trio operation that completed before it could be
        # cancelled. A Ctrl+C ends the run with KeyboardInterrupt either way.)
        assert guest.trio_exc is not None
        if isinstance(result, outcome.Error) and not isinstance(
            result.error, asyncio.CancelledError
        ):
            result.unwrap()
        if guest.raise_cancel is not None and not isinstance(guest.trio_exc, KeyboardInterrupt):
            guest.raise_cancel()  # a fresh trio.Cancelled
        raise guest.trio_exc
    return result.unwrap()  # type: ignore[no-any-return]


def run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
    **trio_run_options: Any,
) -> _T:
    """``trio.run(run_asyncio, main, *args)``: an asyncio ``main`` with Trio as its host.

    For programs whose top level is asyncio code but that want Trio's loop in
    charge (Trio libraries alongside, Trio's Ctrl+C handling).
    ``trio_run_options`` go to ``trio.run`` (``clock``, ``instruments``...).
    """

    if events._get_running_loop() is not None:
        close_refused(main)
        raise RuntimeError("asyncio_guest.trio.run() cannot be called from a running event loop")

    async def trio_main() -> _T:
        return await run_asyncio(
            main, *args, loop_factory=loop_factory, debug=debug, tick_budget=tick_budget
        )

    return trio.run(trio_main, **trio_run_options)


class _AfterIOWait(trio.abc.Instrument):
    """Calls ``callback()`` each time Trio's scheduler is back from its I/O wait.

    Trio calls ``after_io_wait`` right after it has handed what the wait
    found to the tasks waiting for it, before any of them runs: on Trio's
    thread, in no task, KeyboardInterrupt-protected as Trio's scheduler is.
    """

    def __init__(self, callback: HostFn) -> None:
        self.callback = callback

    def after_io_wait(self, timeout: float) -> None:
        try:
            self.callback()
        except BaseException as exc:
            # Trio would log it and disable the instrument: let it out of a
            # system task instead, as it would have left a watch's task.
            trio.lowlevel.spawn_system_task(
                _reraise, exc, name="asyncio_guest after_io_wait failure"
            )


async def _reraise(exc: BaseException) -> None:
    raise exc


class TrioFdWatcher:
    """The zero-thread wait's host primitives, in Trio (``FdWatcher`` protocol).

    ``watch_readable(fd, callback)`` calls ``callback()`` each time ``fd`` is
    readable while watched (level-triggered, as ``trio.lowlevel.wait_readable``
    is); ``call_later(delay, callback)`` calls it once after ``delay`` seconds
    (a Trio deadline, on Trio's clock); ``after_each_wait(callback)`` calls it
    each time Trio's scheduler is back from its I/O wait (an instrument's
    ``after_io_wait``). Each returns the function that stops it, harmless to
    call again, after the fact, or after ``trio.run`` ended.

    Each watch and timer is a Trio system task: KeyboardInterrupt-protected (the
    callbacks are the guest engine's own code), shielded (the engine stops it
    when the guest run no longer needs it, also after ``trio.run``'s main task
    ended). What an after-wait callback raises leaves through a system task
    too (Trio would only log an instrument's exception).
    Thread invariant: construct and use inside ``trio.run``, on its thread; a
    callback never runs inside another Trio callback (each runs in its own
    task step, or between the scheduler's I/O wait and its task steps), which
    is the ordering the zero-thread hand-over relies on.
    """

    # A worker's call_soon_threadsafe wakes Trio through the loop's worker wake
    # fd (_core/worker_wake.py), which a watch's task waits on: Trio returns
    # from its epoll wait sooner than for TrioToken.run_sync_soon's socket.
    # The callback then runs from after_each_wait, ~4 us before that task's
    # step would (bench threadsafe, 3.13: 1.9-2.1x -> 1.6-1.7x of plain asyncio).
    worker_wakes_by_fd = True

    def __init__(self) -> None:
        trio.lowlevel.current_trio_token()  # fail here, not in the engine, outside trio.run
        self._scopes: set[trio.CancelScope] = set()
        self._instruments: set[_AfterIOWait] = set()

    def _spawn(
        self, body: Callable[[trio.CancelScope], Awaitable[None]], name: str
    ) -> Callable[[], None]:
        # Shielded: only stop() (or close()) ends a watch. When trio.run's main
        # task returns, Trio cancels every system task at once; a run_asyncio
        # in a system task is then cancelled too, and its guest must go on to
        # its shutdown, woken through these very watches. Unshielded, they
        # were gone before that wake-up, and trio.run waited for ever.
        scope = trio.CancelScope(shield=True)
        self._scopes.add(scope)

        async def task() -> None:
            try:
                with scope:
                    await body(scope)
            finally:
                self._scopes.discard(scope)

        trio.lowlevel.spawn_system_task(task, name=name)

        def stop() -> None:
            # A cancel reaches a task parked in wait_readable at once (Trio runs
            # its abort now), so the fd is free for a new watch straight away.
            scope.cancel()
            self._scopes.discard(scope)

        return stop

    def watch_readable(self, fd: int, callback: HostFn) -> Callable[[], None]:
        scopes = self._scopes

        async def body(scope: trio.CancelScope) -> None:
            # Unwatched before this task first ran, the fd may be closed already
            # (the guest loop closes its selector right after ``stop``), and
            # Trio registers an fd before its cancellation checkpoint: a closed
            # one would fail there (EBADF). So look before each wait. "Still
            # in ``scopes``" is "not cancelled" here (stop() and close() take a
            # scope out as they cancel it) without ``cancel_called``'s clock
            # read, twice per wake-up on a worker's call_soon_threadsafe path.
            while scope in scopes:
                await trio.lowlevel.wait_readable(fd)
                if scope not in scopes:
                    return  # unwatched while the readiness was on its way
                callback()

        return self._spawn(body, f"asyncio_guest watch_readable({fd})")

    def after_each_wait(self, callback: HostFn) -> Callable[[], None]:
        instrument = _AfterIOWait(callback)
        trio.lowlevel.add_instrument(instrument)
        self._instruments.add(instrument)

        def stop() -> None:
            self._instruments.discard(instrument)
            _remove_instrument(instrument)

        return stop

    def call_later(self, delay: float, callback: HostFn) -> Callable[[], None]:
        if math.isnan(delay):
            raise ValueError("delay must not be NaN")
        deadline = trio.current_time() + max(0.0, delay)

        async def body(scope: trio.CancelScope) -> None:
            await trio.sleep_until(deadline)
            if not scope.cancel_called:
                callback()

        return self._spawn(body, "asyncio_guest call_later")

    def close(self) -> None:
        """Stop every watch, timer and after-wait call still set (idempotent)."""
        for scope in list(self._scopes):
            scope.cancel()
        self._scopes.clear()
        for instrument in list(self._instruments):
            _remove_instrument(instrument)
        self._instruments.clear()


def _remove_instrument(instrument: trio.abc.Instrument) -> None:
    """Remove ``instrument`` from the running Trio loop: harmless when it is gone already."""
    try:
        trio.lowlevel.remove_instrument(instrument)
    except (KeyError, RuntimeError):
        pass  # removed already, or trio.run has ended (and its instruments with it)
