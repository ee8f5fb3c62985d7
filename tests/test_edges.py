"""Edge paths of the hand-over, each found by an independent check of the engine.

One test (at least) per case; each failed on the code before its fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import outcome
import pytest

import asyncio_guest
import asyncio_guest.testing

from . import loops
from .hosts import LONG, QueueHost, wait_long

# ------------------------------------------- done_callback raising (case 2)


class _DoneFailed(Exception):
    pass


@pytest.mark.parametrize("error", [_DoneFailed, KeyboardInterrupt])
def test_done_callback_exception_propagates_into_the_host(
    host: QueueHost, error: type[BaseException]
) -> None:
    """What done_callback raises leaves the host callback, as in Trio's guest mode."""
    delivered: list[outcome.Outcome[Any]] = []

    def done_callback(out: outcome.Outcome[Any]) -> None:
        delivered.append(out)
        raise error("from done_callback")

    async def main() -> str:
        await asyncio.sleep(0.001)
        return "result"

    asyncio_guest.start_guest_run(
        main,
        run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
        fd_watcher=host,
        run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
        done_callback=done_callback,
        loop_factory=loops.test_loop_factory(),
    )
    with pytest.raises(error, match="from done_callback"):
        host.run_until(lambda: False)
    assert len(delivered) == 1 and delivered[0].unwrap() == "result"
    host.drain()  # nothing left that calls done_callback again
    assert len(delivered) == 1


def test_done_callback_exception_propagates_from_reference_run() -> None:
    host = asyncio_guest.ReferenceHost()
    try:

        async def main() -> None:
            await asyncio.sleep(0)

        def done(out: outcome.Outcome[Any]) -> None:
            raise _DoneFailed("from done_callback")

        asyncio_guest.start_guest_run(
            main,
            run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
            fd_watcher=host,
            done_callback=done,
            loop_factory=loops.test_loop_factory(),
        )
        with pytest.raises(_DoneFailed):
            host.run()
    finally:
        host.close()


# ----------------------------------------------- sniffio with Trio (case 3)


@pytest.mark.usefixtures("thread_wait")  # Trio host: no fd_watcher here
def test_sniffio_and_anyio_see_asyncio_inside_a_trio_hosted_guest() -> None:
    import anyio  # test dependencies ('.[test]'): a missing one is a failure
    import sniffio
    import trio
    if loops.wine_version() is not None:
        pytest.skip("trio cannot run under Wine (its AFD ioctls are not implemented)")

    async def guest() -> tuple[str, str]:
        await anyio.sleep(0)  # "Task got bad yield" if anyio thinks this is Trio
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0.001)
        return sniffio.current_async_library(), "ok"

    async def trio_main() -> tuple[tuple[str, str], str]:
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[outcome.Outcome[Any]] = []

        def done_callback(out: outcome.Outcome[Any]) -> None:
            box.append(out)
            done.set()

        asyncio_guest.start_guest_run(
            guest,
            run_sync_soon_threadsafe=token.run_sync_soon,
            run_sync_soon_not_threadsafe=lambda fn: token.run_sync_soon(fn),
            done_callback=done_callback,
            host_uses_signal_set_wakeup_fd=True,
            loop_factory=loops.test_loop_factory(),
        )
        await done.wait()
        return box[0].unwrap(), sniffio.current_async_library()

    inside, outside = trio.run(trio_main)
    assert inside == ("asyncio", "ok")
    assert outside == "trio"  # the host's own value is put back after each tick


# ------------------------- host primitive failing in the backend (case 4)


@pytest.mark.usefixtures("thread_wait")  # the backend thread posts
def test_run_unreachable_from_the_backend_is_reported_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The stored exception must not keep the run's token alive until exit.

    The host runs on a thread of its own: an abandoned run's thread-local
    state (the running loop) cannot be undone from the backend thread, where
    the abandonment is found, and dies with that host thread here.
    """
    caplog.set_level("ERROR", logger="asyncio_guest")
    reported = threading.Event()
    loops_made: list[asyncio.AbstractEventLoop] = []

    def host_thread() -> None:
        host = QueueHost()

        def broken_from_backend(fn: Callable[[], object]) -> None:
            if threading.current_thread() is not host.thread:
                raise RuntimeError("host refuses posts from other threads (test)")
            host.run_sync_soon_threadsafe(fn)

        async def main() -> None:
            await loops.backend_wait()  # a wait: the backend must post the next tick

        task = asyncio_guest.start_guest_run(
            main,
            run_sync_soon_threadsafe=broken_from_backend,
            run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
            done_callback=lambda out: None,
            loop_factory=loops.test_loop_factory(),
        )
        loops_made.append(task.get_loop())
        del task
        deadline = time.monotonic() + LONG
        while not reported.is_set() and time.monotonic() < deadline:
            host.drain()
            time.sleep(0.01)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        original = warnings.showwarning

        def show(message: Any, *args: Any, **kwargs: Any) -> None:
            original(message, *args, **kwargs)
            if "abandoned" in str(message):
                reported.set()

        warnings.showwarning = show
        thread = threading.Thread(target=host_thread)
        thread.start()
        thread.join(LONG + 5)
    assert reported.is_set(), [str(w.message) for w in caught]
    assert any("can no longer be reached" in r.getMessage() for r in caplog.records)
    # What only the (gone) host thread could have undone: the test does it.
    (loop,) = loops_made
    loop._thread_id = None  # type: ignore[attr-defined]
    loop.close()


# ----------------------- stop() from a worker's callback (case 5)


@pytest.mark.parametrize(
    "new_loop",
    [asyncio.new_event_loop, asyncio_guest.testing.new_event_loop],
    ids=["plain", "guest"],
)
def test_callbacks_after_stop_wait_for_the_next_run_forever(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """``stop()`` in a callback a worker posted while the backend waits: as on a plain loop."""
    loop = new_loop()
    try:
        order: list[str] = []
        started = threading.Event()

        def stop_then_schedule() -> None:
            order.append("stop")
            loop.stop()
            loop.call_soon(order.append, "after stop")

        def worker() -> None:
            started.wait()
            time.sleep(0.05)  # the loop is blocked in its wait by now
            loop.call_soon_threadsafe(stop_then_schedule)

        thread = threading.Thread(target=worker)
        thread.start()
        loop.call_soon(started.set)
        loop.call_later(LONG, loop.stop)  # safety net only
        loop.run_forever()
        thread.join()
        assert order == ["stop"]
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert order == ["stop", "after stop"]
    finally:
        loop.close()


# ------------------------------------- one clock for deadlines (case 6)


def test_host_timer_on_a_loop_with_an_offset_clock_fires_on_time(host: QueueHost) -> None:
    """The backend's wait deadline is in the loop's time, as its timers are."""

    def offset_clock_loop() -> asyncio.AbstractEventLoop:
        loop = loops.resolved_factory()()
        offset = 1_000_000.0
        stock = loop.time
        loop.time = lambda: stock() + offset  # type: ignore[method-assign]
        return loop

    async def main() -> float:
        loop = asyncio.get_running_loop()
        fired = loop.create_future()
        sleeper = asyncio.ensure_future(asyncio.sleep(2))  # the backend waits ~2 s
        await asyncio.sleep(0.05)  # ... and is in that wait now
        t0 = time.monotonic()
        # A host event (not a tick) adds an earlier timer.
        host.in_host(lambda: loop.call_later(0.01, fired.set_result, None))
        await wait_long(fired)
        sleeper.cancel()
        return time.monotonic() - t0

    elapsed = host.guest_run(main, loop_factory=offset_clock_loop).unwrap()
    assert elapsed < 1.0, f"a 10 ms host-side timer fired after {elapsed:.2f} s"


# ------------------------------------------- a failing join (case 7)


@pytest.fixture
def failing_backend_join(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make joining an asyncio-guest backend thread raise once; record joins
    made while an event loop was running on the joining thread."""
    stock_join = threading.Thread.join
    seen: list[str] = []
    failed: list[bool] = []

    def join(self: threading.Thread, timeout: float | None = None) -> None:
        if self.name.startswith("asyncio-guest backend"):
            if asyncio._get_running_loop() is not None:
                seen.append("joined inside a running loop")
            if not failed:
                failed.append(True)
                raise RuntimeError("join failed (test)")
        stock_join(self, timeout)

    monkeypatch.setattr(threading.Thread, "join", join)
    yield seen
    monkeypatch.undo()


@pytest.mark.usefixtures("thread_wait")  # joins a backend
def test_a_failing_backend_join_does_not_keep_the_run_from_ending(
    host: QueueHost, failing_backend_join: list[str]
) -> None:
    async def main() -> str:
        await loops.backend_wait()  # the backend thread exists from here
        return "done"

    out = host.guest_run(main)  # the loop was closed all the same (guest_run checks)
    assert isinstance(out, outcome.Error), out
    assert isinstance(out.error, RuntimeError) and "join failed" in str(out.error)
    assert failing_backend_join == []


@pytest.mark.usefixtures("thread_wait")
def test_the_wake_up_a_failed_join_retries_with_still_works_after_the_run(
    failing_backend_join: list[str],
) -> None:
    """A failed join leaves the stopped thread to be joined later (the next
    run's start, ``close()``), when the loop has detached, and the stop's
    wake-up may have gone elsewhere: on a proactor loop the detach's last poll
    of the port can take the packet (under Wine the retry then hung for ever,
    the thread still in GetQueuedCompletionStatus). So the retry's wake-up
    must still reach the loop's I/O: here, a byte in a selector loop's
    self-pipe (it did nothing once the run had detached)."""
    loop = asyncio_guest.testing.new_event_loop()
    try:
        if not isinstance(loop, asyncio.SelectorEventLoop):
            pytest.skip("checks the self-pipe of a selector loop (the proactor's wake is a packet)")

        async def interrupted() -> None:
            await loops.backend_wait()
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(interrupted())
        backend = loop._guest.backend  # type: ignore[attr-defined]
        assert backend is not None and len(backend.retiring) == 1  # the join failed
        wake = backend.retiring[0][2]
        ssock = loop._ssock  # type: ignore[attr-defined]
        with contextlib.suppress(BlockingIOError):
            while ssock.recv(4096):
                pass
        wake()
        try:
            got = ssock.recv(4096)
        except BlockingIOError:
            got = b""
            loop._write_to_self()  # type: ignore[attr-defined]  # so close() can join it
        assert got, "the retry's wake-up wrote nothing: the thread would wait for ever"
    finally:
        loop.close()  # joins what the failed join left (tried again)
    assert failing_backend_join == []


def test_backend_threads_are_never_joined_inside_a_running_loop(
    failing_backend_join: list[str],
) -> None:
    """A join is a blocking call: never made while the loop is the running loop."""
    loop = asyncio_guest.testing.new_event_loop()
    try:
        loop.run_until_complete(loops.backend_wait())

        async def interrupted() -> None:
            await loops.backend_wait()
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(interrupted())
        assert loop.run_until_complete(loops.backend_wait(result="again")) == "again"
    finally:
        loop.close()  # joins what the failed join left (tried again)
    assert failing_backend_join == []
