"""Run unchanged asyncio code and test suites through guest mode.

A loop from ``new_event_loop()`` is a guest loop whose ``run_forever`` (and so
``run_until_complete``, ``asyncio.Runner`` and ``asyncio.run(...,
loop_factory=...)``) is driven by a ``ReferenceHost`` in the calling thread
through the real backend thread. Code written against a plain loop runs on it
unchanged, which is how CPython's own ``test_asyncio`` is run in guest mode
(``tools/conformance.py``).

For suites that create loops through the event-loop policy (pytest-asyncio's
``event_loop_policy`` fixture, for example), ``GuestEventLoopPolicy`` makes
every new loop a guest loop. Policies are deprecated from Python 3.14; prefer
``loop_factory`` where the suite accepts one.
"""

from __future__ import annotations

import asyncio
import selectors

from ._loop import GuestSelectorEventLoop, as_guest_loop, default_loop_factory

__all__ = ["GuestEventLoopPolicy", "GuestSelectorEventLoop", "as_guest_loop", "new_event_loop"]


def new_event_loop(selector: selectors.BaseSelector | None = None) -> asyncio.AbstractEventLoop:
    """A new guest loop of the kind ``asyncio.new_event_loop()`` makes here.

    That is the proactor (IOCP) loop on Windows and the selector loop elsewhere;
    with a ``selector``, a selector loop on it.
    """
    if selector is not None:
        return GuestSelectorEventLoop(selector)
    return default_loop_factory()


class GuestEventLoopPolicy(asyncio.DefaultEventLoopPolicy):  # type: ignore[misc,name-defined,unused-ignore]
    """Event-loop policy whose ``new_event_loop()`` returns guest loops."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop()
