"""asyncio as the guest of a Trio host: trio.run drives, TrioToken.run_sync_soon posts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import outcome
import pytest
import trio

import asyncio_guest

from .hosts import LONG, check_loop_finished, wait_long
from .loops import test_loop_factory, wine_version

T = TypeVar("T")

_WINE = wine_version()
pytestmark = [
    pytest.mark.skipif(
        _WINE is not None,
        reason=f"under Wine {_WINE}: trio's Windows backend cannot start (trio.run raises "
        "OSError WinError 10045 from trio/_core/_windows_cffi.py: Wine does not support the "
        "AFD / SIO_BASE_HANDLE socket ioctls it needs); runs on real Windows",
    ),
    # These runs give Trio no fd_watcher (a Trio one, with wait_readable and
    # notify_closing, belongs to the Trio host module): the backend thread waits.
    pytest.mark.usefixtures("thread_wait"),
]


async def run_asyncio_guest(
    main: Callable[[], Awaitable[T]], *, task_box: list[asyncio.Task[Any]] | None = None
) -> outcome.Outcome[T]:
    """Inside trio.run: run ``main`` as an asyncio guest and wait for its outcome."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    result: list[outcome.Outcome[T]] = []
    host_thread = threading.current_thread()

    def done_callback(out: outcome.Outcome[T]) -> None:
        assert threading.current_thread() is host_thread
        result.append(out)
        done.set()

    task = asyncio_guest.start_guest_run(
        main,
        run_sync_soon_threadsafe=token.run_sync_soon,
        done_callback=done_callback,
        host_uses_signal_set_wakeup_fd=True,  # trio owns the wakeup fd
        loop_factory=test_loop_factory(),
    )
    loop = task.get_loop()
    if task_box is not None:
        task_box.append(task)
    del task
    with trio.CancelScope(shield=True):
        await done.wait()
    assert len(result) == 1
    check_loop_finished(loop)
    return result[0]


def test_trio_host_value_and_error() -> None:
    async def aio_ok() -> str:
        await asyncio.sleep(0.001)
        return "from asyncio"

    async def aio_bad() -> None:
        await asyncio.sleep(0)
        raise KeyError("asyncio side")

    async def trio_main() -> tuple[outcome.Outcome[str], outcome.Outcome[None]]:
        return await run_asyncio_guest(aio_ok), await run_asyncio_guest(aio_bad)

    ok, bad = trio.run(trio_main)
    assert ok == outcome.Value("from asyncio")
    assert isinstance(bad, outcome.Error)
    assert isinstance(bad.error, KeyError)


def test_asyncio_error_observed_by_trio() -> None:
    """The asyncio side raises; Trio unwraps the outcome and sees the exception."""

    async def aio_main() -> None:
        await asyncio.sleep(0)
        raise ValueError("raised in asyncio")

    async def trio_main() -> None:
        (await run_asyncio_guest(aio_main)).unwrap()

    with pytest.raises(ValueError, match="raised in asyncio"):
        trio.run(trio_main)


def test_trio_cancels_asyncio_main_task() -> None:
    record: list[str] = []

    async def trio_main() -> outcome.Outcome[None]:
        started = trio.Event()

        async def aio_main() -> None:
            started.set()  # a Trio event set from asyncio code, same thread
            try:
                await asyncio.sleep(LONG)
            except asyncio.CancelledError:
                record.append("asyncio saw cancel")
                raise

        box: list[asyncio.Task[Any]] = []
        result: list[outcome.Outcome[None]] = []

        async def run_it() -> None:
            result.append(await run_asyncio_guest(aio_main, task_box=box))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_it)
            with trio.fail_after(LONG):
                await started.wait()
            box[0].cancel()  # Trio code cancels the asyncio main task directly
        return result[0]

    out = trio.run(trio_main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, asyncio.CancelledError)
    assert record == ["asyncio saw cancel"]


def test_trio_cancel_scope_propagates_to_asyncio() -> None:
    """A Trio cancel scope around the waiting code cancels the asyncio run."""
    record: list[str] = []

    async def trio_main() -> outcome.Outcome[None] | None:
        box: list[asyncio.Task[Any]] = []
        result: list[outcome.Outcome[None]] = []
        started = trio.Event()

        async def aio_main() -> None:
            started.set()
            try:
                await asyncio.sleep(LONG)
            finally:
                record.append("asyncio finally")

        async def guarded() -> None:
            try:
                await trio.sleep_forever()
            finally:
                # Trio is cancelling us: cancel the guest (run_it waits for it).
                box[0].cancel()

        async def run_it() -> None:
            result.append(await run_asyncio_guest(aio_main, task_box=box))

        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_it)
                nursery.start_soon(guarded)
                with trio.fail_after(LONG):
                    await started.wait()
                scope.cancel()
        assert scope.cancelled_caught
        return result[0] if result else None

    out = trio.run(trio_main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, asyncio.CancelledError)
    assert record == ["asyncio finally"]


def test_asyncio_cancels_itself_and_trio_observes() -> None:
    async def aio_main() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    async def trio_main() -> outcome.Outcome[None]:
        return await run_asyncio_guest(aio_main)

    out = trio.run(trio_main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, asyncio.CancelledError)


def test_asyncio_code_cancels_a_trio_scope() -> None:
    async def trio_main() -> tuple[bool, outcome.Outcome[str]]:
        scope = trio.CancelScope()

        async def aio_main() -> str:
            await asyncio.sleep(0.001)
            scope.cancel()  # asyncio code, on the host thread, cancels Trio work
            return "cancelled trio"

        async def trio_waiter() -> None:
            with scope:
                await trio.sleep(LONG)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio_waiter)
            out = await run_asyncio_guest(aio_main)
        return scope.cancelled_caught, out

    caught, out = trio.run(trio_main)
    assert caught
    assert out == outcome.Value("cancelled trio")


def test_trio_and_asyncio_do_io_concurrently() -> None:
    """An asyncio echo server used by a Trio client and a Trio echo server used by asyncio."""
    rounds = 50

    async def trio_main() -> None:
        port_to_asyncio: list[int] = []
        port_to_trio = trio.Event()
        aio_port: list[int] = []

        async def trio_echo(stream: Any) -> None:
            async with stream:
                async for data in stream:
                    await stream.send_all(data)

        async def aio_main() -> int:
            async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                while data := await reader.read(4096):
                    writer.write(data)
                    await writer.drain()
                writer.close()

            server = await asyncio.start_server(echo, "127.0.0.1", 0)
            async with server:
                aio_port.append(server.sockets[0].getsockname()[1])
                port_to_trio.set()
                while not port_to_asyncio:
                    await asyncio.sleep(0.001)
                reader, writer = await asyncio.open_connection("127.0.0.1", port_to_asyncio[0])
                for i in range(rounds):
                    writer.write(b"aio %d\n" % i)
                    line = await wait_long(reader.readline())
                    assert line == b"aio %d\n" % i
                writer.close()
                await writer.wait_closed()
                while not client_done.is_set():
                    await asyncio.sleep(0.001)
            return rounds

        async def trio_client() -> None:
            await port_to_trio.wait()
            stream = await trio.open_tcp_stream("127.0.0.1", aio_port[0])
            async with stream:
                for i in range(rounds):
                    await stream.send_all(b"trio %d\n" % i)
                    want = b"trio %d\n" % i
                    got = b""
                    while len(got) < len(want):
                        got += await stream.receive_some(100)
                    assert got == want
            client_done.set()

        client_done = trio.Event()
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, trio_echo, 0)
            port_to_asyncio.append(listeners[0].socket.getsockname()[1])
            nursery.start_soon(trio_client)
            with trio.fail_after(LONG):
                out = await run_asyncio_guest(aio_main)
            assert out == outcome.Value(rounds)
            nursery.cancel_scope.cancel()

    trio.run(trio_main)


def test_trio_host_to_thread_and_threadsafe() -> None:
    """Worker threads reach the asyncio guest through Trio's token."""

    async def aio_main() -> list[int]:
        loop = asyncio.get_running_loop()
        got: list[int] = []

        def worker(n: int) -> None:
            for i in range(100):
                loop.call_soon_threadsafe(got.append, n * 1000 + i)

        # Each to_thread result reaches the loop after that worker's callbacks.
        await wait_long(asyncio.gather(*(asyncio.to_thread(worker, n) for n in range(4))))
        return sorted(got)

    async def trio_main() -> outcome.Outcome[list[int]]:
        return await run_asyncio_guest(aio_main)

    out = trio.run(trio_main)
    assert out == outcome.Value(sorted(n * 1000 + i for n in range(4) for i in range(100)))
