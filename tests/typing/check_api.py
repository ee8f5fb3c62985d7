"""Static checks of the public API's types: ``mypy --strict tests/typing`` (make lint).

Never run, only type-checked. ``assert_type`` fails the check if a type is
not exactly the one written; a ``type: ignore`` on a call that must be
rejected fails it if mypy accepts that call (``warn_unused_ignores``, part of
``--strict``).
"""

from __future__ import annotations

import asyncio
import tkinter
from collections.abc import Callable

import outcome
from typing_extensions import assert_type

import asyncio_guest
import asyncio_guest.tk


async def answer(n: int) -> int:
    await asyncio.sleep(0)
    return n


def on_done(result: outcome.Outcome[int]) -> None:
    print(result.unwrap() + 1)


def on_done_str(result: outcome.Outcome[str]) -> None:
    print(result.unwrap().upper())


def post(fn: Callable[[], object]) -> None:
    fn()


def check() -> None:
    # An async function and its arguments: Task[T], done_callback gets Outcome[T].
    task = asyncio_guest.start_guest_run(
        answer, 41, run_sync_soon_threadsafe=post, done_callback=on_done
    )
    assert_type(task, asyncio.Task[int])

    # A coroutine object.
    task2 = asyncio_guest.start_guest_run(
        answer(1), run_sync_soon_threadsafe=post, done_callback=on_done
    )
    assert_type(task2, asyncio.Task[int])

    # The seed's name is the same function.
    assert_type(
        asyncio_guest.asyncio_guest_run(answer(1), run_sync_soon_threadsafe=post,
                                        done_callback=on_done),
        asyncio.Task[int],
    )

    # run() returns main's result type.
    assert_type(asyncio_guest.run(answer, 1), int)
    assert_type(asyncio_guest.run(answer(1)), int)

    # Tk's run: the root (by position or by name), then main's arguments.
    root = tkinter.Tk()
    assert_type(asyncio_guest.tk.run(answer, root, 1), int)
    assert_type(asyncio_guest.tk.run(answer(1), root), int)
    assert_type(asyncio_guest.tk.run(answer(1), root=root), int)
    assert_type(asyncio_guest.tk.run(answer, None, 1), int)
    asyncio_guest.tk.run(answer, 1)  # type: ignore[arg-type]
    assert_type(
        asyncio_guest.tk.start_guest_run(answer, root, 1, done_callback=on_done),
        asyncio.Task[int],
    )

    # A done_callback for another result type is rejected.
    asyncio_guest.start_guest_run(  # type: ignore[misc]
        answer(1), run_sync_soon_threadsafe=post, done_callback=on_done_str
    )
    # Something that is not awaitable is rejected.
    asyncio_guest.run(42)  # type: ignore[arg-type]
    # Arguments are checked against main's parameters, as trio.run's are.
    asyncio_guest.run(answer, "41")  # type: ignore[arg-type]
    asyncio_guest.run(answer)  # type: ignore[arg-type]
    asyncio_guest.start_guest_run(
        answer, 1, 2,  # type: ignore[arg-type]
        run_sync_soon_threadsafe=post, done_callback=on_done,
    )

    # A method decorated with async_callback is its object's AsyncCallback.
    class Panel:
        @asyncio_guest.async_callback(on_busy="ignore")
        async def refresh(self, n: int) -> str:
            return str(n)

    assert_type(Panel().refresh, asyncio_guest.AsyncCallback[str])
    assert_type(Panel().refresh.running, set[asyncio.Task[str]])

    # run_modal: the blocking call's arguments are checked, its result typed.
    async def modal() -> None:
        assert_type(await asyncio_guest.run_modal(pow, 2, 3), int)
        await asyncio_guest.run_modal(len, 1)  # type: ignore[arg-type]
