"""Test hosts: minimal host loops that check the guest's use of their primitives.

``QueueHost`` runs its callbacks on the thread that created it (the test's
thread, usually the main thread, so signal handling is exercised), like the
trivial host of Trio's guest-mode tests. ``StrictHost`` runs its callbacks on a
thread of its own and records every breach of the host contract:

* ``run_sync_soon_not_threadsafe`` called from another thread than the host's;
* more than one tick in flight (posted through a primitive but not yet started);
* a host callback raising.

Both deliver the run's outcome from ``done_callback`` and check that it is
called exactly once, on the host thread. Both start runs on the test loop
(``tests/loops.py``, ``ASYNCIO_GUEST_TEST_LOOP``) unless given a ``loop_factory``.

Both can watch fds and set timers (``FdWatching``: they are an
``asyncio_guest.FdWatcher``) and give themselves as ``fd_watcher``, so their
runs take the zero-thread wait where the loop allows it, unless
``ASYNCIO_GUEST_WAIT=thread``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import heapq
import itertools
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import outcome

import asyncio_guest

from . import loops

HostFn = Callable[[], object]


class FdWatching:
    """fd watches and timers for a test host (``asyncio_guest.FdWatcher``).

    The host thread waits in ``select()`` on the watched fds and a wake-up
    socket pair only while something is watched or timed (otherwise the host
    blocks on its queue as before): the pair exists only then, so a host that
    watches nothing holds no descriptor. Posters call ``_wake_up`` after
    queueing (under ``_wake_lock``, so the pair is never used while closed).
    """

    def __init__(self) -> None:
        self._watches: dict[int, HostFn] = {}
        self._timers: list[tuple[float, int, list[bool], HostFn]] = []
        self._timer_seq = itertools.count()
        self._wake_lock = threading.Lock()
        self._wake_pair: tuple[socket.socket, socket.socket] | None = None

    # -- FdWatcher (host thread)
    def watch_readable(self, fd: int, callback: HostFn) -> Callable[[], None]:
        assert fd not in self._watches, f"fd {fd} watched twice"
        self._watches[fd] = callback
        self._update_pair()

        def unwatch() -> None:
            if self._watches.get(fd) is callback:
                del self._watches[fd]
                self._update_pair()

        return unwatch

    def call_later(self, delay: float, callback: HostFn) -> Callable[[], None]:
        cancelled = [False]
        heapq.heappush(
            self._timers, (time.monotonic() + delay, next(self._timer_seq), cancelled, callback)
        )
        self._update_pair()

        def cancel() -> None:
            cancelled[0] = True
            self._drop_cancelled()

        return cancel

    @property
    def watching(self) -> bool:
        """Something is watched or timed (a live timer)."""
        self._drop_cancelled()
        return bool(self._watches or self._timers)

    def _drop_cancelled(self) -> None:
        timers = self._timers
        if any(entry[2][0] for entry in timers):
            timers[:] = [entry for entry in timers if not entry[2][0]]
            heapq.heapify(timers)
        self._update_pair()

    def _update_pair(self) -> None:
        with self._wake_lock:
            needed = bool(self._watches or self._timers)
            if needed and self._wake_pair is None:
                r, w = socket.socketpair()
                r.setblocking(False)
                w.setblocking(False)
                self._wake_pair = (r, w)
            elif not needed and self._wake_pair is not None:
                r, w = self._wake_pair
                self._wake_pair = None
                r.close()
                w.close()

    def _wake_up(self) -> None:
        """Any thread, after queueing: end a ``_watch_round`` wait."""
        with self._wake_lock:
            if self._wake_pair is not None:
                try:
                    self._wake_pair[1].send(b"\0")
                except BlockingIOError:
                    pass

    def _watch_round(self, block: bool) -> list[HostFn]:
        """Host thread: wait (if ``block``) for a watched fd, a timer or a wake-up;
        return the callbacks now due (readable watches, then due timers)."""
        pair = self._wake_pair
        if pair is None:
            return []
        timeout: float | None = 0.0
        if block:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
        fds = [pair[0].fileno(), *self._watches]
        ready = select.select(fds, [], [], timeout)[0]
        due: list[HostFn] = []
        for fd in ready:
            if fd == fds[0]:
                try:
                    while pair[0].recv(4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            callback = self._watches.get(fd)
            if callback is not None:
                due.append(callback)
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, cancelled, callback = heapq.heappop(self._timers)
            if not cancelled[0]:
                cancelled[0] = True
                due.append(callback)
        self._update_pair()
        return due


class QueueHost(FdWatching):
    """A queue drained on the creating thread; exceptions in callbacks propagate."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.current_thread()
        self.queue: queue.SimpleQueue[HostFn] = queue.SimpleQueue()
        self.violations: list[str] = []
        self.threadsafe_calls = 0
        self.not_threadsafe_calls = 0
        self._lock = threading.Lock()
        self._in_flight = 0  # ticks posted and not yet started

    # -- the primitives handed to start_guest_run
    def run_sync_soon_threadsafe(self, fn: HostFn) -> None:
        self.threadsafe_calls += 1
        self.queue.put(self._tick(fn))
        self._wake_up()

    def run_sync_soon_not_threadsafe(self, fn: HostFn) -> None:
        self.not_threadsafe_calls += 1
        if threading.current_thread() is not self.thread:
            self.violations.append(
                f"run_sync_soon_not_threadsafe called from {threading.current_thread()!r}"
            )
        self.queue.put(self._tick(fn))

    def _tick(self, fn: HostFn) -> HostFn:
        if getattr(fn, "__name__", None) != "tick":
            return fn  # not a tick (run_modal's call, debug mode's probe): not counted
        with self._lock:
            self._in_flight += 1
            if self._in_flight > 1:
                self.violations.append(f"{self._in_flight} ticks in flight at once")

        def run() -> object:
            with self._lock:
                self._in_flight -= 1
            return fn()

        return run

    # -- for test code: "a host event" (button click, timer, ...)
    def in_host(self, fn: HostFn) -> None:
        self.queue.put(fn)
        self._wake_up()

    def run_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            if not self.watching:
                self.queue.get()()
                continue
            try:
                fn = self.queue.get_nowait()
            except queue.Empty:
                for callback in self._watch_round(block=True):
                    callback()
                    if predicate():
                        return
                continue
            fn()
            if predicate():
                return
            # A busy queue must not starve the watched fds.
            for callback in self._watch_round(block=False):
                callback()
                if predicate():
                    return

    def pump(self) -> None:
        """One round of a nested host loop, without blocking: what is queued, then
        the readable watches and due timers (the zero-thread wait's wake-ups)."""
        self.drain()
        for callback in self._watch_round(block=False):
            callback()

    def drain(self) -> None:
        """Run whatever is queued now, without blocking."""
        while True:
            try:
                fn = self.queue.get_nowait()
            except queue.Empty:
                return
            fn()

    def start(
        self, main: Any, *args: Any, **kwargs: Any
    ) -> tuple[Any, list[tuple[outcome.Outcome[Any], threading.Thread]]]:
        """start_guest_run with this host's primitives; returns (task, done-records)."""
        done: list[tuple[outcome.Outcome[Any], threading.Thread]] = []

        def done_callback(out: outcome.Outcome[Any]) -> None:
            done.append((out, threading.current_thread()))

        kwargs.setdefault("run_sync_soon_not_threadsafe", self.run_sync_soon_not_threadsafe)
        kwargs.setdefault("fd_watcher", self)
        with_test_loop(kwargs)
        task = asyncio_guest.start_guest_run(
            main,
            *args,
            run_sync_soon_threadsafe=self.run_sync_soon_threadsafe,
            done_callback=done_callback,
            **kwargs,
        )
        return task, done

    def guest_run(
        self,
        main: Any,
        *args: Any,
        after_start: Callable[[Any], object] | None = None,
        **kwargs: Any,
    ) -> outcome.Outcome[Any]:
        """Run ``main`` as a guest to the end; return the outcome given to done_callback.

        ``after_start(task)`` runs on the host right after start_guest_run returns.
        """
        task, done = self.start(main, *args, **kwargs)
        loop = task.get_loop()
        if after_start is not None:
            after_start(task)
        del task
        self.run_until(lambda: bool(done))
        self.drain()  # anything still queued must not call done_callback again
        assert len(done) == 1, f"done_callback called {len(done)} times"
        out, thread = done[0]
        assert thread is self.thread, f"done_callback ran on {thread!r}, not the host thread"
        assert not self.violations, self.violations
        check_loop_finished(loop)
        return out


def with_test_loop(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Give start_guest_run keyword arguments the test loop when they name no loop_factory."""
    if kwargs.get("loop_factory") is None:
        kwargs["loop_factory"] = loops.test_loop_factory()
    return kwargs


def join_all(threads: list[threading.Thread]) -> None:
    """Join worker threads (call it through ``asyncio.to_thread`` from the guest)."""
    for thread in threads:
        thread.join()


def check_loop_finished(loop: asyncio.AbstractEventLoop) -> None:
    """After done_callback: the loop is closed and no task of it is left pending."""
    assert loop.is_closed(), "the guest loop was not closed"
    pending = asyncio.all_tasks(loop)
    assert not pending, f"tasks left pending after the run: {pending}"


class StrictHost(FdWatching):
    """A host loop on its own thread that records every breach of the host contract."""

    def __init__(self, name: str = "strict-host") -> None:
        super().__init__()
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[tuple[HostFn, bool]] = collections.deque()
        self._in_flight = 0
        self._closing = False
        self._depth = 0
        self.max_in_flight = 0
        self.ticks_run = 0
        self.ticks_run_nested = 0
        self.host_calls_run_nested = 0
        self.violations: list[str] = []
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    # -- the primitives handed to start_guest_run
    def run_sync_soon_threadsafe(self, fn: HostFn) -> None:
        self._post(fn, tick=True)

    def run_sync_soon_not_threadsafe(self, fn: HostFn) -> None:
        if threading.current_thread() is not self.thread:
            self._violation(
                f"run_sync_soon_not_threadsafe called from {threading.current_thread()!r}"
            )
        self._post(fn, tick=True)

    # -- host-side events
    def call(self, fn: HostFn) -> None:
        """Any thread: run ``fn`` on the host thread (a host event, not a tick)."""
        self._post(fn, tick=False)

    def run_nested(self, until: Callable[[], bool], timeout: float = 30.0) -> None:
        """Host thread: run the queue recursively until ``until()`` (a modal dialog)."""
        assert threading.current_thread() is self.thread
        self._depth += 1
        try:
            while not until():
                if not self._run_one(timeout):
                    raise TimeoutError("nested host loop: nothing arrived")
        finally:
            self._depth -= 1

    @property
    def nested(self) -> bool:
        return self._depth > 0

    def start_guest(
        self, main: Any, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[outcome.Outcome[Any]]:
        """Start a guest run on the host thread; the future gets done_callback's outcome."""
        result: concurrent.futures.Future[outcome.Outcome[Any]] = concurrent.futures.Future()
        calls: list[int] = []

        def done_callback(out: outcome.Outcome[Any]) -> None:
            calls.append(1)
            if threading.current_thread() is not self.thread:
                self._violation(f"done_callback ran on {threading.current_thread()!r}")
            if len(calls) > 1:
                self._violation("done_callback called more than once")
                return
            result.set_result(out)

        with_test_loop(kwargs)
        kwargs.setdefault("fd_watcher", self)

        def start() -> None:
            try:
                asyncio_guest.start_guest_run(
                    main,
                    *args,
                    run_sync_soon_threadsafe=self.run_sync_soon_threadsafe,
                    run_sync_soon_not_threadsafe=self.run_sync_soon_not_threadsafe,
                    done_callback=done_callback,
                    **kwargs,
                )
            except BaseException as exc:
                result.set_exception(exc)

        self.call(start)
        return result

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._wake_up()
        self.thread.join(timeout)
        if self.thread.is_alive():
            self._violation("host thread did not stop")

    # -- internals
    def _violation(self, text: str) -> None:
        self.violations.append(text)

    def _post(self, fn: HostFn, *, tick: bool) -> None:
        with self._cond:
            if tick:
                self._in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self._in_flight)
                if self._in_flight > 1:
                    self._violation(f"{self._in_flight} ticks in flight at once")
            self._queue.append((fn, tick))
            self._cond.notify()
        self._wake_up()

    def _run_watched(self, block: bool) -> bool:
        """Host thread: run the callbacks of ready watches and due timers."""
        due = self._watch_round(block)
        for callback in due:
            try:
                callback()
            except BaseException as exc:
                self._violation(f"watch/timer callback {callback!r} raised {exc!r}")
        return bool(due)

    def _run_one(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                if self._queue or not self.watching:
                    break
                if self._closing and self._depth == 0:
                    return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if self._run_watched(block=True):
                return True
        if self._watches:
            self._run_watched(block=False)  # a busy queue must not starve them
        with self._cond:
            while not self._queue:
                if self._closing and self._depth == 0:
                    return False
                if not self._cond.wait(timeout) and timeout is not None:
                    return False
            fn, tick = self._queue.popleft()
            if tick:
                self._in_flight -= 1
        if tick:
            self.ticks_run += 1
            if self._depth:
                self.ticks_run_nested += 1
        elif self._depth:
            self.host_calls_run_nested += 1
        try:
            fn()
        except BaseException as exc:
            self._violation(f"host callback {fn!r} raised {exc!r}")
        return True

    def _main(self) -> None:
        while self._run_one(None):
            pass


LONG = 30.0
"""A guest-side timeout that a working wake-up never gets near (a failure, not a delay)."""


async def wait_long(aw: Any, timeout: float = LONG) -> Any:
    """Await ``aw`` with a long safety timeout, without swallowing a cancellation.

    ``asyncio.wait_for`` (before 3.12) returns the result when the awaited
    future completes in the same iteration as a cancellation; this raises the
    ``CancelledError`` instead, so a run being shut down is never held up.
    """
    fut = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({fut}, timeout=timeout)
    if not done:
        fut.cancel()
        raise TimeoutError(f"not woken within {timeout} s")
    return fut.result()


async def lose_the_next_tick(drop_next: Callable[[], None], cleaned_up: list[bool]) -> str:
    """A guest ``main`` for abandonment tests: ``drop_next()`` arms the host to
    drop the next callback it is handed; a callback then outlasts the tick's
    budget with work left, so the next tick is posted at once, and dropped.
    Records in ``cleaned_up`` that its clean-up ran (it was cancelled)."""
    try:
        drop_next()
        asyncio.get_running_loop().call_soon(time.sleep, 0.01)
        await asyncio.sleep(0)
        await asyncio.sleep(LONG)
        return "not abandoned"
    finally:
        cleaned_up.append(True)
