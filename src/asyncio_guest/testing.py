"""Run unchanged asyncio code and test suites through guest mode.

A loop from ``new_event_loop()`` is a guest loop whose ``run_forever`` (and so
``run_until_complete``, ``asyncio.Runner`` and ``asyncio.run(...,
loop_factory=...)``) is driven by a ``ReferenceHost`` in the calling thread,
through the real engine and the wait strategy a run picks (the zero-thread wait
on an epoll or kqueue loop, else the backend thread; ``ASYNCIO_GUEST_WAIT``
chooses). Code written against a plain loop runs on it
unchanged, which is how CPython's own ``test_asyncio`` is run in guest mode
(``tools/conformance.py``).

For suites that create loops through the event-loop policy (pytest-asyncio's
``event_loop_policy`` fixture, for example), ``GuestEventLoopPolicy`` makes
every new loop a guest loop. asyncio deprecates policies from Python 3.14
(removal in 3.16), so the class is made only when first asked for, and asking
for it warns there, as ``asyncio.DefaultEventLoopPolicy`` does: importing this
module never warns. Prefer ``loop_factory=new_event_loop`` where the suite
accepts one. As a class attribute (``IsolatedAsyncioTestCase.loop_factory``,
which is looked up on the test case, so a function there becomes a method)
use the class ``EventLoop`` instead, as with ``asyncio.EventLoop``.
"""

from __future__ import annotations

import asyncio
import selectors
import sys
import warnings
from typing import Any

from ._core.guest_loop import GuestSelectorEventLoop, as_guest_loop, default_loop_factory

__all__ = ["EventLoop", "GuestSelectorEventLoop", "as_guest_loop", "new_event_loop"]

#: The guest loop class of the platform's default kind (what ``new_event_loop()``
#: makes): a class, so it stays a plain factory as a class attribute.
EventLoop: type[asyncio.AbstractEventLoop]
if sys.platform == "win32":
    from ._core.guest_loop import GuestProactorEventLoop

    EventLoop = GuestProactorEventLoop
else:
    EventLoop = GuestSelectorEventLoop

_POLICIES_DEPRECATED = sys.version_info >= (3, 14)


def new_event_loop(selector: selectors.BaseSelector | None = None) -> asyncio.AbstractEventLoop:
    """A new guest loop of the kind ``asyncio.new_event_loop()`` makes here.

    That is the proactor (IOCP) loop on Windows and the selector loop elsewhere;
    with a ``selector``, a selector loop on it.
    """
    if selector is not None and not isinstance(selector, selectors.BaseSelector):
        raise TypeError(
            f"new_event_loop(selector) takes a selectors.BaseSelector, got {selector!r}; "
            "as a class attribute (IsolatedAsyncioTestCase.loop_factory) a function "
            "becomes a method: use asyncio_guest.testing.EventLoop there"
        )
    if selector is not None:
        return GuestSelectorEventLoop(selector)
    return default_loop_factory()


def _stock_default_policy() -> type:
    """asyncio's default policy class, without touching a deprecated name on 3.14+."""
    if not _POLICIES_DEPRECATED:
        return asyncio.DefaultEventLoopPolicy  # type: ignore[attr-defined,no-any-return,unused-ignore]
    if sys.platform == "win32":
        from asyncio import windows_events as platform_events
    else:
        from asyncio import unix_events as platform_events
    return platform_events._DefaultEventLoopPolicy  # type: ignore[attr-defined,no-any-return]


_policy_class: type | None = None


def _make_policy_class() -> type:
    global _policy_class
    if _policy_class is None:

        class GuestEventLoopPolicy(_stock_default_policy()):  # type: ignore[misc]
            """Event-loop policy whose ``new_event_loop()`` returns guest loops."""

            def new_event_loop(self) -> asyncio.AbstractEventLoop:
                return new_event_loop()

        GuestEventLoopPolicy.__module__ = __name__
        _policy_class = GuestEventLoopPolicy
    return _policy_class


def __getattr__(name: str) -> Any:
    """``GuestEventLoopPolicy``, made on first use (see module doc)."""
    if name == "GuestEventLoopPolicy":
        if _POLICIES_DEPRECATED:
            warnings.warn(
                "asyncio_guest.testing.GuestEventLoopPolicy is deprecated, as asyncio's "
                "event loop policies are from Python 3.14 (removal in 3.16); use "
                "asyncio_guest.testing.new_event_loop as a loop_factory instead",
                DeprecationWarning,
                stacklevel=2,
            )
        return _make_policy_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
