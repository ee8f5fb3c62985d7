"""The Tk host (``asyncio_guest.tk.run``) on a real ``tkinter.Tk`` window.

Needs tkinter and, on X11, a display (``xvfb-run`` in CI); without them
``HARNESSES`` is empty and the scenario module reports Tk as missing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .harness import SIGINT, TOOLKIT_LOOP, WIDGETS, Harness

_T = TypeVar("_T")


def _tk_usable() -> bool:
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return False
    try:
        import tkinter  # noqa: F401
    except ImportError:
        return False
    return True


class TkHarness:
    name = "tk"
    capabilities: frozenset[str] = frozenset({WIDGETS, SIGINT, TOOLKIT_LOOP})

    def __init__(self) -> None:
        self.root: Any = None

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        import tkinter

        import asyncio_guest.tk

        self.root = root = tkinter.Tk()
        root.title("asyncio-guest scenario")
        root.geometry("240x120")
        try:
            return asyncio_guest.tk.run(main, root=root)
        finally:
            self.root = None
            try:
                root.destroy()
            except tkinter.TclError:
                pass  # the run destroyed it (the window was closed)

    def make_button(self, command: Callable[[], object]) -> Any:
        import tkinter

        button = tkinter.Button(self.root, text="scenario", command=command)
        button.pack()
        return button

    def click(self, button: Any) -> None:
        button.invoke()

    def call_every(self, interval: float, fn: Callable[[], object]) -> Callable[[], None]:
        root = self.root
        ms = max(1, round(interval * 1000))
        pending: list[str] = []

        def fire() -> None:
            pending[:] = [root.after(ms, fire)]
            fn()

        pending.append(root.after(ms, fire))

        def stop() -> None:
            for after_id in pending:
                root.after_cancel(after_id)
            pending.clear()

        return stop

    def call_soon_in_host(self, fn: Callable[[], object]) -> None:
        self.root.after(0, fn)

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        import tkinter

        top = tkinter.Toplevel(self.root)
        top.title("scenario dialog")
        result: list[Any] = []

        def close(value: Any) -> None:
            result.append(value)
            top.destroy()

        top.after(0, lambda: on_open(close))
        top.grab_set()
        top.wait_window()  # Tk's nested event loop, until the dialog is gone
        return result[0] if result else None

    def close_window(self) -> None:
        # What the window manager's close button does: run the WM_DELETE_WINDOW script.
        self.root.tk.eval(self.root.protocol("WM_DELETE_WINDOW"))


HARNESSES: list[Harness] = [TkHarness()] if _tk_usable() else []
