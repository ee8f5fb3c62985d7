"""The strict host: one tick in flight, host-thread-only primitives, nested host loops."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

import outcome
import pytest

from .hosts import LONG, StrictHost, join_all, wait_long

# ---------------------------------------------------------- the host itself


def test_strict_host_detects_two_ticks_in_flight() -> None:
    """Self-test: the checks that the other tests rely on can fail."""
    host = StrictHost()
    try:
        gate = threading.Event()
        host.call(lambda: gate.wait(LONG))  # keep the host busy so both posts stay queued
        host.run_sync_soon_threadsafe(lambda: None)
        host.run_sync_soon_threadsafe(lambda: None)
        gate.set()
    finally:
        host.close()
    assert host.max_in_flight == 2
    assert any("in flight" in v for v in host.violations)


def test_strict_host_detects_not_threadsafe_call_from_other_thread() -> None:
    host = StrictHost()
    try:
        thread = threading.Thread(target=host.run_sync_soon_not_threadsafe, args=(lambda: None,))
        thread.start()
        thread.join()
    finally:
        host.close()
    assert any("not_threadsafe" in v for v in host.violations)


# ---------------------------------------------------------- broad scenario


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.mark.timeout(60)
def test_broad_scenario_on_strict_host(strict_host: StrictHost) -> None:
    """Sockets, timers, to_thread, executors and call_soon_threadsafe floods, all at once."""
    n_threads, per_thread = 6, 2000

    async def clients(port: int) -> int:
        async def one(i: int) -> int:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for j in range(50):
                msg = b"%d:%d\n" % (i, j)
                writer.write(msg)
                assert await reader.readline() == msg
            writer.close()
            await writer.wait_closed()
            return 50

        return sum(await asyncio.gather(*(one(i) for i in range(4))))

    async def timers() -> list[int]:
        loop = asyncio.get_running_loop()
        fired: list[int] = []
        done = loop.create_future()
        for k in range(20):
            loop.call_later(0.001 * (20 - k), fired.append, 20 - k)
        loop.call_later(0.03, done.set_result, None)
        await done
        return fired

    async def flood() -> dict[int, list[int]]:
        loop = asyncio.get_running_loop()
        seen: dict[int, list[int]] = {n: [] for n in range(n_threads)}
        all_in = asyncio.Event()
        count = 0

        def on_item(n: int, i: int) -> None:
            nonlocal count
            seen[n].append(i)
            count += 1
            if count == n_threads * per_thread:
                all_in.set()

        def worker(n: int) -> None:
            for i in range(per_thread):
                loop.call_soon_threadsafe(on_item, n, i)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(n_threads)]
        for t in threads:
            t.start()
        try:
            await wait_long(all_in.wait())
        finally:
            await asyncio.to_thread(join_all, threads)
        return seen

    async def host_pokes() -> int:
        """Host events from another thread touch the loop outside ticks."""
        loop = asyncio.get_running_loop()
        hits = 0
        done = asyncio.Event()

        def poke() -> None:
            nonlocal hits
            hits += 1
            if hits == 100:
                loop.call_soon(done.set)
            else:
                loop.call_later(0, lambda: None)

        def poker() -> None:
            for _ in range(100):
                strict_host.call(poke)

        thread = threading.Thread(target=poker)
        thread.start()
        try:
            await wait_long(done.wait())
        finally:
            await asyncio.to_thread(thread.join)
        return hits

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            results = await wait_long(
                asyncio.gather(
                    clients(port),
                    timers(),
                    flood(),
                    host_pokes(),
                    asyncio.gather(*(asyncio.to_thread(pow, 2, k) for k in range(20))),
                    loop.run_in_executor(None, sum, range(1000)),
                )
            )
        return dict(zip(["clients", "timers", "flood", "pokes", "to_thread", "executor"], results))

    out = strict_host.start_guest(main).result(timeout=LONG * 2).unwrap()
    assert out["clients"] == 200
    assert out["timers"] == list(range(1, 21))
    for n, items in out["flood"].items():
        assert items == list(range(per_thread)), f"thread {n}: order or count broken"
    assert out["pokes"] == 100
    assert out["to_thread"] == [2**k for k in range(20)]
    assert out["executor"] == sum(range(1000))
    assert strict_host.ticks_run > 0


def test_cancel_and_error_on_strict_host(strict_host: StrictHost) -> None:
    async def main() -> None:
        await asyncio.sleep(0.001)
        raise ZeroDivisionError

    out = strict_host.start_guest(main).result(timeout=LONG)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, ZeroDivisionError)


# ------------------------------------------------------------ nested loops


def _thread_then(fn: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=fn)
    thread.start()
    return thread


def test_nested_host_loop_defers_the_tick(strict_host: StrictHost) -> None:
    """A guest callback opens a modal dialog (a nested host loop).

    A tick posted meanwhile (a worker's call_soon_threadsafe) is run by the
    nested loop: it must be deferred, not re-entered, and the guest must go on
    once the dialog closes.
    """
    log: list[str] = []

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        closed = threading.Event()
        threads: list[threading.Thread] = []

        def guest_cb(name: str) -> None:
            log.append(f"{name} nested={strict_host.nested}")

        def close_dialog() -> None:
            log.append("dialog closed")
            closed.set()

        def worker() -> None:
            loop.call_soon_threadsafe(guest_cb, "threadsafe cb")  # posts a tick
            strict_host.call(lambda: loop.call_soon(guest_cb, "host-side call_soon"))
            strict_host.call(close_dialog)

        def open_dialog() -> None:
            log.append("dialog opened")
            threads.append(_thread_then(worker))
            strict_host.run_nested(closed.is_set)
            log.append("dialog returned")
            loop.call_soon(fut.set_result, None)

        loop.call_soon(open_dialog)
        loop.call_soon(guest_cb, "queued before dialog")
        await wait_long(fut)
        await asyncio.to_thread(threads[0].join)
        return log

    out = strict_host.start_guest(main).result(timeout=LONG)
    assert out.unwrap() == [
        "dialog opened",
        "dialog closed",
        "dialog returned",
        "queued before dialog nested=False",
        "threadsafe cb nested=False",
        "host-side call_soon nested=False",
    ]
    assert strict_host.ticks_run_nested >= 1  # the tick did arrive inside the dialog
    assert strict_host.host_calls_run_nested >= 2


def test_nested_host_loop_while_backend_waits_for_io(strict_host: StrictHost) -> None:
    """The dialog opens from a ready-only tick while the backend waits; I/O comes meanwhile."""
    log: list[str] = []

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            closed = threading.Event()
            threads: list[threading.Thread] = []

            def writer_then_close() -> None:
                b.sendall(b"during dialog")
                strict_host.call(closed.set)

            def open_dialog() -> None:
                log.append(f"dialog opened, nested={strict_host.nested}")
                threads.append(_thread_then(writer_then_close))
                strict_host.run_nested(closed.is_set)
                log.append("dialog returned")

            recv = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0)
            # From a worker: with the backend waiting, this runs in a ready-only tick.
            threads.append(_thread_then(lambda: loop.call_soon_threadsafe(open_dialog)))
            data: bytes = await wait_long(recv)
            log.append("received")
            for t in threads:
                await asyncio.to_thread(t.join)
            return data

    out = strict_host.start_guest(main).result(timeout=LONG)
    assert out.unwrap() == b"during dialog"
    assert log == ["dialog opened, nested=False", "dialog returned", "received"]


def test_nested_host_loop_repeatedly(strict_host: StrictHost) -> None:
    """Many short dialogs in a row while the guest keeps working."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        count = 0
        for _ in range(20):
            closed = threading.Event()
            fut: asyncio.Future[None] = loop.create_future()

            def dialog(closed: threading.Event = closed, fut: asyncio.Future[None] = fut) -> None:
                def closer() -> None:
                    loop.call_soon_threadsafe(lambda: None)
                    strict_host.call(closed.set)

                thread = _thread_then(closer)
                strict_host.run_nested(closed.is_set)
                thread.join()
                fut.set_result(None)

            loop.call_soon(dialog)
            await wait_long(fut)
            count += 1
        return count

    assert strict_host.start_guest(main).result(timeout=LONG).unwrap() == 20


def test_strict_host_timers_and_sleep(strict_host: StrictHost) -> None:
    async def main() -> tuple[float, float]:
        loop: Any = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(0.02)
        return loop.time() - t0, loop._clock_resolution

    elapsed, resolution = strict_host.start_guest(main).result(timeout=LONG).unwrap()
    # Never early, within the clock's resolution: asyncio runs a timer due within
    # it (1 ns on Linux; 15.6 ms on Windows Python 3.10, whose clock is GetTickCount64).
    assert elapsed >= 0.02 - resolution
