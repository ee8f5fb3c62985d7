"""The reference host: ``asyncio_guest.run`` and the ``ReferenceHost`` it runs.

``run(main)`` has ``asyncio.run`` semantics, driven through guest mode: the
calling thread becomes a ``ReferenceHost`` (a minimal host loop, see
``_core/reference_host.py``) and the coroutine runs as its guest with the real
backend thread. Tests, benchmarks and headless programs use it; a program can
pass its own ``ReferenceHost`` to add host-side timers (``call_later``).
"""

from __future__ import annotations

import asyncio
from asyncio import events
from collections.abc import Callable
from typing import Any

import outcome

from ._core.handover import DEFAULT_TICK_BUDGET
from ._core.lifecycle import start_guest_run
from ._core.reference_host import HostTimer, ReferenceHost

__all__ = ["HostTimer", "ReferenceHost", "run"]


def run(
    main: Any,
    *args: Any,
    host: ReferenceHost | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> Any:
    """Run ``main`` (coroutine, or async function and ``*args``) to completion.

    Returns its result or raises its exception, after the same shutdown as
    ``asyncio.run``. If the host loop itself raises (a host timer callback, a
    second Ctrl+C in host code), the guest is cancelled and shut down first,
    then that exception propagates.
    """
    if events._get_running_loop() is not None:
        raise RuntimeError("asyncio_guest.run() cannot be called from a running event loop")
    the_host = host if host is not None else ReferenceHost()
    result: list[outcome.Outcome[Any]] = []

    def done(out: outcome.Outcome[Any]) -> None:
        result.append(out)
        the_host.stop()

    task = start_guest_run(
        main,
        *args,
        run_sync_soon_threadsafe=the_host.run_sync_soon_threadsafe,
        run_sync_soon_not_threadsafe=the_host.run_sync_soon_not_threadsafe,
        done_callback=done,
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
    )
    try:
        the_host.run()
    except BaseException:
        if not result:
            # Let the guest shut down before the host's error propagates.
            task.cancel()
            while not result:
                the_host.run()
        raise
    finally:
        del task
        if host is None:
            the_host.close()
    if not result:
        raise RuntimeError("the host loop was stopped before the guest run finished")
    return result[0].unwrap()
