"""The zero-thread wait strategy (Unix): the host watches the loop's selector fd.

An epoll or kqueue selector is itself one pollable file descriptor: it is
readable exactly when a poll of it would return events. A host that can watch
an fd (Tk ``createfilehandler``, Qt ``QSocketNotifier``, GLib
``unix_fd_add_full``, Trio ``wait_readable``, ``ReferenceHost.watch_readable``)
can therefore own the whole wait, and the guest needs no backend thread:

* when a tick ends with nothing left to run, the engine *arms*: the host
  watches the selector's fd for readability, and one host timer is set for the
  loop's next deadline (none without timers);
* when the fd is readable or the timer fires, the host calls ``FdWaits.ready``
  (on the host thread, outside ticks): the state becomes IDLE and it runs a
  tick, which polls the selector with a zero timeout itself.

The fd watch, once made, stays while ticks come from it: arming again only
sets the state. Removing and re-adding it at every wake-up would cost a host
call each way per round trip (a ``QSocketNotifier`` made and deleted, a Tcl
file handler deleted and created). The host timer stays too while the loop's
next deadline is the one it was set for: most applications have a timer
pending far off (a periodic task's sleep, a request's timeout) while their
I/O wakes the loop many times, and a host timer made and cancelled at each of
those wake-ups is a ``QTimer``, a Tcl ``after`` and command, a GLib source or
a Trio task per round trip (bench ``threadsafe_timer``: inside ``trio.run``
39 us per call before, 21 us with the timer kept). A kept timer that fires
while a tick is owed anyway finds that tick posted and does nothing. A
wake-up of the watch that finds a tick already owed (posted by a worker, or a
busy guest's next tick) makes that tick poll and removes the watch until the
next arming: left in place, the level-triggered watch would fire at every host
iteration until the owed tick ran, and for ever on a host that dispatches
posted callbacks below its fd watches (GLib idle sources; wxGTK's pending
events, handled when idle). The run's ending (``disarm``) removes whatever is
left.

The channel's states keep their meaning (``backend.py``), with the host's
watch in the backend's place: IDLE is "the host thread owns the poll" (a host
timer may stay set, for the next arming to keep), WAITING is "the host's fd
watch and timer own the wake-up". RETURNED is never used here: a wake-up runs
its tick at once.

Invariant (which thread touches what; what orders the hand-over):

* Everything here runs on the host thread: arming, disarming, ``ready``, and
  ``Channel.state`` (only this thread writes it in this strategy). No thread
  hands anything over, so no lock orders the hand-over: the host's own event
  dispatch does (a watch or timer callback never runs inside another host
  callback, except in a nested host loop, where ``Engine._tick`` defers).
* ``posted`` keeps its rule (whoever sets it posts or runs a tick). ``ready``
  reads it without the lock: only this thread clears it, so a True it reads
  stays True, and a worker that sets it just after the
  read posts a tick that finds its callback run already (one tick more, as
  when a worker posts just after a tick began). A wake-up that finds a tick
  already posted only makes the state IDLE and removes the watch (that tick
  then polls and arms afresh). Otherwise ``ready`` runs the tick at once
  without taking the flag (``Engine._tick`` with the state given): a posted
  tick would clear it again on the same thread straight after. Inside a
  nested host loop the tick cannot run now: there ``ready`` takes the flag
  under ``Channel.lock`` (set against a worker's test-and-set), so the
  deferred tick is owed as a posted one and the watch, firing again, is
  removed.
* A tick polls the selector when the state is IDLE (the host's wake-up
  brought it, or the previous tick left work); a tick a worker posted while
  the state is WAITING runs what is ready and leaves I/O and timers to the
  armed watch and timer, as with a backend thread. The watch is
  level-triggered, so an event no tick has read fires it again. On a host
  with ``worker_wakes_by_fd`` a worker posts no tick at all: it writes the
  loop's worker wake fd, which the host watches too (``worker_woke``: kept
  for the whole run, drained at each firing), and the tick that watch runs
  is a worker's tick as above: it runs the callback and leaves I/O and
  timers to the armed watch and timer. The watch drains the fd after that
  tick, then runs one more if a callback is ready (queued before a write
  the drain took). A host that also calls back right after its I/O wait
  (``after_each_wait``) runs that tick from there (``host_waited``), before
  it dispatches the watch; only the watch drains the fd, and finding
  nothing left to run, it runs no tick.
* Host code outside a tick (``call_soon``, ``stop``, a signal handler) wakes
  the armed watch with one byte on the loop's self-pipe, which the selector
  watches (``Engine.host_wake``): lock-free and signal-safe, as with a thread.
  An earlier ``call_at`` re-arms the host timer directly (``timer_added``).
* ``disarm`` is idempotent and forgets each removal only once it succeeded, so
  a run's ending (``Engine.stop``) can always retry it: no fd is left watched
  and no timer set once a run has ended.

The strategy is chosen per run (``choose``): ``ASYNCIO_GUEST_WAIT`` (``auto``,
the default; ``fd``; ``thread``) and whether the host gave an ``FdWatcher``
and the loop has one pollable fd (``GuestLoopMixin._guest_pollable_fd``: an
exact ``EpollSelector`` or ``KqueueSelector``; not poll/select selectors, whose
registrations live in user space, nor the IOCP proactor).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .backend import IDLE, WAITING

if TYPE_CHECKING:
    from .handover import Engine, _Token
    from .worker_wake import WorkerWake

ENV = "ASYNCIO_GUEST_WAIT"
CHOICES = ("auto", "thread", "fd")


class FdWatcher(Protocol):
    """What a host offers to run a guest loop with no backend thread (host thread only).

    ``watch_readable(fd, callback)``: call ``callback()`` on the host thread,
    outside any other host callback, each time ``fd`` is readable while it is
    watched (level-triggered). Returns the function that stops the watch;
    calling it more than once, or after the host loop ended, must be harmless.

    ``call_later(delay, callback)``: call ``callback()`` once on the host
    thread after ``delay`` seconds (the host's own timer). Returns the function
    that cancels it; harmless after the timer fired or when called again.

    Optional ``worker_wakes_by_fd`` (default False): True when the host's fd
    watch wakes it sooner than ``run_sync_soon_threadsafe`` does; a worker's
    ``call_soon_threadsafe`` then only writes the loop's worker wake fd, which
    the host watches beside the selector's (``worker_wake.py``), as a plain
    loop's writes its self-pipe. Measured per host
    (``bench/run.py --only threadsafe``): GLib's C fd source beats a
    ``GLib.Idle`` made per wake-up, Trio's ``wait_readable`` beats
    ``TrioToken.run_sync_soon``, and Qt's ``QSocketNotifier`` beats a posted
    event; the reference host's own pipe and Tk's queued event (Tcl watches
    fds from its notifier thread) beat their fd watch.

    Optional ``after_each_wait(callback)``, with ``worker_wakes_by_fd``: call
    ``callback()`` on the host thread each time the host's loop is back from
    its I/O wait, before it runs the callbacks that wait made due (Trio: an
    instrument's ``after_io_wait``). Returns the function that stops it (as
    above). What ``callback`` raises must leave into the host loop as from any
    host callback. The engine then runs a worker's callback from there
    (``FdWaits.host_waited``), sooner than the worker wake fd's watch would on
    a host whose watch callback is a task step.

    Optional ``watch_fd_limit`` (default none): the host watches no fd at or
    above it (Tcl's notifier waits with ``select()``: 1024); a loop whose fd is
    beyond it waits in the backend thread instead.
    """

    def watch_readable(self, fd: int, callback: Callable[[], object]) -> Callable[[], object]: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Callable[[], object]: ...


class WaitChoiceError(RuntimeError):
    """The zero-thread wait was required (``ASYNCIO_GUEST_WAIT=fd``) where it cannot be had."""


def requested() -> str:
    """``ASYNCIO_GUEST_WAIT``, checked: ``auto`` (unset or empty), ``thread`` or ``fd``."""
    value = os.environ.get(ENV, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(CHOICES)}")
    return value


def choose(watcher: FdWatcher | None, fd: int | None) -> int | None:
    """The fd the host is to watch for this run, or None for the backend thread.

    ``fd`` is the loop's one pollable fd, if it has one. With ``fd`` requested,
    a host that cannot watch fds is an error, never a silent fall-back; a loop
    kind that has no such fd (poll/select selectors, IOCP) waits in its
    backend thread in every mode: the zero-thread path does not exist for it.
    """
    mode = requested()
    if mode == "thread" or fd is None:
        return None
    if watcher is None:
        if mode == "fd":
            raise WaitChoiceError(
                f"{ENV}=fd: this run's host gave no fd_watcher, so it cannot wait "
                "on the loop's selector itself (pass fd_watcher=..., or use "
                f"{ENV}=auto or thread)"
            )
        return None
    limit = getattr(watcher, "watch_fd_limit", None)
    if limit is not None and fd >= limit:
        if mode == "fd":
            raise WaitChoiceError(
                f"{ENV}=fd: this run's host watches no fd at or above {limit}, "
                f"and the loop's selector is fd {fd}"
            )
        return None
    return fd


class FdWaits:
    """One engine's zero-thread waits: the armed watch and timer (host thread only)."""

    __slots__ = (
        "_cancel_timer",
        "_timer_at",
        "_unhook",
        "_unwatch",
        "_unwatch_wake",
        "fd",
        "wake",
        "watcher",
        "worker_wakes_by_fd",
    )

    def __init__(self, watcher: FdWatcher, fd: int) -> None:
        self.watcher = watcher
        self.fd = fd
        self.worker_wakes_by_fd = bool(getattr(watcher, "worker_wakes_by_fd", False))
        # The loop's worker wake fd, when worker_wakes_by_fd (set by the
        # engine's start): watched beside the selector fd (worker_wake.py).
        self.wake: WorkerWake | None = None
        # What disarm() must call; each is forgotten only once it succeeded.
        self._unwatch: Callable[[], object] | None = None
        self._unwatch_wake: Callable[[], object] | None = None
        self._unhook: Callable[[], object] | None = None
        self._cancel_timer: Callable[[], object] | None = None
        # The loop time the host timer is set for (inf: none is set). Valid
        # exactly while _cancel_timer is set: both change together.
        self._timer_at = math.inf

    def arm(self, engine: Engine, tok: _Token, timeout: float | None, deadline: float) -> None:
        """IDLE, end of a tick with nothing to run: let the host own the wake-up.

        ``deadline`` is the loop time at which the wait ends (the first
        timer's own ``_when``; inf without a timeout: ``_guest_wait_timeout``),
        so the same loop timer gives the same deadline at every arming. The fd
        watch is made at the first arming and kept; the host timer is kept when
        it is set for this deadline already, else set afresh (none without a
        timeout). The state becomes WAITING only once both are in place.
        """
        if self._unwatch is None:
            self._unwatch = self.watcher.watch_readable(
                self.fd, functools.partial(self.ready, engine, tok)
            )
        wake = self.wake
        if wake is not None and self._unwatch_wake is None:
            # Kept for the whole run: drained at each firing, it never fires
            # for an owed tick's sake (see ready).
            self._unwatch_wake = self.watcher.watch_readable(
                wake.fd, functools.partial(self.worker_woke, engine, tok, wake.drain)
            )
            after_each_wait = getattr(self.watcher, "after_each_wait", None)
            if after_each_wait is not None:
                self._unhook = after_each_wait(functools.partial(self.host_waited, engine, tok))
        if self._timer_at != deadline:
            self.cancel_timer()
            if timeout is not None:
                self._set_timer(engine, tok, timeout, deadline)
        engine._ch.state = WAITING

    def _set_timer(self, engine: Engine, tok: _Token, delay: float, when: float) -> None:
        self._cancel_timer = self.watcher.call_later(
            delay, functools.partial(self._timer_fired, engine, tok)
        )
        self._timer_at = when

    def timer_added(self, engine: Engine, tok: _Token, when: float) -> None:
        """WAITING, outside ticks: a loop timer earlier than the host timer; set it again.

        Should the host's timer primitive fail here (in host code's
        ``call_at``), the wake-up falls back to the self-pipe: the tick it
        causes arms afresh, and a failure there ends the run.
        """
        try:
            self.cancel_timer()
            self._set_timer(engine, tok, max(0.0, when - engine._loop.time()), when)
            engine._deadline = when
        except Exception:
            engine._deadline = -math.inf
            engine.host_wake()

    def disarm(self, engine: Engine) -> None:
        """Remove the watch and the timer (idempotent); the state becomes IDLE."""
        self.remove()
        engine._ch.state = IDLE

    def cancel_timer(self) -> None:
        """Cancel the host timer, if set (idempotent; forgotten once cancelled)."""
        cancel = self._cancel_timer
        if cancel is not None:
            cancel()
            self._cancel_timer = None
            self._timer_at = math.inf

    def remove(self) -> None:
        """Remove the watches and the timer, if set (idempotent)."""
        unwatch = self._unwatch
        if unwatch is not None:
            unwatch()
            self._unwatch = None
        unwatch = self._unwatch_wake
        if unwatch is not None:
            unwatch()
            self._unwatch_wake = None
        unwatch = self._unhook
        if unwatch is not None:
            unwatch()
            self._unhook = None
        self.cancel_timer()

    def _timer_fired(self, engine: Engine, tok: _Token) -> None:
        """The host timer's callback: it is spent (nothing to cancel), then as ``ready``."""
        self._cancel_timer = None
        self._timer_at = math.inf
        self.ready(engine, tok, from_watch=False)

    def host_waited(self, engine: Engine, tok: _Token) -> None:
        """The host's after-wait hook (``FdWatcher.after_each_wait``): its I/O wait returned.

        A callback queued while the watch is armed (a worker's, as a rule) is
        run now by a worker's tick, before the host dispatches what its wait
        found: on Trio that dispatch is a task step, ~4 us before the worker
        wake fd's watch would run (bench ``threadsafe``). The worker wake fd is
        left to that watch to drain (``worker_woke``), which then finds
        nothing to run: one path drains, and looks at the ready queue after
        its drain, so no drain takes a write whose callback nobody runs.
        """
        ch = engine._ch
        if (
            ch.state is WAITING
            and not ch.posted
            and engine._loop._ready
            and not engine._in_tick
            and engine._run == tok.run
        ):
            engine._tick(tok, WAITING)

    def worker_woke(self, engine: Engine, tok: _Token, drain: Callable[[], object]) -> None:
        """The host's callback: a worker wrote the worker wake fd (worker_wake.py).

        A tick runs what is ready, in the state it finds (WAITING, armed, as a
        rule): as a tick a worker posts while the watch is armed, it leaves I/O
        and timers to the armed watch and timer, so the wake-up costs no poll
        and no arming (``ready`` would make the state IDLE). The fd is drained
        after that tick, off the path from the worker's write to its callback
        (the read is a system call, ~0.7 us of it on GLib). What orders it: a
        worker queues its callback before it writes, so once drained, every
        callback whose write the drain took is in the ready queue; if any is
        (queued after the tick took its batch), one more tick runs it. A
        worker that writes after the drain finds the fd readable again (the
        watch fires again); one that wrote while a tick is posted left its
        callback to that tick. Nothing ready while armed: the host's after-wait
        hook ran it (``host_waited``), so no tick, only the drain; nothing to
        drain: a linger in the tick took the wake-up. An ended run, or a nested
        host loop (the tick must wait), drain first and go through ``ready``.
        """
        ch = engine._ch
        if engine._run != tok.run or engine._finished or engine._in_tick:
            self._drain_then_ready(engine, tok, drain)
            return
        state = ch.state
        if not ch.posted and (state is not WAITING or engine._loop._ready):
            engine._tick(tok, state)
            if engine._run != tok.run or engine._finished:
                return  # the run ended in that tick, which removed this watch
        try:
            drain()
        except BlockingIOError:
            pass
        except BaseException as exc:
            engine._fatal(exc)  # our machinery failing, as in ready
            engine._raise_to_host()
            return
        if engine._loop._ready and not ch.posted:
            engine._tick(tok, ch.state)

    def _drain_then_ready(self, engine: Engine, tok: _Token, drain: Callable[[], object]) -> None:
        """``worker_woke`` for an ended run or inside a tick: as ``ready``, once drained."""
        ended = engine._run != tok.run or engine._finished
        try:
            drain()
        except BlockingIOError:
            return
        except BaseException as exc:
            if ended:
                self.remove()  # as ready: never leave it firing
            else:
                engine._fatal(exc)  # our machinery failing, as in ready
                engine._raise_to_host()
            return
        self.ready(engine, tok, from_watch=False)

    def ready(self, engine: Engine, tok: _Token, from_watch: bool = True) -> None:
        """The host's callback: the fd is readable, or the timer fired.

        The state becomes IDLE (the next tick polls, and arms after it); then
        the tick runs, unless one is posted already (that one polls): a watch's
        call then removes the watch until the next arming. Left in place, the
        level-triggered watch would fire at every host iteration until the
        owed tick ran, and never stop on a host that dispatches posted
        callbacks below its fd watches (GLib idle sources, wx's pending
        events, which wxGTK handles when idle). The host timer is left as it
        is: the next arming keeps it if the loop's deadline is still its own.
        A late call for an ended run removes what is left; a failing host
        primitive here is our machinery failing (raised on the host thread).
        """
        if engine._run != tok.run or engine._finished:
            self.remove()  # a run's ending removes it first; never leave it firing
            return
        try:
            ch = engine._ch
            ch.state = IDLE
            if engine._in_tick:  # a nested host loop: _tick defers, the tick is owed
                with ch.lock:
                    owed = ch.posted
                    ch.posted = True
            else:
                owed = ch.posted  # True stays True until this thread clears it
            if owed:
                unwatch = self._unwatch if from_watch else None
                if unwatch is not None:
                    self._unwatch = None
                    unwatch()
                return
        except BaseException as exc:
            engine._fatal(exc)
            engine._raise_to_host()
            return
        engine._tick(tok, IDLE)
