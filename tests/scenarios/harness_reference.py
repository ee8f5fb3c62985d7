"""The reference host (``asyncio_guest.run``): no widgets, no window."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncio_guest

from .harness import Harness

_T = TypeVar("_T")


class ReferenceHarness:
    name = "reference"
    capabilities: frozenset[str] = frozenset()

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        return asyncio_guest.run(main)

    def make_button(self, command: Callable[[], object]) -> Any:
        raise NotImplementedError

    def click(self, button: Any) -> None:
        raise NotImplementedError

    def call_every(self, interval: float, fn: Callable[[], object]) -> Callable[[], None]:
        raise NotImplementedError

    def call_soon_in_host(self, fn: Callable[[], object]) -> None:
        raise NotImplementedError

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        raise NotImplementedError

    def close_window(self) -> None:
        raise NotImplementedError


HARNESSES: list[Harness] = [ReferenceHarness()]
