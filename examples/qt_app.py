"""A small Qt app with asyncio inside: a live feed, a cancellable job, a modal dialog.

The app starts a local TCP server (asyncio) that streams quotes; the window
shows them as they arrive, a "Fetch" button starts a download from the same
server with a progress bar, "Cancel" stops it, and "About" opens a dialog
with ``exec_dialog`` while the feed keeps running.

    python examples/qt_app.py                  # needs a display
    python examples/qt_app.py --smoke          # a few seconds headless, exit 0 if all worked
    python examples/qt_app.py --smoke-close    # the window closed mid-fetch, exit 0
    python examples/qt_app.py --screenshot docs/screenshots/qt_app.png

Works with PySide6 or PyQt6 (``ASYNCIO_GUEST_QT=pyqt6`` to choose).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
from typing import Any

import asyncio_guest
import asyncio_guest.qt as qt
from asyncio_guest import _qt_binding

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


class App:
    def __init__(self, port: int) -> None:
        b = _qt_binding.get()
        w = b.QtWidgets
        self.port = port
        self.window: Any = w.QWidget()
        self.window.setWindowTitle(f"asyncio-guest + Qt ({b.name})")
        self.window.resize(420, 360)
        layout = w.QVBoxLayout(self.window)
        self.status: Any = w.QLabel("connecting to the feed…")
        self.feed: Any = w.QListWidget()
        self.progress: Any = w.QProgressBar()
        buttons = w.QHBoxLayout()
        self.fetch_button: Any = w.QPushButton("Fetch")
        self.cancel_button: Any = w.QPushButton("Cancel")
        self.about_button: Any = w.QPushButton("About…")
        for button in (self.fetch_button, self.cancel_button, self.about_button):
            buttons.addWidget(button)
        for widget in (self.status, self.feed, self.progress):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        self.cancel_button.setEnabled(False)
        # async_callback: each click starts a task (kept until it ends);
        # "ignore" makes a second click while fetching do nothing.
        self.fetch = asyncio_guest.async_callback(self._fetch, on_busy="ignore")
        self.fetch_button.clicked.connect(self.fetch)
        self.cancel_button.clicked.connect(self._cancel)
        self.about_button.clicked.connect(asyncio_guest.async_callback(self.about))
        self.quotes = 0
        self.fetched = 0

    async def live_feed(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"FEED\n")
        self.status.setText(f"live feed from 127.0.0.1:{self.port}")
        try:
            while line := await reader.readline():
                self.quotes += 1
                self.feed.insertItem(0, line.decode().rstrip())
                if self.feed.count() > 50:
                    self.feed.takeItem(50)
        finally:
            writer.close()

    async def _fetch(self) -> None:
        chunks = 40
        self.fetch_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, chunks * 4096)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(f"FETCH {chunks}\n".encode())
            got = 0
            while data := await reader.read(65536):
                got += len(data)
                self.progress.setValue(got)
            self.fetched += 1
            self.status.setText(f"fetched {got} bytes")
        except asyncio.CancelledError:
            self.status.setText("fetch cancelled")
            raise
        finally:
            writer.close()
            self.fetch_button.setEnabled(True)
            self.cancel_button.setEnabled(False)

    def _cancel(self) -> None:
        for task in self.fetch.running:
            task.cancel()

    async def about(self) -> int:
        b = _qt_binding.get()
        box = b.QtWidgets.QMessageBox(self.window)
        box.setWindowTitle("About")
        box.setText(f"asyncio runs inside Qt's loop.\nQuotes so far: {self.quotes}")
        # The feed keeps updating behind the dialog: its loop runs our ticks.
        return await qt.exec_dialog(box)


# ------------------------------------------------------------ main


async def main(args: argparse.Namespace) -> int:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    app = App(port)
    app.window.show()
    feed = asyncio.create_task(app.live_feed())
    try:
        if args.screenshot:
            app.fetch()
            await asyncio.sleep(1.0)
            app.window.grab().save(args.screenshot)
            print(f"saved {args.screenshot}")
        elif args.smoke:
            await smoke(app)
            print(f"smoke ok: {app.quotes} quotes, {app.fetched} fetch(es)")
        elif args.smoke_close:
            app.fetch()
            while app.quotes < 5:
                await asyncio.sleep(0.02)
            print(f"smoke: closing the window after {app.quotes} quotes", flush=True)
            app.window.close()  # the last window: Qt quits, which cancels main
            await asyncio.Future()
        else:
            await asyncio.Future()  # until the window is closed (that cancels main)
    finally:
        feed.cancel()
        server.close()
        app.window.hide()
    return 0


async def smoke(app: App) -> None:
    """Click through the app as a user would, headless, and check what happened."""
    b = _qt_binding.get()
    app.fetch_button.click()
    await asyncio.sleep(0.3)
    app.cancel_button.click()  # cancels the first fetch mid-way
    await asyncio.sleep(0.1)
    assert app.status.text() == "fetch cancelled", app.status.text()
    app.fetch_button.click()
    for _ in range(100):
        if app.fetched:
            break
        await asyncio.sleep(0.05)
    assert app.fetched == 1, "the second fetch did not finish"
    before = app.quotes
    b.QTimer.singleShot(500, lambda: b.QtWidgets.QApplication.activeModalWidget().accept())
    await app.about()
    assert app.quotes > before, "the feed stopped while the dialog was open"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="run headless for a few seconds")
    parser.add_argument("--screenshot", metavar="PATH", help="save a picture of the window")
    parser.add_argument(
        "--smoke-close", action="store_true", help="close the window while a fetch runs"
    )
    args = parser.parse_args()
    if args.smoke or args.screenshot or args.smoke_close:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        sys.exit(qt.run(main, args))
    except asyncio.CancelledError:
        pass  # the window was closed: main was cancelled and cleaned up
