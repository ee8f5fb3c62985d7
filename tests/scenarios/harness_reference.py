"""The reference host (``asyncio_guest.run``): no widgets, no window; its own timers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncio_guest

from .harness import SIGINT, TOOLKIT_LOOP, Harness

_T = TypeVar("_T")


class ReferenceHarness:
    name = "reference"
    capabilities: frozenset[str] = frozenset({SIGINT, TOOLKIT_LOOP})

    def __init__(self) -> None:
        self.host: asyncio_guest.ReferenceHost | None = None

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        self.host = host = asyncio_guest.ReferenceHost()
        try:
            return asyncio_guest.run(main, host=host)
        finally:
            self.host = None
            host.close()

    def make_button(self, command: Callable[[], object]) -> Any:
        raise NotImplementedError

    def click(self, button: Any) -> None:
        raise NotImplementedError

    def call_every(self, interval: float, fn: Callable[[], object]) -> Callable[[], None]:
        host = self.host
        assert host is not None
        current: list[asyncio_guest.HostTimer] = []

        def fire() -> None:
            current[:] = [host.call_later(interval, fire)]
            fn()

        current.append(host.call_later(interval, fire))
        return lambda: [t.cancel() for t in current] and None

    def call_soon_in_host(self, fn: Callable[[], object]) -> None:
        host = self.host
        assert host is not None
        host.call_later(0, fn)

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        raise NotImplementedError

    def close_window(self) -> None:
        raise NotImplementedError


HARNESSES: list[Harness] = [ReferenceHarness()]
