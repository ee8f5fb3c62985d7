"""What newer Pythons changed in asyncio that the guest loop copies or overrides.

Each test states the CPython behaviour it follows; those that exist only on
some versions say so in their skip reason.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import subprocess
import sys
import threading
import time
import warnings

import pytest

import asyncio_guest
from asyncio_guest import testing
from asyncio_guest._core.guest_loop import GuestLoopMixin

from . import loops

needs_readiness = pytest.mark.needs_readiness


def test_importing_the_library_never_warns() -> None:
    """``-W error``: no deprecated asyncio name is touched at import (3.14: policies)."""
    code = "import asyncio_guest, asyncio_guest.testing"
    if sys.platform == "win32":
        code += ", asyncio_guest.win32"
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)


def test_policy_class_still_works_and_warns_where_asyncio_does() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy_class = testing.GuestEventLoopPolicy
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    if sys.version_info >= (3, 14):
        assert len(deprecations) == 1, caught
        assert "GuestEventLoopPolicy" in str(deprecations[0].message)
    else:
        assert not deprecations, caught
    loop = policy_class().new_event_loop()
    try:
        assert isinstance(loop, asyncio_guest.GuestSelectorEventLoop) or sys.platform == "win32"
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        loop.close()


def test_call_soon_threadsafe_returns_the_stock_handle_type() -> None:
    """3.14+: a ``_ThreadSafeHandle`` (its ``cancel()`` locks against ``_run``)."""
    plain = asyncio.new_event_loop()
    try:
        stock_type = type(plain.call_soon_threadsafe(lambda: None))
    finally:
        plain.close()

    async def main() -> type:
        loop = asyncio.get_running_loop()
        box: list[asyncio.Handle] = []
        ran: list[int] = []
        worker = threading.Thread(
            target=lambda: box.append(loop.call_soon_threadsafe(ran.append, 1))
        )
        worker.start()
        worker.join()
        handle = box[0]
        # Cancelled from another thread before it ran: it never runs.
        canceller = threading.Thread(target=handle.cancel)
        canceller.start()
        canceller.join()
        await asyncio.sleep(0.01)
        assert handle.cancelled() and not ran
        return type(handle)

    guest_type = asyncio_guest.run(main, loop_factory=loops.test_loop_factory())
    assert guest_type is stock_type
    if sys.version_info >= (3, 14):
        assert stock_type.__name__ == "_ThreadSafeHandle"


def test_timer_due_now_runs_when_the_clock_is_coarser_than_its_resolution() -> None:
    """3.14+ ``_run_once``: ``end_time = now + max(resolution, ulp(now))``.

    With a clock whose values are so large that adding ``_clock_resolution``
    rounds away, a timer due exactly now must still be due (the guest would
    otherwise spin without running it while the clock stands still).
    """

    def frozen_clock_loop() -> asyncio.AbstractEventLoop:
        loop = loops.resolved_factory()()
        frozen = 2.0**40  # ulp = 2**-12 s, far above the 1 ns resolution
        loop.time = lambda: frozen  # type: ignore[method-assign]
        return loop

    async def main() -> str:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_at(loop.time(), fut.set_result, "due")
        return await fut

    assert asyncio_guest.run(main, loop_factory=frozen_clock_loop) == "due"


def test_a_timer_within_the_clocks_resolution_is_waited_for() -> None:
    """Windows 3.10-3.12: ``time.monotonic`` ticks every 15.6 ms.

    ``_run_once`` runs timers due within that resolution only after its wait;
    a ``sleep(0.005)`` still waits about 5 ms. Counted as work before the
    wait, every such sleep returned at once: a CPU-bound loop of ticks.
    """

    def coarse(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
        loop._clock_resolution = 0.0156  # type: ignore[attr-defined]
        return loop

    async def main() -> float:
        t0 = time.perf_counter()
        for _ in range(20):
            await asyncio.sleep(0.005)
        return time.perf_counter() - t0

    # A lower bound only: never early (a slow machine only adds time).
    plain = coarse(asyncio.new_event_loop())
    try:
        assert plain.run_until_complete(main()) >= 0.09
    finally:
        plain.close()
    guest_factory = loops.resolved_factory()
    assert asyncio_guest.run(main, loop_factory=lambda: coarse(guest_factory())) >= 0.09


@needs_readiness
def test_add_reader_runs_its_callback_in_the_given_context() -> None:
    """3.15 transports pass ``context=`` to ``_add_reader``/``_add_writer``."""
    if sys.version_info < (3, 15):
        pytest.skip("_add_reader(context=) is new in Python 3.15")
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> tuple[str, str]:
        loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        seen: list[str] = []
        done = loop.create_future()
        ctx = contextvars.copy_context()
        ctx.run(var.set, "reader")
        wctx = contextvars.copy_context()
        wctx.run(var.set, "writer")
        try:
            def on_readable() -> None:
                seen.append(var.get())
                loop._remove_reader(a.fileno())  # type: ignore[attr-defined]
                if len(seen) == 2:
                    done.set_result(None)

            def on_writable() -> None:
                seen.append(var.get())
                loop._remove_writer(b.fileno())  # type: ignore[attr-defined]
                b.send(b"x")

            loop._add_reader(a.fileno(), on_readable, context=ctx)  # type: ignore[attr-defined]
            loop._add_writer(b.fileno(), on_writable, context=wctx)  # type: ignore[attr-defined]
            await asyncio.wait_for(done, 10)
        finally:
            a.close()
            b.close()
        return seen[0], seen[1]

    assert asyncio_guest.run(main, loop_factory=loops.test_loop_factory()) == ("writer", "reader")



def test_a_running_guest_loop_keeps_its_attributes_inline() -> None:
    """CPython 3.11+ keeps an instance's first 29 attributes inline (found at an
    index cached in the bytecode); past that, every attribute lookup of the loop's
    code, asyncio's own included, goes through a dict. A running guest loop has
    two attributes more than a running loop of its stock class
    (``GuestLoopState`` holds the rest)."""
    guest_class = loops.loop_class()
    stock_class = next(c for c in guest_class.__mro__ if not issubclass(c, GuestLoopMixin))

    async def attributes() -> set[str]:
        await asyncio.sleep(0)
        return set(vars(asyncio.get_running_loop()))

    plain_loop = stock_class()
    try:
        plain = plain_loop.run_until_complete(attributes())
    finally:
        plain_loop.close()
    guest = asyncio_guest.run(attributes, loop_factory=guest_class)
    assert guest - plain == {"_guest", "_guest_outside_tick"}
    assert len(guest) < 30, sorted(guest)
