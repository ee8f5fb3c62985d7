"""asyncio_guest.testing and as_guest_loop: unchanged asyncio code driven through guest mode.

``asyncio_guest.testing.new_event_loop()`` makes the platform's default kind
(a proactor on Windows, like ``asyncio.new_event_loop()``); the tests that
drive a loop with ``run_until_complete``/``run_forever`` also run on the test
loop (tests/loops.py), which ASYNCIO_GUEST_TEST_LOOP may set to the selector.
"""

from __future__ import annotations

import asyncio
import gc
import selectors
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, cast

import pytest

import asyncio_guest
import asyncio_guest._core.guest_loop
import asyncio_guest.testing

from . import loops
from .conftest import settle_threads
from .hosts import QueueHost

# Loop makers for run_until_complete-style tests: the testing module's own, and
# the test loop (the same kind on Linux unless ASYNCIO_GUEST_TEST_LOOP says so).
NEW_LOOPS = [
    pytest.param(asyncio_guest.testing.new_event_loop, id="testing.new_event_loop"),
    pytest.param(loops.new_test_loop, id="test-loop"),
]

# Stock loop classes as_guest_loop is given (ProactorEventLoop: Windows only).
STOCK_LOOPS = [pytest.param(asyncio.SelectorEventLoop, id="SelectorEventLoop")]
if sys.platform == "win32":
    STOCK_LOOPS.append(
        pytest.param(asyncio.ProactorEventLoop, id="ProactorEventLoop")  # type: ignore[attr-defined,unused-ignore]
    )


@pytest.mark.usefixtures("thread_wait")
@pytest.mark.parametrize("new_loop", NEW_LOOPS)
def test_new_event_loop_run_until_complete_uses_a_backend_thread(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    threads = set(threading.enumerate())
    seen: list[list[str]] = []

    def backend_threads() -> list[threading.Thread]:
        return [t for t in set(threading.enumerate()) - threads if "asyncio-guest" in t.name]

    async def main() -> int:
        seen.append([t.name for t in backend_threads()])  # none yet: nothing waited
        await loops.backend_wait()  # a wait: handed to the backend thread
        seen.append([t.name for t in backend_threads()])
        return 5

    loop = new_loop()
    try:
        assert loop.run_until_complete(main()) == 5
        kept = backend_threads()
        assert len(kept) == 1, "the backend thread is kept between runs of one loop"
        assert loop.run_until_complete(loops.backend_wait(result="again")) == "again"
        assert backend_threads() == kept, "a later run reuses it"
    finally:
        loop.close()
    assert seen[0] == [] and len(seen[1]) == 1, seen
    assert not kept[0].is_alive(), "close() joins the backend thread"
    assert not settle_threads(threads)


def test_a_loop_that_never_ran_closes() -> None:
    """Made and closed without a run (a fixture's loop a test never used): its
    state is still the shared read-only one, which close() must only read."""
    loop = asyncio_guest.testing.new_event_loop()
    loop.close()
    assert loop.is_closed()
    loop.close()  # idempotent, as the stock close()


def test_a_run_that_never_waits_starts_no_thread() -> None:
    threads = set(threading.enumerate())
    loop = asyncio_guest.testing.new_event_loop()
    try:
        for _ in range(100):
            loop.call_soon(loop.stop)
            loop.run_forever()
        assert loop.run_until_complete(asyncio.sleep(0, result=1)) == 1
        assert set(threading.enumerate()) == threads
    finally:
        loop.close()


@pytest.mark.usefixtures("thread_wait")
def test_an_unclosed_loop_lets_its_parked_thread_go_when_collected() -> None:
    threads = set(threading.enumerate())
    wakeup_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_fd)
    loop = asyncio_guest.testing.new_event_loop()
    loop.run_until_complete(loops.backend_wait())
    (thread,) = set(threading.enumerate()) - threads
    del loop
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        # The backend thread may still hold the run's token (and so the loop)
        # for a moment after its last hand-over: it drops it right after posting.
        for _ in range(500):
            gc.collect()
            thread.join(0.01)
            if not thread.is_alive():
                break
    assert not thread.is_alive()
    # What a collected, unclosed loop leaves is plain asyncio's: on Windows the
    # proactor closes its port and sockets when collected, but nothing gives
    # back the signal wake-up fd it set on the main thread.
    gc.collect()
    signal.set_wakeup_fd(wakeup_fd)


@pytest.mark.parametrize("kind", ["PollSelector", "SelectSelector", "EpollSelector"])
def test_new_event_loop_with_selector(kind: str) -> None:
    cls = getattr(selectors, kind, None)
    if cls is None:
        pytest.skip(f"selectors.{kind} does not exist on {sys.platform}")

    async def main() -> bytes:
        reader, writer = await asyncio.open_connection(*server_addr)
        writer.write(b"ping")
        data = await reader.read(4)
        writer.close()
        await writer.wait_closed()
        return data

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(4))
        await writer.drain()
        writer.close()

    loop = asyncio_guest.testing.new_event_loop(cls())
    try:
        server = loop.run_until_complete(asyncio.start_server(echo, "127.0.0.1", 0))
        server_addr: tuple[str, int] = server.sockets[0].getsockname()[:2]
        assert loop.run_until_complete(main()) == b"ping"
        server.close()
        loop.run_until_complete(server.wait_closed())
    finally:
        loop.close()


@pytest.mark.parametrize("new_loop", NEW_LOOPS)
def test_run_forever_and_stop(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    loop = new_loop()
    try:
        record: list[str] = []
        loop.call_soon(record.append, "ran")
        loop.call_later(0.001, loop.stop)
        loop.run_forever()
        assert record == ["ran"]
        assert not loop.is_running()
    finally:
        loop.close()


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason=f"asyncio.Runner needs Python 3.11+ (running {sys.version.split()[0]})",
)
@pytest.mark.parametrize("new_loop", NEW_LOOPS)
def test_asyncio_runner_with_guest_loop_factory(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.001)
        return type(loop).__name__

    expected = (
        ("GuestProactorEventLoop" if sys.platform == "win32" else "GuestSelectorEventLoop")
        if new_loop is asyncio_guest.testing.new_event_loop
        else loops.loop_class().__name__
    )
    runner_cls: Any = asyncio.Runner  # type: ignore[attr-defined,unused-ignore]
    with runner_cls(loop_factory=new_loop) as runner:
        assert runner.run(main()) == expected


@pytest.mark.skipif(
    sys.version_info < (3, 13),
    reason=(
        "IsolatedAsyncioTestCase.loop_factory is new in 3.13 "
        f"(running {sys.version.split()[0]})"
    ),
)
def test_an_isolated_asyncio_test_case_runs_on_guest_loops_through_event_loop() -> None:
    """``loop_factory = EventLoop`` on a test case class runs its tests on guest
    loops; ``new_event_loop`` there (a function: a method once looked up on the
    case) is refused with a message that names ``EventLoop``."""
    import unittest

    seen: list[str] = []

    class OnGuestLoops(unittest.IsolatedAsyncioTestCase):
        loop_factory = asyncio_guest.testing.EventLoop

        async def test_it(self) -> None:
            await asyncio.sleep(0.001)
            seen.append(type(asyncio.get_running_loop()).__name__)

    class WithTheFunction(unittest.IsolatedAsyncioTestCase):
        loop_factory = asyncio_guest.testing.new_event_loop

        async def test_it(self) -> None:
            seen.append("ran")

    results = []
    for case in (OnGuestLoops, WithTheFunction):
        result = unittest.TestResult()
        unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)
        results.append(result)
    assert results[0].wasSuccessful(), results[0].errors + results[0].failures
    assert seen == [asyncio_guest.testing.EventLoop.__name__]
    ((_, error),) = results[1].errors
    assert "use asyncio_guest.testing.EventLoop there" in error, error


@pytest.mark.parametrize("stock", STOCK_LOOPS)
def test_as_guest_loop_keeps_the_object(stock: type[asyncio.AbstractEventLoop]) -> None:
    guest_cls = asyncio_guest._core.guest_loop.guest_class_for(stock)
    loop = stock()
    try:
        same = asyncio_guest.as_guest_loop(loop)
        assert same is loop
        assert isinstance(loop, guest_cls)
        assert isinstance(loop, stock)
        assert asyncio_guest.as_guest_loop(loop) is loop  # idempotent
        assert loop.run_until_complete(asyncio.sleep(0, result=1)) == 1
    finally:
        loop.close()
    other = stock()
    try:
        assert not isinstance(other, guest_cls)
    finally:
        other.close()


class _NotASelectorLoop:
    """Stands for a loop asyncio-guest cannot drive (not a selector event loop)."""

    closed = False

    def close(self) -> None:
        self.closed = True

    def is_closed(self) -> bool:
        return self.closed


def test_loop_factory_returning_a_non_selector_loop(host: QueueHost) -> None:
    threads = set(threading.enumerate())
    made: list[_NotASelectorLoop] = []

    def factory() -> asyncio.AbstractEventLoop:
        made.append(_NotASelectorLoop())
        return cast(asyncio.AbstractEventLoop, made[-1])

    async def main() -> None:
        pass

    coro = main()
    try:
        with pytest.raises(TypeError):
            host.start(coro, loop_factory=factory)
    finally:
        coro.close()
    assert made and made[0].closed
    assert host.queue.empty()
    assert not settle_threads(threads)


@pytest.mark.parametrize("stock", STOCK_LOOPS)
def test_guest_run_with_a_subclassed_loop(
    host: QueueHost, stock: type[asyncio.AbstractEventLoop]
) -> None:
    class MyLoop(stock):  # type: ignore[valid-type,misc]
        marker = "mine"

    async def main() -> str:
        loop: Any = asyncio.get_running_loop()
        await asyncio.sleep(0.001)
        return str(loop.marker)

    assert host.guest_run(main, loop_factory=MyLoop).unwrap() == "mine"
