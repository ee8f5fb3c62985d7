"""Lingering (``_core/linger.py``): a tick that ran callbacks waits briefly for the reply.

The policy is tested on a real socket pair; the engine's use of it on a real socket
pair with a peer process, on the strict host, under both wait strategies.
Where a test needs the reply to come "within the linger", the linger and the
tick budget are made seconds long, so that a busy machine cannot turn the
outcome around; the control run (lingering off) shows the test can fail.
"""

from __future__ import annotations

import asyncio
import select
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest

from asyncio_guest._core import fd_watch, handover, linger
from asyncio_guest._core.worker_wake import WorkerWake

from .hosts import LONG, StrictHost
from .loops import HAS_POLLABLE_SELECTOR, WORKER_WAKE_KINDS, pollable_loop

needs_pollable_selector = pytest.mark.skipif(
    not HAS_POLLABLE_SELECTOR,
    reason=f"no epoll or kqueue selector on {sys.platform}: lingering needs one fd to wait on",
)


Pair = tuple[socket.socket, socket.socket]


@pytest.fixture
def pipe() -> Iterator[Pair]:
    """A connected socket pair (select() takes only sockets on Windows)."""
    r, w = socket.socketpair()
    with r, w:
        yield r, w


# ------------------------------------------------------------ the policy


def test_a_readable_fd_is_a_hit(pipe: Pair) -> None:
    r, w = pipe
    policy = linger.Linger(r.fileno(), 5.0)
    policy.misses = 3
    w.send(b"x")
    assert policy.wait(10.0, None)
    assert (policy.misses, policy.skip) == (0, 0)


def test_misses_back_off_and_a_hit_makes_it_eager_again(pipe: Pair) -> None:
    r, w = pipe
    policy = linger.Linger(r.fileno(), 1e-4)
    skipped: list[int] = []
    for _ in range(9):
        assert not policy.wait(10.0, None)  # a miss: nothing is written
        skipped.append(policy.skip)
        while policy.skip:
            assert not policy.wait(10.0, None)  # skipped: returns at once
    assert skipped == [1, 3, 7, 15, 31, 63, 64, 64, 64]
    w.send(b"x")
    assert policy.wait(10.0, None)
    assert policy.misses == 0
    r.recv(1)
    assert not policy.wait(10.0, None)
    assert policy.skip == 1  # the backoff starts again from one


def test_a_wait_cut_short_by_the_budget_or_a_timer_is_no_miss(pipe: Pair) -> None:
    r, _ = pipe
    policy = linger.Linger(r.fileno(), 5.0)
    assert not policy.wait(0.001, None)
    assert not policy.wait(10.0, 0.001)
    assert (policy.misses, policy.skip) == (0, 0)


def test_no_time_left_means_no_wait(pipe: Pair) -> None:
    r, _ = pipe
    policy = linger.Linger(r.fileno(), 5.0)
    t0 = time.monotonic()
    assert not policy.wait(0.0, None)
    assert not policy.wait(10.0, -1.0)  # a timer is due: run it, do not wait
    assert time.monotonic() - t0 < 1.0
    assert (policy.misses, policy.skip) == (0, 0)


def _recording_select(
    monkeypatch: pytest.MonkeyPatch, polled: threading.Event | None = None
) -> list[float]:
    """The timeouts of the real select() calls a linger makes; ``polled`` is set
    once the first of them has returned."""
    timeouts: list[float] = []
    real_select = select.select

    def recorded(r: Any, w: Any, x: Any, timeout: float) -> Any:
        timeouts.append(timeout)
        result = real_select(r, w, x, timeout)
        if polled is not None:
            polled.set()
        return result

    monkeypatch.setattr(linger, "select", types.SimpleNamespace(select=recorded))
    return timeouts


def test_a_linger_polls_for_spin_then_sleeps_the_rest(
    pipe: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, _ = pipe
    monkeypatch.setattr(linger, "SPIN", 0.002)
    timeouts = _recording_select(monkeypatch)
    assert not linger.Linger(r.fileno(), 0.005).wait(10.0, None)
    polls, sleeps = timeouts[:-1], timeouts[-1:]
    assert polls and set(polls) == {0}, timeouts[:5]
    assert sleeps == [pytest.approx(0.003)]


def test_a_reply_within_the_spin_is_found_by_polling_without_sleeping(
    pipe: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer (a thread: select() lets the GIL go) writes into a 5 s spin, once
    the spin has polled at least once (a fixed delay is not enough on a loaded
    machine: the spin may begin after it)."""
    r, w = pipe
    monkeypatch.setattr(linger, "SPIN", 5.0)
    polled = threading.Event()
    timeouts = _recording_select(monkeypatch, polled)

    def reply() -> None:
        polled.wait(10.0)
        w.send(b"x")

    peer = threading.Thread(target=reply)
    peer.start()
    try:
        assert linger.Linger(r.fileno(), 5.0).wait(10.0, None)
    finally:
        peer.join()
    assert len(timeouts) > 1 and set(timeouts) == {0}, timeouts[-5:]


@pytest.mark.skipif(
    sys.platform == "win32", reason="no worker wake fd on Windows (no zero-thread wait)"
)
@pytest.mark.parametrize("kind", WORKER_WAKE_KINDS)
@pytest.mark.parametrize("spin", [5.0, 0.0], ids=["polling", "sleeping"])
def test_a_workers_wake_up_ends_a_linger_and_the_linger_drains_it(
    pipe: Pair, monkeypatch: pytest.MonkeyPatch, kind: str, spin: float
) -> None:
    """On a worker_wakes_by_fd host a worker's call_soon_threadsafe writes the
    loop's worker wake fd, not the selector's: a linger waits on both, ends at
    the write (not after its 5 s), and takes the wake-up (the host's watch of it
    then finds nothing to do). The selector's fd stays silent throughout."""
    r, _ = pipe
    monkeypatch.setattr(linger, "SPIN", spin)
    polled = threading.Event()
    _recording_select(monkeypatch, polled)
    wake = WorkerWake(kind)
    try:
        policy = linger.Linger(r.fileno(), 5.0)
        policy.watch_wake(wake)

        def worker() -> None:
            polled.wait(0.2)  # polling: once it polled; sleeping: into the sleep, most likely
            wake.write()

        thread = threading.Thread(target=worker)
        thread.start()
        t0 = time.monotonic()
        try:
            assert policy.wait(10.0, None)
        finally:
            thread.join()
        assert time.monotonic() - t0 < 2.5
        with pytest.raises(BlockingIOError):
            wake.drain()  # the linger drained it
        # Not watched any more (a run on another host): a wake-up leaves it alone.
        policy.watch_wake(None)
        wake.write()
        assert not policy.wait(0.05, None)
        wake.drain()  # still there
    finally:
        wake.close()


def test_lingering_off_or_no_single_fd_means_no_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert linger.for_fd(None) is None
    assert linger.for_fd(1024) is None  # beyond select()'s reach
    assert linger.for_fd(3) is not None
    monkeypatch.setattr(linger, "LINGER", 0.0)
    assert linger.for_fd(3) is None


# -------------------------------------------------------- in the engine


@pytest.fixture(params=["fd", "thread"])
def wait_strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(fd_watch.ENV, request.param)
    return str(request.param)


def _count_ticks(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """Every tick the engine runs, whoever started it (a posted tick, the fd watch)."""
    ticks: list[None] = []
    tick = handover.Engine._tick

    def counted(self: handover.Engine, tok: handover._Token, state: Any = None) -> None:
        ticks.append(None)
        tick(self, tok, state)

    monkeypatch.setattr(handover.Engine, "_tick", counted)
    return ticks


_ECHO_PEER = """
import os, sys, time
fd = int(sys.argv[1])
while data := os.read(fd, 4096):
    time.sleep(0.02)
    os.write(fd, data)
"""


async def _round_trips(n: int) -> None:
    """``n`` round trips with a peer process that echoes after 20 ms: far later than a
    tick's zero-timeout poll, well within the test's linger. (A process, not a
    thread: a thread's reply would be paced by the GIL, not by the wait.)"""
    ours, theirs = socket.socketpair()
    with theirs:
        peer = subprocess.Popen(
            [sys.executable, "-c", _ECHO_PEER, str(theirs.fileno())], pass_fds=[theirs.fileno()]
        )
    try:
        reader, writer = await asyncio.open_connection(sock=ours)
        for i in range(n):
            writer.write(b"%d\n" % i)
            assert await reader.readline() == b"%d\n" % i
        writer.close()
        await writer.wait_closed()
    finally:
        await asyncio.to_thread(peer.wait)


@needs_pollable_selector
@pytest.mark.parametrize("lingering", [True, False], ids=["linger", "control"])
def test_replies_are_taken_in_the_tick_that_asked(
    strict_host: StrictHost,
    wait_strategy: str,
    lingering: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Round trips with a peer that answers in 20 ms: lingering (1 s here), the tick
    that wrote a request also reads its reply, so a few host ticks carry the
    whole exchange; without it (the control) each reply costs a tick."""
    monkeypatch.setattr(linger, "LINGER", 1.0 if lingering else 0.0)
    ticks = _count_ticks(monkeypatch)
    n = 20
    fut = strict_host.start_guest(_round_trips, n, loop_factory=pollable_loop, tick_budget=5.0)
    fut.result(LONG).unwrap()
    if lingering:
        assert len(ticks) < n // 4, len(ticks)
    else:
        assert len(ticks) >= n, len(ticks)


@needs_pollable_selector
def test_a_linger_never_outlasts_the_next_timer(
    strict_host: StrictHost, wait_strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that has gone quiet: the tick lingers, but the loop's timer (a
    0.05 s timeout) still fires on time, not after the 1 s linger."""
    monkeypatch.setattr(linger, "LINGER", 1.0)

    async def main() -> float:
        ours, theirs = socket.socketpair()
        with theirs:
            reader, writer = await asyncio.open_connection(sock=ours)
            writer.write(b"ping\n")
            await asyncio.sleep(0)  # a tick that ran callbacks: it will linger
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(reader.readline(), 0.05)
            took = time.monotonic() - t0
            writer.close()
        return took

    fut = strict_host.start_guest(main, loop_factory=pollable_loop, tick_budget=10.0)
    took = fut.result(LONG).unwrap()
    assert took < 0.5, f"the 0.05 s timer fired after {took:.2f} s"
