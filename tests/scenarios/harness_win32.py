"""The Win32 host (``asyncio_guest.win32.run``) with a real top-level window.

The harness is what a ctypes Win32 program is: it registers a window class of
its own, whose window procedure receives everything its main window gets.

* ``run`` makes the main window (visible, with a display), then
  ``asyncio_guest.win32.run(main)``, which pumps this thread's message loop.
* ``make_button``: a ``BUTTON`` child control of the main window; the control
  reports a click to its parent with ``WM_COMMAND`` (``BN_CLICKED``, the
  control's id), which the main window's procedure turns into the command.
* ``click``: ``SendMessageW(button, BM_CLICK)``, the control's own click.
* ``call_every``: ``SetTimer`` on the main window (``WM_TIMER``), the host's
  own timer, not asyncio's.
* ``call_soon_in_host``: a message posted to the main window (``WM_APP``).
* ``open_modal``: a small owned window, its owner disabled, and a nested
  ``GetMessageW`` loop until it is destroyed (what ``DialogBox`` does).
* ``close_window``: ``WM_CLOSE`` posted to the main window, as the close box
  does. Its procedure answers with ``PostQuitMessage`` (keeping the window
  until the guest has shut down), which ``win32.run`` turns into cancelling
  ``main``; ``run`` posts the ``WM_QUIT`` again on its way out, for an
  enclosing loop, and this harness (that enclosing program) takes it off the
  queue so that the next run does not start with it.

Windows only; ``HARNESSES`` is empty elsewhere, and on a Windows (Wine) with no
display for top-level windows unless ``ASYNCIO_GUEST_REQUIRE_DISPLAY`` is set
(then the scenarios fail, naming the ``CreateWindowExW`` error).
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .harness import WIDGETS, Harness

_T = TypeVar("_T")

if sys.platform == "win32":
    import ctypes

    from asyncio_guest import _win32_api as w

    from ..windows import winapi as tw

# Messages of the harness's own, posted to its main window.
_WM_CALL = 0x8000 + 1  # WM_APP + 1: run the next call_soon_in_host callback
_FIRST_CONTROL_ID = 1001
_MAIN_SIZE = (320, 200)
_DIALOG_SIZE = (240, 120)


class Win32Harness:
    name = "win32"
    capabilities: frozenset[str] = frozenset({WIDGETS})

    def __init__(self) -> None:
        self.hwnd: int | None = None
        self._commands: dict[int, Callable[[], object]] = {}  # control id -> command
        self._timers: dict[int, Callable[[], object]] = {}  # SetTimer id -> callback
        self._calls: deque[Callable[[], object]] = deque()  # call_soon_in_host
        self._next_id = _FIRST_CONTROL_ID
        self._next_timer = 1
        self.errors: list[BaseException] = []
        self._hinstance = w.GetModuleHandleW(None)
        # The procedure's ctypes thunk lives as long as the class (the process).
        self._wndproc = w.WNDPROC(self._window_proc)
        self._class_name = f"asyncio_guest.scenarios.Win32Harness.{os.getpid()}"
        wc = w.WNDCLASSEXW()
        wc.cbSize = ctypes.sizeof(w.WNDCLASSEXW)
        wc.lpfnWndProc = self._wndproc
        wc.hInstance = self._hinstance
        wc.lpszClassName = self._class_name
        if not w.RegisterClassExW(ctypes.byref(wc)):
            raise w.last_error("RegisterClassExW")

    # ------------------------------------------------------------- windows

    def _top_level(self, title: str, size: tuple[int, int], owner: int | None) -> int:
        hwnd = w.CreateWindowExW(
            0, self._class_name, title, tw.WS_OVERLAPPEDWINDOW | tw.WS_VISIBLE,
            40, 40, size[0], size[1], owner, None, self._hinstance, None,
        )  # fmt: skip
        if not hwnd:
            raise w.last_error(f"CreateWindowExW ({title!r}, a top-level window)")
        return int(hwnd)

    def _window_proc(self, hwnd: int, msg: int, wparam: int, lparam: int) -> int:
        # An exception must not reach ctypes (it would print it and return 0):
        # kept, and raised from run().
        try:
            if hwnd == self.hwnd:
                if msg == tw.WM_COMMAND and (wparam >> 16) & 0xFFFF == tw.BN_CLICKED:
                    command = self._commands.get(wparam & 0xFFFF)
                    if command is not None:
                        command()
                        return 0
                elif msg == w.WM_TIMER and wparam in self._timers:
                    self._timers[wparam]()
                    return 0
                elif msg == _WM_CALL:
                    if self._calls:
                        self._calls.popleft()()
                    return 0
                elif msg == tw.WM_CLOSE:
                    # The user closes the main window: the application quits;
                    # the window stays until run() is done (see the module doc).
                    w.PostQuitMessage(0)
                    return 0
            return int(w.DefWindowProcW(hwnd, msg, wparam, lparam))
        except BaseException as exc:
            self.errors.append(exc)
            return 0

    # ------------------------------------------------------------- Harness

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        from asyncio_guest import win32

        self.errors = []
        self.hwnd = self._top_level("asyncio-guest scenario (win32)", _MAIN_SIZE, None)
        try:
            result = win32.run(main)
        finally:
            hwnd, self.hwnd = self.hwnd, None
            for timer_id in self._timers:
                w.KillTimer(hwnd, timer_id)
            self._timers.clear()
            self._commands.clear()
            self._calls.clear()
            w.DestroyWindow(hwnd)  # and its buttons
            # The WM_QUIT win32.run posts again for an enclosing loop (after a
            # WM_CLOSE): this program is that loop, and it ends here.
            msg = w.MSG()
            w.PeekMessageW(ctypes.byref(msg), None, w.WM_QUIT, w.WM_QUIT, w.PM_REMOVE)
        if self.errors:
            raise AssertionError(f"a host callback raised: {self.errors[0]!r}") from self.errors[0]
        return result

    def make_button(self, command: Callable[[], object]) -> Any:
        assert self.hwnd is not None
        control_id = self._next_id
        self._next_id += 1
        row = control_id - _FIRST_CONTROL_ID
        button = w.CreateWindowExW(
            0, "BUTTON", "scenario button", tw.WS_CHILD | tw.WS_VISIBLE | tw.BS_PUSHBUTTON,
            10, 10 + 34 * (row % 4), 160, 30, self.hwnd, control_id, self._hinstance, None,
        )  # fmt: skip
        if not button:
            raise w.last_error("CreateWindowExW (BUTTON)")
        self._commands[control_id] = command
        return int(button)

    def click(self, button: Any) -> None:
        # The button presses and releases itself, then sends its parent
        # WM_COMMAND(BN_CLICKED) before this returns.
        tw.SendMessageW(button, tw.BM_CLICK, 0, 0)

    def call_every(self, interval: float, fn: Callable[[], object]) -> Callable[[], None]:
        hwnd = self.hwnd
        assert hwnd is not None
        timer_id = self._next_timer
        self._next_timer += 1
        ms = max(w.USER_TIMER_MINIMUM, round(interval * 1000))
        if not w.SetTimer(hwnd, timer_id, ms, None):
            raise w.last_error("SetTimer")
        self._timers[timer_id] = fn

        def stop() -> None:
            if self._timers.pop(timer_id, None) is not None and self.hwnd == hwnd:
                if not w.KillTimer(hwnd, timer_id):
                    raise w.last_error("KillTimer")

        return stop

    def call_soon_in_host(self, fn: Callable[[], object]) -> None:
        assert self.hwnd is not None
        self._calls.append(fn)
        if not w.PostMessageW(self.hwnd, _WM_CALL, 0, 0):
            self._calls.pop()
            raise w.last_error("PostMessageW")

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        owner = self.hwnd
        assert owner is not None
        dialog = self._top_level("scenario dialog", _DIALOG_SIZE, owner)
        closed_with: list[Any] = []

        def close(value: Any) -> None:
            closed_with.append(value)
            # As EndDialog does: the owner is enabled again before the dialog goes.
            tw.EnableWindow(owner, True)
            w.DestroyWindow(dialog)

        tw.EnableWindow(owner, False)
        try:
            self.call_soon_in_host(lambda: on_open(close))
            msg = w.MSG()
            pmsg = ctypes.byref(msg)
            while w.IsWindow(dialog):  # the dialog's own loop, nested in the host's
                got = w.GetMessageW(pmsg, None, 0, 0)
                if got == -1:
                    raise w.last_error("GetMessageW")
                if got == 0:  # the application quits: the loop outside gets it too
                    w.PostQuitMessage(int(msg.wParam))
                    break
                w.TranslateMessage(pmsg)
                w.DispatchMessageW(pmsg)
        finally:
            tw.EnableWindow(owner, True)
            if w.IsWindow(dialog):
                w.DestroyWindow(dialog)
        return closed_with[0] if closed_with else None

    def close_window(self) -> None:
        assert self.hwnd is not None
        if not w.PostMessageW(self.hwnd, tw.WM_CLOSE, 0, 0):
            raise w.last_error("PostMessageW")

    # ------------------------------------------------------------- warm-up

    def warm_up(self) -> None:
        """Make, click and destroy what the scenarios use, once, before the
        first test's leak snapshot: the first window, button and timer of a
        process make the system (and Wine) open handles it keeps for life."""
        from asyncio_guest import win32

        win32.Win32Host().close()
        self.hwnd = self._top_level("asyncio-guest warm-up", _MAIN_SIZE, None)
        try:
            self.click(self.make_button(lambda: None))
            stop = self.call_every(0.01, lambda: None)
            stop()
            dialog = self._top_level("warm-up dialog", _DIALOG_SIZE, self.hwnd)
            tw.EnableWindow(self.hwnd, False)
            tw.EnableWindow(self.hwnd, True)
            w.DestroyWindow(dialog)
            msg = w.MSG()
            while w.PeekMessageW(ctypes.byref(msg), None, 0, 0, w.PM_REMOVE):
                w.TranslateMessage(ctypes.byref(msg))
                w.DispatchMessageW(ctypes.byref(msg))
        finally:
            w.DestroyWindow(self.hwnd)
            self.hwnd = None
            self._commands.clear()
            self._next_id = _FIRST_CONTROL_ID
        if self.errors:
            raise AssertionError(f"warm-up: a host callback raised: {self.errors[0]!r}")


def _harnesses() -> list[Harness]:
    if sys.platform != "win32":
        return []
    harness = Win32Harness()
    try:
        harness.warm_up()
    except OSError:
        # No display for top-level windows (Wine without X): a missing host,
        # unless the run says a display is required (then the scenarios fail).
        if not os.environ.get("ASYNCIO_GUEST_REQUIRE_DISPLAY"):
            return []
    return [harness]


HARNESSES: list[Harness] = _harnesses()
