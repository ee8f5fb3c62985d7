"""Ctrl+C at every point of a run: ``python -m tests.interrupt_sweep [--granularity G] [N]``.

Each case runs ``asyncio_guest.run(main)`` once. ``main`` does real work (a
socket echo with a peer thread, timers) and sends itself a first Ctrl+C; its
cancellation handler does more I/O and timers (the shutdown the second Ctrl+C
can hit). After the first Ctrl+C, the *second* one is delivered at the k-th
event inside asyncio-guest's own code: the k-th Python call into the library
(``call``) or the k-th line it executes (``line``), for k = 0, 1, ... N-1.

Delivering it means calling the run's SIGINT handler with the frame that was
executing, exactly what Python's signal machinery does when a signal lands
there; if the handler raises ``KeyboardInterrupt``, it is raised in that frame.
(Raising the signal for real from a trace hook would run the handler in the
hook's own frame instead.)

Every case must end with ``KeyboardInterrupt`` from ``run()`` within a few
seconds, with no thread and no file descriptor left. The process exits 0 if
all did; it prints one line per failed case and a summary line
(``interrupt sweep: N cases, P points hit, F failed``). A hang is caught by a
watchdog thread, which names the case and the line its second Ctrl+C landed
on, dumps every thread's stack and exits 3 (faulthandler's own watchdog
backs it up, for a hang that never lets go of the GIL).
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import os
import signal
import socket
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import asyncio_guest

from . import sampling

_PACKAGE_DIR = os.path.dirname(os.path.abspath(asyncio_guest.__file__)) + os.sep
CASE_TIMEOUT = 20.0
BACKSTOP_TIMEOUT = CASE_TIMEOUT + 10.0  # faulthandler's, if the watchdog thread cannot run
LEFT_THREAD_GRACE = 5.0  # s a case's threads get to end on their own (_threads_left)
VERBOSE = False


def _own(frame: types.FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_PACKAGE_DIR)


class SecondInterrupt:
    """Trace hook: deliver the second Ctrl+C at the k-th event in the library."""

    def __init__(self, k: int, granularity: str) -> None:
        self.k = k
        self.granularity = granularity
        self.seen = 0
        self.delivered = False
        self.where = ""  # where the second Ctrl+C landed (file:line function)

    def arm(self) -> None:
        if self.granularity == "call":
            sys.setprofile(self._profile)
        else:
            sys.settrace(self._trace)
            frame = sys._getframe(1)
            while frame is not None:  # trace frames already running, too
                frame.f_trace = self._local
                frame = frame.f_back  # type: ignore[assignment]

    def disarm(self) -> None:
        sys.setprofile(None)
        sys.settrace(None)

    def _hit(self, frame: types.FrameType) -> None:
        if self.delivered or not _own(frame):
            return
        if self.seen < self.k:
            self.seen += 1
            return
        self.delivered = True  # the hooks stay installed, inert, until disarm()
        code = frame.f_code
        self.where = f"{os.path.basename(code.co_filename)}:{frame.f_lineno} {code.co_name}"
        if VERBOSE:
            print(f"   second Ctrl+C at {self.where}", file=sys.stderr, flush=True)
        handler: Any = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)  # may raise KeyboardInterrupt "in" frame

    def _profile(self, frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call" and not self.delivered:
            self._hit(frame)

    def _trace(self, frame: types.FrameType, event: str, arg: object) -> Callable[..., Any] | None:
        return self._local if not self.delivered and _own(frame) else None

    def _local(self, frame: types.FrameType, event: str, arg: object) -> Callable[..., Any] | None:
        if event == "line" and not self.delivered:
            self._hit(frame)
        return self._local


def _echo_peer(sock: socket.socket) -> None:
    with sock:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                sock.sendall(data)
            except OSError:
                return


def one_case(injector: SecondInterrupt) -> tuple[str, int]:
    """Run one case; return (what ``run()`` did, how many library events were seen)."""
    a, b = socket.socketpair()
    peer = threading.Thread(target=_echo_peer, args=(b,), name="echo peer")
    peer.start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(sock=a)

        def first_ctrl_c() -> None:
            signal.raise_signal(signal.SIGINT)  # handled here, in user code
            injector.arm()

        loop.call_later(0.003, first_ctrl_c)
        try:
            while True:
                writer.write(b"x" * 100)
                await writer.drain()
                await reader.readexactly(100)
                await asyncio.sleep(0.0005)
        finally:
            # The shutdown the second Ctrl+C may hit: I/O, a timer, a thread.
            writer.write(b"bye")
            await writer.drain()
            await reader.readexactly(3)
            await asyncio.sleep(0.002)
            await asyncio.to_thread(lambda: None)
            writer.close()
            await writer.wait_closed()

    try:
        asyncio_guest.run(main)
        what = "returned"
    except KeyboardInterrupt:
        what = "KeyboardInterrupt"
    except BaseException as exc:
        what = f"raised {exc!r}"
    finally:
        injector.disarm()
        a.close()
        peer.join(CASE_TIMEOUT)
    return what, injector.seen


def _threads_left(before: set[threading.Thread]) -> list[threading.Thread]:
    """The threads a case started that are still alive once given a moment to end.

    A second Ctrl+C during the run's shutdown cuts it short as it cuts short
    ``asyncio.run``'s: the default executor's shutdown then finishes on its own
    threads (idle workers and the thread joining them end within milliseconds).
    A thread that outlives that moment is a leak.
    """
    deadline = time.monotonic() + LEFT_THREAD_GRACE
    new = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    for thread in new:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in new if t.is_alive()]


def _fds() -> set[int]:
    if not sys.platform.startswith("linux"):
        return set()  # (under Wine, /proc/self/fd lists Wine's own Linux descriptors)
    try:
        return {int(n) for n in os.listdir("/proc/self/fd")}
    except OSError:  # not Linux: no fd check
        return set()


def _watchdog(injector: SecondInterrupt) -> threading.Timer:
    """A thread that ends the process if the case outlives ``CASE_TIMEOUT``,
    saying which case hung and where its second Ctrl+C landed (a hang's stacks
    alone do not say which of 1500 cases it was), then dumping every stack.

    Threads: the timer thread only reads the injector's fields, which the main
    thread writes whole (one attribute assignment each, atomic under the GIL);
    the main thread cancels and joins it after the case, so a case that ends in
    time never meets it."""

    def hung() -> None:
        where = injector.where or f"had not landed ({injector.seen} events seen)"
        print(
            f"case {injector.k} ({injector.granularity}) hung for {CASE_TIMEOUT:.0f} s; "
            f"its second Ctrl+C: {where}",
            file=sys.stderr,
            flush=True,
        )
        faulthandler.dump_traceback(all_threads=True)
        os._exit(3)

    timer = threading.Timer(CASE_TIMEOUT, hung)
    timer.daemon = True
    timer.name = "interrupt sweep watchdog"
    timer.start()
    return timer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("n", type=int, nargs="?", default=60, help="cases: k = 0 .. n-1")
    ap.add_argument("--start", type=int, default=0, help="first k (default 0)")
    ap.add_argument("-v", "--verbose", action="store_true", help="name each case as it starts")
    ap.add_argument("--granularity", choices=("call", "line"), default="call")
    every, offset = sampling.from_env()
    args = ap.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose
    one_case(SecondInterrupt(10**9, args.granularity))  # warm up: imports, executor code
    failures = 0
    points = 0
    cases = 0
    for k in range(args.start, args.n):
        if not sampling.chosen(k, every, offset):
            continue
        cases += 1
        injector = SecondInterrupt(k, args.granularity)
        watchdog = _watchdog(injector)  # started first: not one of the case's threads
        threads = set(threading.enumerate())
        fds = _fds()
        if args.verbose:
            print(f"case {k} ...", file=sys.stderr, flush=True)
        faulthandler.dump_traceback_later(BACKSTOP_TIMEOUT, exit=True)
        what, seen = one_case(injector)
        faulthandler.cancel_dump_traceback_later()
        watchdog.cancel()
        watchdog.join()
        if seen >= k:
            points += 1
        left = _threads_left(threads)
        leaked = _fds() - fds
        if what != "KeyboardInterrupt" or left or leaked:
            failures += 1
            print(f"case {k} ({args.granularity}): {what}; threads left {left}; fds left {leaked}")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    print(
        f"interrupt sweep: {cases} cases, {points} points hit, {failures} failed; "
        f"{sampling.describe(every, offset)}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
