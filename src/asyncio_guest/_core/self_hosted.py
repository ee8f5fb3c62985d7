"""``run_forever`` of a guest loop, driven through guest mode by a reference host.

Unchanged asyncio code calls ``loop.run_until_complete()`` / ``run_forever()``.
On a guest loop those run a ``ReferenceHost`` in the calling thread and drive
the loop through the real ``Engine`` (with the backend thread, or with none:
the reference host watches an epoll/kqueue selector's fd, see ``fd_watch.py``)
until ``stop()``, with ``run_forever``'s own set-up and tear-down (running
loop, async-generator hooks, coroutine origin tracking:
``_run_forever_setup``/``_run_forever_cleanup``, the stock ones on 3.13+). The
reference host and the backend thread (if any) belong to the loop and are kept
between calls (``loop.close()`` releases them), so a restart costs no thread
and no pipe.
"""

from __future__ import annotations

import sys
import threading
import time
from asyncio import base_events, events
from typing import TYPE_CHECKING, Any, Protocol

from .errors import InternalError
from .handover import DEFAULT_TICK_BUDGET, Engine, GuestLoop
from .reference_host import ReferenceHost

if TYPE_CHECKING:
    from .guest_loop import GuestLoopState


class SelfHostedLoop(GuestLoop, Protocol):
    """What this module uses of a guest loop besides what the engine uses."""

    def _guest_state(self) -> GuestLoopState: ...
    def _guest_attach(self, engine: Engine) -> None: ...
    def _guest_detach(self) -> None: ...


class SelfHostedRuns:
    """Engine owner for the ``run_forever`` calls of one loop (host thread only).

    Made at the loop's first ``run_forever`` and kept on the loop (with its
    reference host and engine) until ``loop.close()``.
    """

    def __init__(self, loop: SelfHostedLoop) -> None:
        self.host = ReferenceHost()
        self.engine = Engine(
            loop,
            self,
            run_sync_soon_threadsafe=self.host.run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=self.host.run_sync_soon_not_threadsafe,
            tick_budget=DEFAULT_TICK_BUDGET,
            fd_watcher=self.host,
        )
        self.error: BaseException | None = None

    def close(self) -> None:
        self.host.close()

    def on_loop_stopped(self) -> None:
        self.engine.request_finish()

    def on_callback_raised(self, exc: BaseException) -> None:
        # run_forever lets KeyboardInterrupt/SystemExit out at once; the
        # backend is joined once the loop no longer runs (run_forever_self_hosted).
        self.error = exc
        self.engine.stop()
        self.host.stop()

    def on_fatal(self, exc: BaseException) -> None:
        self.error = exc
        self.host.stop()

    def finalize(self) -> None:
        self.host.stop()

    def on_abandoned(self) -> None:  # the reference host never drops callbacks
        pass


def _run_forever_setup(loop: Any) -> None:
    """``BaseEventLoop._run_forever_setup`` (3.13+), for 3.10-3.12."""
    loop._check_closed()
    loop._check_running()
    loop._set_coroutine_origin_tracking(loop._debug)
    loop._old_agen_hooks = sys.get_asyncgen_hooks()
    loop._thread_id = threading.get_ident()
    sys.set_asyncgen_hooks(
        firstiter=loop._asyncgen_firstiter_hook, finalizer=loop._asyncgen_finalizer_hook
    )
    events._set_running_loop(loop)


def _run_forever_cleanup(loop: Any) -> None:
    """``BaseEventLoop._run_forever_cleanup`` (3.13+), for 3.10-3.12."""
    loop._stopping = False
    loop._thread_id = None
    events._set_running_loop(None)
    loop._set_coroutine_origin_tracking(False)
    if loop._old_agen_hooks is not None:
        sys.set_asyncgen_hooks(*loop._old_agen_hooks)
        loop._old_agen_hooks = None


def _first_slice(loop: SelfHostedLoop, budget: float) -> bool:
    """Run the first slice of work here, as the engine's first tick would.

    The same budgeted iterations (``_guest_run``, the host owning the poll), but
    with no host round trip and no engine run: a ``run_forever`` that stops
    within it (a restart with only ready callbacks, ``run_until_complete`` of
    something already done) never needs the host or the backend. Returns True
    if the loop stopped. What escapes is what ``run_forever`` lets escape.
    """
    loop._guest_enter_tick()
    try:
        stopped: bool = loop._guest_run_slice(None, True, time.perf_counter() + budget)
        return stopped
    except BaseException as exc:
        if loop._guest_took_escape(exc):
            raise
        raise InternalError(f"asyncio-guest machinery failed: {exc!r}") from exc
    finally:
        loop._guest_leave_tick()


def run_forever_self_hosted(loop: SelfHostedLoop) -> None:
    """Body of ``GuestLoopMixin.run_forever`` (see module doc).

    Order at the end: the stock clean-up first (the loop stops being the
    running loop), then the backend thread of an abnormal end is joined (a
    blocking call, so never inside a running loop), then the loop is detached
    (a proactor loop finishes the completions that thread dequeued): the
    order of ``ProactorEventLoop.run_forever``, whose self-socket read is
    cancelled after the base clean-up too.
    """
    aloop: Any = loop
    previous = loop._guest_state().self_host
    if previous is not None and previous.engine._backend.retiring:
        # A backend thread the last run's end failed to join (only a failing
        # join leaves one) is joined now, outside the running loop (a join
        # blocks), before this run can start another: never two backend
        # threads at once. On a proactor loop both would wait on the one
        # completion port, and under Wine a waiting thread's packet can be
        # taken by another thread's dequeue: the new thread took the old one's
        # exit packet, the old one then took the wake-up meant for the new one
        # and exited with it (CI: tests/test_edges.py's failing-join test hung,
        # the host asleep and the one thread left waiting).
        previous.engine.join_backend()
    if _HAS_SETUP:
        aloop._run_forever_setup()  # a subclass's override included
    else:
        _run_forever_setup(aloop)
    owner: SelfHostedRuns | None = None
    started = False  # the engine ran (else the first slice stopped the loop)
    failed = True
    try:
        state = loop._guest_state()
        owner = state.self_host
        if owner is None:
            owner = state.self_host = SelfHostedRuns(loop)
        engine = owner.engine
        loop._guest_attach(engine)
        if not _first_slice(loop, engine.budget):
            started = True
            engine.start()
            owner.host.run()
        failed = owner.error is not None
    finally:
        try:
            if _HAS_SETUP:
                aloop._run_forever_cleanup()
            else:
                _run_forever_cleanup(aloop)
        finally:
            if owner is not None:
                try:
                    # A signal handler may have raised out of host.run(): stop
                    # the backend whatever state it is in. Not when the engine
                    # never started (a restart that only ran ready callbacks):
                    # the last run's end has stopped and joined it already.
                    if started:
                        owner.engine.abort()
                except BaseException:
                    if not failed:
                        raise
                    # The run's own error wins; close() tries the join again.
                finally:
                    loop._guest_detach()
    if owner.error is not None:
        error, owner.error = owner.error, None
        raise error


_HAS_SETUP = hasattr(base_events.BaseEventLoop, "_run_forever_setup")
