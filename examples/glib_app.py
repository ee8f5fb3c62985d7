"""A live price board: a GTK 3 window fed by asyncio networking, on GTK's own thread.

The same program as ``tk_app.py``, for GTK: an asyncio TCP server streams
made-up prices; "Start feed" connects to it (``async_callback``: the handler
is a coroutine) and shows every tick as it arrives; "Stop" cancels that work;
"Reset marks..." asks through a modal ``Gtk.MessageDialog`` awaited with
``asyncio_guest.glib.run_dialog`` (no nested loop), so the feed keeps streaming
behind it and closing the window or Ctrl+C need not wait for an answer. A
``GLib.timeout_add`` of the window's own keeps a clock running.
Closing the window ends ``Gtk.main()``; ``asyncio_guest.glib.run`` then
cancels ``main`` and lets it clean up (the server closes) before returning.

    python examples/glib_app.py                       # close the window to quit
    python examples/glib_app.py --smoke               # a few seconds, no user, exit 0
    python examples/glib_app.py --smoke-close         # the window closed mid-stream, exit 0
    python examples/glib_app.py --screenshot out.png  # the window after ~1.5 s

``--smoke`` presses the buttons itself and answers the dialog, then checks
what it saw; CI runs it under ``xvfb-run``. ``--screenshot`` reads the
window's pixels through GDK and writes a PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("Gdk", "3.0")
from gi.repository import Gdk, GLib, Gtk  # noqa: E402

import asyncio_guest  # noqa: E402
import asyncio_guest.glib  # noqa: E402

SYMBOLS = ("ACME", "GLOBX", "INITech", "UMBR")


async def price_feed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The server side: a random walk per symbol, one line per tick, every 40 ms."""
    prices = {s: random.uniform(50, 150) for s in SYMBOLS}
    try:
        while True:
            symbol = random.choice(SYMBOLS)
            prices[symbol] *= 1 + random.gauss(0, 0.004)
            writer.write(f"{symbol} {prices[symbol]:.2f}\n".encode())
            await writer.drain()
            await asyncio.sleep(0.04)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


class PriceBoard:
    def __init__(self, port: int) -> None:
        self.port = port
        self.ticks = 0
        self.marks: dict[str, tuple[float, float]] = {}
        self.dialog: Any = None  # the open dialog, for --smoke to answer
        self.window = Gtk.Window(title="asyncio-guest: live prices (GTK 3)")
        self.window.set_default_size(460, 300)
        self.window.connect("destroy", Gtk.main_quit)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6, margin=10)
        self.window.add(box)
        self.clock = Gtk.Label(xalign=0)
        box.pack_start(self.clock, False, False, 0)
        self.store = Gtk.ListStore(str, str, str, str)
        for symbol in SYMBOLS:
            self.store.append([symbol, "-", "", ""])
        view = Gtk.TreeView(model=self.store)
        for i, title in enumerate(("symbol", "price", "low", "high")):
            cell = Gtk.CellRendererText(family="monospace", xalign=0 if i == 0 else 1)
            column = Gtk.TreeViewColumn(title, cell, text=i)
            column.set_expand(True)
            column.set_alignment(0 if i == 0 else 1)
            view.append_column(column)
        view.get_selection().set_mode(Gtk.SelectionMode.NONE)
        box.pack_start(view, True, True, 0)
        buttons = Gtk.Box(spacing=6)
        self.start_button = Gtk.Button(label="Start feed")
        self.stop_button = Gtk.Button(label="Stop")
        self.reset_button = Gtk.Button(label="Reset marks...")
        self.start_button.connect("clicked", lambda _b: self.start())
        self.stop_button.connect("clicked", lambda _b: self.stop())
        self.reset_button.connect("clicked", lambda _b: self.reset())
        for button in (self.start_button, self.stop_button, self.reset_button):
            buttons.pack_start(button, False, False, 0)
        box.pack_start(buttons, False, False, 0)
        self.status = Gtk.Label(label="idle", xalign=0)
        box.pack_start(self.status, False, False, 0)
        self.window.show_all()
        self._tick_clock()
        GLib.timeout_add(200, self._tick_clock)

    def _tick_clock(self) -> bool:
        """The window's own GLib timer: it keeps time while asyncio works."""
        self.clock.set_text(time.strftime("%H:%M:%S") + f"   ticks received: {self.ticks}")
        return True

    @asyncio_guest.async_callback(on_busy="ignore")  # a second click while it runs: ignored
    async def start(self) -> None:
        self.status.set_text(f"connecting to 127.0.0.1:{self.port}...")
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.status.set_text("streaming")
        try:
            while line := await reader.readline():
                symbol, price = line.decode().split()
                self.show(symbol, float(price))
        finally:
            writer.close()
            self.status.set_text("stopped")

    def stop(self) -> None:
        for task in self.start.running:
            task.cancel()

    async def stopped(self) -> None:
        """Stop the feed and wait until its connection is closed."""
        tasks = list(self.start.running)
        self.stop()
        await asyncio.gather(*tasks, return_exceptions=True)

    @asyncio_guest.async_callback(on_busy="ignore")
    async def reset(self) -> None:
        dialog = Gtk.MessageDialog(
            transient_for=self.window, modal=True, message_type=Gtk.MessageType.QUESTION,
            buttons=Gtk.ButtonsType.YES_NO, text="Forget the low/high marks?",
        )
        self.dialog = dialog
        try:
            # Not dialog.run() (GTK's nested loop, which the run could not end
            # before the user answers): its response, awaited.
            answer = await asyncio_guest.glib.run_dialog(dialog)
        finally:
            self.dialog = None
            dialog.destroy()
        if answer == Gtk.ResponseType.YES:
            self.marks.clear()
            self.status.set_text("marks reset")

    def show(self, symbol: str, price: float) -> None:
        self.ticks += 1
        low, high = self.marks.get(symbol, (price, price))
        low, high = min(low, price), max(high, price)
        self.marks[symbol] = (low, high)
        row = self.store[SYMBOLS.index(symbol)]
        row[1], row[2], row[3] = f"{price:.2f}", f"{low:.2f}", f"{high:.2f}"


async def smoke_test(board: PriceBoard) -> None:
    """Press the buttons as a user would; fail loudly if anything is off."""
    board.start_button.clicked()
    while board.ticks < 20:
        await asyncio.sleep(0.02)
    board.reset_button.clicked()
    for _ in range(200):
        await asyncio.sleep(0.01)
        if board.dialog is not None and board.dialog.get_visible():
            break
    else:
        raise RuntimeError("the dialog did not open")
    before = board.ticks
    await asyncio.sleep(0.3)  # the dialog is open: the feed still streams
    if board.ticks <= before:
        raise RuntimeError("asyncio paused while the dialog was open")
    board.dialog.response(Gtk.ResponseType.YES)
    while board.reset.running:
        await asyncio.sleep(0.01)
    if board.status.get_text() != "marks reset":
        raise RuntimeError(f"the dialog's answer was lost: {board.status.get_text()!r}")
    board.stop_button.clicked()
    while board.start.running:
        await asyncio.sleep(0.01)
    print(f"smoke: {board.ticks} ticks, dialog answered, feed cancelled", flush=True)


def save_window_png(window: Any, path: str) -> None:
    """The window's pixels (its GDK window, without decorations) as a PNG."""
    gdk_window = window.get_window()
    width, height = gdk_window.get_width(), gdk_window.get_height()
    pixbuf = Gdk.pixbuf_get_from_window(gdk_window, 0, 0, width, height)
    if pixbuf is None:
        raise RuntimeError("could not read the window's pixels")
    pixbuf.savev(path, "png", [], [])


async def main(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(price_feed, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    board = PriceBoard(port)
    try:
        if args.screenshot:
            board.start_button.clicked()
            await asyncio.sleep(1.5)
            save_window_png(board.window, args.screenshot)
            print(f"screenshot written to {args.screenshot}", flush=True)
        if args.smoke:
            await smoke_test(board)
        if args.smoke_close:
            board.start_button.clicked()
            while board.ticks < 10:
                await asyncio.sleep(0.02)
            board.window.close()  # what the title bar's close button does, mid-stream
            print(f"smoke: closing the window after {board.ticks} ticks", flush=True)
        if not (args.smoke or args.screenshot):
            await asyncio.Event().wait()  # until the window is closed
    finally:
        # The feed's connection first: since Python 3.12 wait_closed() also
        # waits for the server's connections to end.
        await board.stopped()
        server.close()
        await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="headless self-test, then exit")
    parser.add_argument("--screenshot", metavar="PNG", help="save the window as a PNG, then exit")
    parser.add_argument(
        "--smoke-close", action="store_true", help="close the window while the feed streams"
    )
    try:
        asyncio_guest.glib.run(main, parser.parse_args())  # Gtk.main() with asyncio inside
    except asyncio.CancelledError:
        pass  # the window was closed: main was cancelled and cleaned up
