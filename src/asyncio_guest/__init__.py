"""asyncio-guest: run asyncio inside another event loop, on that loop's thread.

Public names only; the design is docs/design.md.
"""

from __future__ import annotations

import sys

from ._core.errors import InternalError
from ._core.fd_watch import FdWatcher, WaitChoiceError
from ._core.guest_loop import GuestSelectorEventLoop, as_guest_loop
from ._core.handover import DEFAULT_TICK_BUDGET
from ._core.lifecycle import asyncio_guest_run, start_guest_run
from .callbacks import AsyncCallback, async_callback
from .modal import run_modal
from .reference import HostTimer, ReferenceHost, run

__all__ = [
    "DEFAULT_TICK_BUDGET",
    "AsyncCallback",
    "FdWatcher",
    "GuestSelectorEventLoop",
    "HostTimer",
    "InternalError",
    "ReferenceHost",
    "WaitChoiceError",
    "as_guest_loop",
    "async_callback",
    "asyncio_guest_run",
    "run",
    "run_modal",
    "start_guest_run",
]

if sys.platform == "win32":
    from ._core.guest_loop import GuestProactorEventLoop

    __all__ += ["GuestProactorEventLoop"]

__version__ = "0.1.0"
