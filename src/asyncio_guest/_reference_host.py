"""A minimal host loop that runs in the calling thread.

It is the host for tests, benchmarks, headless programs and the hosted
``run_forever`` of guest loops. It has what a GUI loop has and nothing more:
a queue of callbacks any thread may add to, timers of its own (so a benchmark
can measure how late the host's timers run while asyncio is busy), and a
blocking sleep when there is nothing to do (zero CPU when idle).

Thread rule: ``run``, ``call_later``, ``stop`` and ``run_sync_soon_not_threadsafe``
belong to the host thread; ``run_sync_soon_threadsafe`` may be called from any
thread.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable


class HostTimer:
    """A host-side timer; ``cancel()`` stops it (host thread)."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ReferenceHost:
    """Callback queue + timers + idle sleep, run by ``run()`` until ``stop()``."""

    def __init__(self) -> None:
        self._queue: deque[Callable[[], object]] = deque()
        self._timers: list[tuple[float, int, HostTimer]] = []
        self._seq = itertools.count()
        self._stopped = False
        # Sleep/wake hand-shake (see ``_sleep``): ``_sem`` is a binary
        # semaphore that is normally locked; a poster releases it at most once
        # per sleep, guarded by ``_mutex``.
        self._mutex = threading.Lock()
        self._sem = threading.Lock()
        self._sem.acquire()
        self._sleeping = False
        self._woken = False
        self.thread_id: int | None = None

    # --------------------------------------------------------- primitives

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Any thread: run ``fn`` on the host thread soon."""
        self._queue.append(fn)
        # Dekker-style: we append then read _sleeping; the host sets _sleeping
        # then reads the queue. One of us sees the other's write.
        if self._sleeping:
            with self._mutex:
                if self._sleeping and not self._woken:
                    self._woken = True
                    self._sem.release()

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """Host thread only: the same without the wake-up check."""
        self._queue.append(fn)

    def call_later(self, delay: float, fn: Callable[[], object]) -> HostTimer:
        """Host thread: run ``fn`` after ``delay`` seconds, as the host's own timer."""
        timer = HostTimer(time.monotonic() + delay, fn)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def stop(self) -> None:
        """Host thread: make ``run()`` return after the current callback."""
        self._stopped = True

    # --------------------------------------------------------------- loop

    def run(self) -> None:
        """Run callbacks and timers until ``stop()``.

        Each round runs the due timers, then the callbacks that were queued
        when the round began (not the ones they queue), so timers get a turn
        between any two guest ticks.
        """
        self.thread_id = threading.get_ident()
        self._stopped = False
        queue = self._queue
        timers = self._timers
        clock = time.monotonic
        try:
            while not self._stopped:
                if timers:
                    now = clock()
                    while timers and timers[0][0] <= now:
                        timer = heapq.heappop(timers)[2]
                        if not timer.cancelled:
                            timer.callback()
                            if self._stopped:
                                return
                n = len(queue)
                if n:
                    popleft = queue.popleft
                    for _ in range(n):
                        popleft()()
                        if self._stopped:
                            return
                    continue
                if timers:
                    timeout: float | None = max(0.0, timers[0][0] - clock())
                else:
                    timeout = None
                self._sleep(timeout)
        finally:
            self.thread_id = None

    def _sleep(self, timeout: float | None) -> None:
        self._sleeping = True
        got = False
        if not self._queue:
            got = self._sem.acquire(True, -1 if timeout is None else timeout)
        with self._mutex:
            self._sleeping = False
            if self._woken:
                self._woken = False
                if not got:
                    # A poster released after our timeout (or we never slept):
                    # take that release so the semaphore is locked again.
                    self._sem.acquire()
