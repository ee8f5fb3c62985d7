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

``posted`` is True while a tick is handed to the host (or owed to it):
whoever sets it posts a tick; nobody else posts (two racing setters post one
each; the rules are in ``handover.py``, which drives this channel from the host).

B holds no reference to the loop or the engine: only to the channel, and to
the run's token while it is handed a wait (so a host that drops the run is
detected by the token's death, see ``handover.py``).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import outcome

from .errors import InternalError

logger = logging.getLogger("asyncio_guest")


class Tickable(Protocol):
    """What the backend hands to the host: the run's token (``handover._Token``)."""

    def tick(self) -> None: ...


class State(enum.Enum):
    """The channel's state (the table above)."""

    IDLE = "idle"
    WAITING = "waiting"
    RETURNED = "returned"


IDLE = State.IDLE
WAITING = State.WAITING
RETURNED = State.RETURNED


class Channel:
    """State shared by H, B and W threads.

    Invariant: ``posted``, ``state``, ``result`` and ``closing`` are read and
    written with ``lock`` held, with two exceptions on H, which rest on who may
    change what: H may read ``posted``/``state`` without it where a stale value
    is harmless (``Engine.host_wake``), and a posted tick begins by clearing
    ``posted`` and moving RETURNED to IDLE without it (``Engine._tick``). Only
    H clears ``posted`` and only H leaves RETURNED; W and B only set ``posted``
    and B only moves WAITING to RETURNED. B's test-and-set of ``posted`` is
    under the lock; a W's is not (``Engine.request_tick``: it is on every
    worker's wake-up). Each, and H's (``Engine._after_tick``), is a swap that
    the GIL keeps whole, so H's lock-free clear falls before or after it,
    never between its read and its set (which would leave ``posted`` set with
    nothing in flight). A free-threaded build would need the lock around every
    set and clear (not supported). H's own moves never race with each other. ``wait_call`` and
    ``token`` are written by H before it releases ``go`` and taken by B after
    acquiring it: that release/acquire pair orders them.
    ``go`` is locked whenever ``state`` is IDLE or RETURNED.
    """

    __slots__ = (
        "closing",
        "failed",
        "go",
        "last_token",
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
        self.failed: BaseException | None = None  # the backend thread's own failure
        self.wait_call: Callable[[], Any] | None = None
        self.token: Tickable | None = None
        # The token of the wait the backend last took (weak: see handover.py,
        # abandonment), for reporting the backend's own failure.
        self.last_token: Callable[[], Tickable | None] | None = None
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
    no thread. Ways it ends:

    * ``loop.close()`` (``close``): outside any run, so the join is never a
      blocking call inside a running loop;
    * a run that ends abnormally: ``signal_stop`` tells the thread to exit at
      once (non-blocking) and gives the loop a fresh channel; the owner then
      calls ``join`` outside the running loop (and ``close`` joins whatever is
      left);
    * the loop is collected unclosed: ``release_parked`` lets a parked thread
      exit (no join: a finalizer may run on any thread);
    * the host abandons a run: ``release_abandoned``, likewise.
    """

    __slots__ = ("__weakref__", "ch", "retiring", "thread")

    def __init__(self) -> None:
        self.ch = Channel()
        self.thread: threading.Thread | None = None
        # Stopped and not yet joined: (channel, thread, wake).
        self.retiring: list[tuple[Channel, threading.Thread, Callable[[], object]]] = []

    def ensure_thread(self, name: str) -> bool:
        """Host thread, about to hand a wait over: start the thread if need be.

        False: no thread can start because the interpreter is exiting (3.12
        refuses new threads once the main thread has ended), and the caller's
        run is on a daemon thread, which the exit is about to stop where it
        stands. Any other thread gets the error: a run in an exit handler on
        the main thread would otherwise hang the exit.
        """
        thread = self.thread
        if thread is not None and not thread.is_alive():
            raise InternalError("the backend thread is gone (it failed before its first wait)")
        if thread is None:
            thread = threading.Thread(
                target=_backend_main,
                args=(self.ch,),
                name=name,
                # Daemon only so that a host which abandons a run mid-wait
                # cannot hang interpreter exit; close() joins this thread.
                daemon=True,
            )
            self.thread = thread  # recorded first: whatever happens, close() finds it
            try:
                thread.start()
            except RuntimeError:
                if threading.main_thread().is_alive() or not threading.current_thread().daemon:
                    raise
                self.thread = None  # never started: nothing to join
                return False
        return True

    def signal_stop(self, wake: Callable[[], object]) -> None:
        """Tell the thread to exit now (``wake`` ends a wait in progress); don't wait.

        Afterwards the loop has a fresh, parked channel, so it can run again;
        ``join`` collects the old thread. The thread is recorded as retiring
        before anything else is done, and ``join`` signals it again, so that
        whatever interrupts this it can never be lost or left parked.
        """
        ch, thread = self.ch, self.thread
        if thread is not None:
            self.retiring.append((ch, thread, wake))
            self.thread = None
        self.ch = Channel()
        _tell_to_exit(ch, wake)

    def join(self) -> outcome.Outcome[Any] | None:
        """Join the threads ``signal_stop`` stopped; return a wait result nobody took."""
        leftover: outcome.Outcome[Any] | None = None
        while self.retiring:
            ch, thread, wake = self.retiring[0]
            _tell_to_exit(ch, wake)  # again: idempotent
            if thread is not threading.current_thread() and thread.ident is not None:
                thread.join()  # (an ident: it was started)
            del self.retiring[0]  # only once joined: a failed join is tried again
            if ch.result is not None:
                leftover, ch.result = ch.result, None
        return leftover

    def close(self, wake: Callable[[], object]) -> outcome.Outcome[Any] | None:
        """``loop.close()``: stop and join the thread, parked or not.

        Every step is idempotent, so a step that fails is tried once more
        before its error is reported: a thread is never left behind by a
        close that raised.
        """
        try:
            self.signal_stop(wake)
            return self.join()
        except BaseException:
            try:
                self.signal_stop(wake)
                self.join()
            except BaseException:
                pass
            raise

    def release_parked(self) -> None:
        """Any thread, maybe a finalizer: let a parked thread exit (no join)."""
        ch = self.ch
        if self.thread is None or ch.state is not IDLE:
            return  # a run is using it; its own ending stops the thread
        _tell_to_exit(ch, None)

    def release_abandoned(self) -> None:
        """Any thread (a finalizer): the run was dropped; let the thread exit when it can.

        A thread in a wait notices when that wait returns (nobody can wake it
        from here: the loop may be half gone).
        """
        _tell_to_exit(self.ch, None)


def _tell_to_exit(ch: Channel, wake: Callable[[], object] | None) -> None:
    """Make the thread serving ``ch`` exit: idempotent, safe to repeat after a failure."""
    with ch.lock:
        ch.closing = True
        state = ch.state
    if state is WAITING:
        if wake is not None:
            wake()
        return
    try:
        ch.go.release()
    except RuntimeError:
        pass  # released already: the thread is on its way out


def _backend_main(ch: Channel) -> None:
    """Body of the backend thread: serve waits until told to stop.

    Holds no reference to the loop or the engine, only to the channel, and to
    the run's token only while it is handed a wait (so a host that drops the
    run is detected by the token's death). If this thread's own code fails,
    the failure is handed to the host as the wait's result (the run then ends
    with ``InternalError``): it must never just die, or the host would wait
    for a tick that never comes.
    """
    try:
        _serve_waits(ch)
    except BaseException as exc:
        _hand_over_failure(ch, exc)


def _serve_waits(ch: Channel) -> None:
    while True:
        ch.go.acquire()
        if ch.closing:
            return
        with ch.lock:
            # The token stays in the channel until the tick is posted, so a
            # failure of this thread can still be reported (_hand_over_failure).
            wait, tok = ch.wait_call, ch.token
            ch.wait_call = None
        if wait is None or tok is None:
            continue  # a hand-over the host took back (handover.Engine._recover)
        ch.last_token = weakref.ref(tok)
        try:
            result: outcome.Outcome[Any] = outcome.Value(wait())
        except BaseException as exc:  # handed to the host, which ends the run
            result = outcome.Error(exc)
        del wait
        with ch.lock:
            # Kept even when closing: a completion port does not deliver a
            # dequeued packet again (Backend.join hands it to the loop).
            ch.result = result
            if ch.closing:
                return
            ch.state = RETURNED
            # One swap, as a worker's (handover.Engine.request_tick): the lock
            # does not keep out the host's lock-free clear at a tick's start.
            # A True read before that clear and a set after it would leave
            # ``posted`` set with no tick in flight and the token dropped
            # below: the run reported abandoned. The GIL never switches
            # between a read and a set on two plain lines either, but a trace
            # hook can (tests/fault_injection.py, ``switches``), and the rule
            # is easier to keep as one statement.
            owed, ch.posted = ch.posted, True
            ch.token = None
        del result
        if not owed:
            _post_from_backend(ch, tok)
        del tok


def _hand_over_failure(ch: Channel, exc: BaseException) -> None:
    """This thread's own code raised ``exc``: make the host see it.

    With a token to post (the wait it was handed, or the last one), the failure
    becomes the wait's result and a tick is posted, even if one is posted
    already (it may be the one this thread was about to post when it failed:
    a tick more is harmless, a tick less hangs). Without one (it failed before
    its first wait), ``failed`` is set: the host checks it when it hands a
    wait over (``check_alive``), under the same lock.
    """
    with ch.lock:
        ch.failed = exc
        if ch.closing:
            ch.result = outcome.Error(exc)
            return
        tok = ch.token or (ch.last_token() if ch.last_token is not None else None)
        if tok is None:
            return
        ch.result = outcome.Error(exc)
        ch.state = RETURNED
        ch.posted = True
    _post_from_backend(ch, tok)


_POST_RETRY_DELAYS = (0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
"""Back-off between attempts when the host primitive raises in the backend
thread (a host whose queue is momentarily full drains it meanwhile): about
1.6 s in all before the run is given up as unreachable."""


def _post_from_backend(ch: Channel, tok: Tickable | None) -> None:
    """Hand the tick to the host; a failing host primitive is retried with back-off."""
    for delay in (*_POST_RETRY_DELAYS, None):
        assert tok is not None
        try:
            ch.post_threadsafe(tok.tick)
            return
        except BaseException as exc:
            if delay is not None:
                del exc
                time.sleep(delay)
                continue
            # The host cannot be reached from this thread any more, so the run
            # cannot end through done_callback from here. Say so loudly; the
            # token must die now (the run is then reported as abandoned at
            # once, and any later host-side call raises InternalError): so the
            # stored exception keeps no frame that holds it.
            tok = None
            traceback.clear_frames(exc.__traceback__)
            ch.post_error = exc
            logger.error(
                "asyncio-guest: run_sync_soon_threadsafe raised in the backend "
                "thread; the host can no longer be reached",
                exc_info=exc,
            )
            return
