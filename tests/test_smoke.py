"""First end-to-end checks of the reference host path."""

from __future__ import annotations

import asyncio
import threading

import pytest

import asyncio_guest


def test_result_and_exception_reach_caller() -> None:
    async def ok() -> int:
        await asyncio.sleep(0.001)
        return 42

    async def bad() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    assert asyncio_guest.run(ok()) == 42
    with pytest.raises(ValueError, match="boom"):
        asyncio_guest.run(bad())


def test_no_thread_left_after_run() -> None:
    before = set(threading.enumerate())

    async def main() -> None:
        await asyncio.to_thread(lambda: None)

    asyncio_guest.run(main())
    assert set(threading.enumerate()) == before
