"""``asyncio_guest.trio``: run_asyncio / run / trio_host_primitives / TrioFdWatcher."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import anyio
import outcome
import pytest
import sniffio
import trio
import trio.testing

import asyncio_guest
from asyncio_guest._core import fd_watch
from asyncio_guest.trio import TrioFdWatcher, _AfterIOWait, run, run_asyncio, trio_host_primitives

from .child_process import reaped, start_child
from .hosts import LONG, lose_the_next_tick, wait_long
from .loops import (
    HAS_POLLABLE_SELECTOR,
    NO_SUBPROCESS,
    needs_eager_tasks,
    pollable_loop,
    requested_kind,
    test_loop_factory,
    until_handed_over,
    wine_version,
)

_WINE = wine_version()
pytestmark = pytest.mark.skipif(
    _WINE is not None,
    reason=f"under Wine {_WINE}: trio's Windows backend cannot start (see test_trio_host.py)",
)
LOOP = test_loop_factory()


# ------------------------------------------------------------ results and errors


def test_run_returns_main_result_and_passes_args() -> None:
    async def main(a: int, b: int) -> tuple[int, str]:
        await asyncio.sleep(0.001)
        return a + b, sniffio.current_async_library()

    assert run(main, 2, 3, loop_factory=LOOP) == (5, "asyncio")


def test_exception_in_main_keeps_its_traceback() -> None:
    async def failing_main() -> None:
        await asyncio.sleep(0)
        raise KeyError("asyncio side")

    async def trio_main() -> None:
        await run_asyncio(failing_main, loop_factory=LOOP)

    with pytest.raises(KeyError, match="asyncio side") as info:
        trio.run(trio_main)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "failing_main" in names and "trio_main" in names


def test_sequential_runs_and_the_loop_is_unset_between_them() -> None:
    async def trio_main() -> list[int]:
        got = []
        for i in range(3):
            assert asyncio._get_running_loop() is None
            got.append(await run_asyncio(asyncio.sleep, 0, i, loop_factory=LOOP))
        return got

    assert trio.run(trio_main) == [0, 1, 2]


@pytest.mark.timeout(60)
def test_a_run_abandoned_under_trio_raises_instead_of_waiting_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tick lost on its way to Trio (dropped here by the guest's local
    poster, once) used to leave ``run_asyncio`` awaiting for ever: the run was
    reported abandoned and Trio waited on. Now the run is shut down in Trio's
    loop and ``run_asyncio`` raises ``InternalError``."""
    from asyncio_guest import trio as guest_trio

    stock_call = guest_trio._LocalPoster.__call__
    drop = [False]

    def call(self: Any, fn: Any) -> None:
        if drop[0]:
            drop[0] = False
            return
        stock_call(self, fn)

    monkeypatch.setattr(guest_trio._LocalPoster, "__call__", call)
    cleaned_up: list[bool] = []

    def drop_next() -> None:
        drop[0] = True

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(asyncio_guest.InternalError, match="abandoned"):
            run(lose_the_next_tick, drop_next, cleaned_up)
    assert any("abandoned" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert cleaned_up == [True]


def test_a_second_concurrent_run_asyncio_is_refused_and_the_first_goes_on() -> None:
    async def trio_main() -> tuple[str, str]:
        started = trio.Event()
        results: list[str] = []

        async def first() -> str:
            started.set()
            await asyncio.sleep(0.05)
            return "first done"

        async def run_first() -> None:
            results.append(await run_asyncio(first, loop_factory=LOOP))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_first)
            await started.wait()
            with pytest.raises(RuntimeError, match="already running") as info:
                await run_asyncio(asyncio.sleep, 0, loop_factory=LOOP)
        return results[0], str(info.value)

    first, message = trio.run(trio_main)
    assert first == "first done"
    assert "one guest at a time" in message


def test_used_from_asyncio_instead_of_trio_it_says_what_went_wrong() -> None:
    """``trio.run`` called inside a running asyncio loop, or ``run_asyncio``
    awaited in asyncio code with no Trio at all: each says so, and closes the
    coroutine it was given (no "never awaited" after the error). Both said
    "another run_asyncio() in this trio.run?" before."""

    async def main() -> int:
        return 1

    async def asyncio_main() -> list[str]:
        said = []
        with pytest.raises(RuntimeError) as info:
            run(main(), loop_factory=LOOP)
        said.append(str(info.value))
        with pytest.raises(RuntimeError) as info:
            await run_asyncio(main(), loop_factory=LOOP)
        said.append(str(info.value))
        return said

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        said = asyncio.run(asyncio_main())
        gc.collect()
    assert said == [
        "asyncio_guest.trio.run() cannot be called from a running event loop",
        "asyncio_guest.trio.run_asyncio() must be awaited inside trio.run: it runs "
        "asyncio as Trio's guest (in asyncio code, await main() itself)",
    ]


def test_a_refused_run_asyncio_closes_the_coroutine_it_was_given() -> None:
    """Refused before it began (its scope cancelled already; another guest
    running), run_asyncio closes a coroutine object it was given: the refusal
    is what a user sees, not a "never awaited" warning after it."""

    async def main() -> int:
        return 1

    async def trio_main() -> list[Any]:
        frames: list[Any] = []
        coro = main()
        with trio.CancelScope() as scope:
            scope.cancel()
            await run_asyncio(coro, loop_factory=LOOP)
        assert scope.cancelled_caught
        frames.append(coro.cr_frame)
        started = trio.Event()

        async def occupant() -> None:
            started.set()
            await asyncio.sleep(0.05)

        async def run_occupant() -> None:
            await run_asyncio(occupant, loop_factory=LOOP)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_occupant)
            await started.wait()
            coro = main()
            with pytest.raises(RuntimeError, match="already running"):
                await run_asyncio(coro, loop_factory=LOOP)
            frames.append(coro.cr_frame)
        return frames

    assert trio.run(trio_main) == [None, None]  # both closed


# ------------------------------------------------------------ cancellation


def test_trio_cancel_scope_cancels_main_and_waits_for_the_full_shutdown() -> None:
    record: list[str] = []

    async def trio_main() -> bool:
        async def background() -> None:
            try:
                await asyncio.sleep(LONG)
            finally:
                await asyncio.sleep(0.01)  # shutdown waits for this, too
                record.append("background cleaned up")

        async def agen() -> Any:
            try:
                yield 1
                await asyncio.sleep(LONG)
            finally:
                record.append("async generator finalized")

        async def main() -> None:
            task = asyncio.create_task(background())
            gen = agen()
            await gen.__anext__()
            try:
                await asyncio.sleep(LONG)
            finally:
                await asyncio.sleep(0.01)  # main's own clean-up may await
                record.append("main cancelled")
                loops.append(asyncio.get_running_loop())
                del task

        loops: list[asyncio.AbstractEventLoop] = []
        with trio.move_on_after(0.1) as scope:
            await run_asyncio(main, loop_factory=LOOP)
        record.append("trio scope exited")
        assert loops[0].is_closed()
        return scope.cancelled_caught

    assert trio.run(trio_main)
    assert record[0] == "main cancelled"
    assert set(record[1:3]) == {"background cleaned up", "async generator finalized"}
    assert record[3:] == ["trio scope exited"]


def test_a_trio_cancel_after_main_returned_leaves_mains_result() -> None:
    """main has returned and the guest is shutting down (a leftover task's
    clean-up takes a while) when Trio's scope is cancelled: the cancel reaches
    nothing of main, so main's result is returned, as Trio returns the result of
    any operation that completed before it could be cancelled."""

    async def main() -> str:
        async def leftover() -> None:
            try:
                await asyncio.sleep(100)
            except asyncio.CancelledError:
                await asyncio.sleep(0.3)  # clean-up during the run's shutdown
                raise

        left = asyncio.create_task(leftover())
        await asyncio.sleep(0.05)
        assert not left.done()
        return "main's result"

    async def trio_main() -> tuple[str, float]:
        t0 = trio.current_time()
        with trio.move_on_after(0.2):  # fires during the shutdown
            result = await run_asyncio(main, loop_factory=LOOP)
        return result, trio.current_time() - t0

    result, took = trio.run(trio_main)
    assert result == "main's result"
    assert took >= 0.3  # the shutdown was complete (the cancel came during it)


def test_trio_cancelled_is_raised_not_asyncio_cancelled_error() -> None:
    async def trio_main() -> str:
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                await run_asyncio(asyncio.sleep, LONG, loop_factory=LOOP)
            except trio.Cancelled:
                raised = "trio.Cancelled"
                raise
            except BaseException as exc:  # pragma: no cover - the failure tested for
                raised = repr(exc)
                raise
        assert scope.cancelled_caught
        return raised

    assert trio.run(trio_main) == "trio.Cancelled"


def test_main_answering_trio_cancellation_with_an_error_raises_that_error() -> None:
    async def main() -> None:
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None

    async def trio_main() -> None:
        with trio.move_on_after(0.02):
            await run_asyncio(main, loop_factory=LOOP)

    with pytest.raises(ValueError, match="cleanup failed"):
        trio.run(trio_main)


def test_main_cancelled_by_asyncio_code_raises_asyncio_cancelled_error() -> None:
    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().call_later(0.01, task.cancel)
        await asyncio.sleep(LONG)

    async def trio_main() -> str:
        try:
            await run_asyncio(main, loop_factory=LOOP)
        except trio.Cancelled:  # pragma: no cover - the failure this test exists for
            return "trio.Cancelled"
        except asyncio.CancelledError:
            return "asyncio.CancelledError"
        return "no exception"  # pragma: no cover

    assert trio.run(trio_main) == "asyncio.CancelledError"


def test_trio_cancel_while_asyncio_is_busy() -> None:
    """A guest that never idles (every tick posts the next) still sees Trio's cancel."""
    spins: list[int] = []

    async def main() -> None:
        n = 0
        try:
            while True:
                await asyncio.sleep(0)
                n += 1
        finally:
            spins.append(n)

    async def trio_main() -> None:
        with trio.fail_after(LONG):
            with trio.move_on_after(0.05):
                await run_asyncio(main, loop_factory=LOOP)

    trio.run(trio_main)
    assert spins and spins[0] > 100


def test_asyncio_code_cancels_the_trio_scope_around_run_asyncio() -> None:
    """Cross-cancel from inside the guest: Trio's abort runs inside a guest callback."""

    async def trio_main() -> bool:
        with trio.CancelScope() as scope:

            async def main() -> None:
                await asyncio.sleep(0.01)
                scope.cancel()
                await asyncio.sleep(LONG)

            await run_asyncio(main, loop_factory=LOOP)
        return scope.cancelled_caught

    assert trio.run(trio_main)


# ------------------------------------------------------------ sniffio and anyio


def test_sniffio_and_anyio_on_both_sides_interleaved() -> None:
    seen: list[tuple[str, str]] = []
    rounds = 30

    async def trio_main() -> None:
        async def trio_side() -> None:
            for _ in range(rounds):
                seen.append(("trio", sniffio.current_async_library()))
                await anyio.sleep(0)
                await trio.sleep(0.0005)

        async def aio_side() -> str:
            async def child(i: int) -> None:
                await anyio.sleep(0.001 * (i % 3))
                seen.append(("asyncio", sniffio.current_async_library()))

            for _ in range(rounds // 3):
                seen.append(("asyncio", sniffio.current_async_library()))
                async with anyio.create_task_group() as tg:  # anyio inside the guest
                    for i in range(3):
                        tg.start_soon(child, i)
                await asyncio.sleep(0.0005)
            return sniffio.current_async_library()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio_side)
            assert await run_asyncio(aio_side, loop_factory=LOOP) == "asyncio"
        assert sniffio.current_async_library() == "trio"

    trio.run(trio_main)
    sides = [side for side, _ in seen]
    assert all(side == lib for side, lib in seen), seen
    assert sides.count("trio") == rounds and sides.count("asyncio") == rounds // 3 * 4
    # Really interleaved: the sides alternate more than a few times.
    switches = sum(1 for a, b in itertools.pairwise(sides) if a != b)
    assert switches >= 6, sides


# ------------------------------------------------------------ the two worlds together


def test_trio_task_and_asyncio_task_exchange_data() -> None:
    """Trio -> asyncio through an asyncio.Queue, asyncio -> Trio through a memory channel."""
    count = 200

    async def trio_main() -> list[int]:
        send, receive = trio.open_memory_channel[int](math.inf)
        token = trio.lowlevel.current_trio_token()
        to_asyncio: list[asyncio.Queue[int | None]] = []
        ready = trio.Event()

        async def aio_main() -> int:
            queue: asyncio.Queue[int | None] = asyncio.Queue()
            to_asyncio.append(queue)
            ready.set()
            total = 0
            while (item := await queue.get()) is not None:
                total += item
                # Back to Trio: a Trio call made from Trio's own entry queue.
                token.run_sync_soon(send.send_nowait, item * 2)
            token.run_sync_soon(send.close)
            return total

        async def trio_feeder() -> None:
            await ready.wait()
            queue = to_asyncio[0]
            for i in range(count):
                queue.put_nowait(i)  # same thread: wakes the guest directly
                if i % 7 == 0:
                    await trio.sleep(0)
            queue.put_nowait(None)

        doubled: list[int] = []

        async def trio_collector() -> None:
            async for item in receive:
                doubled.append(item)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio_feeder)
            nursery.start_soon(trio_collector)
            with trio.fail_after(LONG):
                total = await run_asyncio(aio_main, loop_factory=LOOP)
        assert total == sum(range(count))
        return doubled

    assert trio.run(trio_main) == [2 * i for i in range(count)]


def test_threads_in_the_guest() -> None:
    async def main() -> tuple[int, int, bool]:
        loop = asyncio.get_running_loop()
        host = threading.get_ident()
        a = await asyncio.to_thread(lambda: threading.get_ident())
        b = await loop.run_in_executor(None, sum, [1, 2, 3])
        got: list[int] = []
        done = asyncio.Event()

        def worker() -> None:
            for i in range(50):
                loop.call_soon_threadsafe(got.append, i)
            loop.call_soon_threadsafe(done.set)

        threading.Thread(target=worker).start()
        await asyncio.wait_for(done.wait(), LONG)
        return a != host, b, got == list(range(50))

    assert run(main, loop_factory=LOOP) == (True, 6, True)


@pytest.mark.skipif(
    sys.platform == "win32" and requested_kind() == "selector", reason=NO_SUBPROCESS
)
def test_subprocess_in_the_guest() -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(b"from the guest"), LONG)
        assert proc.returncode == 0
        return out

    async def trio_main() -> bytes:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0.01)  # Trio keeps running meanwhile
            return await run_asyncio(main, loop_factory=LOOP)

    assert trio.run(trio_main) == b"FROM THE GUEST"


# ------------------------------------------------------------ lower-level pieces


def test_trio_host_primitives_with_start_guest_run() -> None:
    async def trio_main() -> tuple[str, bool, bool]:
        threadsafe, local = trio_host_primitives()
        done = trio.Event()
        box: list[outcome.Outcome[str]] = []

        async def main() -> str:
            await asyncio.sleep(0.001)
            await asyncio.to_thread(time.sleep, 0.001)  # a thread-safe post, too
            return "ok"

        asyncio_guest.start_guest_run(
            main,
            run_sync_soon_threadsafe=threadsafe,
            run_sync_soon_not_threadsafe=local,
            done_callback=lambda out: (box.append(out), done.set()),
            host_uses_signal_set_wakeup_fd=True,
            loop_factory=LOOP,
        )
        with trio.fail_after(LONG):
            await done.wait()
        token = trio.lowlevel.current_trio_token()
        return box[0].unwrap(), threadsafe == token.run_sync_soon, local is not threadsafe

    assert trio.run(trio_main) == ("ok", True, True)


@pytest.mark.parametrize("primitives", ["both", "threadsafe-only"])
def test_a_guest_run_left_behind_by_trio_run_is_ended_with_it(primitives: str) -> None:
    """``trio.run`` returns without waiting for a run on ``trio_host_primitives``:
    the run is shut down then and there, and the thread has no running loop.
    Also for a run given only the threadsafe one (the other is optional): it
    was left running, its loop this thread's running loop for good."""
    box: list[outcome.Outcome[str]] = []
    cleaned: list[str] = []

    async def main() -> str:
        try:
            await asyncio.sleep(LONG)
        finally:
            cleaned.append("main's finally")
        return "never"

    async def trio_main() -> None:
        threadsafe, local = trio_host_primitives()
        asyncio_guest.start_guest_run(
            main,
            run_sync_soon_threadsafe=threadsafe,
            run_sync_soon_not_threadsafe=local if primitives == "both" else None,
            done_callback=box.append,
            host_uses_signal_set_wakeup_fd=True,
            loop_factory=LOOP,
        )
        await trio.sleep(0.05)  # and leave

    trio.run(trio_main)
    assert asyncio.events._get_running_loop() is None
    assert cleaned == ["main's finally"]
    assert len(box) == 1 and isinstance(box[0], outcome.Error)
    assert "trio.run() ended" in str(box[0].error)
    assert asyncio.run(asyncio.sleep(0, "asyncio.run works again")) == "asyncio.run works again"


@pytest.mark.skipif(sys.platform == "win32", reason="socketpair readiness: Unix test")
def test_fd_watcher_is_level_triggered_and_stops() -> None:
    async def trio_main() -> None:
        watcher = TrioFdWatcher()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            calls: list[int] = []

            def readable() -> None:
                calls.append(len(calls))
                if len(calls) == 3:
                    a.recv(10)  # drained: no more calls until the next byte
                if len(calls) == 4:
                    unwatch()  # from inside the callback, as FdWaits.ready does

            unwatch = watcher.watch_readable(a.fileno(), readable)
            await trio.sleep(0.02)
            assert calls == []  # nothing to read: never called
            b.send(b"x")
            with trio.fail_after(LONG):
                while len(calls) < 3:
                    await trio.sleep(0)
            await trio.sleep(0.02)
            assert calls == [0, 1, 2]  # level-triggered until drained
            b.send(b"y")
            await trio.sleep(0.02)
            assert calls == [0, 1, 2, 3]  # unwatched inside the 4th call
            unwatch()  # twice: harmless
            # The fd can be watched again at once (the old wait is gone).
            again: list[bool] = []
            stop = watcher.watch_readable(a.fileno(), lambda: again.append(True))
            await trio.sleep(0.02)
            stop()
            assert again
            watcher.close()

    trio.run(trio_main)


def test_fd_watcher_call_later_fires_once_on_time_and_cancels() -> None:
    async def trio_main() -> None:
        watcher = TrioFdWatcher()
        fired: list[float] = []
        start = trio.current_time()
        watcher.call_later(0.03, lambda: fired.append(trio.current_time() - start))
        cancel = watcher.call_later(0.01, lambda: fired.append(-1.0))
        cancel()
        cancel()
        left = watcher.call_later(LONG, lambda: fired.append(-2.0))
        await trio.sleep(0.1)
        assert len(fired) == 1 and 0.03 <= fired[0] < 0.09, fired
        watcher.close()  # ends ``left`` too
        left()

    trio.run(trio_main)


def test_fd_watcher_after_each_wait_runs_between_trios_wait_and_its_tasks_and_stops() -> None:
    """Called on Trio's thread each time the scheduler is back from its I/O
    wait, in no task (before the tasks that wait made runnable); its stop and
    the watcher's close end it, and either is harmless when repeated or once
    trio.run has ended."""
    stops: list[Callable[[], None]] = []

    async def trio_main() -> None:
        watcher = TrioFdWatcher()
        calls: list[bool] = []
        other: list[bool] = []

        def hook() -> None:
            try:
                trio.lowlevel.current_task()
            except RuntimeError:
                calls.append(True)  # outside any task, as it should be
            else:
                calls.append(False)

        stop = watcher.after_each_wait(hook)
        stops.append(watcher.after_each_wait(lambda: other.append(True)))
        for _ in range(5):
            await trio.sleep(0.002)
        assert len(calls) >= 5 and all(calls), calls
        stop()
        stop()
        n = len(calls)
        await trio.sleep(0.01)
        assert len(calls) == n
        watcher.close()
        m = len(other)
        assert m >= 5
        await trio.sleep(0.01)
        assert len(other) == m
        stops.append(stop)

    trio.run(trio_main)
    for stop in stops:
        stop()  # after trio.run: harmless


def test_what_an_after_wait_callback_raises_leaves_trio_run_not_a_log() -> None:
    """Trio logs and drops an instrument that raises; the watcher lets it out of
    a system task instead (as from a watch's task): trio.run raises it."""

    class Boom(Exception):
        pass

    async def trio_main() -> None:
        watcher = TrioFdWatcher()
        fired: list[bool] = []

        def hook() -> None:
            if not fired:
                fired.append(True)
                raise Boom("from the hook")

        watcher.after_each_wait(hook)
        await trio.sleep(0.05)

    with pytest.raises(BaseException) as caught:
        trio.run(trio_main)
    seen: list[BaseException] = []
    todo: list[BaseException] = [caught.value]
    while todo and len(seen) < 20:  # its causes, contexts and groups
        exc = todo.pop()
        seen.append(exc)
        todo += [e for e in (exc.__cause__, exc.__context__) if e is not None]
        todo += getattr(exc, "exceptions", ())  # an exception group's
    assert any(isinstance(e, Boom) for e in seen), seen


@pytest.mark.skipif(not HAS_POLLABLE_SELECTOR, reason="no epoll or kqueue: no zero-thread wait")
def test_a_workers_calls_run_from_trios_after_io_wait_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside trio.run, an idle guest's worker calls run between Trio's I/O wait
    and its task steps (no Trio task is running), in order, none lost or
    repeated, floods included; the hook leaves with the run."""
    monkeypatch.setenv(fd_watch.ENV, "fd")
    n = 300

    async def main() -> list[tuple[int, bool]]:
        loop = asyncio.get_running_loop()
        got: list[tuple[int, bool]] = []
        ran = threading.Event()
        done = loop.create_future()

        def record(i: int) -> None:
            try:
                trio.lowlevel.current_task()
                in_task = True
            except RuntimeError:
                in_task = False
            got.append((i, in_task))
            ran.set()

        def worker() -> None:
            for i in range(n):
                until_handed_over(loop, LONG)
                time.sleep(0.0005)
                ran.clear()
                loop.call_soon_threadsafe(record, i)
                ran.wait(LONG)
            for i in range(n, 5 * n):  # a flood
                loop.call_soon_threadsafe(record, i)
            loop.call_soon_threadsafe(done.set_result, None)

        thread = threading.Thread(target=worker)
        thread.start()
        try:
            await wait_long(done)
        finally:
            await asyncio.to_thread(thread.join)
        return got

    async def trio_main() -> list[tuple[int, bool]]:
        got = await run_asyncio(main, loop_factory=pollable_loop)
        # The run's hook is gone: nothing of ours runs after Trio's waits now
        # (Trio lists its instruments nowhere public).
        runner = trio._core._run.GLOBAL_RUN_CONTEXT.runner
        assert not [i for i in runner.instruments["_all"] if isinstance(i, _AfterIOWait)]
        return got

    got = trio.run(trio_main)
    assert [i for i, _ in got] == list(range(5 * n))
    outside = sum(not in_task for _, in_task in got[:n])
    assert outside >= n // 2, f"only {outside} of {n} idle calls ran outside Trio's tasks"


def test_fd_watcher_outside_trio_run_fails_at_once() -> None:
    with pytest.raises(RuntimeError):
        TrioFdWatcher()


# ------------------------------------------------------------ Ctrl+C (subprocesses)

_CTRL_C_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, threading, time
    import trio
    from asyncio_guest.trio import run_asyncio

    busy = sys.argv[1] == "busy"
    slow_cleanup = sys.argv[2] == "slow"
    record = {"finally": False, "threads_before": threading.active_count()}

    async def aio_main():
        try:
            if busy:
                print("ready", flush=True)
                while True:  # always work to do: ticks follow ticks
                    end = time.perf_counter() + 0.0005
                    while time.perf_counter() < end:
                        pass
                    await asyncio.sleep(0)
            else:
                await asyncio.to_thread(time.sleep, 0)  # the default executor exists
                print("ready", flush=True)
                await asyncio.sleep(60)
        finally:
            if slow_cleanup:
                print("cleanup", flush=True)
                await asyncio.sleep(60)
            record["finally"] = True

    async def trio_main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await run_asyncio(aio_main)

    def leaves(exc):
        group = getattr(exc, "exceptions", None)  # a nursery's exception group
        return [leaf for e in group for leaf in leaves(e)] if group else [exc]

    try:
        trio.run(trio_main)
        record["outcome"] = "returned"
    except BaseException as exc:
        record["outcome"] = " ".join(type(e).__name__ for e in leaves(exc))
    for t in threading.enumerate():
        if t is not threading.main_thread():
            t.join(5)
    record["threads_after"] = threading.active_count()
    print(json.dumps(record), flush=True)
    """
)


def _ctrl_c_child(busy: bool, slow_cleanup: bool, presses: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_CHILD, "busy" if busy else "idle",
         "slow" if slow_cleanup else "fast"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # both loops settle (idle: both asleep in the OS)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        if presses > 1:
            assert proc.stdout.readline().strip() == "cleanup"
            time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=LONG)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    record: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    record["elapsed"] = elapsed
    return record


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child: POSIX")
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_ctrl_c_ends_trio_run_after_a_clean_guest_shutdown(busy: bool) -> None:
    record = _ctrl_c_child(busy=busy, slow_cleanup=False, presses=1)
    assert record["outcome"] == "KeyboardInterrupt"
    assert record["finally"] is True  # main was cancelled and cleaned up
    assert record["threads_after"] == 1  # backend thread and executor joined
    assert record["elapsed"] < 5.0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child: POSIX")
def test_second_ctrl_c_during_the_shutdown_ends_it_at_once() -> None:
    record = _ctrl_c_child(busy=False, slow_cleanup=True, presses=2)
    assert record["outcome"] == "KeyboardInterrupt"
    assert record["finally"] is False  # its 60 s clean-up was cut short
    assert record["threads_after"] == 1
    assert record["elapsed"] < 10.0


_CTRL_C_IN_SHUTDOWN_CHILD = textwrap.dedent(
    """
    import asyncio, os, sys, time
    import trio
    from asyncio_guest.trio import run_asyncio

    async def slow_cleanup():
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(60)  # a graceful close that hangs

    async def aio_main():
        if sys.argv[1] in ("task", "main-done"):
            asyncio.create_task(slow_cleanup())
        print("ready", flush=True)
        if sys.argv[1] == "main-done":
            return  # the shutdown begins, and waits for the task's clean-up
        if sys.argv[1] == "executor":
            await asyncio.to_thread(time.sleep, 60)  # the executor's join waits for it
        else:
            await asyncio.sleep(3600)

    async def trio_main():
        # Trio ran meanwhile: it ticked, and never stalled for half a second
        # (the shutdown lasts a second). A gap, not a count: on a loaded
        # machine each 10 ms sleep may take several times as long. Protected
        # from KeyboardInterrupt, as Trio's own code is: a Ctrl+C that lands
        # while an unprotected task runs is raised in that task (Trio's rule),
        # and this one, killed by the first, stopped ticking (CI, once: "trio
        # ran False", a gap of exactly the second between the two Ctrl+C).
        last = time.monotonic()
        ticks, longest_gap = 0, 0.0
        @trio.lowlevel.enable_ki_protection
        async def count():
            nonlocal last, ticks, longest_gap
            while True:
                await trio.sleep(0.01)
                now = time.monotonic()
                ticks, longest_gap, last = ticks + 1, max(longest_gap, now - last), now
        async with trio.open_nursery() as nursery:
            nursery.start_soon(count)
            try:
                await run_asyncio(aio_main)
            finally:
                longest_gap = max(longest_gap, time.monotonic() - last)
                print("trio ran", ticks >= 5 and longest_gap < 0.5, flush=True)
                print("gap", round(longest_gap, 3), file=sys.stderr, flush=True)

    try:
        trio.run(trio_main)
    except BaseException as exc:
        group = getattr(exc, "exceptions", None)
        print(type(group[0] if group else exc).__name__, flush=True)
    os._exit(0)  # the executor's thread still sleeps, as after asyncio.run
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child: POSIX")
@pytest.mark.parametrize("waits_for", ["task", "executor", "main-done"])
def test_a_ctrl_c_that_cancels_nothing_cuts_the_guests_shutdown_short(waits_for: str) -> None:
    """The guest's shutdown waits for a task's slow ``finally`` or the
    executor's thread, Trio running meanwhile: a Ctrl+C that finds no main to
    cancel ends the run at once with KeyboardInterrupt, as in ``asyncio.run``.
    ``task``, ``executor``: the first Ctrl+C cancels main, the second is that
    one. ``main-done``: main has returned, and the first is (it was taken for
    the one that cancels main: nothing happened until a second Ctrl+C or the
    clean-up's end)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_IN_SHUTDOWN_CHILD, waits_for],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        if waits_for != "main-done":
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)  # main is cancelled; the shutdown waits
        time.sleep(1.0)
        assert proc.poll() is None, "the shutdown did not wait (the test proves nothing)"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=LONG)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert out.split() == ["trio", "ran", "True", "KeyboardInterrupt"], (out, err)
    assert elapsed < 10.0, elapsed


@pytest.mark.skipif(sys.platform == "win32", reason="add_signal_handler: POSIX")
@pytest.mark.parametrize("remove", [True, False], ids=["removed", "left-behind"])
def test_a_guest_sigint_handler_gives_trio_its_ctrl_c_back(remove: bool) -> None:
    """Trio's KI handler and wakeup fd are back after the guest's handler goes."""

    async def aio_main() -> bool:
        loop = asyncio.get_running_loop()
        got = asyncio.Event()
        loop.add_signal_handler(signal.SIGINT, got.set)
        signal.raise_signal(signal.SIGINT)
        await asyncio.wait_for(got.wait(), LONG)
        if remove:
            loop.remove_signal_handler(signal.SIGINT)
        return True

    def wakeup_fd() -> int:
        fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(fd)
        return fd

    async def trio_main() -> None:
        handler, fd = signal.getsignal(signal.SIGINT), wakeup_fd()
        assert await run_asyncio(aio_main, loop_factory=LOOP)
        assert (signal.getsignal(signal.SIGINT), wakeup_fd()) == (handler, fd)
        signal.raise_signal(signal.SIGINT)  # Trio's own Ctrl+C, as before
        await trio.sleep(LONG)

    with pytest.raises(KeyboardInterrupt):
        trio.run(trio_main)


# ------------------------------------------------------------ Trio's conventions


def test_run_asyncio_is_a_checkpoint_even_when_main_ends_at_once() -> None:
    ran: list[str] = []

    async def quick() -> str:
        ran.append("main")
        return "quick"

    async def trio_main() -> None:
        with trio.testing.assert_checkpoints():
            assert await run_asyncio(quick, loop_factory=LOOP) == "quick"
        with trio.CancelScope() as scope:
            scope.cancel()
            await run_asyncio(quick, loop_factory=LOOP)
        assert scope.cancelled_caught  # cancelled at its start: main never ran

    trio.run(trio_main)
    assert ran == ["main"]


def test_asyncio_timers_keep_real_time_under_a_mock_clock() -> None:
    """A ``MockClock`` moves Trio's time, never asyncio's: its sleeps still end."""

    async def aio_main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(5):
            await asyncio.sleep(0.01)
        return loop.time() - t0

    for clock in (trio.testing.MockClock(), trio.testing.MockClock(autojump_threshold=0)):
        # A frozen clock parked the zero-thread wait's Trio deadline for ever;
        # an autojumping one fired it at once, again and again.
        elapsed = run(aio_main, loop_factory=LOOP, clock=clock)
        assert elapsed >= 0.05


def test_trio_host_primitives_start_one_queue_per_trio_run() -> None:
    def queue_tasks() -> int:
        def walk(task: trio.lowlevel.Task) -> int:
            mine = int(task.name == "asyncio_guest.trio host queue")
            return mine + sum(
                walk(child) for nursery in task.child_nurseries for child in nursery.child_tasks
            )

        return walk(trio.lowlevel.current_root_task())

    async def trio_main() -> None:
        first = trio_host_primitives()
        for _ in range(20):
            assert trio_host_primitives() == first
        await trio.sleep(0)
        assert queue_tasks() == 1

    trio.run(trio_main)
    trio.run(trio_main)  # and a fresh one in the next run


@needs_eager_tasks
def test_an_eager_tasks_first_step_started_from_trio_code_sees_asyncio() -> None:
    """Trio code creates a task on the guest loop, whose task factory is eager: the
    task's first step runs inside Trio's task, outside any tick, and must still see
    asyncio (sniffio, so anyio works there), with Trio's name back after it."""
    seen: list[Any] = []

    async def guest_job() -> None:
        seen.append(("first step", sniffio.current_async_library()))
        await anyio.sleep(0)  # anyio asks sniffio: Trio's answer would fail here
        seen.append(("after anyio.sleep", sniffio.current_async_library()))

    async def asyncio_main(started: trio.Event) -> None:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)  # type: ignore[arg-type]
        started.set()
        await asyncio.sleep(0.3)

    async def trio_main() -> None:
        started = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: run_asyncio(asyncio_main, started, loop_factory=LOOP))
            await started.wait()
            task = asyncio.get_running_loop().create_task(guest_job())
            seen.append(("trio after create_task", sniffio.current_async_library()))
            await trio.sleep(0.1)
            assert task.done() and task.exception() is None

    trio.run(trio_main)
    assert seen == [
        ("first step", "asyncio"),
        ("trio after create_task", "trio"),
        ("after anyio.sleep", "asyncio"),
    ]


_RUN_ASYNCIO_IN_A_SYSTEM_TASK = """
import asyncio, trio
import asyncio_guest.trio as agt

async def main():
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        print("asyncio main cancelled", flush=True)
        raise

async def trio_main():
    trio.lowlevel.spawn_system_task(agt.run_asyncio, main)
    await trio.sleep(0.1)
    print("trio main task returns", flush=True)

trio.run(trio_main)
print("trio.run returned", flush=True)
"""


def test_run_asyncio_in_a_system_task_ends_with_trio_run() -> None:
    """``run_asyncio`` in a Trio system task: when ``trio.run``'s main task
    returns, Trio cancels every system task at once, so the guest's main is
    cancelled and shuts down, and ``trio.run`` returns. The guest's own watches
    (system tasks too) were cancelled with them, before the wake-up that would
    have run that shutdown: ``trio.run`` waited for ever."""
    with reaped(start_child(_RUN_ASYNCIO_IN_A_SYSTEM_TASK)) as proc:
        out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out.decode()) == (
        0, "trio main task returns\nasyncio main cancelled\ntrio.run returned\n"
    ), err


def test_a_run_asyncio_leaves_no_reference_cycle_behind() -> None:
    """As after ``asyncio.run``: a run's objects (loop, engine, tasks) are freed
    by reference counting, not by a later collection, where a Ctrl+C landing in
    a finalizer's Python code was lost (Trio's KI raised inside it)."""

    async def aio_main() -> int:
        await asyncio.sleep(0.001)
        return 1

    async def trio_main() -> int:
        gc.collect()
        gc.disable()
        try:
            result = await run_asyncio(aio_main)
            return gc.collect() if result == 1 else -1
        finally:
            gc.enable()

    assert trio.run(trio_main) == 0
