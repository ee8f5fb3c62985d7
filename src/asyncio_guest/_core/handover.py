"""The hand-over: the host-side driver of a guest loop (``Engine``) and its ticks.

A *tick* is one host callback's worth of asyncio work: take what the backend
thread's wait returned (``backend.py``), run loop iterations within the tick
budget (``GuestLoop._guest_run_slice``), then decide who runs next: another
tick (work is left: no thread hop), or the backend thread (hand it the wait),
or, in the zero-thread strategy (``fd_watch.py``), the host's watch of the
selector's fd and its timer (arm them).

Rules that keep it correct (``Channel`` fields are in ``backend.py``):

* ``posted`` is True while a call of ``_Token.tick`` is handed to the host
  (or owed to it, while a nested host loop defers it). Whoever sets it posts
  that tick; nobody else posts. A worker sets it without the lock, by a swap
  that the GIL keeps whole (``request_tick``), and so do the backend and
  the host (no free-threaded build: see ``Channel``). A tick never runs
  inside another one (``_in_tick``).
* Only the host thread moves the channel away from IDLE, and only the host
  thread touches loop state; the backend thread touches the OS wait and the
  channel, workers only the channel (``request_tick``).
* Signal handlers run on the host thread between any two bytecodes, also while
  the host holds ``Channel.lock``. Host-thread wake-ups that may come from a
  signal handler (``host_wake``) therefore never take the lock: they only write
  a byte to the loop's self-pipe, which ends the backend's wait.

Abandonment: only posted ticks and the backend thread (while it is given a
wait) hold strong references to the run's ``_Token``; a thread that sets
``posted`` holds one from before the set until its tick is posted, since
the others let theirs go when they see ``posted`` set. If the host drops a
posted tick without running it, the token dies and ``Engine._abandoned`` warns
and releases the backend thread. That cannot be seen while guest objects keep
the host's queue reachable (the running loop is a thread-local root), so a run
still unfinished at interpreter exit is reported then; the backend thread is a
daemon only so that such a run cannot hang the exit.
"""

from __future__ import annotations

import atexit
import collections
import logging
import math
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import outcome

from .backend import IDLE, RETURNED, WAITING, Backend, State, no_host
from .errors import InternalError
from .fd_watch import FdWaits, FdWatcher, choose

if TYPE_CHECKING:
    from .worker_wake import WorkerWake

_R = TypeVar("_R")
logger = logging.getLogger("asyncio_guest")

_NESTED_HOST_LOOP = (
    "asyncio-guest: a host event loop ran inside an asyncio callback (a modal "
    "dialog's exec(), wait_window(), ShowModal(), a message box?): asyncio is "
    "paused until it returns. Run such a call with "
    "`await asyncio_guest.run_modal(fn, *args)` to keep asyncio running meanwhile."
)

DEFAULT_TICK_BUDGET = 0.001
"""Seconds of asyncio callbacks one host callback may run before yielding.

1 ms keeps a host timer's lateness near a millisecond under full asyncio load
while amortising the host's per-callback cost over hundreds of iterations.
"""


_live_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


@atexit.register
def _warn_unfinished_runs() -> None:
    """At interpreter exit, name every run whose host loop ended without finishing it.

    The backend thread is a daemon, so it cannot hold up the exit; this makes
    the abandonment visible instead of silent. (When nothing else keeps a run's
    objects alive, ``_Token.__del__`` reports it earlier, at garbage collection.)

    A run whose host thread still runs is left alone: a daemon thread (the exit
    waited for every other) whose host loop is still going, which the exit
    stops where it stands, as it stops an ``asyncio.run`` there without a word.
    """
    running = {thread.ident for thread in threading.enumerate()}
    running.discard(threading.get_ident())  # (exit's own thread: its loop has ended)
    for engine in list(_live_engines):
        if not engine._finished and engine._host_ident not in running:
            engine._finished = True
            warnings.warn(
                f"asyncio-guest run of {engine._loop!r} was abandoned: the program is "
                "exiting but the host loop never let the guest run finish",
                RuntimeWarning,
                stacklevel=1,
            )


def running_guest_loops() -> list[Any]:
    """The loops of the guest runs going on now (any thread), for code that
    must find a run's loop from another thread (``async_callback``)."""
    return [engine._loop for engine in list(_live_engines) if not engine._finished]


class GuestLoop(Protocol):
    """What the engine uses of the loop it drives (``guest_loop.GuestLoopMixin``).

    All of it host thread only, except ``_guest_wake`` (signal-safe) and the
    blocking call that ``_guest_wait_plan`` returns (run by the backend thread).
    """

    _debug: bool  # asyncio's debug mode (BaseEventLoop)
    _ready: collections.deque[Any]  # asyncio's ready callbacks (BaseEventLoop)

    def _guest_backend_for_run(self) -> Backend: ...
    def _guest_enter_tick(self) -> None: ...
    def _guest_leave_tick(self) -> None: ...
    def _guest_took_escape(self, exc: BaseException) -> bool: ...
    def _guest_run_slice(self, raw: Any, may_poll: bool, deadline: float) -> bool: ...
    def _guest_has_work(self) -> bool: ...
    def _guest_wait_plan(self) -> tuple[float, Callable[[], Any]]: ...
    def _guest_wait_is_stale(self, deadline: float) -> bool: ...
    def _guest_wait_timeout(self) -> tuple[float | None, float]: ...
    def _guest_pollable_fd(self) -> int | None: ...
    def _guest_use_worker_wake(self, use: bool) -> WorkerWake | None: ...
    def _guest_wake(self) -> None: ...
    def _guest_backend_waker(self) -> Callable[[], object]: ...
    def _guest_keep_raw(self, raw: Any) -> None: ...
    def time(self) -> float: ...


class Owner(Protocol):
    """What an ``Engine`` reports to whoever started it (a guest run, a hosted run_forever)."""

    def on_loop_stopped(self) -> None:
        """An iteration ended with ``loop.stop()`` requested."""

    def on_callback_raised(self, exc: BaseException) -> None:
        """A callback let ``KeyboardInterrupt``/``SystemExit`` escape, as ``run_forever`` would."""

    def on_fatal(self, exc: BaseException) -> None:
        """Our machinery failed. The backend is stopped; the owner must end the run."""

    def finalize(self) -> None:
        """The run is over and the backend thread has exited (host thread)."""

    def on_abandoned(self) -> None:
        """The host dropped the run (any thread, from a finalizer: must not raise)."""


class _Token:
    """The identity of one run, held only by what is in flight (see module doc).

    An engine can be started again for the next run of its loop; ``run`` tells
    this run's token from a late one of an earlier run (a tick a worker posted
    just as that run ended, or the backend thread dropping its reference late),
    which must neither tick nor report an abandonment.
    """

    __slots__ = ("__weakref__", "engine", "run")

    def __init__(self, engine: Engine, run: int) -> None:
        self.engine = engine
        self.run = run

    def tick(self) -> None:
        engine = self.engine
        if engine._run == self.run:
            engine._tick(self)

    def __del__(self) -> None:
        engine = self.engine
        if engine._run == self.run and not engine._finished:
            engine._abandoned()


class Engine:
    """Drives one guest loop from host callbacks, with the loop's backend thread.

    Host thread only, except ``request_tick`` (worker threads, as is the
    loop's ``call_soon_threadsafe``, which reads ``worker_wake`` and
    ``_ch.posted``) and ``host_wake`` (signal handlers too).

    Failure handling, in one place: every host callback into the engine (a
    tick) runs its body under one ``try``; what escapes is either a
    ``KeyboardInterrupt``/``SystemExit`` (a callback let it out, or a Ctrl+C
    hit where the host's own handler raises) and ends the run the way
    ``run_forever`` would, through the owner, or anything else, which is our
    machinery failing: ``_fatal`` ends the run with ``InternalError``. The
    handler then decides again who runs next, so something (a posted tick or
    a backend wait) always carries the run to its end.
    """

    def __init__(
        self,
        loop: GuestLoop,
        owner: Owner,
        *,
        run_sync_soon_threadsafe: Callable[[Callable[[], object]], object],
        run_sync_soon_not_threadsafe: Callable[[Callable[[], object]], object] | None,
        tick_budget: float,
        fd_watcher: FdWatcher | None = None,
    ) -> None:
        self._loop = loop
        self._owner = owner
        self._backend = loop._guest_backend_for_run()
        self._ch = self._backend.ch
        self._post_threadsafe = run_sync_soon_threadsafe
        self._post_local = run_sync_soon_not_threadsafe or run_sync_soon_threadsafe
        self.budget = tick_budget
        self._watcher = fd_watcher
        # The zero-thread strategy of the current run (fd_watch.py), or None:
        # the backend thread waits. Chosen by each start().
        self._fdw: FdWaits | None = None
        # Zero-thread wait, on a host whose fd watch is cheaper than its
        # cross-thread primitive (FdWatcher doc): what a worker's
        # call_soon_threadsafe calls instead of request_tick, the write of the
        # loop's worker wake fd (worker_wake.py), which the host watches beside
        # the selector; the watch drains it and runs a tick. Never lost: the
        # watch stays for the whole run and is level-triggered, so a write
        # fires it until it is drained, and the drain comes before the tick
        # that runs the callback. Set by each start().
        self.worker_wake: Callable[[], object] | None = None
        self._host_ident = threading.get_ident()
        self._token_ref: Callable[[], _Token | None] = lambda: None
        # Host-only state, reset by each start().
        self._in_tick = False
        self._deferred = False  # a nested host loop ran a tick; re-post it afterwards
        self._nested_warned = False  # debug mode: said so for this tick
        self._wake_sent = False  # one self-pipe byte per backend wait
        self._deadline = -math.inf  # loop.time() when the backend's current wait times out
        self._finish_requested = False
        self._finished = True  # until start()
        self._run = 0  # counts start()s: which run's token is current
        # A Ctrl+C the owner's SIGINT handler deferred (it hit our own code,
        # see interrupts.py): delivered at the next tick's start or end.
        self.interrupt_pending = False
        self._to_host: BaseException | None = None  # raised out of the tick, see _owner_ending
        self._failure: BaseException | None = None  # see fail_soon
        # The interpreter's exit refused the backend thread: the stalled run's
        # token, kept so that it is not reported abandoned (_after_tick).
        self._exit_stall: _Token | None = None
        _live_engines.add(self)

    # ----------------------------------------------------------- lifecycle

    @property
    def finished(self) -> bool:
        return self._finished

    def start(self) -> None:
        """Host thread: begin a run and post its first tick.

        The backend thread starts at the first wait. A finished engine may be
        started again for the next run of its loop (the self-hosted
        ``run_forever`` does, so a restart costs no new objects beyond the
        run's token).
        """
        watcher = self._watcher
        fd = choose(watcher, self._loop._guest_pollable_fd())
        self._fdw = fdw = None if fd is None or watcher is None else FdWaits(watcher, fd)
        wake = self._loop._guest_use_worker_wake(fdw is not None and fdw.worker_wakes_by_fd)
        if fdw is not None:
            fdw.wake = wake
        self.worker_wake = None if wake is None else wake.write
        # The channel is parked (IDLE, ``go`` held) between runs; an abnormal
        # end replaced it with a fresh one (Backend.signal_stop).
        self._ch = ch = self._backend.ch
        ch.post_threadsafe = self._post_threadsafe
        ch.post_error = None
        self._in_tick = self._deferred = self._wake_sent = False
        self._finish_requested = self.interrupt_pending = False
        self._failure = None
        self._deadline = -math.inf
        self._run += 1
        tok = _Token(self, self._run)
        self._token_ref = weakref.ref(tok)
        ch.posted = True
        self._finished = False
        try:
            self._post_local(tok.tick)
        except BaseException:
            self._finished = True
            ch.posted = False
            raise

    def _probe_nesting(self) -> None:
        if self._in_tick:
            self._warn_nested()

    def _warn_nested(self) -> None:
        if not self._nested_warned and getattr(self._loop, "_debug", False):
            self._nested_warned = True
            logger.warning(_NESTED_HOST_LOOP)

    def call_as_loop_code(self, fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
        """Host thread, outside ticks: call loop code that host code runs, as a tick.

        An eager task's first step runs inside ``create_task``, wherever host
        code calls it (a widget callback). Like a tick's callbacks it may open a
        nested host loop straight away (a dialog's ``exec()``): a tick that loop
        runs meanwhile would step other tasks while this one is the current
        task ("Cannot enter into task", and that task is never stepped again).
        So it counts as a tick here: a nested tick is deferred as inside one,
        and posted when ``fn`` returns; otherwise one wake-up picks up what
        ``fn`` added (its own wake-ups wait, as a tick's do, until it ends).
        """
        tok = self._token_ref()  # kept: a nested tick deferred gives up its own
        if self._in_tick or self._finished or tok is None:
            return fn(*args, **kwargs)
        self._in_tick = True
        self._nested_warned = False
        if self._loop._debug:
            self._post_local(self._probe_nesting)  # as a tick does (Engine._tick)
        try:
            return fn(*args, **kwargs)
        finally:
            self._in_tick = False
            if not self._finished:
                if self._deferred:
                    self._deferred = False  # ``posted`` is still True: the owed tick
                    self._post_local(tok.tick)
                else:
                    self.host_wake()

    def post_outside_tick(self, fn: Callable[[], object]) -> None:
        """Host thread: run ``fn`` from the host loop itself, outside any tick.

        For a blocking host call that runs a nested host loop (a modal
        dialog): run there, it lets ticks run inside it (``run_modal``).
        """
        self._post_local(fn)

    def tick_now(self) -> None:
        """Host thread, outside ticks: run a tick here and now, as a posted one.

        For host code that has just made guest work ready and returns to a
        host loop whose next event must not come first: ``run_modal``'s call
        returned (a dialog closed), and the awaiting coroutine resumes before
        the host handles what the closing posted. (Qt's automatic quit when
        the last window closed is dropped if a window is shown before it is
        delivered, as the code after a plain ``exec()`` shows the next one.)
        Inside a tick (a nested host loop) it does nothing: that tick's own
        ending runs what is ready. It runs as a posted tick does, except that
        ``posted`` is left alone: a tick already posted is still in the host's
        queue and stays owed (it clears the flag when it runs), so nothing
        posts another before it runs (``_after_tick`` sees the flag): one tick
        in flight, as ever, and that one finds its work done (one tick more,
        never one lost). Cleared here, this tick's end posted a second.
        """
        tok = self._token_ref()
        if tok is not None and not self._in_tick and not self._finished:
            ch = self._ch
            # The state as a posted tick takes it (_tick: only H leaves RETURNED).
            state = ch.state
            if state is RETURNED:
                ch.state = state = IDLE
            self._tick(tok, state)

    def request_finish(self) -> None:
        """Host thread: end the run at the next point where the backend is parked."""
        self._finish_requested = True
        if not self._in_tick and self._ch.state is WAITING:
            # Only a waiting backend needs waking. A parked one (IDLE; this
            # thread alone moves the state away from IDLE) is finalized by
            # _after_tick, and a byte written now would stay in the self-pipe
            # for the loop's next run. RETURNED: a tick is posted already.
            self.host_wake()

    def fail_soon(self, exc: BaseException) -> None:
        """Host thread, inside a tick: our code in a loop callback failed; end the
        run with ``exc`` when the tick ends (``_after_tick``)."""
        if self._failure is None:
            self._failure = exc

    def posts_with(self, primitive: object) -> bool:
        """Is ``primitive`` one of the host primitives this run posts with?

        By equality: a bound method (``TrioToken.run_sync_soon``) is a new
        object at each attribute access, equal to the others of its object.
        """
        return primitive == self._post_local or primitive == self._post_threadsafe

    def host_loop_ended(self, exc: BaseException) -> None:
        """Host thread, outside any tick: the host loop is gone for good under a
        run it carried (``trio.run`` returned without waiting for the guest).

        A guest run's owner ends it now (``end_now``: a synchronous shutdown,
        then ``done_callback(Error(exc))``), which also gives the thread back
        its state: no loop is left set as the running one.
        """
        if self._finished:
            return
        end_now = getattr(self._owner, "end_now", None)
        if end_now is not None:
            end_now(exc)

    def stop(self) -> None:
        """Host thread: end the run now; tell the backend thread to stop (no join).

        In the zero-thread strategy the host's watch and timer are removed,
        also when the run has ended already (a removal that failed is retried).
        The run is marked finished first: the watch and the timer may hold the
        token's last references, and a token dying on an unfinished run reports
        it abandoned and tears it down, under ``end_now``'s shutdown (seen:
        ``sys.exit()`` in a Tk callback lost ``main``'s clean-up).
        """
        stopping = not self._finished
        self._finished = True
        try:
            fdw = self._fdw
            if fdw is not None:
                fdw.disarm(self)
        finally:
            if stopping:
                self._backend.signal_stop(self._loop._guest_backend_waker())

    def retire_backend(self) -> None:
        """Host thread: stop the backend thread of an abandoned run, as ``stop`` does.

        ``_abandoned`` lets it go from whatever thread the token died on, and
        cannot wake it there; a run then shut down on the host thread
        (``RunLifecycle.on_abandoned``) must have it stopped and recorded, so
        that ``join_backend`` collects it before the loop is polled here.
        """
        self._backend.signal_stop(self._loop._guest_backend_waker())

    def abort(self) -> None:
        """Host thread, outside the running loop: ``stop``, then ``join_backend``."""
        self.stop()
        self.join_backend()

    def join_backend(self) -> None:
        """Host thread: join a backend thread an abnormal end stopped.

        Called outside the running loop (a join is a blocking call; asyncio
        debugging tools rightly flag one made inside a running loop). What the
        thread dequeued and no tick decoded is kept for the loop: on a proactor
        loop those are completions that will never be delivered again.
        """
        leftover = self._backend.join()
        if isinstance(leftover, outcome.Value) and leftover.value:
            self._loop._guest_keep_raw(leftover.value)

    # -------------------------------------------------------- wake-ups

    def request_tick(self) -> None:
        """A worker thread: make sure a tick will run soon.

        The one-hop path for ``call_soon_threadsafe``: the tick only runs ready
        callbacks while the backend keeps its wait. If the host primitive
        raises here, the worker is not the one to be told (its callback is
        queued already, as ``call_soon_threadsafe`` promised): the backend's
        wait is ended instead, and the backend thread posts the tick, with its
        retries, or reports the run unreachable.
        """
        try:
            ch = self._ch
            # No lock (Channel doc): a True read means a posted tick has not yet
            # started (it clears ``posted`` first), so it will see our work; a
            # False one is ours to set and post. The set is a swap, one
            # statement with no call or jump inside, where CPython may switch
            # threads: 3.10 switches at any taken jump (the ``if`` between a
            # plain test and set), and another setter could post as well, two
            # ticks in flight (tests/test_load.py); 3.11+ only at calls and
            # backward jumps. The lock cost 0.3 us of every wake-up's ~7
            # (bench threadsafe, 3.13).
            if ch.posted or self._finished:
                return  # the common case in a flood, read-only
            # The token first, then ``posted``: from the set on, the backend
            # (and the host) trust our tick to carry the token and drop their
            # own references. Resolved after the set, it could die between
            # the two (3.10 switched threads at the ``if owed`` jump, the
            # backend returned then and let it go): the run was reported
            # abandoned, and ended, in the middle of a flood (test_load.py).
            tok = self._token_ref()
            if tok is None or ch.post_error is not None:
                raise InternalError("the guest run can no longer reach its host")
            owed, ch.posted = ch.posted, True
            if owed:
                return  # another setter got in since the read above
            ch.post_threadsafe(tok.tick)
        except BaseException as exc:
            self._worker_post_failed(exc)

    def _worker_post_failed(self, exc: BaseException) -> None:
        # ``posted`` may be ours, set for a tick that was never posted: clear
        # it (if it was another's, a tick too many may follow: harmless).
        ch = self._ch
        with ch.lock:
            ch.posted = False
        if self._finished:
            # The run ended between our check and the post (its primitive is
            # no_host by now): a post that races the end is dropped, as the
            # check above drops one that comes after it. Nothing to tell.
            return
        logger.warning(
            "asyncio-guest: run_sync_soon_threadsafe raised in a worker thread "
            "(%r); the backend thread takes the wake-up over",
            exc,
        )
        # Thread-safe (a self-pipe byte, an IOCP packet). A parked backend needs
        # none: the host owns the poll and is inside or about to start a tick,
        # which sees the callback.
        self._loop._guest_wake()

    def host_wake(self) -> None:
        """Host thread, signal-safe (no lock): make a waiting backend return.

        Called when host code outside a tick adds work. Stale reads are harmless:
        if a tick is posted it will see the work; otherwise at most one wake-up
        per wait is sent (a self-pipe byte; an IOCP packet on a proactor loop),
        and one sent just before the backend starts waiting makes that wait
        return at once.
        """
        if self._in_tick or self._wake_sent or self._ch.posted or self._finished:
            return
        self._wake_sent = True
        self._loop._guest_wake()

    def host_timer_added(self, when: float) -> None:
        """Host thread, outside ticks: a timer earlier than the backend's wait needs a wake.

        In the zero-thread strategy the host timer is set again instead.
        """
        if when < self._deadline:
            fdw = self._fdw
            tok = self._token_ref()
            if fdw is None or tok is None or self._ch.state is not WAITING:
                self.host_wake()
            else:
                fdw.timer_added(self, tok, when)

    # ------------------------------------------------------------- ticks

    def _tick(self, tok: _Token, state: State | None = None) -> None:
        """Host thread: one host callback's worth of asyncio work (see class doc).

        ``state`` None: a posted tick (it clears ``posted`` and reads the
        state, lock-free: see below). Given: a tick nobody posted, with the state it
        took and ``posted`` left alone: the zero-thread wake-ups' own
        (``FdWaits.ready``, ``FdWaits.worker_woke``) and ``tick_now``'s.

        One frame from the host's call to the first callback, on purpose: a
        worker's ``call_soon_threadsafe`` wakes a host thread whose caches went
        cold while it slept, and there every extra call on the way to the
        callback costs about a microsecond (bench ``threadsafe``).
        """
        if self._in_tick:
            # A nested host loop (a modal dialog opened from a callback) ran us.
            # Leave ``posted`` set (the tick is owed) and re-post when the
            # outer tick returns.
            self._warn_nested()
            self._deferred = True
            return
        try:
            ch = self._ch
            if state is None:  # a posted tick: this one was owed
                # No lock (Channel doc): only H clears ``posted`` and leaves
                # RETURNED, and a worker or B that sets ``posted`` or RETURNED
                # around these lines costs at most one tick more, never a lost one.
                ch.posted = False
                state = ch.state
                if state is RETURNED:
                    ch.state = state = IDLE
            if not self._finished:  # else a late tick of an ended run
                if state is IDLE:
                    self._deadline = -math.inf
                # IDLE: nothing waits on the selector, so this tick polls it. WAITING:
                # the backend thread, or in the zero-thread strategy the host's armed
                # watch, owns the wake-up for I/O and timers; this tick (a worker
                # posted it) runs what is ready and leaves the poll to that owner. The
                # host's watch is level-triggered, so I/O that is ready meanwhile fires
                # it as soon as this callback returns; polling here as well would put
                # a system call on every call_soon_threadsafe's path for nothing.
                owns_poll = state is IDLE
                loop = self._loop
                self._in_tick = True
                self._nested_warned = False
                if loop._debug:
                    # Debug mode: if this runs while the tick still runs, a callback
                    # ran a nested host loop (a modal dialog): say so, and how to avoid it.
                    self._post_local(self._probe_nesting)
                loop._guest_enter_tick()
                try:
                    if self.interrupt_pending:
                        # A Ctrl+C deferred since the last tick: as if a callback raised it.
                        self.interrupt_pending = False
                        self._owner.on_callback_raised(KeyboardInterrupt())
                    raw = None if ch.result is None else self._take_result()
                    if self._finish_requested:
                        # Finishing: no more iterations (what a worker's callback
                        # scheduled after loop.stop() belongs to the next run_forever).
                        stopped = False
                        if raw:
                            loop._guest_keep_raw(raw)
                    else:
                        # perf_counter: the budget is ~1 ms, finer than time.monotonic()
                        # on Windows before Python 3.11 (GetTickCount64, 15.6 ms steps).
                        stopped = loop._guest_run_slice(
                            raw, owns_poll, time.perf_counter() + self.budget
                        )
                finally:
                    self._in_tick = False
                    loop._guest_leave_tick()
                self._after_tick(tok, stopped)
        except BaseException as exc:
            self._recover(tok, exc)
        if self._to_host is not None:
            self._raise_to_host()

    def _raise_to_host(self) -> None:
        """What the owner's ending let out leaves into the host loop (see _owner_ending)."""
        to_host = self._to_host
        if to_host is not None:
            self._to_host = None
            raise to_host

    def _take_result(self) -> Any:
        """Host thread: what the backend's last wait returned, if no tick took it yet."""
        ch = self._ch
        result = ch.result
        if result is None:
            return None
        ch.result = None
        try:
            return result.unwrap()
        except BaseException as exc:
            raise InternalError("the backend thread's I/O wait failed") from exc

    def _recover(self, tok: _Token, exc: BaseException) -> None:
        """Host thread: a tick raised ``exc``; end the run accordingly (see class doc).

        First the hand-over's own state is made whole again, wherever the tick
        stopped: this tick is no longer in flight (``posted``), and a wait it
        was handing to the backend when it stopped is taken back (the backend
        takes ``wait_call`` under the lock; a ``go`` it may already have got
        finds none and parks again). Then the run is ended, and deciding again
        puts something in flight to carry that.
        """
        try:
            self._in_tick = False
            ch = self._ch
            with ch.lock:
                ch.posted = False
                if ch.state is WAITING and ch.wait_call is not None:
                    ch.state = IDLE
                    ch.wait_call = ch.token = None
            loop = self._loop
            loop._guest_leave_tick()
            if loop._guest_took_escape(exc):
                # What a callback let out ends the run as run_forever would, and
                # so does a Ctrl+C wherever it hit. The owner begins the ending;
                # deciding again puts something in flight to carry it.
                self._owner.on_callback_raised(exc)
                del exc
                if self._finished:
                    # It hit _finalize between its flag and the owner's
                    # ending: nothing is left in flight to carry the ending,
                    # so it is finished here (the owner delivers once).
                    self._finalize()
                else:
                    self._after_tick(tok, False)
            else:
                self._fatal(exc)
        except BaseException as exc2:
            self._fatal(exc2)

    def _after_tick(self, tok: _Token, stopped: bool) -> None:
        """Host thread, outside the tick: decide who runs next.

        Another tick is posted when work is left (no thread hop) or when the
        backend returned while this tick ran (its events are waiting: a tick
        posted by a worker may have started before the backend returned, and
        the backend does not post while ``posted`` is set). Otherwise a parked
        backend is given the wait, or a waiting one is woken if its wait no
        longer fits (or the run is finishing).
        """
        if self._finished:
            return
        failure = self._failure
        if failure is not None:
            self._failure = None
            raise failure  # _recover ends the run with it
        if self.interrupt_pending:
            # Deferred during this tick: deliver it now, as a callback raising it.
            self.interrupt_pending = False
            self._owner.on_callback_raised(KeyboardInterrupt())
        if stopped:
            self._owner.on_loop_stopped()
            if self._finished:
                return
        if self._deferred:
            self._deferred = False  # ``posted`` is still True: this is the owed tick
            self._post_local(tok.tick)
            return
        ch = self._ch
        loop = self._loop
        finishing = self._finish_requested
        want_tick = self.interrupt_pending or (not finishing and loop._guest_has_work())
        with ch.lock:
            if ch.posted:
                return  # that tick will look again
            state = ch.state
            returned = state is RETURNED or ch.result is not None
            if want_tick or returned:
                # A swap: a worker sets ``posted`` without the lock, and on
                # 3.10 it may run at the jumps above (request_tick).
                owed, ch.posted = ch.posted, True
                if owed:
                    return  # a worker's tick is posted: it will look again
        fdw = self._fdw
        if want_tick or returned:
            self._post_local(tok.tick)
        elif state is WAITING:
            if fdw is None:
                if finishing or loop._guest_wait_is_stale(self._deadline):
                    self.host_wake()
            elif finishing:
                fdw.disarm(self)
                self._finalize()
            elif loop._guest_wait_is_stale(self._deadline):
                self._arm(fdw, tok)
        elif finishing:
            if fdw is not None:
                fdw.disarm(self)  # the watch stays between wake-ups (fd_watch.py)
            self._finalize()
        elif fdw is not None:
            self._arm(fdw, tok)
        else:
            # IDLE: only this thread moves the state away from IDLE.
            # The deadline is on the loop's own clock, as its timers
            # (host_timer_added and _guest_wait_is_stale compare).
            deadline, call = loop._guest_wait_plan()
            if not self._backend.ensure_thread(f"asyncio-guest backend for {loop!r}"):
                # The interpreter is exiting and refuses the thread. The host
                # loop runs on a daemon thread that the exit stops where it
                # stands, as it stops a plain asyncio.run mid-wait: the run
                # stalls without a word. Its token is kept, or its death
                # would report the run abandoned.
                self._exit_stall = tok
                return
            # From here on, host_wake writes one byte for this wait. (A byte
            # written earlier, while this thread owned the poll, was read by
            # the tick's own poll or makes this wait return at once.)
            self._wake_sent = False
            self._deadline = deadline
            with ch.lock:
                if ch.posted:
                    return  # a worker posted a tick meanwhile; it keeps the poll
                if ch.failed is not None:
                    raise InternalError("the backend thread failed") from ch.failed
                ch.wait_call = call
                ch.token = tok
                ch.state = WAITING
                ch.go.release()  # last: see _recover for a hand-over cut short

    def _arm(self, fdw: FdWaits, tok: _Token) -> None:
        """Host thread, nothing to run: the host's watch and timer own the wake-up."""
        timeout, deadline = self._loop._guest_wait_timeout()
        # From here on, host_wake writes one byte for this wait (see above).
        self._wake_sent = False
        self._deadline = deadline
        fdw.arm(self, tok, timeout, deadline)

    # ----------------------------------------------------------- endings

    def _finalize(self) -> None:
        """Host thread, backend parked (IDLE): the run is over; the thread stays for the loop."""
        self._finished = True
        self._ch.post_threadsafe = no_host
        self._owner_ending(self._owner.finalize)

    def _owner_ending(self, end: Callable[[], object]) -> None:
        """Call the owner's ending; what it lets out (``done_callback`` raising)
        leaves the tick into the host loop, after the tick's own clean-up."""
        try:
            end()
        except BaseException as exc:
            self._to_host = exc

    def _fatal(self, exc: BaseException) -> None:
        """Host thread: our machinery failed; stop the backend and let the owner end the run.

        Also when the engine is finished already: the failure may have hit the
        normal ending itself, and the owner's ending is idempotent (it reports
        once).
        """
        if not isinstance(exc, InternalError):
            wrapped = InternalError(f"asyncio-guest machinery failed: {exc!r}")
            wrapped.__cause__ = exc
            exc = wrapped
        try:
            self.stop()  # also when finished: the host's watch may be left
        except BaseException as stop_exc:
            exc.__context__ = stop_exc
        self._owner_ending(lambda: self._owner.on_fatal(exc))

    def _abandoned(self) -> None:
        """The last reference to the run's token died: the host dropped a tick."""
        if self._finished:
            return
        self._finished = True
        try:
            warnings.warn(
                "asyncio-guest run was abandoned: the host dropped a callback it was "
                "handed (run_sync_soon_*) without running it, so the guest loop can "
                "never finish; tasks are left pending",
                RuntimeWarning,
                stacklevel=1,
            )
            self._backend.release_abandoned()
            self._owner.on_abandoned()
        except Exception:  # __del__ context (maybe interpreter shutdown): never raise
            pass
