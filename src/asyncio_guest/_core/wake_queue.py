"""A callback queue that keeps at most one wake-up of its host in flight.

Hosts whose "run this soon" primitive is a message to a window (Win32
``PostMessageW``) must not send one message per callback: a thread's message
queue holds about 10 000 posted messages, and a flood of them would also delay
the GUI's own input. So callbacks go to a deque, and only the first one that
finds no wake-up pending sends one. The host then runs ``drain()``.

Invariant, ordered by ``_lock``: ``_pending`` is True from the moment a wake-up
is decided until the drain that consumes it has cleared the flag, and a drain
clears the flag *before* it counts the queue. So a callback appended before the
flag was cleared is counted and run by that drain, and one appended after sees
the flag clear (or set by a later submitter) and makes sure a wake-up follows.

Drains may nest: a callback that opens a modal loop (a message box) makes the
host dispatch the next wake-up inside it. So before a drain runs a callback
with others queued behind it, it makes sure a wake-up is pending (at most one
extra per drain): the modal loop dispatches it, and the inner drain runs the
following callbacks in order (and, like every drain, wakes the host again at
its end if work is left, so the guest keeps running inside the modal loop).
The outer drain then finds fewer to run and stops.

Callbacks the host thread adds *during* a drain (the guest's "next tick, no
thread hop") do not post at once: the drain decides at its end how to wake
the host again (``post_busy``), so a host can rank its own input above a busy
guest. The extra wake-up before a callback is a busy one too: a modal loop
dispatches it as well, and it is the wake-up of the work queued behind, which
a guest that keeps two callbacks queued (a busy tick plus the engine's debug
probe; a worker posting at every tick) always has. Sent with ``post``, it
would carry every such drain ahead of the host's input, timers and redraws
(seen on GLib and wx in debug mode: no redraw and no host timer while tasks
spun).

A ``post`` that raises: the callback stays queued (a later wake-up runs it),
the pending flag is cleared so that the next submit posts again, and the
exception propagates to the submitter. So a host's ``post`` should itself
retry what can be retried (the Win32 host retries a full message queue, see
``asyncio_guest.win32``): a caller that retries ``submit`` instead queues its
callback twice.

``post_busy`` need not post: it must only make sure a drain follows (the
Win32 host may set a timer, or post when the GUI's next message is taken).

Thread rule: ``submit`` from any thread; ``submit_local`` and ``drain`` on the
host thread only.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from .interrupts import run_host_callback

Callback = Callable[[], object]


class CoalescingQueue:
    """Deque of callbacks plus at most one pending wake-up (see module doc)."""

    def __init__(
        self,
        post: Callable[[], object],
        post_busy: Callable[[], object] | None = None,
    ) -> None:
        """``post()`` wakes the host from any thread; ``post_busy()`` (host thread)
        wakes it after a drain that left work queued (default: ``post``)."""
        self._queue: deque[Callback] = deque()
        self._lock = threading.Lock()
        self._pending = False
        self._post = post
        self._post_busy = post_busy or post
        self._draining = 0  # host thread only: nesting depth of drain()

    @property
    def pending(self) -> bool:
        """A wake-up has been sent and not yet consumed by a drain (a host that
        serves busy wake-ups only while it knows of one waits for this)."""
        return self._pending

    def __len__(self) -> int:
        return len(self._queue)

    def submit(self, fn: Callback) -> None:
        """Any thread: queue ``fn``; wake the host unless a wake-up is pending.

        If the wake-up cannot be sent, ``post``'s exception propagates and
        ``fn`` stays queued (see the module doc).
        """
        self._queue.append(fn)
        self._wake(self._post)

    def _wake(self, post: Callable[[], object]) -> None:
        """Send one wake-up with ``post`` unless one is pending (``post_busy``: host thread)."""
        with self._lock:
            if self._pending:
                return
            self._pending = True
        try:
            post()
        except BaseException:
            with self._lock:
                self._pending = False
            raise

    def submit_local(self, fn: Callback) -> None:
        """Host thread: queue ``fn``; inside a drain the drain's end wakes the host."""
        if self._draining:
            self._queue.append(fn)
        else:
            self.submit(fn)

    def drain(self, *, wake_at_end: bool = True) -> None:
        """Host thread, on a wake-up: run the callbacks queued when it began.

        A callback that raises does not lose the ones after it: they get a new
        wake-up before the exception propagates. ``wake_at_end=False``: the
        caller drains again itself while it has time (a pygame pump), so the
        drain-end wake-up would only wake the host for a drain already done;
        the caller then owes ``wake_if_queued()`` when it stops, also when
        this raises.
        """
        with self._lock:
            self._pending = False
        queue = self._queue
        n = len(queue)
        self._draining += 1
        try:
            while n:
                n -= 1
                try:
                    fn = queue.popleft()
                except IndexError:
                    break  # a nested drain (modal loop) ran the rest
                if queue and not self._pending:
                    # Callbacks wait behind this one, which may open a modal
                    # loop and not return for a long time: make sure a nested
                    # drain can reach them (at most one extra wake-up per
                    # drain; a busy one, see the module doc).
                    self._wake(self._post_busy)
                run_host_callback(fn)  # a boundary for a program's (interrupts.py)
        finally:
            self._draining -= 1
            if queue and wake_at_end:
                self._wake(self._post_busy)

    def wake_if_queued(self) -> None:
        """Host thread: the drain-end wake-up (``post_busy``) a ``drain(wake_at_end=False)``
        left to its caller: sent if callbacks are queued and none is pending."""
        if self._queue:
            self._wake(self._post_busy)

    def wake_busy_now(self) -> None:
        """Host thread, inside a drain: send the drain-end wake-up (``post_busy``) now.

        For a host whose nested loops must see callbacks queued by the running
        one (the Tk host: a tick that opens a modal loop queues the engine's
        debug probe first). The drain's end then finds it pending and sends none.
        """
        if self._draining and self._queue:
            self._wake(self._post_busy)

    def clear(self) -> None:
        """Host thread: drop every queued callback (the host is shutting down)."""
        self._queue.clear()
