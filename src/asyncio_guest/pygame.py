"""asyncio as the guest of a pygame (pygame-ce or pygame) frame loop.

In pygame the *program* owns the loop: there is no ``mainloop()`` to hand
callbacks to, only the program's ``while`` loop around ``pygame.event.get()``
(or ``pygame.event.wait()``), drawing and ``clock.tick(60)``. So the host is
one call the loop makes, ``host.pump()``: it runs the guest's pending work on
the loop's thread, within a time budget, and returns. Two patterns:

* **Frame loop** (a game, anything animating; the default,
  ``PygameHost()``): call ``host.pump()`` once per frame. Guest work gets at
  most ``budget`` seconds of each frame (default 4 ms of a 16.7 ms frame), so
  the frame time stays steady however busy asyncio is; what is left waits for
  the next frame. Nothing is posted to pygame's event queue. The backend
  thread waits for I/O and timers (while the frame loop draws or sleeps in
  ``clock.tick``) and queues the guest's tick for the next ``pump``. On Linux
  the zero-thread wait (``_core/fd_watch.py``) is there too, opt-in
  (``zero_thread=True`` or ``ASYNCIO_GUEST_WAIT=fd``): ``pump`` then polls the
  guest loop's epoll fd with a zero timeout and fires its timers itself. It
  measured no better and costs more idle (``_fd_watcher``), so it is opt-in.
* **Event-driven loop** (a tool, a menu, a board game that only redraws on
  input; ``PygameHost(doorbell=True)``): the loop blocks in
  ``pygame.event.wait()``, so something must wake it when the guest has work.
  The backend thread waits for I/O and timers; whenever guest work is queued
  while none is pending, one event of type ``host.event_type`` (the
  *doorbell*: by default the user event range's last type, marked as ours)
  is posted. The loop wakes, passes its events through ``host.handle(event)``
  (which drops our doorbells, and only those) and calls ``host.pump()``
  after each batch. A busy guest rings again after
  each pump, so input events queued meanwhile are handled between pumps.

The doorbell carries nothing: the callbacks live in our own deque
(``_core/wake_queue.py``), and the queue's pending flag lets at most one
doorbell be posted between two pumps (a pump clears it, so call ``pump``
after taking each batch of events, doorbells included). pygame's event
queue is bounded (SDL: 65535 events); a ``post`` that fails (``pygame.error: Event queue is full``)
loses nothing: the callback is queued already, the flag stays set (no retry storm from worker
threads), and the next ``pump`` runs it, which a loop whose queue is full
reaches at once (``event.wait()`` returns immediately). Failed posts are
counted in ``host.doorbell_failures``. A doorbell the program filtered out
(``set_blocked(None)`` and then ``set_allowed`` for its own types, a common
way to keep the queue small) is allowed again and posted once more: a loop
blocked in ``event.wait()`` has no other way to wake.

A doorbell already queued can be lost too: ``pygame.event.clear()`` (a scene
change flushing stale input) and ``set_blocked`` drop it, and the pending flag,
still set, would stop every later one: the guest (and Ctrl+C with it) would
stall until unrelated input woke the loop. So a helper thread watches each
doorbell until a pump answers it (``_DoorbellKeeper``): when none has for
0.1 s and no doorbell of this type is queued, it rings again, backing off to
1 s while the loop stays away. It sleeps while no doorbell is outstanding (no
cost to an idle program) and ends with the run.

Window close: ``host.handle(event)`` cancels the run's main task on a
``pygame.QUIT`` (``quit_cancels_main=True``). The run does not end there:
the guest shuts down as ``asyncio.run`` does (``main``'s ``finally`` blocks
run, leftover tasks are cancelled and awaited) while the program's loop keeps
pumping, and ``host.running`` turns False once it has: so loop on
``while host.running:``. ``run(main, frame_loop)`` is the one-call entry
around this; if ``frame_loop`` returns before the guest is done (the program
quit on its own), ``main`` is cancelled and the shutdown is pumped to its end.

Ctrl+C: SIGINT is left at Python's default by pygame, so the guest installs
``asyncio.run``'s behaviour (the first cancels ``main``, ``run`` then raises
``KeyboardInterrupt``) and points the signal wakeup fd at the guest loop's
self-pipe. A frame loop gets the interrupt when ``clock.tick`` returns; a loop
blocked in ``pygame.event.wait()`` (SDL does not return to Python for a
signal) is woken by the doorbell the backend thread rings when the wakeup fd
becomes readable.

``async_callback`` (``asyncio_guest.async_callback``) turns an async function
into the plain callable an event handler calls (``on KEYDOWN: fetch()``).

pygame-ce and pygame both install the ``pygame`` import package and cannot
share an environment; this module uses only what both have (``NUMEVENTS``,
``post``, ``get_blocked``/``set_allowed``, ``QUIT``). ``pygame.init()`` (or
``pygame.display.init()``) must have run before a doorbell host is made:
``post`` needs the video system.

Thread rule: ``run_sync_soon_threadsafe`` and ``_post`` from any thread (they
touch only the queue, whose lock orders the pending flag, and
``pygame.event.post``, which SDL makes thread-safe); everything else on the
thread that runs the frame loop (the *host thread*).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import select
import sys
import threading
import time
from asyncio import events
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import outcome

from ._core.errors import toolkit_missing

try:
    import pygame
except ImportError as _exc:
    raise toolkit_missing(
        "asyncio_guest.pygame",
        "pygame-ce or pygame",
        "pip install 'asyncio-guest[pygame-ce]' or 'asyncio-guest[pygame]'",
        _exc,
    ) from _exc

from ._core import fd_watch
from ._core.entry import run_beside, start_with_host
from ._core.guest_loop import engine_of
from ._core.handover import DEFAULT_TICK_BUDGET
from ._core.interrupts import run_host_loop
from ._core.lifecycle import closes_main_if_it_never_ran
from ._core.wake_queue import CoalescingQueue

__all__ = ["DEFAULT_FRAME_BUDGET", "PygameHost", "run", "start_guest_run"]

if TYPE_CHECKING:
    from ._core.main_args import MainArgs, Unpack

_T = TypeVar("_T")

DEFAULT_FRAME_BUDGET = 0.004
"""Seconds of guest work one ``pump()`` may run (4 ms: a quarter of a 60 fps frame).

Checked between callbacks (a pump's last guest tick gets what is left of it),
so a pump overruns it by about one asyncio callback.
"""

_CAN_POLL = hasattr(select, "poll")
_MIN_TICK = 0.0002  # the least a tick gets: it always runs what it polled
_doorbell_marks = itertools.count(1)  # one per host: handle() knows its own doorbells
_RERING_AFTER = 0.1  # s a doorbell may go unanswered before the keeper looks (_DoorbellKeeper)
_RERING_MAX = 1.0  # s between looks, at most, while the loop stays away


class _DoorbellKeeper:
    """Rings a doorbell again that the program's event-queue flush dropped.

    One thread per run of a doorbell host, started at its first doorbell.
    Thread rule: ``rung``, ``stop`` from any thread; the thread itself reads
    the host's pump count and the queue's pending flag (both written by others:
    a stale read costs one look more, or one doorbell more, which ``handle``
    drops) and rings through ``PygameHost._ring`` (``pygame.event.post`` and
    ``peek``, which SDL makes thread-safe). Between two looks it waits on an
    event, so a stop or a new doorbell reaches it at once.
    """

    def __init__(self, host: PygameHost) -> None:
        self._host = host
        self._rung = threading.Event()  # a doorbell was posted since the last look
        self._stopped = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name="asyncio_guest pygame doorbell keeper", daemon=True
        )

    def rung(self) -> None:
        self._rung.set()

    def stop(self) -> None:
        self._stopped.set()
        self._rung.set()

    def _run(self) -> None:
        host = self._host
        try:
            while True:
                self._rung.wait()  # idle: nothing outstanding, no cost
                if self._stopped.is_set():
                    return
                self._rung.clear()
                seen = host.pumps
                delay = _RERING_AFTER
                while not self._stopped.wait(delay):
                    if not host._queue.pending:
                        break  # answered: wait for the next doorbell
                    if host.pumps != seen:  # the loop pumps: it is not stuck
                        seen = host.pumps
                        delay = _RERING_AFTER
                        continue
                    if host._bell_posted and not pygame.event.peek(host.event_type, pump=False):
                        host._ring(rering=True)  # dropped by a flush (or taken, not yet pumped)
                    delay = min(delay * 2, _RERING_MAX)
                else:
                    return
        except pygame.error:
            return  # the video system is gone: no loop left to wake


class _Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False


class PygameHost:
    """Runs callbacks on the frame loop's thread, in ``pump()`` (see module doc).

    ``doorbell``: post an event of type ``event_type`` to wake a loop blocked
    in ``pygame.event.wait()`` (needs ``pygame.init()`` first). ``budget``:
    ``pump()``'s default budget. ``quit_cancels_main``: ``handle(QUIT)``
    cancels the main task of the run this host carries. ``zero_thread``
    (frame loop, Unix): no backend thread, ``pump`` polls the guest's selector
    (also with ``ASYNCIO_GUEST_WAIT=fd``; see ``_fd_watcher`` for why it is
    not the default).

    Thread rule: ``run_sync_soon_threadsafe`` from any thread; everything else
    on the host thread (the one that made the host). ``close()`` drops the
    queued callbacks, the fd watches and timers.
    """

    def __init__(
        self,
        *,
        doorbell: bool = False,
        event_type: int | None = None,
        budget: float = DEFAULT_FRAME_BUDGET,
        quit_cancels_main: bool = True,
        zero_thread: bool = False,
    ) -> None:
        if doorbell and not pygame.display.get_init():
            raise RuntimeError(
                "PygameHost(doorbell=True) needs pygame.init() (or pygame.display.init()) "
                "first: pygame.event.post needs the video system"
            )
        self.doorbell = doorbell
        self.zero_thread = zero_thread
        # The doorbell's type: the user range's last by default, away from
        # the USEREVENT + n a game hard-codes or gets from custom_type(); and
        # a marker, so that handle() takes only our doorbells of that type.
        self.event_type: int = event_type if event_type is not None else pygame.NUMEVENTS - 1
        self._doorbell_mark = next(_doorbell_marks)
        self.budget = budget
        self.quit_cancels_main = quit_cancels_main
        self.thread_id = threading.get_ident()
        # Who touches what: the counters, any thread that posts, under
        # _count_lock (a drain on the host thread may clear the queue's pending
        # flag while a worker is still inside its post, so two posts can
        # overlap); the queue, any thread, ordered by its own lock; everything
        # else, the host thread only. What orders the hand-over of a callback
        # to the host: the queue's append before its pending flag is read
        # (``_core/wake_queue.py``), and the pump draining after it.
        self._count_lock = threading.Lock()
        self.doorbell_posts = 0  # doorbells posted (for tests and diagnostics)
        self.doorbell_rerings = 0  # of those, rung again by the keeper (_DoorbellKeeper)
        self.doorbell_failures = 0  # posts that failed (queue full, blocked, video off)
        self.main_task: asyncio.Task[Any] | None = None  # set by the entries (host thread)
        self._cancelled_main: asyncio.Task[Any] | None = None  # the main task cancelled
        self._finished = False  # host thread: the run delivered its outcome
        self._closed = False
        self._queue = CoalescingQueue(self._post)
        self.pumps = 0  # pump() calls (host thread writes; the doorbell keeper reads)
        self._bell_posted = False  # the last doorbell went into pygame's queue (_count_lock)
        self._keeper: _DoorbellKeeper | None = None  # this run's, once it rang (_count_lock)
        # The zero-thread wait (frame loop, Unix): host thread only.
        self._watches: dict[int, Callable[[], object]] = {}
        self._poller: Any = None
        if sys.platform != "win32" and _CAN_POLL:
            self._poller = select.poll()
        self._timers: list[tuple[float, int, _Timer]] = []
        self._cancelled = 0  # cancelled entries still in _timers
        self._seq = itertools.count()

    # ----------------------------------------------------------- primitives

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Any thread: run ``fn()`` in a coming ``pump()`` (order kept); never blocks."""
        if self._closed:
            raise RuntimeError("this PygameHost is closed")
        self._queue.submit(fn)

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """Host thread only: the same (inside a pump, run by that pump if budget is left)."""
        if self._closed:
            raise RuntimeError("this PygameHost is closed")
        self._queue.submit_local(fn)

    def _post(self) -> None:
        """Any thread, at most once between two drains (the queue's pending flag).

        Rings the doorbell if there is one. Never raises: a failed post leaves
        the callback queued and the flag set, and the next ``pump`` runs it
        (module doc), which is what a frame loop does anyway.
        """
        if not self.doorbell:
            return
        if self._ring():
            with self._count_lock:
                keeper = self._keeper
                if keeper is None and not self._finished and not self._closed:
                    keeper = self._keeper = _DoorbellKeeper(self)
                    keeper.thread.start()
            if keeper is not None:
                keeper.rung()

    def _ring(self, *, rering: bool = False) -> bool:
        """Any thread: post one doorbell; whether it went into pygame's queue.

        ``rering``: the keeper rings again for callbacks no pump has answered
        (counted apart: it measures how long the loop stayed away, not the
        guest's wake-ups).
        """
        bell = pygame.event.Event(self.event_type, asyncio_guest_doorbell=self._doorbell_mark)
        try:
            ok = pygame.event.post(bell)
            if not ok and pygame.event.get_blocked(self.event_type):
                # The program blocked every type it does not handle itself
                # (set_blocked(None), then set_allowed its own): a loop in
                # event.wait() would never wake for the guest, nor for Ctrl+C.
                pygame.event.set_allowed(self.event_type)
                ok = pygame.event.post(bell)
        except pygame.error:
            ok = False
        with self._count_lock:
            # The last attempt's fate: a refused post (queue full) is not rung
            # again by the keeper, since a full queue wakes the loop by itself.
            self._bell_posted = bool(ok)
            if ok:
                self.doorbell_posts += 1
                self.doorbell_rerings += rering
            else:
                self.doorbell_failures += 1
        return bool(ok)

    # ------------------------------------------------------------- the pump

    def pump(self, budget: float | None = None) -> bool:
        """Host thread, from the frame loop: run guest work for up to ``budget`` s.

        Runs, until nothing is left or the budget is used: the queued
        callbacks (the guest's ticks, worker threads' ``call_soon_threadsafe``),
        and in the zero-thread wait the ticks for a readable selector and due
        timers. Returns whether work is left for the next pump. What a
        callback raises propagates (``KeyboardInterrupt`` included), after
        the callbacks behind it are made sure of a next pump.
        """
        self.pumps += 1
        queue = self._queue
        if not (len(queue) or queue.pending or self._watches or self._timers):
            return False  # an idle guest with the backend thread: the frame loop's cost
        if self._closed:
            return False
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("PygameHost.pump() must be called on the frame loop's thread")
        deadline = time.perf_counter() + (self.budget if budget is None else budget)
        # Each guest tick may run ``tick_budget`` (1 ms) of callbacks; the last
        # tick of a pump gets only what is left of the pump's budget, so a pump
        # overruns by at most one callback, not by a whole tick. (The engine
        # reads its ``budget`` at each tick's start; host thread only; put back
        # on the way out, also for a nested pump inside a callback.)
        engine = engine_of(events._get_running_loop())
        tick_budget = engine.budget if engine is not None else 0.0
        try:
            return self._pump_until(deadline, engine, tick_budget)
        finally:
            if engine is not None:
                engine.budget = tick_budget
            # The drains below leave the wake-up for work left over to the
            # pump's end: a drain-end doorbell that this pump's next drain
            # answers would only wake the loop for nothing.
            if not self._closed:
                self._queue.wake_if_queued()

    def _pump_until(self, deadline: float, engine: Any, tick_budget: float) -> bool:
        queue = self._queue
        while True:
            if engine is not None:
                left = deadline - time.perf_counter()
                engine.budget = min(tick_budget, max(left, _MIN_TICK))
            ran = False
            if self._timers and self._fire_due_timers():
                ran = True
            if self._watches and self._fire_ready_watches():
                ran = True
            if len(queue):
                queue.drain(wake_at_end=False)
                ran = True
            elif queue.pending:
                # A doorbell rung (by a drain, for a nested loop) for callbacks
                # that drain has run since: the bell is answered, clear the flag
                # or no wake-up would ever be posted again.
                queue.drain(wake_at_end=False)
            if not ran or self._closed:
                return self._has_work()
            if time.perf_counter() >= deadline:
                return self._has_work()

    def _has_work(self) -> bool:
        return bool(len(self._queue)) and not self._closed

    def handle(self, event: Any) -> bool:
        """Host thread: give every event here; True if it was ours (the doorbell).

        A ``pygame.QUIT`` cancels the run's main task (``quit_cancels_main``)
        and returns False: the program may react to it too, but should keep
        looping ``while host.running`` so the guest can shut down.
        """
        kind = event.type
        if kind == self.event_type and (
            getattr(event, "asyncio_guest_doorbell", None) == self._doorbell_mark
        ):
            return True
        if kind == pygame.QUIT and self.quit_cancels_main:
            self._cancel_main()
        return False

    def _cancel_main(self) -> None:
        """Cancel the run's main task once: a second cancel() (another QUIT,
        or ``run``'s frame loop returning after a QUIT) would interrupt the
        clean-up main does on the first."""
        task = self.main_task
        if task is not None and not task.done() and task is not self._cancelled_main:
            self._cancelled_main = task
            task.cancel()

    @property
    def running(self) -> bool:
        """Host thread: the run this host carries has not delivered its outcome yet."""
        return not self._finished

    @property
    def pending(self) -> int:
        """Callbacks queued for the next pump (for tests and diagnostics)."""
        return len(self._queue)

    # -------------------------------- waits for the zero-thread wait (frame loop)

    def watch_readable(self, fd: int, callback: Callable[[], object]) -> Callable[[], None]:
        """Host thread: call ``callback()`` from ``pump()`` while ``fd`` is readable.

        The frame loop's side of the zero-thread wait: each pump polls the
        watched fds with a zero timeout (level-triggered). Only a loop that
        pumps every frame may offer this (a loop blocked in ``event.wait()``
        would not see the fd): ``start_guest_run`` passes it only without a
        doorbell. Returns an idempotent ``unwatch``.
        """
        self._check_open()
        if sys.platform == "win32" or self._poller is None:
            raise RuntimeError("PygameHost.watch_readable needs select.poll (Unix)")
        if fd in self._watches:
            raise RuntimeError(f"fd {fd} is watched already")
        self._watches[fd] = callback
        self._poller.register(fd, select.POLLIN)

        def unwatch() -> None:
            if self._watches.get(fd) is callback:
                del self._watches[fd]
                self._poller.unregister(fd)

        return unwatch

    def call_later(self, delay: float, callback: Callable[[], object]) -> Callable[[], None]:
        """Host thread: call ``callback()`` from the first ``pump()`` after ``delay`` s.

        Never early (``time.monotonic``, asyncio's clock); as late as the next
        pump. Returns an idempotent ``cancel``.
        """
        self._check_open()
        timer = _Timer(time.monotonic() + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))

        def cancel() -> None:
            if not timer.cancelled:
                timer.cancelled = True
                self._cancelled += 1
                if self._cancelled > 64 and self._cancelled > len(self._timers) // 2:
                    # The engine re-arms (cancels and sets) its timer at every
                    # idle tick: drop the dead entries before they pile up.
                    self._timers = [e for e in self._timers if not e[2].cancelled]
                    heapq.heapify(self._timers)
                    self._cancelled = 0

        return cancel

    def _fire_due_timers(self) -> bool:
        now = time.monotonic()
        fired = False
        # self._timers each time round: a callback's cancel may rebuild the list.
        while self._timers and (self._timers[0][2].cancelled or self._timers[0][0] <= now):
            _, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                self._cancelled = max(0, self._cancelled - 1)
            else:
                timer.cancelled = True
                fired = True
                timer.callback()
        return fired

    def _fire_ready_watches(self) -> bool:
        fired = False
        for fd, _events in self._poller.poll(0):
            callback = self._watches.get(fd)
            if callback is not None:
                fired = True
                callback()
        return fired

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this PygameHost is closed")
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("this PygameHost method must be called on the frame loop's thread")

    # ------------------------------------------------------------- ending

    def _run_finished(self) -> None:
        self._finished = True
        self.main_task = None
        self._stop_keeper()

    def _stop_keeper(self) -> None:
        """Host thread: end this run's doorbell keeper, thread joined (no thread outlives a run).

        The join is at once: the keeper waits on an event that ``stop`` sets,
        or finishes one ``post``/``peek``.
        """
        with self._count_lock:
            keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stop()
            keeper.thread.join(1.0)

    def close(self) -> None:
        """Host thread: drop queued callbacks, fd watches and timers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop_keeper()
        self._queue.clear()
        if self._poller is not None:
            for fd in self._watches:
                self._poller.unregister(fd)
        self._watches.clear()
        self._timers.clear()
        self._cancelled = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> PygameHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _fd_watcher(host: PygameHost) -> PygameHost | None:
    """The zero-thread wait: only for a frame loop, and only when asked for.

    Asked for with ``PygameHost(zero_thread=True)`` or ``ASYNCIO_GUEST_WAIT=fd``;
    the default (``auto``) is the backend thread, which measured steadier
    here (``bench/bm_frames.py``, 60 fps, loopback at full speed, 4 ms
    budget, three runs on pygame-ce and pygame): 0.99-1.10x plain asyncio's
    MB/s against 0.90-1.26x (no better on the whole, more spread), frame-time
    p99 no worse, and less idle cost (an idle pump is a length check,
    0.6-1.1 ms per 3 s, against a ``poll`` system call per frame, 2.6-3.6 ms
    per 3 s: over the 2 ms idle bar). A loop blocked in ``event.wait()``
    (doorbell) cannot have it at all.
    """
    if host.doorbell or not _CAN_POLL or sys.platform == "win32":
        return None
    if host.zero_thread or fd_watch.requested() == "fd":
        return host
    return None


# ------------------------------------------------------------- entries


@closes_main_if_it_never_ran
def start_guest_run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    done_callback: Callable[[outcome.Outcome[_T]], object],
    host: PygameHost | None = None,
    doorbell: bool = False,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> tuple[PygameHost, asyncio.Task[_T]]:
    """Start ``main`` as the guest of the program's own frame loop; return (host, task).

    Then loop ``while host.running:`` handling events through
    ``host.handle(event)`` and calling ``host.pump()`` each frame (or after
    each ``pygame.event.wait()`` with ``doorbell=True``). ``done_callback``
    runs in a pump once the guest has shut down; ``host.running`` is False
    from then on. Without a ``host``, one is made (``doorbell`` as given) and
    closed after ``done_callback``.
    """
    the_host = host if host is not None else PygameHost(doorbell=doorbell)
    if the_host.closed:
        raise RuntimeError("this PygameHost is closed")
    the_host._finished = False

    def done(result: outcome.Outcome[_T]) -> None:
        the_host._run_finished()
        done_callback(result)

    task = start_with_host(
        main,
        args,
        host=the_host,
        own_host=host is None,
        done_callback=done,
        fd_watcher=_fd_watcher(the_host),
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
    )
    the_host.main_task = task
    return the_host, task


def _default_frame_loop(host: PygameHost) -> None:
    """No frame loop given: an event-driven loop (needs a doorbell host)."""
    while host.running:
        event = pygame.event.wait()
        for ev in (event, *pygame.event.get()):
            host.handle(ev)
        host.pump()


@closes_main_if_it_never_ran
def run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    frame_loop: Callable[[PygameHost], object] | None = None,
    host: PygameHost | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> _T:
    """Run ``main`` beside the program's frame loop; return its result or raise.

    ``frame_loop(host)`` is the program's loop, which runs ``while
    host.running:``, passes events to ``host.handle`` and calls
    ``host.pump()`` every frame (or after each ``event.wait()`` with a
    doorbell host). When ``main`` is done and the guest shut down,
    ``host.running`` turns False, the loop ends and ``run`` returns ``main``'s
    value or raises its exception. A ``pygame.QUIT`` handed to
    ``host.handle`` cancels ``main``; so does ``frame_loop`` returning early,
    after which ``run`` pumps the guest's shutdown to its end itself (without
    touching the event queue). ``run`` then raises ``asyncio.CancelledError``
    unless ``main`` returned a value after the cancellation. What
    ``frame_loop`` raises shuts the guest down at once and propagates.
    Ctrl+C: the first cancels ``main`` and ``run`` raises
    ``KeyboardInterrupt`` after the shutdown.

    Without ``frame_loop``: a loop blocked in ``pygame.event.wait()`` (the
    host then needs ``doorbell=True``; made so when ``host`` is not given).
    A ``host`` given is not closed.
    """
    if host is None:
        the_host = PygameHost(doorbell=frame_loop is None)
    else:
        the_host = host
    if frame_loop is None and not the_host.doorbell:
        raise ValueError("run() without frame_loop blocks in event.wait(): the host needs doorbell")
    if the_host.closed:
        raise RuntimeError("this PygameHost is closed")
    the_host._finished = False
    loop_fn = frame_loop if frame_loop is not None else _default_frame_loop

    def run_host(task: asyncio.Task[_T]) -> None:
        the_host.main_task = task
        # The program's frame loop runs under the Ctrl+C boundary a toolkit's
        # main loop gets (interrupts.py): a second Ctrl+C raises in its code.
        run_host_loop(functools.partial(loop_fn, the_host), pygame)
        if the_host.running:
            # The program's loop ended first: cancel main (unless a QUIT did
            # already), pump the shutdown.
            the_host._cancel_main()
        while the_host.running:
            if not the_host.pump(budget=0.05):
                time.sleep(0.001)

    return run_beside(
        main,
        args,
        run_sync_soon_threadsafe=the_host.run_sync_soon_threadsafe,
        run_sync_soon_not_threadsafe=the_host.run_sync_soon_not_threadsafe,
        run_host=run_host,
        stop_host=the_host._run_finished,
        close_host=the_host.close if host is None else None,
        entry_name="asyncio_guest.pygame.run",
        fd_watcher=_fd_watcher(the_host),
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
    )
