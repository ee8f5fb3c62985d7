"""A small wxPython app with asyncio inside: a live feed, a cancellable fetch, a modal dialog.

The app starts a local TCP server (asyncio) that streams quotes; the window
shows them as they arrive, "Fetch" downloads from the same server with a
progress gauge, "Cancel" stops it, and "About" opens a modal ``wx.Dialog``
with ``show_modal`` while the feed keeps running. Closing the window cancels
``main`` and the run shuts down cleanly.

    python examples/wx_app.py            # needs a display (on Linux: xvfb-run for headless)
    python examples/wx_app.py --smoke    # clicks through it in a few seconds, exit 0 if all worked
    python examples/wx_app.py --smoke-close  # the window closed mid-fetch, exit 0
    python examples/wx_app.py --screenshot out.png  # the window after ~1.5 s

On Linux wxPython comes from the distribution (Debian: ``python3-wxgtk4.0``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from typing import Any

import wx

import asyncio_guest
import asyncio_guest.wx as agwx

# ------------------------------------------------------------ the server


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """``FEED``: a quote every 100 ms; ``FETCH n``: n chunks of 4 KiB, slowly."""
    try:
        command = (await reader.readline()).decode().split()
        if command[:1] == ["FEED"]:
            price = 100.0
            while True:
                price = max(1.0, price + random.uniform(-1, 1))
                writer.write(f"ACME {price:8.2f}\n".encode())
                await writer.drain()
                await asyncio.sleep(0.1)
        elif command[:1] == ["FETCH"]:
            for _ in range(int(command[1])):
                writer.write(b"x" * 4096)
                await writer.drain()
                await asyncio.sleep(0.03)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


# ------------------------------------------------------------ the window


class Window(wx.Frame):  # type: ignore[misc]
    CHUNKS = 40

    def __init__(self) -> None:
        super().__init__(None, title="asyncio-guest + wxPython", size=(420, 360))
        panel = wx.Panel(self)
        self.status = wx.StaticText(panel, label="connecting to the feed…")
        self.feed = wx.ListBox(panel)
        self.gauge = wx.Gauge(panel, range=self.CHUNKS * 4096)
        self.fetch_button = wx.Button(panel, label="Fetch")
        self.cancel_button = wx.Button(panel, label="Cancel")
        self.about_button = wx.Button(panel, label="About…")
        buttons = wx.BoxSizer(wx.HORIZONTAL)
        for button in (self.fetch_button, self.cancel_button, self.about_button):
            buttons.Add(button, 0, wx.ALL, 4)
        column = wx.BoxSizer(wx.VERTICAL)
        column.Add(self.status, 0, wx.ALL, 4)
        column.Add(self.feed, 1, wx.EXPAND | wx.ALL, 4)
        column.Add(self.gauge, 0, wx.EXPAND | wx.ALL, 4)
        column.Add(buttons)
        panel.SetSizer(column)
        self.cancel_button.Disable()
        # async_callback as the Bind handler: each click starts a task (kept
        # until it ends); "ignore" makes a second click while fetching do nothing.
        self.fetch = asyncio_guest.async_callback(self._fetch, on_busy="ignore")
        self.fetch_button.Bind(wx.EVT_BUTTON, self.fetch)
        self.cancel_button.Bind(wx.EVT_BUTTON, self._cancel)
        self.about_button.Bind(wx.EVT_BUTTON, asyncio_guest.async_callback(self.about))
        self.about_dialog: wx.Dialog | None = None
        self.port = 0
        self.quotes = 0
        self.fetched = 0

    async def live_feed(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"FEED\n")
        self.status.SetLabel(f"live feed from 127.0.0.1:{self.port}")
        try:
            while line := await reader.readline():
                self.quotes += 1
                self.feed.Insert(line.decode().rstrip(), 0)
                if self.feed.GetCount() > 50:
                    self.feed.Delete(50)
        finally:
            writer.close()

    async def _fetch(self) -> None:
        self.fetch_button.Disable()
        self.cancel_button.Enable()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(f"FETCH {self.CHUNKS}\n".encode())
            got = 0
            while data := await reader.read(65536):
                got += len(data)
                self.gauge.SetValue(got)
            self.fetched += 1
            self.status.SetLabel(f"fetched {got} bytes")
        except asyncio.CancelledError:
            if self:  # the window may be gone (closed mid-fetch)
                self.status.SetLabel("fetch cancelled")
            raise
        finally:
            writer.close()
            if self:
                self.fetch_button.Enable()
                self.cancel_button.Disable()

    def _cancel(self, _event: Any = None) -> None:
        for task in self.fetch.running:
            task.cancel()

    async def about(self) -> int:
        dialog = self.about_dialog = wx.Dialog(self, title="About")
        label = f"asyncio runs inside wx's loop.\nQuotes so far: {self.quotes}"
        text = wx.StaticText(dialog, label=label)
        column = wx.BoxSizer(wx.VERTICAL)
        column.Add(text, 0, wx.ALL, 10)
        column.Add(dialog.CreateStdDialogButtonSizer(wx.OK), 0, wx.ALL, 10)
        dialog.SetSizerAndFit(column)
        try:
            # The feed keeps updating behind the dialog: its loop runs our ticks.
            return await agwx.show_modal(dialog)
        finally:
            self.about_dialog = None
            dialog.Destroy()


# ------------------------------------------------------------ main


async def main(
    window: Window, smoke: bool, screenshot: str | None = None, smoke_close: bool = False
) -> int:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    window.port = server.sockets[0].getsockname()[1]
    feed = asyncio.create_task(window.live_feed())
    try:
        if screenshot:
            click(window.fetch_button)
            await asyncio.sleep(1.5)
            save_window_png(window, screenshot)
            print(f"screenshot written to {screenshot}")
        elif smoke:
            await click_through(window)
            print(f"smoke ok: {window.quotes} quotes, {window.fetched} fetch(es)")
        elif smoke_close:
            click(window.fetch_button)
            while window.quotes < 5 or not window.fetch.running:
                await asyncio.sleep(0.02)
            print(f"smoke: closing the window after {window.quotes} quotes", flush=True)
            window.Close()  # what the title bar's close button does, mid-fetch
            await asyncio.Future()
        else:
            await asyncio.Future()  # until the window is closed (that cancels main)
    finally:
        feed.cancel()
        server.close()
    return 0


def save_window_png(window: wx.Frame, path: str) -> None:
    """The window as it is on screen (its client area and frame), as a PNG."""
    window.Update()
    x, y, width, height = window.GetScreenRect()
    bitmap = wx.Bitmap(width, height)
    memory = wx.MemoryDC(bitmap)
    memory.Blit(0, 0, width, height, wx.ScreenDC(), x, y)
    memory.SelectObject(wx.NullBitmap)
    if not bitmap.SaveFile(path, wx.BITMAP_TYPE_PNG):
        raise RuntimeError(f"could not write {path}")


def click(button: wx.Button) -> None:
    """What a user's click sends: a ``wxEVT_BUTTON`` command event to the button."""
    event = wx.CommandEvent(wx.wxEVT_BUTTON, button.GetId())
    event.SetEventObject(button)
    button.GetEventHandler().ProcessEvent(event)


async def click_through(window: Window) -> None:
    """Click through the app as a user would, and check what happened."""
    click(window.fetch_button)
    await asyncio.sleep(0.3)
    click(window.cancel_button)  # cancels the first fetch mid-way
    await asyncio.sleep(0.1)
    assert window.status.GetLabel() == "fetch cancelled", window.status.GetLabel()
    click(window.fetch_button)
    for _ in range(100):
        if window.fetched:
            break
        await asyncio.sleep(0.05)
    assert window.fetched == 1, "the second fetch did not finish"
    before = window.quotes

    def close_the_dialog() -> None:  # the user presses OK
        if window.about_dialog is not None and window.about_dialog.IsModal():
            window.about_dialog.EndModal(wx.ID_OK)

    wx.CallLater(500, close_the_dialog)
    code = await window.about()
    assert code == wx.ID_OK, code
    assert window.quotes > before, "the feed stopped while the dialog was open"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="click through it and exit")
    parser.add_argument("--screenshot", metavar="PNG", help="save the window as a PNG, then exit")
    parser.add_argument(
        "--smoke-close", action="store_true", help="close the window while a fetch runs"
    )
    args = parser.parse_args()
    app = wx.App(False)
    window = Window()
    window.Show()
    try:
        code = agwx.run(main, window, args.smoke, args.screenshot, args.smoke_close)
    except asyncio.CancelledError:
        code = 0  # the window was closed
    if window:
        window.Destroy()
    sys.exit(code)
