"""asyncio_guest.testing and as_guest_loop: unchanged asyncio code driven through guest mode."""

from __future__ import annotations

import asyncio
import selectors
import sys
import threading
from typing import Any, cast

import pytest

import asyncio_guest
import asyncio_guest.testing

from .conftest import settle_threads
from .hosts import QueueHost


def test_new_event_loop_run_until_complete_uses_a_backend_thread() -> None:
    threads = set(threading.enumerate())
    seen: list[list[str]] = []

    async def main() -> int:
        seen.append([t.name for t in set(threading.enumerate()) - threads])
        await asyncio.sleep(0.001)
        return 5

    loop = asyncio_guest.testing.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == 5
        assert loop.run_until_complete(asyncio.sleep(0, result="again")) == "again"
    finally:
        loop.close()
    assert any("asyncio-guest" in name for name in seen[0]), seen
    assert not settle_threads(threads)


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


def test_run_forever_and_stop() -> None:
    loop = asyncio_guest.testing.new_event_loop()
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
def test_asyncio_runner_with_guest_loop_factory() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        return type(loop).__name__

    runner_cls: Any = asyncio.Runner  # type: ignore[attr-defined,unused-ignore]
    with runner_cls(loop_factory=asyncio_guest.testing.new_event_loop) as runner:
        assert runner.run(main()) == "GuestSelectorEventLoop"


def test_as_guest_loop_keeps_the_object() -> None:
    loop = asyncio.SelectorEventLoop()
    try:
        same = asyncio_guest.as_guest_loop(loop)
        assert same is loop
        assert isinstance(loop, asyncio_guest.GuestSelectorEventLoop)
        assert asyncio_guest.as_guest_loop(loop) is loop  # idempotent
        assert loop.run_until_complete(asyncio.sleep(0, result=1)) == 1
    finally:
        loop.close()
    other = asyncio.SelectorEventLoop()
    try:
        assert not isinstance(other, asyncio_guest.GuestSelectorEventLoop)
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


def test_guest_run_with_a_subclassed_loop(host: QueueHost) -> None:
    class MyLoop(asyncio.SelectorEventLoop):
        marker = "mine"

    async def main() -> str:
        loop: Any = asyncio.get_running_loop()
        await asyncio.sleep(0.001)
        return str(loop.marker)

    assert host.guest_run(main, loop_factory=MyLoop).unwrap() == "mine"
