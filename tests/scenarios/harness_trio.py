"""The Trio host (``asyncio_guest.trio``): asyncio as the guest of ``trio.run``.

No widgets and no window: the scenarios that need them are not generated for
it. ``run(main)`` is ``trio.run(run_asyncio, main)``, the module's own entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..loops import wine_version
from .harness import Harness

_T = TypeVar("_T")

try:
    import trio
except ImportError:  # the scenario module reports the missing toolkit
    trio = None  # type: ignore[assignment]


class TrioHarness:
    name = "trio"
    capabilities: frozenset[str] = frozenset()

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        from asyncio_guest.trio import run_asyncio

        return trio.run(run_asyncio, main)

    def make_button(self, command: Callable[[], object]) -> Any:
        raise NotImplementedError("Trio has no widgets")

    def click(self, button: Any) -> None:
        raise NotImplementedError("Trio has no widgets")

    def call_every(self, interval: float, fn: Callable[[], object]) -> Callable[[], None]:
        """A Trio system task that calls ``fn`` every ``interval`` seconds."""
        scope = trio.CancelScope()

        async def repeat() -> None:
            with scope:
                while True:
                    await trio.sleep(interval)
                    fn()

        trio.lowlevel.spawn_system_task(repeat)
        return scope.cancel

    def call_soon_in_host(self, fn: Callable[[], object]) -> None:
        trio.lowlevel.current_trio_token().run_sync_soon(fn)

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        raise NotImplementedError("Trio has no modal dialogs")

    def close_window(self) -> None:
        raise NotImplementedError("Trio has no window")


# Under Wine, trio's Windows backend cannot start (an AFD ioctl fails with
# WinError 10045; see tests/test_trio_host.py): no Trio harness there.
HARNESSES: list[Harness] = [] if trio is None or wine_version() else [TrioHarness()]
