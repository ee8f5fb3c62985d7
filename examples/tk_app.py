"""A live price board: a Tk window fed by asyncio networking, on Tk's own thread.

The program starts an asyncio TCP server that streams made-up prices, and a
window whose "Start feed" button connects to it (``async_callback``: the
handler is a coroutine) and shows every tick as it arrives, while "Stop"
cancels that work and "Reset marks..." asks through a Tk message box that
stays open without pausing asyncio (``asyncio_guest.tk.run_dialog``). A Tk
``after`` timer of the window's own keeps a clock running meanwhile.

    python examples/tk_app.py                       # close the window to quit
    python examples/tk_app.py --smoke               # a few seconds, no user, exit 0
    python examples/tk_app.py --smoke-close         # the window closed mid-stream, exit 0
    python examples/tk_app.py --screenshot out.png  # X11: the window after ~1.5 s

``--smoke`` presses the buttons itself and answers the message box (X11's
Tk-drawn one), then checks what it saw; CI runs it under ``xvfb-run``.
``--screenshot`` reads the window with Xlib's ``XGetImage`` (ctypes; no
ImageMagick needed) and writes a PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import random
import struct
import sys
import time
import tkinter
import zlib
from tkinter import messagebox

import asyncio_guest
import asyncio_guest.tk

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
    def __init__(self, root: tkinter.Tk, port: int) -> None:
        self.root = root
        self.port = port
        self.ticks = 0
        self.marks: dict[str, tuple[float, float]] = {}
        root.title("asyncio-guest: live prices (Tk)")
        root.geometry("460x300")
        root.configure(padx=10, pady=10)
        self.clock = tkinter.Label(root, font="TkFixedFont", anchor="w")
        self.clock.pack(fill="x")
        self.board = tkinter.Listbox(root, font="TkFixedFont", height=len(SYMBOLS) + 1)
        self.board.pack(fill="both", expand=True, pady=6)
        self.board.insert("end", f"{'symbol':<8} {'price':>9} {'low':>9} {'high':>9}")
        for symbol in SYMBOLS:
            self.board.insert("end", f"{symbol:<8} {'-':>9}")
        buttons = tkinter.Frame(root)
        buttons.pack(fill="x")
        self.start_button = tkinter.Button(buttons, text="Start feed", command=self.start)
        self.stop_button = tkinter.Button(buttons, text="Stop", command=self.stop)
        self.reset_button = tkinter.Button(buttons, text="Reset marks...", command=self.reset)
        for button in (self.start_button, self.stop_button, self.reset_button):
            button.pack(side="left", padx=(0, 6))
        self.status = tkinter.Label(root, text="idle", anchor="w", fg="#555")
        self.status.pack(fill="x", pady=(6, 0))
        self._tick_clock()

    def _tick_clock(self) -> None:
        """The window's own Tk timer: it keeps time while asyncio works."""
        self.clock.configure(text=time.strftime("%H:%M:%S") + f"   ticks received: {self.ticks}")
        self.root.after(200, self._tick_clock)

    @asyncio_guest.async_callback(on_busy="ignore")  # a second click while it runs: ignored
    async def start(self) -> None:
        self.status.configure(text=f"connecting to 127.0.0.1:{self.port}...")
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.status.configure(text="streaming")
        try:
            while line := await reader.readline():
                symbol, price = line.decode().split()
                self.show(symbol, float(price))
        finally:
            writer.close()
            self.status.configure(text="stopped")

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
        # The message box runs Tk's nested loop outside asyncio's ticks: the
        # feed keeps streaming behind it.
        if await asyncio_guest.tk.run_dialog(
            messagebox.askyesno, "Reset", "Forget the low/high marks?", parent=self.root
        ):
            self.marks.clear()
            self.status.configure(text="marks reset")

    def show(self, symbol: str, price: float) -> None:
        self.ticks += 1
        low, high = self.marks.get(symbol, (price, price))
        low, high = min(low, price), max(high, price)
        self.marks[symbol] = (low, high)
        row = SYMBOLS.index(symbol) + 1
        self.board.delete(row)
        self.board.insert(row, f"{symbol:<8} {price:>9.2f} {low:>9.2f} {high:>9.2f}")


async def smoke_test(board: PriceBoard) -> None:
    """Press the buttons as a user would; fail loudly if anything is off."""
    board.start_button.invoke()
    while board.ticks < 20:
        await asyncio.sleep(0.02)
    board.reset_button.invoke()
    box = ".__tk__messagebox"  # X11's Tk-drawn message box
    for _ in range(200):
        await asyncio.sleep(0.01)
        if board.root.tk.call("winfo", "exists", box):
            break
    else:
        raise RuntimeError("the message box did not open")
    before = board.ticks
    await asyncio.sleep(0.3)  # the dialog is open: the feed still streams
    if board.ticks <= before:
        raise RuntimeError("asyncio paused while the dialog was open")
    board.root.tk.call(box + ".yes", "invoke")
    while board.reset.running:
        await asyncio.sleep(0.01)
    board.stop_button.invoke()
    while board.start.running:
        await asyncio.sleep(0.01)
    print(f"smoke: {board.ticks} ticks, dialog answered, feed cancelled", flush=True)


async def main(root: tkinter.Tk, args: argparse.Namespace) -> None:
    server = await asyncio.start_server(price_feed, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    board = PriceBoard(root, port)
    try:
        if args.screenshot:
            board.start_button.invoke()
            await asyncio.sleep(1.5)
            root.update_idletasks()
            save_window_png(root, args.screenshot)
            print(f"screenshot written to {args.screenshot}", flush=True)
        if args.smoke:
            await smoke_test(board)
        if args.smoke_close:
            board.start_button.invoke()
            while board.ticks < 10:
                await asyncio.sleep(0.02)
            # What the window manager's close button does, mid-stream.
            root.tk.eval(f"after idle [wm protocol {root} WM_DELETE_WINDOW]")
            print(f"smoke: closing the window after {board.ticks} ticks", flush=True)
        if not (args.smoke or args.screenshot):
            await asyncio.Event().wait()  # until the window is closed
    finally:
        # The feed's connection first: since Python 3.12 wait_closed() also
        # waits for the server's connections to end.
        await board.stopped()
        server.close()
        await server.wait_closed()


def save_window_png(root: tkinter.Tk, path: str) -> None:
    """X11 only: the window's pixels through Xlib's XGetImage, as a PNG."""
    if root._windowingsystem != "x11":  # type: ignore[attr-defined]
        raise RuntimeError("--screenshot reads X11 windows only")
    xlib = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")

    class XImage(ctypes.Structure):
        _fields_ = [
            ("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
            ("format", ctypes.c_int), ("data", ctypes.POINTER(ctypes.c_ubyte)),
            ("byte_order", ctypes.c_int), ("bitmap_unit", ctypes.c_int),
            ("bitmap_bit_order", ctypes.c_int), ("bitmap_pad", ctypes.c_int),
            ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int),
            ("bits_per_pixel", ctypes.c_int),
        ]

    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XGetImage.restype = ctypes.POINTER(XImage)
    xlib.XGetImage.argtypes = [
        ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int,
    ]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xlib.XFree.argtypes = [ctypes.c_void_p]
    display = xlib.XOpenDisplay(None)
    if not display:
        raise RuntimeError("cannot open the X display")
    try:
        window = int(root.wm_frame(), 16)
        width, height = root.winfo_width(), root.winfo_height()
        all_planes, z_pixmap = 0xFFFFFFFF, 2
        image_p = xlib.XGetImage(display, window, 0, 0, width, height, all_planes, z_pixmap)
        if not image_p:
            raise RuntimeError("XGetImage failed")
        image = image_p.contents
        try:
            if image.bits_per_pixel != 32 or image.byte_order != 0:
                raise RuntimeError("only 32-bit little-endian X images are handled")
            raw = ctypes.string_at(image.data, image.bytes_per_line * height)
            rows = []
            for y in range(height):
                line = raw[y * image.bytes_per_line:][: width * 4]
                rgb = bytearray(width * 3)
                rgb[0::3], rgb[1::3], rgb[2::3] = line[2::4], line[1::4], line[0::4]
                rows.append(b"\0" + bytes(rgb))
        finally:
            xlib.XFree(image.data)
            xlib.XFree(image_p)
    finally:
        xlib.XCloseDisplay(display)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    ) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="run a few seconds unattended")
    parser.add_argument("--screenshot", metavar="PATH", help="save a PNG of the window")
    parser.add_argument(
        "--smoke-close", action="store_true", help="close the window while the feed streams"
    )
    args = parser.parse_args()
    root = tkinter.Tk()
    try:
        asyncio_guest.tk.run(main(root, args), root)
    except asyncio.CancelledError:
        pass  # the window was closed
    finally:
        try:
            root.destroy()
        except tkinter.TclError:
            pass  # closed by the user: run() destroyed it
    sys.exit(0)
