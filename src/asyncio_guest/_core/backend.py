"""The backend thread: the one place where a guest loop blocks in the OS wait.

Three kinds of threads meet around a guest loop:

* the *host thread* (H) runs the host's main loop and every asyncio callback;
* the *backend thread* (B), one per loop, does nothing but the OS wait;
* *worker threads* (W) call ``loop.call_soon_threadsafe`` and friends.

Polling is owned by exactly one side at a time. ``Channel.state`` says which:

=========  ==============================================================
IDLE       B is parked on ``go``; the host owns the poll (it may poll with
           a zero timeout itself: the no-thread-hop fast path).
WAITING    H released ``go``; B owns the poll and is (about to be) blocked
           in the OS wait. H must not poll; it may still run ready callbacks.
RETURNED   B finished its wait and left the result in ``Channel.result``;
           a tick that will pick it up is posted (or owed, see ``posted``).
=========  ==============================================================

``posted`` is True while one tick is handed to the host (or owed to it):
whoever flips it from False to True posts that one tick; nobody else posts
(the rules are in ``handover.py``, which drives this channel from the host).

B holds no reference to the loop or the engine: only to the channel, and to
the run's token while it is handed a wait (so a host that drops the run is
detected by the token's death, see ``handover.py``).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import outcome

from .errors import InternalError

logger = logging.getLogger("asyncio_guest")


class Tickable(Protocol):
    """What the backend hands to the host: the run's token (``handover._Token``)."""

    def tick(self) -> None: ...


class _State(enum.Enum):
    IDLE = "idle"
    WAITING = "waiting"
    RETURNED = "returned"


IDLE = _State.IDLE
WAITING = _State.WAITING
RETURNED = _State.RETURNED


class Channel:
    """State shared by H, B and W threads.

    Invariant: ``posted``, ``state``, ``result`` and ``closing`` are read and
    written with ``lock`` held (H may read ``posted``/``state`` without it where
    a stale value is harmless, see ``Engine.host_wake``). ``wait_call`` and
    ``token`` are written by H before it releases ``go`` and taken by B after
    acquiring it: that release/acquire pair orders them.
    ``go`` is locked whenever ``state`` is IDLE or RETURNED.
    """

    __slots__ = (
        "closing",
        "go",
        "lock",
        "post_error",
        "post_threadsafe",
        "posted",
        "result",
        "state",
        "token",
        "wait_call",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.go = threading.Lock()
        self.go.acquire()
        self.posted = False
        self.state = IDLE
        self.result: outcome.Outcome[Any] | None = None
        self.closing = False
        self.wait_call: Callable[[], Any] | None = None
        self.token: Tickable | None = None
        # Set by each run's Engine while the backend is parked (IDLE): the
        # release of ``go`` orders it before the backend's next post.
        self.post_threadsafe: Callable[[Callable[[], object]], object] = no_host
        self.post_error: BaseException | None = None


def no_host(fn: Callable[[], object]) -> object:
    raise InternalError("the backend thread was given a wait outside a guest run")


class Backend:
    """One loop's backend thread and its channel (host thread only).

    The thread starts at the first wait a run hands over (a run that never
    waits, such as ``run_forever`` with only ready callbacks, starts none) and
    stays parked on ``go`` between runs of the same loop, so a restart costs
    no thread. It is stopped and joined by ``loop.close()`` (outside any run,
    so the join is never a blocking call inside a running loop), by a run that
    ends abnormally (``Engine.abort``/fatal errors: the next run gets a fresh
    channel and thread), and released without a join when the loop is
    garbage-collected unclosed (see ``release_parked``).
    """

    __slots__ = ("__weakref__", "ch", "thread")

    def __init__(self) -> None:
        self.ch = Channel()
        self.thread: threading.Thread | None = None

    def ensure_thread(self, name: str) -> None:
        if self.thread is None:
            self.thread = threading.Thread(
                target=_backend_main,
                args=(self.ch,),
                name=name,
                # Daemon only so that a host which abandons a run mid-wait
                # cannot hang interpreter exit; close() joins this thread.
                daemon=True,
            )
            self.thread.start()

    def stop(self, wake: Callable[[], object]) -> outcome.Outcome[Any] | None:
        """Make the thread exit and join it; return a wait result nobody took.

        ``wake`` ends a wait in progress. Afterwards the channel is new and
        parked, so the loop can run again.
        """
        ch = self.ch
        thread = self.thread
        self.ch = Channel()
        self.thread = None
        with ch.lock:
            released = ch.closing  # release_parked or an abandonment let it go
            ch.closing = True
            state = ch.state
        if thread is None:
            return None
        if state is WAITING:
            wake()  # harmless if it was woken already
        elif not released:
            ch.go.release()
        if thread is not threading.current_thread():
            thread.join()
        leftover, ch.result = ch.result, None
        return leftover

    def release_parked(self) -> None:
        """Any thread, maybe a finalizer: let a parked thread exit (no join)."""
        ch = self.ch
        if self.thread is None:
            return
        with ch.lock:
            if ch.closing or ch.state is not IDLE:
                return  # a run is using it; its own ending stops the thread
            ch.closing = True
        ch.go.release()


def _backend_main(ch: Channel) -> None:
    """Body of the backend thread: wait for ``go``, do one OS wait, hand it over.

    Holds no reference to the loop or the engine, only to the channel, and to
    the token only while it is handed a wait (so a host that drops the run is
    detected by the token's death).
    """
    while True:
        ch.go.acquire()
        if ch.closing:
            return
        wait, tok = ch.wait_call, ch.token
        ch.wait_call = ch.token = None
        assert wait is not None and tok is not None
        try:
            result: outcome.Outcome[Any] = outcome.Value(wait())
        except BaseException as exc:  # handed to the host, which ends the run
            result = outcome.Error(exc)
        del wait
        with ch.lock:
            if ch.closing:
                # Kept for the host: a completion port does not deliver a
                # dequeued packet again (Engine._stop_backend hands it over).
                ch.result = result
                return
            ch.result = result
            ch.state = RETURNED
            must_post = not ch.posted
            ch.posted = True
        del result
        if must_post:
            _post_from_backend(ch, tok)
        del tok


def _post_from_backend(ch: Channel, tok: Tickable) -> None:
    """Hand the tick to the host; a failing host primitive gets one retry."""
    for attempt in (1, 2):
        try:
            ch.post_threadsafe(tok.tick)
            return
        except BaseException as exc:
            if attempt == 2:
                # The host cannot be reached from this thread any more, so the
                # run cannot end through done_callback from here. Say so loudly;
                # the token dies with this frame and the run is reported as
                # abandoned, and any later host-side call raises InternalError.
                ch.post_error = exc
                logger.error(
                    "asyncio-guest: run_sync_soon_threadsafe raised in the backend "
                    "thread; the host can no longer be reached",
                    exc_info=exc,
                )
