"""The wx host (``asyncio_guest.wx.run``) on a real ``wx.Frame`` (wxGTK under Xvfb).

* ``run`` makes a frame with a panel (wx's ``MainLoop`` needs a top-level
  window), then ``asyncio_guest.wx.run(main)``.
* ``make_button``/``click``: a ``wx.Button``; the click is a ``wxEVT_BUTTON``
  command event processed by the button's handler, as a real click sends.
* ``call_every``: a ``wx.Timer`` (the host's own timer, not asyncio's).
* ``call_soon_in_host``: ``wx.CallAfter``.
* ``open_modal``: ``wx.Dialog.ShowModal()`` (wx's nested loop) until ``EndModal``.
* ``close_window``: ``frame.Close()``, what the close box does: the frame is
  destroyed and, being the last top-level window, wx calls ``ExitMainLoop``.

wx allows one application per process: it is made here, at import
(collection), with what it opens once (the X connection). ``wx.App()`` sets
SIGINT to ``SIG_DFL``; Python's handler is put back at once, so the session
runs as without wx. The zero-thread wait exists only on wxGTK with
PyGObject (GLib watches the fd for wx's loop): ``waits`` tells the scenario
module which waits this process has.

Under Xvfb here, Debian's wxPython 4.2.0 fails to start in some 15% of
processes ("wxEntryStart failed ... Is DISPLAY set properly?", then a GTK
abort at exit), never once an X connection is open already (0 in 65 starts):
``tests/wx_display.py`` opens one before the application is made.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..wx_display import open_x_display_first
from .harness import SIGINT, TOOLKIT_LOOP, WIDGETS, Harness

_T = TypeVar("_T")


def _load_wx() -> Any:
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return None
    try:
        import wx
    except ImportError:
        return None
    if wx.GetApp() is None:
        open_x_display_first()
        handler = signal.getsignal(signal.SIGINT)
        _apps.append(wx.App(False))
        signal.signal(signal.SIGINT, handler)
        _warm_up(wx)
    return wx


_apps: list[Any] = []

def _warm_up(wx: Any) -> None:
    """What wxGTK opens once and keeps (GLib's worker eventfd...): a frame with a
    button, a timer and a modal dialog, through one ``MainLoop`` until the frame
    is closed. Done at import, it is no test's leak."""
    frame = wx.Frame(None, title="warm-up")
    wx.Button(frame, label="warm-up")
    frame.Show()
    timer = wx.Timer()
    timer.Start(5)

    def modal() -> None:
        dialog = wx.Dialog(frame, title="warm-up")
        wx.CallLater(20, dialog.EndModal, wx.ID_OK)
        dialog.ShowModal()
        dialog.Destroy()
        timer.Stop()
        frame.Close()

    wx.CallLater(20, modal)
    wx.GetApp().MainLoop()


class WxHarness:
    name = "wx"
    capabilities: frozenset[str] = frozenset({WIDGETS, SIGINT, TOOLKIT_LOOP})
    def __init__(self, wx: Any) -> None:
        from asyncio_guest.wx import _glib_watcher

        watcher = _glib_watcher()
        self.waits: tuple[str, ...] = ("thread",) if watcher is None else ("thread", "fd")
        if watcher is not None:
            watcher.close()
        self.wx = wx
        self.frame: Any = None
        self.panel: Any = None
        self.errors: list[BaseException] = []

    def _guard(self, fn: Callable[[], object]) -> Callable[..., None]:
        """A wx handler that records what ``fn`` raises (wxPython would only print it)."""

        def call(*_: Any) -> None:
            try:
                fn()
            except BaseException as exc:
                self.errors.append(exc)

        return call

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        import asyncio_guest.wx

        wx = self.wx
        self.errors = []
        self.frame = frame = wx.Frame(None, title="asyncio-guest scenario", size=(240, 160))
        self.panel = wx.Panel(frame)
        self.panel.SetSizer(wx.BoxSizer(wx.VERTICAL))
        frame.Show()
        try:
            result: _T = asyncio_guest.wx.run(main)
        finally:
            self.frame = self.panel = None
            if frame:  # not destroyed by the run (the window was not closed)
                frame.Destroy()
            if self.errors:
                first = self.errors[0]
                self.errors = []
                raise AssertionError(f"a host callback raised: {first!r}") from first
        return result

    def make_button(self, command: Callable[[], object]) -> Any:
        wx = self.wx
        button = wx.Button(self.panel, label="scenario button")
        button.Bind(wx.EVT_BUTTON, self._guard(command))
        self.panel.GetSizer().Add(button)
        self.panel.Layout()
        return button

    def click(self, button: Any) -> None:
        wx = self.wx
        event = wx.CommandEvent(wx.wxEVT_BUTTON, button.GetId())
        event.SetEventObject(button)
        button.GetEventHandler().ProcessEvent(event)

    def call_every(self, interval: float, fn: Callable[[], object]) -> Callable[[], None]:
        wx = self.wx
        timer = wx.Timer()
        timer.Bind(wx.EVT_TIMER, self._guard(fn))
        timer.Start(max(1, round(interval * 1000)))

        def stop() -> None:
            timer.Stop()

        return stop

    def call_soon_in_host(self, fn: Callable[[], object]) -> None:
        self.wx.CallAfter(self._guard(fn))

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        wx = self.wx
        dialog = wx.Dialog(self.frame, title="scenario dialog")
        closed_with: list[Any] = []

        def close(value: Any) -> None:
            closed_with.append(value)
            dialog.EndModal(wx.ID_OK)

        wx.CallAfter(self._guard(lambda: on_open(close)))
        try:
            dialog.ShowModal()  # wx's nested loop, until EndModal
        finally:
            dialog.Destroy()
        return closed_with[0] if closed_with else None

    def close_window(self) -> None:
        self.frame.Close()


_wx = _load_wx()
HARNESSES: list[Harness] = [WxHarness(_wx)] if _wx is not None else []
