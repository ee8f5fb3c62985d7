"""asyncio-guest: run asyncio inside another event loop, on that loop's thread.

Public names only; see DESIGN.md for the contract.
"""

from __future__ import annotations

import sys

from ._backend import DEFAULT_TICK_BUDGET, InternalError
from ._loop import GuestSelectorEventLoop, as_guest_loop
from ._reference_host import HostTimer, ReferenceHost
from ._reference_run import run
from ._run import asyncio_guest_run, start_guest_run

__all__ = [
    "DEFAULT_TICK_BUDGET",
    "GuestSelectorEventLoop",
    "HostTimer",
    "InternalError",
    "ReferenceHost",
    "as_guest_loop",
    "asyncio_guest_run",
    "run",
    "start_guest_run",
]

if sys.platform == "win32":
    from ._loop import GuestProactorEventLoop

    __all__ += ["GuestProactorEventLoop"]

__version__ = "0.1.0"
