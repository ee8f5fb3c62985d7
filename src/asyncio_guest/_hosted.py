"""``run_forever`` of a guest loop, driven through guest mode by a reference host.

Unchanged asyncio code calls ``loop.run_until_complete()`` / ``run_forever()``.
On a guest loop those run a ``ReferenceHost`` in the calling thread and drive
the loop through the real ``Engine`` and backend thread until ``stop()``, with
``run_forever``'s own set-up and tear-down (running loop, async-generator
hooks, coroutine origin tracking). One backend thread per call, joined before
the call returns.
"""

from __future__ import annotations

import sys
import threading
from asyncio import events
from typing import TYPE_CHECKING, Any

from ._backend import DEFAULT_TICK_BUDGET, Engine
from ._reference_host import ReferenceHost

if TYPE_CHECKING:
    from ._loop import GuestLoopMixin


class _HostedRunForever:
    """Engine owner for one ``run_forever`` call (host thread only)."""

    def __init__(self, loop: GuestLoopMixin, host: ReferenceHost) -> None:
        self.loop = loop
        self.host = host
        self.engine: Engine | None = None
        self.error: BaseException | None = None

    def on_loop_stopped(self) -> None:
        assert self.engine is not None
        self.engine.request_finish()

    def on_callback_raised(self, exc: BaseException) -> None:
        # run_forever lets KeyboardInterrupt/SystemExit out at once.
        self.error = exc
        assert self.engine is not None
        self.engine.abort()
        self.host.stop()

    def on_fatal(self, exc: BaseException) -> None:
        self.error = exc
        self.host.stop()

    def finalize(self) -> None:
        self.host.stop()

    def on_abandoned(self) -> None:  # the reference host never drops callbacks
        pass


def run_forever_hosted(loop: GuestLoopMixin) -> None:
    """Body of ``GuestLoopMixin.run_forever`` (see module doc)."""
    aloop: Any = loop
    aloop._check_closed()
    aloop._check_running()
    aloop._set_coroutine_origin_tracking(aloop._debug)
    old_agen_hooks = sys.get_asyncgen_hooks()
    host = ReferenceHost()
    owner = _HostedRunForever(loop, host)
    engine = Engine(
        loop,
        owner,
        run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
        run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
        tick_budget=getattr(loop, "guest_tick_budget", DEFAULT_TICK_BUDGET),
    )
    owner.engine = engine
    try:
        aloop._thread_id = threading.get_ident()
        sys.set_asyncgen_hooks(
            firstiter=aloop._asyncgen_firstiter_hook,
            finalizer=aloop._asyncgen_finalizer_hook,
        )
        events._set_running_loop(aloop)
        loop._guest_attach(engine)
        engine.start()
        try:
            host.run()
        finally:
            # A signal handler may have raised out of host.run(): stop the
            # backend whatever state it is in.
            if not engine.finished:
                engine.abort()
        if owner.error is not None:
            raise owner.error
    finally:
        loop._guest_detach()
        host.close()
        aloop._stopping = False
        aloop._thread_id = None
        events._set_running_loop(None)
        aloop._set_coroutine_origin_tracking(False)
        sys.set_asyncgen_hooks(*old_agen_hooks)
        owner.error = None
