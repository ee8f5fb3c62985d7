"""Lingering: a tick that has just run callbacks waits a little for the reply.

Why. A request/response exchange (an echo, an RPC, a database round trip, a
subprocess answering on a pipe) often replies within tens of microseconds of
our write. Handed over, that reply reaches the guest through the host: the
host's watch of the selector fd, or the backend thread and a posted tick, and
then the host's own dispatch (a Tcl notifier thread and a condition variable,
a Qt posted event, a Trio task step): 10-30 us per round trip that plain
asyncio does not pay, since its ``epoll_wait`` returns on the loop's own
thread. So before the hand-over a tick that ran callbacks and finds nothing
ready waits on the selector's fd itself, briefly, the way plain asyncio's
``epoll_wait`` would; if I/O arrives, the same tick runs it.

What it costs, and the bounds that keep the host in charge:

* the host thread polls the selector's fd (``select()`` with a zero timeout,
  about a microsecond each) for up to ``SPIN`` and sleeps in ``select()`` for
  the rest of the wait: at most ``LINGER`` per wait, never past the tick's
  budget (so a host timer is late by no more than the budget allows already)
  and never past the loop's next timer. Polling rather than sleeping is the
  point: a sleeping thread is woken by the kernel, and on an idle CPU that
  wake-up costs about as much as a loopback round trip itself, which plain
  asyncio's ``epoll_wait`` pays on every reply. A reply found by polling costs
  the CPU time until it came (at most ``SPIN``) instead;
* a wait that times out (a *miss*: the peer is slower than ``LINGER``) makes
  the next ticks skip lingering, twice as many after each further miss, up to
  ``_MAX_SKIP`` ticks; a wait that brings I/O (a *hit*) makes lingering eager
  again. A steady slow exchange therefore costs the host about
  ``LINGER / _MAX_SKIP`` per tick, a fast one saves a host round trip each time.

Only for loops with one pollable selector fd (epoll, kqueue: the zero-thread
strategy's fd, ``GuestLoopMixin._guest_pollable_fd``), whichever strategy
waits, and only in ticks that own the poll (the backend is parked or the
host's watch has fired): nothing else may be waiting on the selector. A
worker's ``call_soon_threadsafe`` during a linger is not lost: it posts its
tick as usual, and the lingering tick runs the callback when its wait ends, or
the posted tick does. On ``worker_wakes_by_fd`` hosts it writes the loop's
worker wake fd instead (``worker_wake.py``), which the linger waits on too: it
ends the wait at once, and the linger drains it (the host's watch of it then
has nothing to do), so this tick runs the callback. A Ctrl+C's handler runs
inside the wait (then the wait resumes, PEP 475): it lands in our own frame, so its
``KeyboardInterrupt`` is deferred to the tick's end (``interrupts.py``), and
the first one's cancellation of ``main`` is a ready callback that runs when
the wait ends: at most ``LINGER`` later either way.

Host thread only (the state lives on the loop, which only the host thread runs).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .select_limit import SELECT_FD_LIMIT

if TYPE_CHECKING:
    from .worker_wake import WorkerWake

LINGER = 0.0001
"""Seconds a tick waits for I/O after running callbacks (0 disables lingering).

Above a loopback or same-machine round trip (20-80 us here, including the
peer's own scheduling), far below a frame (16 ms) or a host timer's 1 ms bar.
"""

SPIN = 0.0001
"""Seconds at the start of a linger spent polling instead of sleeping (the whole
linger, by default).

A thread asleep is woken by the kernel, and on an idle CPU that costs 10-40 us
on these virtual machines, as much as a loopback round trip. A reply within
``SPIN`` is seen about a microsecond after it lands (bench ``echo_ext``, same
run, reference host on 3.13: 0.99-1.10x of plain asyncio sleeping, 1.19-1.36x
polling; Qt: 1.02-1.04x, 1.10-1.22x).
"""

_MAX_SKIP = 64
"""Ticks skipped after a run of misses, at most (see module doc)."""
_MAX_MISSES = 7  # 2**7 - 1 >= _MAX_SKIP


def for_fd(fd: int | None) -> Linger | None:
    """The policy for a loop whose selector is ``fd`` (None: no such fd, or lingering off).

    The linger is shorter than a millisecond, which only ``select()`` can wait
    for: a loop whose selector fd is beyond it (a program with over a thousand
    files open) does not linger.
    """
    if fd is None or fd >= SELECT_FD_LIMIT or LINGER <= 0:
        return None
    return Linger(fd, LINGER)


class Linger:
    """The lingering policy of one loop: how long, and whether to try now."""

    __slots__ = ("_drain_wake", "_fds", "fd", "misses", "seconds", "skip")

    def __init__(self, fd: int, seconds: float) -> None:
        self.fd = fd
        self.seconds = seconds
        self.misses = 0  # misses since the last hit
        self.skip = 0  # ticks left that do not linger
        self._fds: tuple[int, ...] = (fd,)  # what a linger waits on
        self._drain_wake: Callable[[], object] | None = None

    def watch_wake(self, wake: WorkerWake | None) -> None:
        """At a run's start: wait on the loop's worker wake fd too (None: not this run).

        Not above ``SELECT_FD_LIMIT``: there the linger misses a worker's
        wake-up, which the host's watch of it still sees when the linger ends
        (at most ``seconds`` later).
        """
        if wake is None or wake.fd >= SELECT_FD_LIMIT:
            self._fds = (self.fd,)
            self._drain_wake = None
        else:
            self._fds = (self.fd, wake.fd)
            self._drain_wake = wake.drain

    def wait(self, budget_left: float, timer_in: float | None) -> bool:
        """Wait until the selector has events, at most ``seconds``; True when it has.

        Polls for the first ``SPIN`` of it, then sleeps (module doc).

        ``budget_left`` is what remains of the tick's budget, ``timer_in`` the
        time until the loop's next timer (None: no timer). Returns False at
        once when lingering is off, backed off, or has no time left.
        """
        if self.skip:
            self.skip -= 1
            return False
        timeout = seconds = self.seconds
        if budget_left < timeout:
            timeout = budget_left
        if timer_in is not None and timer_in < timeout:
            timeout = timer_in
        if timeout <= 0.0:
            return False
        fds = self._fds
        spin = SPIN if SPIN < timeout else timeout
        if spin > 0.0:
            clock = time.perf_counter
            end = clock() + spin
            while True:
                readable = select.select(fds, (), (), 0)[0]
                if readable:
                    return self._hit(readable)
                if clock() >= end:
                    break
        if spin < timeout:
            readable = select.select(fds, (), (), timeout - spin)[0]
            if readable:
                return self._hit(readable)
        if timeout == seconds:  # a wait cut short by the budget or a timer tells nothing
            misses = self.misses = min(self.misses + 1, _MAX_MISSES)
            self.skip = min((1 << misses) - 1, _MAX_SKIP)
        return False

    def _hit(self, readable: list[int]) -> bool:
        """The wait ended with ``readable``: drain a worker's wake-up, if one came."""
        self.misses = 0
        if readable[-1] != self.fd:  # select() keeps the order of _fds: the wake fd is last
            drain = self._drain_wake
            if drain is not None:
                drain()  # readable, and only this thread drains it
        return True
