"""A minimal host loop that runs in the calling thread.

It is the host for tests, benchmarks, headless programs and the hosted
``run_forever`` of guest loops. It has what a GUI loop has and nothing more:
a queue of callbacks any thread may add to, timers of its own (so a benchmark
can measure how late the host's timers run while asyncio is busy), file
descriptors it watches for readability (``watch_readable``: with ``call_later``
it is an ``FdWatcher``, so a guest on an epoll/kqueue loop needs no backend
thread), and a blocking sleep when there is nothing to do (zero CPU when idle).

Thread rule: ``run``, ``call_later``, ``watch_readable`` (and the functions
they return), ``stop`` and ``run_sync_soon_not_threadsafe`` belong to the host
thread; ``run_sync_soon_threadsafe`` may be called from any thread.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import os
import select
import socket
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Collection

from .interrupts import run_host_callback
from .select_limit import SELECT_FD_LIMIT


class HostTimer:
    """A host-side timer; ``cancel()`` (or calling it) stops it (host thread).

    Calling it is the cancel function ``FdWatcher.call_later`` returns.
    """

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __call__(self) -> None:
        self.cancelled = True


class _Waker:
    """The host's sleep and its wake-up: a pipe (a socket pair on Windows).

    Why not a ``threading.Lock`` used as a semaphore: ``Lock.release()`` wakes the
    sleeping host while the poster still holds the GIL, so the host wakes, finds
    the GIL taken, sleeps again on the GIL and needs a second wake-up when the
    poster lets go (measured: +7 µs per ``call_soon_threadsafe``, and it grows with
    whatever the poster does next). ``os.write``/``send`` is a system call made
    with the GIL released, so the woken host takes the GIL at once, as asyncio's
    own self-pipe does.
    """

    def __init__(self) -> None:
        self._read: Callable[[], bytes]
        # A C-level callable: no Python frame before the waking system call.
        self._write: Callable[[], object]
        # The finalizer owns the list before the descriptors are made, and they
        # enter it in the same statement that makes them: nothing can fail
        # between their creation and their owner.
        if sys.platform == "win32":
            self._socks: list[socket.socket] = []
            self._finalizer = weakref.finalize(self, _close_socks, self._socks)
            self._finalizer.atexit = False  # see below
            self._socks.extend(socket.socketpair())
            rsock, wsock = self._socks
            rsock.setblocking(False)
            wsock.setblocking(False)
            self._rfd = rsock.fileno()
            self._read = lambda: rsock.recv(4096)
            self._write = functools.partial(wsock.send, b"\0")
        else:
            self._fds: list[int] = []
            self._finalizer = weakref.finalize(self, _close_fds, self._fds)
            # Not at exit: a host loop on a daemon thread may still wait on
            # the pipe while the exit runs its handlers (a slow one of the
            # program's own gives it time to wake): closed under it, its next
            # select() raised EBADF ("Exception in thread"). The process
            # closes the pipe anyway.
            self._finalizer.atexit = False
            self._fds.extend(os.pipe())
            rfd, wfd = self._fds
            os.set_blocking(rfd, False)
            os.set_blocking(wfd, False)
            self._rfd = rfd
            self._read = lambda: os.read(rfd, 4096)
            self._write = functools.partial(os.write, wfd, b"\0")
        self._pending = False  # bytes may be in the pipe (drained before the next sleep)

    def close(self) -> None:
        """Close the pipe (idempotent; finishes a close that failed part-way)."""
        self._finalizer()
        if sys.platform == "win32":
            _close_socks(self._socks)
        else:
            _close_fds(self._fds)

    def select_list(self, watched: Collection[int]) -> list[int] | None:
        """The fds for ``select()`` to wait on (the pipe first, then ``watched``),
        or None when one is beyond what ``select()`` takes (``ReferenceHost._sleep``
        then polls). select() takes a timeout in microseconds, poll() in
        milliseconds (a host timer would fire up to 1 ms late)."""
        fds = [self._rfd, *watched]
        if sys.platform == "win32" or max(fds) < SELECT_FD_LIMIT:
            return fds
        return None

    def drain(self) -> None:
        """Host thread: consume the bytes of earlier wake-ups.

        Done before the next wait rather than right after waking, which keeps a
        read() system call off the wake-up's latency path.
        """
        if not self._pending:
            return
        self._pending = False
        try:
            while len(self._read()) == 4096:
                pass
        except (BlockingIOError, InterruptedError):
            pass


def _readable(fds: list[int], timeout: float | None) -> list[int]:
    """Which of ``fds`` are readable, waiting up to ``timeout`` (None: no limit).

    select() where it can take every fd (its timeout counts microseconds),
    else poll() (milliseconds, rounded up: a host timer never fires early).
    """
    if sys.platform == "win32" or max(fds) < SELECT_FD_LIMIT:
        return list(select.select(fds, [], [], timeout)[0])
    poll = select.poll()
    for fd in fds:
        poll.register(fd, select.POLLIN)
    ms = None if timeout is None else max(0, int(timeout * 1e3 + 0.999))
    return [fd for fd, _ in poll.poll(ms)]


# Each one is taken from the list and closed in one statement, so a close that
# fails part-way (and leaves the finalizer spent) can be finished by
# _Waker.close, and never closes a descriptor twice.


def _close_fds(fds: list[int]) -> None:
    while fds:
        os.close(fds.pop())


def _close_socks(socks: list[socket.socket]) -> None:
    while socks:
        socks.pop().close()


class ReferenceHost:
    """Callback queue + timers + idle sleep, run by ``run()`` until ``stop()``."""

    def __init__(self) -> None:
        self._queue: deque[Callable[[], object]] = deque()
        self._timers: list[tuple[float, int, HostTimer]] = []
        self._compact_at = 64  # len(_timers) at which cancelled timers are dropped
        self._watches: dict[int, Callable[[], object]] = {}  # fd -> callback
        self._seq = itertools.count()
        self._stopped = False
        # Sleep/wake hand-shake, lock-free (see ``run_sync_soon_threadsafe``).
        self._waker = _Waker()
        self._wake = self._waker._write
        # What _sleep hands select(): the pipe, then the watched fds (None:
        # one is beyond select(), _Waker.wait polls). Made when watches change.
        self._select_fds = self._waker.select_list(())
        self._sleeping = False
        self._woken = False
        self.thread_id: int | None = None

    # --------------------------------------------------------- primitives

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Any thread: run ``fn`` on the host thread soon."""
        self._queue.append(fn)
        # Order (the GIL makes these steps sequentially consistent): a poster
        # appends, then reads _sleeping, then _woken. The host drains the pipe,
        # clears _woken, sets _sleeping, then reads the queue and waits. So
        # either the host sees the item before waiting, or the poster sees it
        # asleep and writes (or one who did write after the drain). Races cost
        # an extra byte (a spurious wake-up), never a missed one; _woken merely
        # keeps the writes to about one per sleep. It is set *before* the
        # write (set after it, a poster could set it after the host woke and
        # slept again, and the next poster would not write), and cleared again
        # if the write fails (the next poster must write).
        if self._sleeping and not self._woken:
            self._woken = True
            try:
                self._wake()
            except (BlockingIOError, InterruptedError):
                pass  # the pipe is full: the host has wake-ups pending anyway
            except BaseException:
                self._woken = False
                raise

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """Host thread only: the same without the wake-up check."""
        self._queue.append(fn)

    def call_later(self, delay: float, fn: Callable[[], object]) -> HostTimer:
        """Host thread: run ``fn`` after ``delay`` seconds, as the host's own timer."""
        timer = HostTimer(time.monotonic() + delay, fn)
        timers = self._timers
        if len(timers) >= self._compact_at:
            # A guest re-arms its timer at each wake-up: drop the cancelled
            # ones now and then (amortised O(1) per timer).
            timers[:] = [entry for entry in timers if not entry[2].cancelled]
            heapq.heapify(timers)
            self._compact_at = max(64, 2 * len(timers))
        heapq.heappush(timers, (timer.when, next(self._seq), timer))
        return timer

    def watch_readable(self, fd: int, callback: Callable[[], object]) -> Callable[[], None]:
        """Host thread: call ``callback()`` each round in which ``fd`` is readable.

        Level-triggered, as ``FdWatcher`` asks: the callback runs again while
        the fd stays readable. One watch per fd. Returns the function that
        ends this watch (idempotent; it never ends a later watch of the fd).
        """
        if fd in self._watches:
            raise ValueError(f"fd {fd} is watched already")
        self._watches[fd] = callback
        self._select_fds = self._waker.select_list(self._watches)
        return functools.partial(self._unwatch, fd, callback)

    def _unwatch(self, fd: int, callback: Callable[[], object]) -> None:
        if self._watches.get(fd) is callback:
            del self._watches[fd]
            self._select_fds = self._waker.select_list(self._watches)

    def stop(self) -> None:
        """Host thread: make ``run()`` return after the current callback."""
        self._stopped = True

    def close(self) -> None:
        """Release the wake-up pipe now (otherwise it is closed when collected)."""
        self._waker.close()

    # --------------------------------------------------------------- loop

    def run(self) -> None:
        """Run callbacks and timers until ``stop()``.

        Each round runs the due timers, then the callbacks that were queued
        when the round began (not the ones they queue), then those of the
        watched fds that are readable (polled without waiting when callbacks
        are queued, so a busy queue cannot starve them), so timers get a turn
        between any two guest ticks. A round with nothing queued sleeps
        instead; what was posted meanwhile runs as soon as it wakes, before
        the fds (the path of every worker's wake-up, on a thread whose caches
        went cold while it slept: a due timer waits one batch at most, and
        the next round begins with the timers).
        """
        self.thread_id = threading.get_ident()
        self._stopped = False
        queue = self._queue
        timers = self._timers
        watches = self._watches
        clock = time.monotonic
        try:
            while not self._stopped:
                if timers:
                    now = clock()
                    while timers and timers[0][0] <= now:
                        timer = heapq.heappop(timers)[2]
                        if not timer.cancelled:
                            run_host_callback(timer.callback)
                            if self._stopped:
                                return
                slept = not queue
                if slept:
                    while timers and timers[0][2].cancelled:
                        heapq.heappop(timers)
                    if timers:
                        timeout: float | None = max(0.0, timers[0][0] - clock())
                    else:
                        timeout = None
                    ready = self._sleep(timeout)
                # Queued when the round began (not slept: then n > 0, as only
                # this thread takes from the queue), or posted during the sleep
                # (run at once, before the fds: see above).
                n = len(queue)
                if n:
                    popleft = queue.popleft
                    for _ in range(n):
                        run_host_callback(popleft())
                        if self._stopped:
                            return
                    if not slept:
                        if not watches or not queue:
                            # Nothing queued: the next round's sleep polls the
                            # watches (returning at once if one is readable), so
                            # a poll here would only add a system call per round.
                            continue
                        ready = _readable(list(watches), 0)
                for fd in ready:
                    callback = watches.get(fd)  # (unwatched meanwhile: None)
                    if callback is not None:
                        run_host_callback(callback)
                        if self._stopped:
                            return
        finally:
            self.thread_id = None

    def _sleep(self, timeout: float | None) -> list[int]:
        """Wait for a post, a watched fd or ``timeout``; the readable fds.

        The list may hold the pipe's own fd, which no watch has (the run loop
        skips it). ``select()`` is called right here: this is the path of every
        worker's wake-up, run on a thread whose caches went cold while it slept.
        """
        # The order matters (see run_sync_soon_threadsafe): any byte written
        # after _woken is cleared arrives after the drain, so it ends the wait.
        waker = self._waker
        waker.drain()
        self._woken = False
        self._sleeping = True
        if self._queue:
            ready: list[int] = []
        else:
            fds = self._select_fds
            if fds is not None:
                ready = select.select(fds, (), (), timeout)[0]
            else:
                ready = _readable([waker._rfd, *self._watches], timeout)
            if waker._rfd in ready:
                waker._pending = True
        self._sleeping = False
        return ready
