"""Guest event loop classes: one asyncio iteration split into timeout, wait, process.

``BaseEventLoop._run_once`` computes a timeout, blocks in the selector, then
processes I/O, moves due timers and runs the ready callbacks, all in one call.
The guest loop offers the same steps separately so the ``Engine`` can run the
blocking wait in the backend thread and everything else on the host thread:

* ``_guest_run`` runs iterations on the host within a time budget, and may
  stop *between two callbacks* of a batch: the rest stays at the front of
  ``_ready``, in order, and ``_guest.batch`` remembers how many of them still
  belong to the current iteration, so the next tick finishes that batch before
  it polls again, exactly as ``_run_once`` would;
* ``_guest_wait_plan`` gives the backend its blocking call (with the timeout)
  and the engine the wait's deadline;
* the overrides of ``call_soon``/``call_at``/``stop``/reader-writer registration
  wake the backend when *host code outside a tick* adds work. Inside a tick
  they cost one attribute test.

Thread rule: everything here runs on the host thread, except
``call_soon_threadsafe`` (any thread) and the blocking call returned by
``_guest_wait_plan`` (backend thread).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import os
import signal
import sys
import threading
import time
import weakref
from asyncio import base_events, events, proactor_events
from collections.abc import Callable
from contextvars import Context
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from . import PACKAGE_DIR
from . import linger as _linger
from .backend import Backend
from .iocp_wait import IocpIO, Taken
from .linger import Linger
from .selector_wait import EpollIO, KqueueIO, SelectorIO, io_for
from .self_hosted import run_forever_self_hosted
from .worker_wake import WorkerWake

if TYPE_CHECKING:
    from .handover import Engine
    from .self_hosted import SelfHostedRuns

logger = logging.getLogger("asyncio_guest")
_MIN_SCHEDULED = getattr(base_events, "_MIN_SCHEDULED_TIMER_HANDLES", 100)
_MIN_CANCELLED_FRACTION = getattr(base_events, "_MIN_CANCELLED_TIMER_HANDLES_FRACTION", 0.5)
_MAX_TIMEOUT = getattr(base_events, "MAXIMUM_SELECT_TIMEOUT", 24 * 3600)
_format_handle: Callable[[Any], str] = getattr(base_events, "_format_handle", repr)
_BaseProactorEventLoop = proactor_events.BaseProactorEventLoop
# 3.14+: what call_soon_threadsafe returns (its cancel() takes a lock).
_ThreadSafeHandle: Callable[..., asyncio.Handle] | None = getattr(
    events, "_ThreadSafeHandle", None
)


_NOT_SET: Any = object()  # no sniffio name saved (None is a name's value)


class WaitStrategy(Protocol):
    """How one loop's I/O wait is split: ``SelectorIO`` and its kin, ``IocpIO``.

    ``blocking_call`` (host) builds the call the backend thread makes; its raw
    result goes back to the host, which ``decode``s it into what the loop's
    ``_process_events`` takes. ``poll_raw`` is the host's own zero-timeout poll,
    only while the backend is parked.
    """

    kernel_tracks_registrations: bool

    def blocking_call(self, timeout: float | None) -> Callable[[], Any]: ...
    def decode(self, raw: Any) -> Any: ...
    def poll_raw(self) -> Any: ...


class GuestLoopState:
    """A guest loop's own state: one object per loop, made at its first run.

    Kept off the loop's ``__dict__`` on purpose. CPython 3.11+ keeps the first
    29 attributes of a class's instances inline, found at an index cached in
    the bytecode; a stdlib loop has 26 or 27 of its own, and with ours beside
    them every attribute lookup of the loop's code (asyncio's ``call_soon``,
    ``_run_once``, ours) went through a dict instead: ``call_soon`` 18% slower
    on 3.13, 9% on 3.15. The loop carries two attributes of ours
    (``_guest_outside_tick``, read by every ``call_soon``, and ``_guest``).

    Host thread only, except ``engine`` (read by ``call_soon_threadsafe`` on
    any thread; written by the host thread only between runs).
    """

    __slots__ = (
        "backend",
        "batch",
        "changed_fds",
        "engine",
        "escaped",
        "host_handlers",
        "host_library",
        "host_owns_wakeup",
        "host_wakeup_fd",
        "io",
        "iocp_io",
        "keep_wakeup_fd",
        "linger",
        "pending_raw",
        "regs_dirty",
        "selector_io",
        "self_host",
        "waker",
        "watch_regs",
        "worker_wake",
    )

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.backend: Backend | None = None  # the loop's backend thread, kept between runs
        self.self_host: SelfHostedRuns | None = None  # run_forever's host and engine, kept
        self.io: WaitStrategy | None = None
        self.selector_io: SelectorIO | None = None  # made at the first run, kept
        self.iocp_io: IocpIO | None = None  # made at the first run, kept (holds packets)
        self.waker: Callable[[], object] = _no_wake  # see _guest_attach
        self.watch_regs = False  # registrations need a backend wake (poll/select)
        self.regs_dirty = False
        self.batch = 0  # callbacks at the head of _ready still in the current iteration
        self.pending_raw: Any = None  # backend events held until the batch is done
        # The fds whose registration changed since the wait in flight began
        # (see _guest_drop_stale): emptied when a wait is planned or a tick polls.
        self.changed_fds: set[int] = set()
        self.linger: Linger | None = None  # linger.py; made with selector_io, kept
        self.escaped: BaseException | None = None  # what a callback let escape
        self.keep_wakeup_fd: int | None = None  # our self-pipe fd while we own set_wakeup_fd
        self.host_library: Any = _NOT_SET  # sniffio's name for the thread, put back likewise
        self.host_owns_wakeup = False  # host_uses_signal_set_wakeup_fd=True
        # The host's wakeup fd and Python-level handlers that our signal
        # handlers displaced, learnt in add_signal_handler while the host owns
        # set_wakeup_fd and put back on removal. Kept past the run's detach:
        # close() removes what the guest left behind after it.
        self.host_wakeup_fd: int | None = None
        self.host_handlers: dict[int, Any] = {}
        # Made at the first zero-thread run on a worker_wakes_by_fd host, kept
        # until close() (worker_wake.py: a worker may write it at any time).
        self.worker_wake: WorkerWake | None = None


def _no_wake() -> None:
    pass


class _DetachedState(GuestLoopState):
    """The state every guest loop reads until its first run: read-only."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a guest loop's state must be made before it is written ({name})")


_DETACHED: GuestLoopState = GuestLoopState()
_DETACHED.__class__ = _DetachedState


_create_task = base_events.BaseEventLoop.create_task  # every stdlib loop class's


def _create_task_seen_as_asyncio(loop: Any, coro: Any, **kwargs: Any) -> Any:
    """A guest loop's ``create_task``.

    An eager task (3.12+: an eager task factory, or 3.14's ``eager_start=True``)
    runs its first step inside this call. Inside a tick that is the plain call;
    host code calling it outside ticks gets ``_create_task_from_host_code``.
    BaseEventLoop's is called directly, with no ``*args``: ``super()`` and
    forwarded positional arguments made each call 0.3 us slower (20%), this way
    it is 0.06-0.15 us.
    """
    if loop._guest_outside_tick:
        # (Not inline: host code's calls only, and the frames below are
        # forgotten from the task's creation stack by name.)
        task = _create_task_from_host_code(loop, coro, kwargs)
    else:
        task = _create_task(loop, coro, **kwargs)
    if loop._debug:
        _forget_own_frames(task)
    return task


def _create_task_from_host_code(loop: Any, coro: Any, kwargs: dict[str, Any]) -> Any:
    """``create_task`` called by host code: an eager first step runs as a tick's
    callbacks do (``Engine.call_as_loop_code``), and sees asyncio as they do
    (``_guest_enter_tick``): a host that names itself to sniffio for its whole
    run (Trio) would otherwise be named to the task's code (anyio: "Task got
    bad yield")."""
    engine = loop._guest.engine
    sniffio = sys.modules.get("sniffio")
    if sniffio is not None:
        names = sniffio.thread_local
        host_library = names.name
        if host_library is not None and host_library != "asyncio":
            names.name = "asyncio"
            try:
                return engine.call_as_loop_code(_create_task, loop, coro, **kwargs)
            finally:
                names.name = host_library
    return engine.call_as_loop_code(_create_task, loop, coro, **kwargs)


_OWN_CREATE_TASK_FRAMES = frozenset(
    {"_create_task_seen_as_asyncio", "_create_task_from_host_code", "call_as_loop_code"}
)


def _forget_own_frames(task: Any) -> None:
    """Debug mode: take our frames out of where ``task`` was created (its repr's
    "created at", the "never retrieved" report): the caller's line stays last, as
    ``BaseEventLoop.create_task`` leaves it by dropping its own."""
    stack = getattr(task, "_source_traceback", None)
    if stack:
        stack[:] = [
            entry
            for entry in stack
            if not (
                entry.name in _OWN_CREATE_TASK_FRAMES
                and os.path.dirname(os.path.dirname(entry.filename)) == PACKAGE_DIR
            )
        ]


class GuestLoopMixin:
    """Adds guest-mode driving to a selector event loop class.

    The two attributes below are class-level defaults so that a loop whose
    class is swapped to a guest class (see ``as_guest_loop``) behaves exactly
    like the plain loop until an ``Engine`` attaches to it; everything else
    of ours is in ``_guest`` (``GuestLoopState``: why it is not here).
    """

    _guest: GuestLoopState = _DETACHED  # this loop's own from its first run on
    _guest_outside_tick = False  # an engine is attached and no tick is running

    if TYPE_CHECKING:
        _ready: Any
        _scheduled: list[asyncio.TimerHandle]
        _stopping: bool
        _debug: bool
        _clock_resolution: float
        _timer_cancelled_count: int
        _current_handle: Any
        _selector: Any
        _signal_handlers: dict[int, Any]
        slow_callback_duration: float

        def time(self) -> float: ...
        def _process_events(self, event_list: Any) -> None: ...
        def _write_to_self(self) -> None: ...
        def _call_soon(self, callback: Any, args: Any, context: Any) -> asyncio.Handle: ...
        def _check_closed(self) -> None: ...
        def _check_callback(self, callback: Any, method: str) -> None: ...
        def _check_thread(self) -> None: ...
        def _handle_signal(self, sig: int) -> None: ...

    # ------------------------------------------------------ engine wiring

    def _guest_state(self) -> GuestLoopState:
        """Host thread: this loop's own state, made at the first call (its first run)."""
        state = self._guest
        if state is _DETACHED:
            state = self._guest = GuestLoopState()
        return state

    def _guest_backend_for_run(self) -> Backend:
        """Host thread: the backend a new run uses (made at the loop's first run)."""
        state = self._guest_state()
        backend = state.backend
        if backend is None:
            backend = state.backend = Backend()
            # Unclosed and collected: let a parked thread go (no reference to
            # the loop is kept by the finalizer or by the thread). Not at exit:
            # the loop may still run on a daemon thread, which would find its
            # backend gone (the thread is a daemon: it never holds up the exit).
            weakref.finalize(self, backend.release_parked).atexit = False
        return backend

    def close(self) -> None:
        """Also stop the backend thread and run_forever's host (after the last run).

        The thread is stopped before the stock ``close()`` releases the
        selector and the self-pipe, so that a wait still in progress (a run the
        host abandoned) can be woken.
        """
        if self.is_running():  # type: ignore[attr-defined]
            super().close()  # type: ignore[misc]  # raises: cannot close a running loop
            return
        try:
            backend = self._guest.backend
            if backend is not None:
                backend.close(self._guest_backend_waker())
                iocp = self._guest.iocp_io
                if iocp is not None and not self.is_closed():  # type: ignore[attr-defined]
                    # Dequeued by a thread a failed run stopped, never decoded
                    # (iocp_wait keeps them queued): the port will not deliver
                    # these completions again, and close() would wait for them.
                    iocp.decode(())
        finally:
            # Whatever the backend did (a failed join is tried again by the
            # next close()), the loop's own resources are released.
            hosted = self._guest.self_host
            if hosted is not None:
                self._guest.self_host = None
                hosted.close()
            super().close()  # type: ignore[misc]
            state = self._guest  # (read-only until a first run: then all are None)
            wake = state.worker_wake
            if wake is not None and self.is_closed():  # type: ignore[attr-defined]
                wake.close()  # after the stock close: workers get its RuntimeError first
            kept_io = state.iocp_io is not None or state.selector_io is not None
            if kept_io and self.is_closed():  # type: ignore[attr-defined]
                # The proactor (its _loop: this loop) is the loop's no more, as
                # the stock close() drops it: no cycle left through our state.
                state.iocp_io = state.selector_io = None

    def _guest_use_worker_wake(self, use: bool) -> WorkerWake | None:
        """Host thread, attached, at a run's start: does this run's host watch
        the loop's worker wake fd (worker_wake.py)? Returns it (made at the
        first use) or None; a linger then waits on it too (linger.py).

        A process out of fds (EMFILE) gets None: workers then post their
        ticks through the host's cross-thread primitive, slower but whole.
        """
        state = self._guest_state()
        wake = state.worker_wake
        if use and wake is None:
            try:
                wake = state.worker_wake = WorkerWake()
            except OSError as exc:
                logger.warning(
                    "asyncio-guest: could not make the worker wake fd (%r); worker "
                    "threads wake this run through the host's cross-thread post",
                    exc,
                )
                use = False
        linger = state.linger
        if linger is not None:
            linger.watch_wake(wake if use else None)
        return wake if use else None

    def _guest_attach(self, engine: Engine) -> None:
        """Host thread: start being driven by ``engine``."""
        state = self._guest_state()
        io: WaitStrategy
        if isinstance(self, _BaseProactorEventLoop):
            iocp = state.iocp_io
            if iocp is None:  # one per loop: it holds dequeued, undecoded packets
                iocp = state.iocp_io = IocpIO(self._proactor)  # type: ignore[attr-defined]
            io = iocp
            state.waker = iocp.wake
            # What ProactorEventLoop.run_forever does first: keep a read
            # pending on the self-socket (the signal wakeup fd writes there).
            if self._self_reading_future is None:  # type: ignore[attr-defined]
                self._call_soon(self._loop_self_reading, (), None)  # type: ignore[attr-defined]
        else:
            sel_io = state.selector_io
            if sel_io is None or sel_io.selector is not self._selector:
                sel_io = state.selector_io = io_for(self._selector)
                # Kept with the selector's strategy (a restart costs nothing).
                state.linger = _linger.for_fd(_pollable_fd(sel_io, self._selector))
            io = sel_io
            state.waker = self._write_to_self
        state.io = io
        state.engine = engine
        state.batch = 0
        state.pending_raw = None
        state.escaped = None
        state.regs_dirty = False
        state.watch_regs = not io.kernel_tracks_registrations
        self._guest_outside_tick = True

    def _guest_detach(self) -> None:
        state = self._guest_state()  # (also undoes an attach that never happened)
        state.engine = None
        state.waker = _no_wake  # (a bound method of the loop: a cycle through its state)
        self._guest_outside_tick = False
        state.watch_regs = False
        state.keep_wakeup_fd = None
        state.host_owns_wakeup = False
        io = state.io
        state.io = None
        held, state.pending_raw = state.pending_raw, None
        if isinstance(self, _BaseProactorEventLoop):
            if isinstance(io, IocpIO) and not self.is_closed():
                # The backend is gone. Finish the completions it dequeued that
                # no tick decoded (the port will not deliver them again), then
                # take our wake packets out of the port and finish what
                # completed meanwhile, as a last poll would. In that order:
                # poll_raw may drop unregistered operations the held packets name.
                io.decode(held or ())  # with what a decode cut short left
                io.decode(io.poll_raw())
            self._guest_stop_self_reading()

    def _guest_keep_raw(self, raw: Any) -> None:
        """Host thread, backend stopped: a wait result no tick took, for _guest_detach.

        Only a proactor's: a selector's readiness is seen again by the next poll.
        """
        if isinstance(self._guest.io, IocpIO):
            held = self._guest.pending_raw
            # Taken: the packets are queued in the IocpIO already (iocp_wait).
            self._guest.pending_raw = raw if held is None else Taken([*held, *raw])

    def _guest_stop_self_reading(self) -> None:
        """What ProactorEventLoop.run_forever does last (3.13's safer form).

        The self-socket read is cancelled; its OVERLAPPED is unregistered only if
        the I/O is complete, otherwise the proactor's close() waits for the
        cancellation's packet so the kernel never writes into freed memory.
        """
        loop: Any = self
        future = loop._self_reading_future
        if future is None:
            return
        ov = future._ov
        future.cancel()
        if ov is not None and not ov.pending:
            loop._proactor._unregister(ov)
        loop._self_reading_future = None

    def _guest_wake(self) -> None:
        """Host thread, signal-safe: end the backend's wait (chosen at attach)."""
        self._guest.waker()

    def _guest_backend_waker(self) -> Callable[[], object]:
        """Host thread: what ends a backend thread's wait, attached or not.

        A thread that an abnormal end stopped may be joined later (at the next
        run's start, or by ``close()``), after the loop detached, when
        ``_guest_wake`` does nothing. And on a proactor loop the stop's wake
        packet may have gone to the detach's last poll of the port
        (``_guest_detach``) instead of the thread: so the join's retry must
        post one that reaches it (under Wine a failed join's retry hung).
        """
        iocp = self._guest.iocp_io
        if iocp is not None:
            return iocp.wake
        return self._write_to_self

    def _guest_runs_loop_code(self) -> bool:
        """Host thread: is the code running now the loop's, as ``run_forever``
        would run it? Inside one of its ticks (a callback, or code it calls), or
        inside one of its tasks outside any tick: the first step of a task that
        an eager task factory runs where host code creates it (a widget
        callback's ``create_task``, the run's ``main``). Not host code between
        ticks, and nothing when no engine drives the loop."""
        if self._guest.engine is None:
            return False
        return not self._guest_outside_tick or asyncio.current_task(self) is not None  # type: ignore[arg-type]

    def _guest_enter_tick(self) -> None:
        """A tick begins: present this loop as the thread's async world.

        Its sniffio per-thread library name: a host that is itself an async
        library sets that name for its whole run (Trio sets ``"trio"``), and
        sniffio-based code in a guest task (anyio, httpx) must see asyncio. The
        host's name is put back when the tick ends, as Trio's own guest tick
        does with its name. (Async generators need nothing per tick: see
        ``asyncgen_hooks.py``.)
        """
        self._guest_outside_tick = False
        sniffio = sys.modules.get("sniffio")
        if sniffio is not None:
            names = sniffio.thread_local
            self._guest.host_library = names.name
            names.name = "asyncio"

    if not TYPE_CHECKING:  # typeshed's generic signature is kept for type checkers
        create_task = _create_task_seen_as_asyncio

    def _guest_leave_tick(self) -> None:
        """A tick ends (also after a failed one: idempotent)."""
        state = self._guest
        self._guest_outside_tick = state.engine is not None
        host_library = state.host_library
        if host_library is not _NOT_SET:
            state.host_library = _NOT_SET
            sys.modules["sniffio"].thread_local.name = host_library

    def _guest_took_escape(self, exc: BaseException) -> bool:
        """Host thread, a tick raised ``exc``: does it end the run as ``run_forever``
        would (a callback let it out, or it is a Ctrl+C or ``SystemExit`` wherever
        it hit), rather than being our machinery failing? Forgets the escape."""
        state = self._guest
        escaped, state.escaped = state.escaped, None
        return exc is escaped or isinstance(exc, (KeyboardInterrupt, SystemExit))

    # ----------------------------------------------- host-side wake hooks

    # call_soon/call_at repeat the stock bodies instead of calling super():
    # call_soon is the hottest method of any loop, and an extra Python frame
    # there costs more than the whole wake-up check.

    def call_soon(
        self, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> asyncio.Handle:
        self._check_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_soon")
        handle = self._call_soon(callback, args, context)
        if handle._source_traceback:  # type: ignore[attr-defined]
            del handle._source_traceback[-1]  # type: ignore[attr-defined]
        if self._guest_outside_tick:
            self._guest.engine.host_wake()  # type: ignore[union-attr]
        return handle

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        timer = asyncio.TimerHandle(when, callback, args, self, context)  # type: ignore[arg-type]
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True  # type: ignore[attr-defined]
        if self._guest_outside_tick:
            self._guest.engine.host_timer_added(when)  # type: ignore[union-attr]
        return timer

    def call_soon_threadsafe(
        self, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> asyncio.Handle:
        engine = self._guest.engine
        if engine is None:
            handle: asyncio.Handle = super().call_soon_threadsafe(  # type: ignore[misc]
                callback, *args, context=context
            )
            if handle._source_traceback:  # type: ignore[attr-defined]
                # The stock method trimmed its own frame; trim this one too, so
                # the traceback ends at the caller, as on a plain loop.
                del handle._source_traceback[-1]  # type: ignore[attr-defined]
            return handle
        self._check_closed()
        if self._debug:
            self._check_callback(callback, "call_soon_threadsafe")
        if _ThreadSafeHandle is None:
            handle = self._call_soon(callback, args, context)
        else:
            # 3.14+: a handle whose cancel() is safe from any thread.
            handle = _ThreadSafeHandle(callback, args, self, context)
            self._ready.append(handle)
            if handle._source_traceback:  # type: ignore[attr-defined]
                del handle._source_traceback[-1]  # type: ignore[attr-defined]
        if handle._source_traceback:  # type: ignore[attr-defined]
            del handle._source_traceback[-1]  # type: ignore[attr-defined]
        if threading.get_ident() == engine._host_ident:
            # Maybe from a signal handler: the lock-free wake only.
            engine.host_wake()
        else:
            wake = engine.worker_wake
            if wake is not None:
                # Zero-thread wait on a host whose fd watch a worker wakes
                # (FdWatcher.worker_wakes_by_fd): one write on the loop's
                # worker wake fd, which the host watches (worker_wake.py; none
                # while a tick is posted: it will see the callback). Inline, not
                # in the engine: on a worker whose caches went cold while it
                # slept, each call on the way to the write costs ~0.4 us of the
                # wake-up's latency (bench threadsafe).
                if not engine._ch.posted:
                    try:
                        wake()
                    except ValueError:
                        pass  # close() ran since _check_closed: as a closed self-pipe's send
            else:
                # One hop: the host runs the callback while the backend keeps waiting.
                engine.request_tick()
            backlog = len(self._ready)
            if backlog > _POSTER_BACKLOG:
                # Far behind: let the host thread run. Our post makes no system
                # call (plain asyncio's writes its self-pipe, which lets the GIL
                # go), so without this, posting threads would keep the GIL for
                # whole switch intervals and a flood would outrun the loop
                # without bound (tests/test_load.py, bench load_threadsafe).
                # Yielding the GIL is enough while the host gets a CPU; when it
                # does not (other processes on every core, seen in CI), the
                # posters take every turn, so further behind they pause.
                time.sleep(0 if backlog < _POSTER_BACKLOG * 3 // 2 else _POSTER_PAUSE)
        return handle

    def stop(self) -> None:
        super().stop()  # type: ignore[misc]
        if self._guest_outside_tick:
            self._guest.engine.host_wake()  # type: ignore[union-attr]

    def _guest_registration_changed(self, fd: Any) -> None:
        """Note that ``fd``'s reader or writer changed (see _guest_drop_stale);
        with poll/select, whose kernel keeps no registrations, also tell the
        backend, which waits on the fd set it was given."""
        state = self._guest
        state.changed_fds.add(fd if fd.__class__ is int else _fileobj_to_fd(fd))
        if state.watch_regs:
            state.regs_dirty = True
            if self._guest_outside_tick:
                state.engine.host_wake()  # type: ignore[union-attr]

    # Each Python gets exactly the signature it defines (3.15 added
    # ``context=``, which its transports pass). Extra arguments are forwarded
    # only when there are some: ``f(*args, **kwargs)`` builds a tuple and a
    # dict at every call: an add and a remove cost 0.66 us more than plain
    # asyncio's with it, 0.30 us without (3.13; 3.15: 0.60, 0.48), paid at
    # each full send buffer and each paused reader (bench stream).
    if sys.version_info >= (3, 15):

        def _add_reader(
            self,
            fd: Any,
            callback: Callable[..., object],
            *args: Any,
            context: Context | None = None,
        ) -> Any:
            if args:
                result = super()._add_reader(  # type: ignore[misc]
                    fd, callback, *args, context=context
                )
            else:
                result = super()._add_reader(fd, callback, context=context)  # type: ignore[misc]
            self._guest_registration_changed(fd)
            return result

        def _add_writer(
            self,
            fd: Any,
            callback: Callable[..., object],
            *args: Any,
            context: Context | None = None,
        ) -> Any:
            if args:
                result = super()._add_writer(  # type: ignore[misc]
                    fd, callback, *args, context=context
                )
            else:
                result = super()._add_writer(fd, callback, context=context)  # type: ignore[misc]
            self._guest_registration_changed(fd)
            return result

    else:

        def _add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> Any:
            if args:
                result = super()._add_reader(fd, callback, *args)  # type: ignore[misc]
            else:
                result = super()._add_reader(fd, callback)  # type: ignore[misc]
            self._guest_registration_changed(fd)
            return result

        def _add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> Any:
            if args:
                result = super()._add_writer(fd, callback, *args)  # type: ignore[misc]
            else:
                result = super()._add_writer(fd, callback)  # type: ignore[misc]
            self._guest_registration_changed(fd)
            return result

    def _remove_reader(self, fd: Any) -> bool:
        removed: bool = super()._remove_reader(fd)  # type: ignore[misc]
        if removed:
            self._guest_registration_changed(fd)
        return removed

    def _remove_writer(self, fd: Any) -> bool:
        removed: bool = super()._remove_writer(fd)  # type: ignore[misc]
        if removed:
            self._guest_registration_changed(fd)
        return removed

    def _guest_drop_stale(self, events: Any) -> Any:
        """Events of a wait that began before some registrations changed: drop
        those of the changed fds.

        The backend's result says "fd 7 is readable"; decoded, that becomes a
        call of fd 7's *current* reader. Had host code (or a tick while the
        backend waited) removed the reader and added another meanwhile, or
        closed the fd and registered a new one with its number, the new reader
        would be called for readiness reported before it existed (and a
        blocking read there hung the host). Plain asyncio never does that: a
        removed reader's handle is cancelled. The selector is level-triggered,
        so a changed fd that is still ready shows up at the next poll.
        """
        changed = self._guest.changed_fds
        return [event for event in events if event[0].fd not in changed]

    # ------------------------------------------------------------ signals

    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:
        state = self._guest
        if not state.host_owns_wakeup:
            super().add_signal_handler(sig, callback, *args)  # type: ignore[misc]
            return
        # The host owns set_wakeup_fd (and may own this signal: Trio's KI
        # handler): asyncio's version would take both over. Let asyncio
        # register the handler, give the fd back, and learn about the signal
        # from a Python-level handler instead (it runs on this, the main,
        # thread and only appends + writes the self-pipe). What the host had
        # is recorded once and put back by remove_signal_handler.
        before = signal.getsignal(sig)
        host_fd = signal.set_wakeup_fd(-1)
        try:
            super().add_signal_handler(sig, callback, *args)  # type: ignore[misc]
        finally:
            signal.set_wakeup_fd(host_fd)
        if state.host_wakeup_fd is None:
            state.host_wakeup_fd = host_fd
        state.host_handlers.setdefault(sig, before)
        signal.signal(sig, self._guest_dispatch_signal)

    def remove_signal_handler(self, sig: int) -> bool:
        # asyncio puts SIG_DFL (default_int_handler for SIGINT) in place, and
        # resets the wakeup fd to -1 with the last handler: keep the run's
        # choice, or give the host back what it had.
        removed: bool = super().remove_signal_handler(sig)  # type: ignore[misc]
        state = self._guest
        if removed and sig in state.host_handlers:
            signal.signal(sig, state.host_handlers.pop(sig))
        if not self._signal_handlers:
            if state.keep_wakeup_fd is not None:
                signal.set_wakeup_fd(state.keep_wakeup_fd, warn_on_full_buffer=False)
            elif state.host_wakeup_fd is not None:
                signal.set_wakeup_fd(state.host_wakeup_fd)
                state.host_wakeup_fd = None
        return removed

    def _guest_dispatch_signal(self, signum: int, frame: object) -> None:
        self._handle_signal(signum)  # lock-free: appends, then writes the self-pipe

    # ------------------------------------------------------- the iteration

    def _guest_drop_cancelled_timers(self) -> None:
        """Same policy as ``_run_once``: compact the heap or pop cancelled heads."""
        sched = self._scheduled
        count = len(sched)
        if (
            count > _MIN_SCHEDULED
            and self._timer_cancelled_count / count > _MIN_CANCELLED_FRACTION
        ):
            kept = []
            for handle in sched:
                if handle._cancelled:
                    handle._scheduled = False  # type: ignore[attr-defined]
                else:
                    kept.append(handle)
            heapq.heapify(kept)
            self._scheduled = kept
            self._timer_cancelled_count = 0
        else:
            while sched and sched[0]._cancelled:
                self._timer_cancelled_count -= 1
                handle = heapq.heappop(sched)
                handle._scheduled = False  # type: ignore[attr-defined]

    def _guest_begin(self, raw: Any, may_poll: bool) -> int:
        """Start an iteration: take I/O, move due timers; return the batch size.

        I/O comes from ``raw`` (the backend's result), else from events held
        back while a batch finished, else from a zero-timeout poll if the host
        owns the poll. Same order as ``_run_once``: I/O callbacks, then timers.
        """
        state = self._guest
        pending = state.pending_raw
        if pending is not None:
            state.pending_raw = None
            raw = pending
        io = state.io
        assert io is not None
        # A zero-timeout poll of ours with nothing ready stands where
        # _run_once would have waited for the first timer: no early slack.
        waited = raw is not None or not may_poll or bool(self._ready)
        changed = state.changed_fds
        if raw is None and may_poll:
            changed.clear()  # a poll now sees every change so far
            raw = io.poll_raw()
        if raw:
            events = io.decode(raw)
            if events and changed:
                events = self._guest_drop_stale(events)
            if events:
                self._process_events(events)
        if self._scheduled:
            self._guest_due_timers(waited)
        n = len(self._ready)
        state.batch = n
        return n

    def _guest_due_timers(self, waited: bool = True) -> None:
        """Move the due timers to ``_ready`` (``_run_once``'s timer step).

        ``waited``: this iteration's poll stands where ``_run_once``'s select
        returned (after a wait, or with callbacks ready); then a timer due
        within the clock's resolution runs now, as there. Otherwise (our own
        zero-timeout poll, nothing ready) only timers due by now run: the rest
        are waited for, as ``_run_once`` would (on Windows 3.10-3.12 the clock
        ticks every 15.6 ms: a ``sleep(0.005)`` loop ran without ever waiting).

        Runs at every iteration that has timers: an application nearly always
        has one pending far off (bench ``echo_timer``), so the common case is
        one clock read and one comparison. A cancelled timer in the heap is
        always counted in ``_timer_cancelled_count`` (``_timer_handle_cancelled``),
        so with the count at zero there is nothing to drop.
        """
        if self._timer_cancelled_count:
            self._guest_drop_cancelled_timers()
        sched = self._scheduled
        if not sched:
            return
        # Due before now + the clock's resolution, as _run_once's end_time;
        # strictly above now when the clock's values are so large that the
        # sum rounds away (3.14+: now + max(resolution, ulp(now))).
        now = self.time()
        end = now + self._clock_resolution if waited else now
        if end <= now:
            end = math.nextafter(now, math.inf)
        if sched[0]._when < end:  # type: ignore[attr-defined]
            ready = self._ready
            while sched and sched[0]._when < end:  # type: ignore[attr-defined]
                handle = heapq.heappop(sched)
                handle._scheduled = False  # type: ignore[attr-defined]
                ready.append(handle)

    def _guest_run_slice(self, raw: Any, may_poll: bool, deadline: float) -> bool:
        """Host thread: run iterations until ``deadline`` or until nothing is ready.

        ``raw`` is the backend's wait result, if this tick has one; ``may_poll``
        says whether the host owns the poll (backend parked), so it may poll
        with a zero timeout between iterations. Returns True when an iteration
        ended with ``stop()`` requested.
        """
        state = self._guest
        if raw is not None and state.batch:
            state.pending_raw = raw  # finish the current batch first
            raw = None
        n = state.batch
        ready = self._ready
        if not n:
            if raw is None and state.pending_raw is None and (ready or not may_poll):
                # Callbacks are ready already, or I/O is not ours to take: a
                # worker's call_soon_threadsafe (its tick while the wait is handed
                # over, or, on a host whose fd watch a worker wakes, the watch's
                # tick). They run first, and the poll follows the batch: the
                # order of callbacks is _run_once's (these were queued before any
                # I/O the poll would add), and the callback does not wait for an
                # epoll_wait and a self-pipe read (bench threadsafe). Inline, as
                # _guest_begin's other case (see Engine._tick: no call to spare).
                if self._scheduled:
                    self._guest_due_timers()
                n = state.batch = len(ready)
            else:
                n = self._guest_begin(raw, may_poll)
            if not n and not self._stopping:
                return False
        clock = time.perf_counter  # the tick budget's clock (see Engine._tick)
        debug = self._debug
        # What the next iteration's poll needs, looked up after the first batch
        # (off the path from a wake-up to its callback).
        poll_raw: Callable[[], Any] | None = None
        decode: Callable[[Any], Any] | None = None
        linger: Linger | None = None
        changed = state.changed_fds  # one set for the loop's life
        # Every exit stores the batch left (_guest.batch) and drops ``handle``:
        # _run_once's "handle = None  # Needed to break cycles when an exception
        # occurs". A failed Task's traceback reaches this frame through f_back
        # (3.12+), so a handle kept here would keep that Task alive in a cycle.
        # (No try/finally around the batch: this loop is the hottest code.)
        handle = None
        while True:
            try:
                while n:
                    n -= 1
                    handle = ready.popleft()
                    if handle._cancelled:
                        continue
                    if debug:
                        self._guest_run_debug(handle)
                    else:
                        handle._run()
                    handle = None  # run: nothing in hand (see the except clause)
                    if n and clock() >= deadline:
                        state.batch = n
                        return False
            except BaseException as exc:
            # From a callback (only KeyboardInterrupt/SystemExit get out of
                # Handle._run) the traceback goes on into Handle._run; raised
                # in this frame itself, it is our own failure, and a handle
                # taken but not run yet goes back to the front, in order.
                tb = exc.__traceback__
                from_callback = (
                    tb is not None
                    and tb.tb_next is not None
                    and tb.tb_next.tb_frame.f_code in _CALLBACK_CODES
                )
                if handle is not None and not from_callback:
                    ready.appendleft(handle)
                    n += 1
                state.batch = n
                handle = None
                if from_callback:
                    state.escaped = exc
                raise
            # Also at each batch's end: the last callback's handle may hold
            # big buffers (a 256 KiB read) that must be freed before the next
            # poll allocates again, or the allocator falls back to mmap/munmap.
            handle = None
            if self._stopping:
                state.batch = 0
                return True
            # Next iteration; the common case inline (see _guest_begin). It is
            # begun even when the budget is spent: its zero-timeout poll is what
            # tells "I/O ready, post the next tick here" from "nothing to do, hand
            # the wait to the backend". Yielding before it would hand a wait that
            # is already satisfied to the backend thread: two thread hand-offs
            # for an event we could have read in a microsecond.
            if state.pending_raw is None and may_poll:
                if poll_raw is None:
                    io = state.io
                    assert io is not None
                    poll_raw = io.poll_raw
                    decode = io.decode
                    linger = state.linger
                waited = bool(ready)  # see _guest_begin
                if changed:
                    changed.clear()  # (see _guest_begin)
                events = poll_raw()
                if (
                    not events
                    and linger is not None
                    and not ready
                    and linger.wait(deadline - clock(), self._guest_next_timer_in())
                ):
                    events = poll_raw()  # linger.py: the reply came within the tick
                if events:
                    assert decode is not None  # set with poll_raw
                    events = decode(events)
                    if events:
                        self._process_events(events)
                if self._scheduled:
                    self._guest_due_timers(waited)
                n = len(ready)
            else:
                n = self._guest_begin(None, may_poll)
            if not n and not self._stopping:
                state.batch = 0
                return False
            if clock() >= deadline:
                state.batch = n  # the next tick runs this batch first
                return False

    def _guest_run_debug(self, handle: Any) -> None:
        try:
            self._current_handle = handle
            t0 = self.time()
            handle._run()
            dt = self.time() - t0
            if dt >= self.slow_callback_duration:
                # Looked up at call time, as _run_once does (tests patch it).
                base_events.logger.warning(  # type: ignore[attr-defined]
                    "Executing %s took %.3f seconds", _format_handle(handle), dt
                )
        finally:
            self._current_handle = None
            handle = None  # see _guest_run: tracebacks keep this frame alive

    def _guest_has_work(self) -> bool:
        """Host thread: is there something to run without waiting for I/O?"""
        state = self._guest
        if self._ready or state.batch or self._stopping:
            return True
        if state.pending_raw is not None:
            return True
        # A timer is work once it is due, not within the clock's resolution of
        # it: that slack is for after a wait (_guest_due_timers), as in
        # _run_once. Counted here, a timer 5 ms away on a 15.6 ms clock
        # (Windows, 3.10-3.12) ran at once, never waited for: a busy loop.
        sched = self._scheduled
        return bool(sched) and sched[0]._when <= self.time()  # type: ignore[attr-defined]

    def _guest_wait_plan(self) -> tuple[float, Callable[[], Any]]:
        """Host thread, backend parked: the wait's deadline (as
        ``_guest_wait_timeout``) and the blocking call, with its timeout, for
        the backend."""
        timeout, deadline = self._guest_wait_timeout()
        io = self._guest.io
        assert io is not None
        return deadline, io.blocking_call(timeout)

    def _guest_wait_timeout(self) -> tuple[float | None, float]:
        """Host thread, nothing armed: how long the next wait may last (None: no
        timer), and the loop time at which it ends (inf: never).

        The deadline is the first timer's own ``_when`` when that timer ends the
        wait. ``_guest_wait_is_stale`` compares the first timer with it later on;
        a deadline worked back from the timeout (``time() + timeout``) would lie
        after that timer by the time between two clock reads, the same timer
        would look earlier than the wait, and every worker's tick would end the
        wait for nothing: a backend thread woken, or the host's watch armed
        again (seen: one backend round trip per ``call_soon_threadsafe`` while
        any timer was pending).
        """
        self._guest_drop_cancelled_timers()
        state = self._guest
        state.regs_dirty = False
        state.changed_fds.clear()  # the wait planned now sees every change so far
        if self._ready or self._stopping:
            return 0.0, self.time()
        sched = self._scheduled
        if not sched:
            return None, math.inf
        when: float = sched[0]._when  # type: ignore[attr-defined]
        now = self.time()
        timeout = when - now
        if timeout > _MAX_TIMEOUT:
            return _MAX_TIMEOUT, now + _MAX_TIMEOUT
        return (timeout if timeout > 0 else 0.0), when

    def _guest_next_timer_in(self) -> float | None:
        """Host thread: seconds until the loop's first timer (None without timers)."""
        sched = self._scheduled
        if not sched:
            return None
        return sched[0]._when - self.time()  # type: ignore[attr-defined,no-any-return]

    def _guest_pollable_fd(self) -> int | None:
        """Host thread, attached: the one fd that is readable when a poll has events."""
        return _pollable_fd(self._guest.io, getattr(self, "_selector", None))

    def _guest_wait_is_stale(self, deadline: float) -> bool:
        """Host thread: does the backend's current wait miss something we added?"""
        if self._guest.regs_dirty:
            return True
        sched = self._scheduled
        while sched and sched[0]._cancelled:
            self._timer_cancelled_count -= 1
            heapq.heappop(sched)._scheduled = False  # type: ignore[attr-defined]
        return bool(sched) and sched[0]._when < deadline  # type: ignore[attr-defined]

    # ----------------------------------------------------------- running

    def _guest_run_forever_stock(self) -> None:
        """Host thread, detached (no engine): the wrapped class's own ``run_forever``.

        Finishes a shutdown after our machinery failed. Not
        ``BaseEventLoop.run_forever``: a proactor's keeps a read pending on its
        self-socket, and without it a worker's ``call_soon_threadsafe`` (the
        default executor's shutdown, for one) could never end a wait on the port.
        """
        cast(Any, super()).run_forever()

    def run_forever(self) -> None:
        """Run until ``stop()``, driven through guest mode by a reference host.

        This is what makes unchanged asyncio code (``run_until_complete``,
        ``asyncio.run`` with this loop) exercise the real backend thread.
        """
        run_forever_self_hosted(self)


def _fileobj_to_fd(fileobj: Any) -> int:
    """The fd of what ``add_reader`` and friends took (checked there already)."""
    return int(fileobj.fileno())


def engine_of(loop: object) -> Engine | None:
    """The engine driving ``loop`` in a guest run now (None: a plain loop, or no run)."""
    state: GuestLoopState | None = getattr(loop, "_guest", None)
    return None if state is None else state.engine


def _pollable_fd(io: WaitStrategy | None, selector: Any) -> int | None:
    """The one fd of ``selector`` that is readable when a poll of it has events.

    Only epoll and kqueue selectors of exactly the stdlib classes (the kernel
    keeps their registrations, so the fd tells everything); poll and select
    selectors and the IOCP proactor have none (``fd_watch.py``).
    """
    if isinstance(io, (EpollIO, KqueueIO)):
        fd: int = selector.fileno()
        return fd
    return None


# Where a callback's exception comes from, seen from _guest_run_slice.
_CALLBACK_CODES = frozenset(
    vars(cls)["_run"].__code__
    for cls in (events.Handle, getattr(events, "_ThreadSafeHandle", None))
    if cls is not None and "_run" in vars(cls)
) | {GuestLoopMixin._guest_run_debug.__code__}

_POSTER_BACKLOG = 50_000
"""Ready callbacks beyond which a worker's ``call_soon_threadsafe`` yields the
CPU once: about 14 MB of queued handles, far more than any tick runs."""
_POSTER_PAUSE = 0.001
"""Seconds a worker's ``call_soon_threadsafe`` pauses once the backlog is half
again beyond ``_POSTER_BACKLOG``: the host thread then runs even without a CPU
of its own."""

_L = TypeVar("_L", bound=asyncio.AbstractEventLoop)
_guest_classes: dict[type, type] = {}


class GuestSelectorEventLoop(GuestLoopMixin, asyncio.SelectorEventLoop):  # type: ignore[misc]
    """``asyncio.SelectorEventLoop`` that can be driven as a guest of another loop."""


_guest_classes[asyncio.SelectorEventLoop] = GuestSelectorEventLoop


def guest_class_for(cls: type) -> type:
    """The guest subclass of a selector loop class (made once per class)."""
    if issubclass(cls, GuestLoopMixin):
        return cls
    if not issubclass(
        cls, (asyncio.selector_events.BaseSelectorEventLoop, _BaseProactorEventLoop)
    ):
        raise TypeError(
            f"asyncio-guest drives selector and proactor asyncio loops; {cls.__qualname__} "
            "is neither (loop_factory must return an asyncio.SelectorEventLoop, an "
            "asyncio.ProactorEventLoop on Windows, or a subclass)"
        )
    guest = _guest_classes.get(cls)
    if guest is None:
        guest = type(f"Guest{cls.__name__.lstrip('_')}", (GuestLoopMixin, cls), {
            "__doc__": f"{cls.__qualname__} driven as a guest (made by asyncio-guest).",
            "__module__": __name__,
        })
        _guest_classes[cls] = guest
    return guest


def as_guest_loop(loop: _L) -> _L:
    """Give ``loop`` (and only it) the guest subclass of its class.

    The subclass adds methods only, so instance layout is unchanged; no
    standard-library class or other loop is touched.
    """
    if not isinstance(loop, GuestLoopMixin):
        loop.__class__ = guest_class_for(type(loop))
    return loop


if sys.platform == "win32":

    class GuestProactorEventLoop(GuestLoopMixin, asyncio.ProactorEventLoop):  # type: ignore[misc,name-defined,unused-ignore]
        """``asyncio.ProactorEventLoop`` (IOCP) that can be driven as a guest."""

    _guest_classes[asyncio.ProactorEventLoop] = GuestProactorEventLoop  # type: ignore[attr-defined,unused-ignore]


def default_loop_factory() -> asyncio.AbstractEventLoop:
    """A new guest loop of the platform's default kind.

    Windows: the proactor (IOCP) loop, as ``asyncio.new_event_loop()`` gives.
    Elsewhere: the selector loop with the platform's best selector.
    """
    if sys.platform == "win32":
        return GuestProactorEventLoop()  # type: ignore[name-defined,no-any-return,unused-ignore]
    return GuestSelectorEventLoop()
