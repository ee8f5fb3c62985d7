"""Async generators: guest ones are finalized by the guest loop, host ones by the host's hooks."""

from __future__ import annotations

import asyncio
import functools
import gc
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

import outcome
import pytest

import asyncio_guest

from .hosts import QueueHost, wait_long
from .loops import test_loop_factory


class HostHooks:
    """Async-generator hooks the 'host' had installed before the guest run.

    They record generator names only: a reference would keep the generator alive.
    """

    def __init__(self) -> None:
        self.first: list[str] = []
        self.finalized: list[str] = []

    def firstiter(self, agen: Any) -> None:
        self.first.append(agen.__qualname__)

    def finalizer(self, agen: Any) -> None:
        self.finalized.append(agen.__qualname__)
        # Close it synchronously, as a host without an event loop would.
        closer = agen.aclose()
        try:
            closer.send(None)
        except StopIteration:
            pass
        else:
            closer.close()


@pytest.fixture
def host_hooks() -> Iterator[HostHooks]:
    old = sys.get_asyncgen_hooks()
    hooks = HostHooks()
    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=hooks.finalizer)
    try:
        yield hooks
    finally:
        sys.set_asyncgen_hooks(*old)


def test_unfinished_guest_agen_is_finalized_by_guest_loop(host: QueueHost) -> None:
    record: list[tuple[str, bool, bool, bool]] = []
    done_calls: list[outcome.Outcome[Any]] = []
    keep: list[AsyncGenerator[int, None]] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)  # needs the loop: only the loop's finalizer can do this
            record.append(
                (
                    "finally",
                    threading.current_thread() is host.thread,
                    asyncio.get_running_loop() is loops[0],
                    bool(done_calls),
                )
            )

    async def main() -> int:
        loops.append(asyncio.get_running_loop())
        gen = agen()
        keep.append(gen)  # alive until the end: shutdown_asyncgens must close it
        return await gen.__anext__()

    asyncio_guest.start_guest_run(
        main,
        run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
        fd_watcher=host,
        done_callback=done_calls.append,
        loop_factory=test_loop_factory(),
    )
    host.run_until(lambda: bool(done_calls))
    assert done_calls == [outcome.Value(1)]
    # ran on the host thread, in the guest loop, before done_callback
    assert record == [("finally", True, True, False)]


def test_guest_agen_garbage_collected_mid_run(host: QueueHost) -> None:
    record: list[str] = []

    async def agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            await asyncio.sleep(0)
            record.append("finalized")

    async def main() -> list[str]:
        gen = agen()
        await gen.__anext__()
        del gen
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
        return list(record)

    # Finalized while the run is still going, not only at shutdown.
    assert host.guest_run(main) == outcome.Value(["finalized"])


def test_host_agen_is_not_adopted_by_guest_loop(host: QueueHost, host_hooks: HostHooks) -> None:
    record: list[str] = []
    host_gens: list[Any] = []

    async def host_agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            record.append("host finally")

    async def guest_agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            record.append("guest finally")

    def host_callback() -> None:
        """Host code, outside the guest's ticks, iterates an async generator by hand."""
        gen = host_agen()
        host_gens.append(gen)
        with pytest.raises(StopIteration):
            gen.asend(None).send(None)

    async def main() -> int:
        fut = asyncio.get_running_loop().create_future()

        def run_host_code() -> None:
            host_callback()
            fut.set_result(None)

        host.in_host(run_host_code)
        await wait_long(fut)
        guest_gen = guest_agen()
        value = await guest_gen.__anext__()
        await guest_gen.aclose()
        return value

    assert host.guest_run(main) == outcome.Value(1)
    # The host generator went to the host's firstiter hook, the guest one did not.
    assert [name.rsplit(".", 1)[-1] for name in host_hooks.first] == ["host_agen"]
    assert record == ["guest finally"]  # the guest loop's shutdown left the host's alone
    assert sys.get_asyncgen_hooks().firstiter == host_hooks.firstiter
    gen = host_gens.pop()
    del gen
    gc.collect()
    assert record == ["guest finally", "host finally"]
    assert len(host_hooks.finalized) == 1  # finalized by the host's hook after the run


def test_host_agen_dropped_during_run_goes_to_host_finalizer(
    host: QueueHost, host_hooks: HostHooks
) -> None:
    record: list[str] = []

    async def agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            record.append("host gen finally")

    async def main() -> list[str]:
        fut = asyncio.get_running_loop().create_future()

        def host_code() -> None:
            gen = agen()
            with pytest.raises(StopIteration):
                gen.asend(None).send(None)
            del gen  # dropped while the guest runs: the host's finalizer closes it
            fut.set_result(None)

        host.in_host(host_code)
        await wait_long(fut)
        return list(record)

    assert host.guest_run(main) == outcome.Value(["host gen finally"])
    assert len(host_hooks.first) == 1
    assert len(host_hooks.finalized) == 1


def test_host_agen_without_host_hooks_is_closed_in_place(host: QueueHost) -> None:
    """No host hooks at all: a host generator is closed as Python would without hooks."""
    record: list[str] = []

    async def agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            record.append("closed")

    async def main() -> list[str]:
        fut = asyncio.get_running_loop().create_future()

        def host_code() -> None:
            gen = agen()
            with pytest.raises(StopIteration):
                gen.asend(None).send(None)
            del gen
            fut.set_result(None)

        host.in_host(host_code)
        await wait_long(fut)
        return list(record)

    assert sys.get_asyncgen_hooks() == (None, None)
    assert host.guest_run(main) == outcome.Value(["closed"])


def _drop_unfinished_host_agen_awaiting_in_finally(record: list[str]) -> None:
    """Host code iterates an async generator by hand, then drops it unfinished; its
    ``finally`` awaits, which a synchronous close cannot let it do."""

    async def agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            record.append("finally")
            await asyncio.sleep(0)
            record.append("after the await")  # never: the close cannot wait

    gen = agen()
    with pytest.raises(StopIteration):
        gen.asend(None).send(None)
    del gen
    gc.collect()


def test_host_agen_closed_in_place_fails_as_python_does(host: QueueHost) -> None:
    """No host hooks: the close in place of a host generator that awaits in its
    ``finally`` is reported as CPython reports it on a thread without hooks."""

    def unraisables(run: Callable[[], object]) -> tuple[list[str], list[str]]:
        record: list[str] = []
        seen: list[str] = []
        old_hook = sys.unraisablehook
        sys.unraisablehook = lambda args: seen.append(
            f"{type(args.exc_value).__name__}: {args.exc_value}"
        )
        try:
            run_it = functools.partial(_drop_unfinished_host_agen_awaiting_in_finally, record)
            run(run_it)
        finally:
            sys.unraisablehook = old_hook
        return record, seen

    assert sys.get_asyncgen_hooks() == (None, None)
    plain = unraisables(lambda drop: drop())

    def in_guest_run(drop: Callable[[], None]) -> None:
        async def main() -> None:
            fut = asyncio.get_running_loop().create_future()

            def host_code() -> None:
                drop()
                fut.set_result(None)

            host.in_host(host_code)
            await wait_long(fut)

        assert host.guest_run(main) == outcome.Value(None)

    guest = unraisables(in_guest_run)
    assert plain == (["finally"], ["RuntimeError: async generator ignored GeneratorExit"])
    assert guest == plain


def test_hooks_the_host_sets_during_the_run_are_left_in_place(host: QueueHost) -> None:
    """Host code that replaces the thread's hooks mid-run keeps them after the run;
    the run puts the host's earlier pair back only over its own."""
    replacement = HostHooks()

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()

        def host_code() -> None:
            sys.set_asyncgen_hooks(replacement.firstiter, replacement.finalizer)
            fut.set_result(None)

        host.in_host(host_code)
        await wait_long(fut)

    try:
        assert host.guest_run(main) == outcome.Value(None)
        assert sys.get_asyncgen_hooks() == (replacement.firstiter, replacement.finalizer)
    finally:
        sys.set_asyncgen_hooks(None, None)
