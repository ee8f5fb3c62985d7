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
from .loops import needs_eager_tasks, resolved_factory, test_loop_factory


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


# ------------------------------------------------ eager tasks started by host code

async def _eager_worker_with_agen(record: list[str], keep: list[Any]) -> None:
    """A task whose first step (run eagerly inside create_task) first-iterates an
    async generator whose ``finally`` awaits: only the loop can finalize it."""

    async def agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
            await asyncio.sleep(10)
        finally:
            record.append("finally")
            await asyncio.sleep(0)
            record.append(f"after the await, in the loop: {asyncio.get_running_loop() is keep[0]}")

    gen = agen()
    keep.append(gen)
    record.append(f"first step in create_task: {asyncio.current_task() is not None}")
    await gen.__anext__()
    await asyncio.sleep(10)


@needs_eager_tasks
@pytest.mark.parametrize("end", ["dropped mid-run", "suspended at the run's end"])
def test_a_generator_an_eager_task_begins_from_host_code_is_the_loops(
    host: QueueHost, end: str
) -> None:
    """Host code (a widget callback) creates a task on a loop with an eager task
    factory: the task's first step runs right there, outside any tick, and what it
    iterates first belongs to the loop as on a plain loop, so the loop finalizes it
    (its ``finally`` may await), whether it is dropped or still suspended at the end."""
    record: list[str] = []
    keep: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        keep.append(loop)
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[arg-type]
        created = loop.create_future()
        host.in_host(
            lambda: created.set_result(loop.create_task(_eager_worker_with_agen(record, keep)))
        )
        task = await wait_long(created)
        assert record == ["first step in create_task: True"]  # it ran in create_task
        if end == "dropped mid-run":
            del keep[1]  # the generator: now only the task's frame holds it
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            del task
            gc.collect()
            for _ in range(10):
                await asyncio.sleep(0)
            assert record[1:] == ["finally", "after the await, in the loop: True"]

    assert host.guest_run(main) == outcome.Value(None)
    assert record[1:] == ["finally", "after the await, in the loop: True"]


@needs_eager_tasks
def test_a_main_on_an_eager_loop_gives_its_generators_to_the_loop() -> None:
    """``asyncio_guest.run`` with a loop whose task factory is eager: a generator
    that ``main`` begins in an eager task is finalized by the run's shutdown, as
    ``asyncio.run(main(), loop_factory=...)`` does."""

    def outcome_of(run: Callable[..., Any], new_loop: Callable[[], Any]) -> list[str]:
        def eager_loop() -> asyncio.AbstractEventLoop:
            loop = new_loop()
            loop.set_task_factory(asyncio.eager_task_factory)
            return loop  # type: ignore[no-any-return]

        record: list[str] = []
        keep: list[Any] = []

        async def main() -> None:
            keep.append(asyncio.get_running_loop())
            gen = _eager_worker_with_agen(record, keep)
            task = asyncio.get_running_loop().create_task(gen)
            await asyncio.sleep(0)
            task.cancel()  # leaves the generator suspended, held by keep
            await asyncio.sleep(0)

        run(main(), loop_factory=eager_loop)
        return record

    plain = outcome_of(asyncio.run, asyncio.new_event_loop)
    assert plain[1:] == ["finally", "after the await, in the loop: True"]
    assert outcome_of(asyncio_guest.run, resolved_factory()) == plain
