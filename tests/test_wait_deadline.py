"""A pending timer does not make every worker's call end the loop's wait.

The wait handed to the backend thread (or to the host's fd watch and timer) ends
at the loop's first timer. A worker's ``call_soon_threadsafe`` runs its tick
beside that wait, and the tick then asks whether the wait still fits
(``_guest_wait_is_stale``: is a timer earlier than the wait's deadline?). The
deadline must therefore be that timer's own time: worked back from the timeout,
it lay a clock read after the timer, the same timer looked earlier than the
wait, and each worker's call woke the backend thread for a round trip (or armed
the host's watch again), as long as any timer was pending, which in an
application is nearly always.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import asyncio_guest
from asyncio_guest._core import fd_watch, handover

from .hosts import LONG
from .loops import HAS_POLLABLE_SELECTOR, pollable_loop, test_loop_factory, until_handed_over

CALLS = 40


@pytest.mark.parametrize("wait", ["thread", "fd"])
def test_workers_calls_leave_a_timed_wait_alone(
    wait: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if wait == "fd" and not HAS_POLLABLE_SELECTOR:
        pytest.skip("the zero-thread wait needs an epoll or kqueue selector")
    monkeypatch.setenv(fd_watch.ENV, wait)
    ended: list[str] = []  # each time a tick ended the wait or handed a new one over
    host_wake = handover.Engine.host_wake
    arm = handover.Engine._arm

    def counting_host_wake(self: handover.Engine) -> None:
        ended.append("host_wake")
        host_wake(self)

    def counting_arm(self: handover.Engine, *args: Any) -> None:
        ended.append("arm")
        arm(self, *args)

    monkeypatch.setattr(handover.Engine, "host_wake", counting_host_wake)
    monkeypatch.setattr(handover.Engine, "_arm", counting_arm)

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        far = loop.call_later(LONG, lambda: None)
        ran = threading.Event()
        calls = [0]

        def callback() -> None:
            calls[0] += 1
            ran.set()

        def worker() -> None:
            for _ in range(CALLS):
                # Each call finds the wait handed over (however slow the machine).
                until_handed_over(loop, LONG)
                ran.clear()
                loop.call_soon_threadsafe(callback)
                ran.wait(LONG)

        await asyncio.sleep(0)
        before = len(ended)
        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.to_thread(thread.join)
        far.cancel()
        return calls[0], len(ended) - before

    host = asyncio_guest.ReferenceHost()
    try:
        calls, ends = asyncio_guest.run(
            main, host=host, loop_factory=pollable_loop if wait == "fd" else test_loop_factory()
        )
    finally:
        host.close()
    assert calls == CALLS
    # A few for the thread join's own wake-ups; one per call before the fix.
    assert ends <= 6, ended
