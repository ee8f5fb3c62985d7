"""The reference host: ``asyncio_guest.run`` and the ``ReferenceHost`` it runs.

``run(main)`` has ``asyncio.run`` semantics, driven through guest mode: the
calling thread becomes a ``ReferenceHost`` (a minimal host loop, see
``_core/reference_host.py``) and the coroutine runs as its guest: with no
backend thread where the loop's selector is one fd (epoll, kqueue: the host
watches it), with the real backend thread otherwise. Tests, benchmarks and
headless programs use it; a program can pass its own ``ReferenceHost`` to add
host-side timers (``call_later``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ._core.entry import run_beside
from ._core.handover import DEFAULT_TICK_BUDGET
from ._core.reference_host import HostTimer, ReferenceHost

__all__ = ["HostTimer", "ReferenceHost", "run"]

if TYPE_CHECKING:
    from ._core.main_args import MainArgs, Unpack

_T = TypeVar("_T")


def run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    host: ReferenceHost | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> _T:
    """Run ``main`` (coroutine, or async function and ``*args``) to completion.

    Returns its result or raises its exception, after the same shutdown as
    ``asyncio.run``. If the host loop itself raises (a host timer callback, a
    Ctrl+C in host code), the guest is shut down at once, synchronously, as
    ``asyncio.run`` does after an interrupt, and then that exception propagates.
    """
    the_host = host if host is not None else ReferenceHost()
    return run_beside(
        main,
        args,
        run_sync_soon_threadsafe=the_host.run_sync_soon_threadsafe,
        run_sync_soon_not_threadsafe=the_host.run_sync_soon_not_threadsafe,
        run_host=lambda _main_task: the_host.run(),
        stop_host=the_host.stop,
        close_host=the_host.close if host is None else None,
        entry_name="asyncio_guest.run",
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
        fd_watcher=the_host,
    )
