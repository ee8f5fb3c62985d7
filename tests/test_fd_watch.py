"""The zero-thread wait strategy (``_core/fd_watch.py``): the host watches the selector's fd.

Every test here forces the strategy (``ASYNCIO_GUEST_WAIT=fd``) on a loop whose
selector is one pollable fd (epoll, kqueue), whatever the session's choice.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import asyncio_guest
import asyncio_guest.testing
from asyncio_guest._core import fd_watch
from asyncio_guest._core.worker_wake import WorkerWake

from .hosts import LONG, QueueHost, StrictHost, wait_long
from .loops import HAS_POLLABLE_SELECTOR, WORKER_WAKE_KINDS, pollable_loop, until_handed_over

pytestmark = pytest.mark.skipif(
    not HAS_POLLABLE_SELECTOR,
    reason=f"no epoll or kqueue selector on {sys.platform}: the zero-thread wait needs one",
)


@pytest.fixture(autouse=True)
def _fd_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fd_watch.ENV, "fd")


def _backend_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("asyncio-guest backend")]


@pytest.fixture
def ref_host() -> Iterator[asyncio_guest.ReferenceHost]:
    host = asyncio_guest.ReferenceHost()
    try:
        yield host
    finally:
        host.close()
    assert not host._watches, "an fd is left watched"
    assert all(entry[2].cancelled or entry[0] <= time.monotonic() for entry in host._timers)


def test_no_backend_thread_and_a_worker_wakes_the_idle_guest(
    ref_host: asyncio_guest.ReferenceHost,
) -> None:
    seen: list[list[str]] = []

    async def main() -> str:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def worker() -> None:
            time.sleep(0.02)  # the guest is idle meanwhile: the host watches the fd
            loop.call_soon_threadsafe(fut.set_result, "woken")

        thread = threading.Thread(target=worker)
        thread.start()
        result = await wait_long(fut)
        await asyncio.to_thread(thread.join)
        await asyncio.sleep(0.01)  # a loop timer: the host's timer wakes it
        r, w = await asyncio.open_connection(*server)
        w.write(b"x")
        assert await r.readexactly(1) == b"x"
        w.close()
        await w.wait_closed()
        seen.append(_backend_threads())
        return str(result)

    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(await r.readexactly(1))
        await w.drain()
        w.close()

    async def outer() -> str:
        global server
        srv = await asyncio.start_server(echo, "127.0.0.1", 0)
        server = srv.sockets[0].getsockname()[:2]
        try:
            return await main()
        finally:
            srv.close()
            await srv.wait_closed()

    assert asyncio_guest.run(outer, host=ref_host, loop_factory=pollable_loop) == "woken"
    assert seen == [[]]


server: Any = None


class _FdWakeHost(asyncio_guest.ReferenceHost):
    """A reference host whose fd watch wakes workers' calls (``worker_wakes_by_fd``).

    It counts the posts worker threads make through its cross-thread
    primitive, and by default refuses them: the worker wake fd's path must
    not need it.
    """

    worker_wakes_by_fd = True

    def __init__(self, *, refuse_workers: bool = True) -> None:
        super().__init__()
        self.worker_posts = 0
        self._refuse_workers = refuse_workers
        self._host_ident = threading.get_ident()

    def run_sync_soon_threadsafe(self, fn: Any) -> None:
        if threading.get_ident() != self._host_ident:
            self.worker_posts += 1
            if self._refuse_workers:
                raise RuntimeError("the primitive was used from a worker")
        super().run_sync_soon_threadsafe(fn)


class _AfterWaitHost(_FdWakeHost):
    """``_FdWakeHost`` with ``after_each_wait``: the hooks run each time its
    ``select()`` returns, before the round runs what it found (as Trio's
    instruments' ``after_io_wait``). It counts the callbacks that ran inside
    a hook (``in_hook``) and the hooks' calls."""

    def __init__(self) -> None:
        super().__init__()
        self._hooks: list[Any] = []
        self.in_hook = False
        self.hook_calls = 0

    def after_each_wait(self, callback: Any) -> Any:
        self._hooks.append(callback)
        return lambda: callback in self._hooks and self._hooks.remove(callback)

    def _sleep(self, timeout: float | None) -> list[int]:
        ready = super()._sleep(timeout)
        for hook in list(self._hooks):
            self.hook_calls += 1
            self.in_hook = True
            try:
                hook()
            finally:
                self.in_hook = False
        return ready


def _loop_with_worker_wake(kind: str) -> asyncio.AbstractEventLoop:
    """A pollable loop whose worker wake fd is of ``kind`` (default: eventfd where there is one)."""
    loop: Any = pollable_loop()
    loop._guest_state().worker_wake = WorkerWake(kind)
    return loop  # type: ignore[no-any-return]


@pytest.mark.parametrize("hook", [False, True], ids=["watch", "after-wait-hook"])
@pytest.mark.parametrize("kind", WORKER_WAKE_KINDS)
def test_workers_wake_the_host_through_the_worker_wake_fd_in_order(kind: str, hook: bool) -> None:
    """Four workers' calls in floods (more than a pipe's 4 KiB read between
    two drains) and while the guest is idle: each runs, in each worker's order,
    with no tick posted through the host's cross-thread primitive. With the
    host's after-wait hook, the callbacks run from it while the watch is armed,
    and the watch, which alone drains the fd, loses no wake-up."""
    host = _AfterWaitHost() if hook else _FdWakeHost()
    per_thread, n_threads = 3000, 4
    seen: dict[int, list[int]] = {t: [] for t in range(n_threads)}
    from_hook = [0]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        remaining = [per_thread * n_threads]

        def record(t: int, i: int) -> None:
            assert threading.get_ident() == host._host_ident
            seen[t].append(i)
            from_hook[0] += getattr(host, "in_hook", False)
            remaining[0] -= 1
            if not remaining[0]:
                done.set_result(None)

        def worker(t: int) -> None:
            for i in range(per_thread):
                loop.call_soon_threadsafe(record, t, i)
                if i % 500 == 0:
                    time.sleep(0.002)  # let the guest go idle: the watch must wake it

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        try:
            await wait_long(done)
        finally:
            for th in threads:
                await asyncio.to_thread(th.join)

    try:
        asyncio_guest.run(
            main, host=host, loop_factory=lambda: _loop_with_worker_wake(kind)
        )
    finally:
        host.close()
    assert host.worker_posts == 0
    assert all(seen[t] == list(range(per_thread)) for t in range(n_threads))
    if isinstance(host, _AfterWaitHost):
        assert from_hook[0] > 0, "no callback ran from the after-wait hook"
        assert not host._hooks, "the run left its after-wait hook behind"


def test_an_idle_guests_worker_calls_run_from_the_after_wait_hook() -> None:
    """One call at a time to an idle guest: it runs from the host's after-wait
    hook (before the host runs the worker wake fd's watch), and the watch then
    drains the fd without a tick: no call runs twice, none is lost. (A call
    made while the host still finishes the round of the previous one is the
    watch's, found readable by that round: hence "most", not "all".)"""
    host = _AfterWaitHost()
    calls = 200
    where: list[bool] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ran = threading.Event()

        def record() -> None:
            where.append(host.in_hook)
            ran.set()

        def worker() -> None:
            for _ in range(calls):
                until_handed_over(loop, LONG)  # idle: the watch and the hook are armed
                time.sleep(0.001)  # and the host back in its select()
                ran.clear()
                loop.call_soon_threadsafe(record)
                assert ran.wait(LONG)

        await asyncio.to_thread(worker)

    try:
        asyncio_guest.run(main, host=host, loop_factory=pollable_loop)
    finally:
        host.close()
    assert len(where) == calls
    assert where.count(True) >= calls // 2, f"{where.count(False)} of {calls} ran outside the hook"
    assert not host._hooks


@pytest.mark.parametrize("kind", WORKER_WAKE_KINDS)
def test_a_write_the_drain_takes_after_the_tick_still_gets_its_callback_run(kind: str) -> None:
    """The watch drains the worker wake fd after its tick. A worker whose
    callback misses that tick's batch and whose write that drain takes (made
    here at the drain, from a thread, every time) must still have its callback
    run, with no further wake-up: the watch's tick looks again after its drain."""
    host = _FdWakeHost()
    rounds = 50
    lost: list[int] = []

    def loop_factory() -> asyncio.AbstractEventLoop:
        loop: Any = _loop_with_worker_wake(kind)
        wake = loop._guest_state().worker_wake
        real_drain = wake.drain

        def racing_drain() -> object:
            race = racing[0]
            if race is not None:
                racing[0] = None
                thread = threading.Thread(target=race)
                thread.start()
                thread.join()
            return real_drain()

        wake.drain = racing_drain
        return loop  # type: ignore[no-any-return]

    racing: list[Any] = [None]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ran = threading.Event()

        def worker() -> None:
            for i in range(rounds):
                until_handed_over(loop, LONG)
                ran.clear()
                # The racer's call lands between this call's tick and the drain.
                racing[0] = lambda: loop.call_soon_threadsafe(ran.set)
                loop.call_soon_threadsafe(lambda: None)
                if not ran.wait(2.0):
                    lost.append(i)
                    loop.call_soon_threadsafe(lambda: None)  # wake it up, and stop
                    ran.wait(LONG)
                    return

        await asyncio.to_thread(worker)

    try:
        asyncio_guest.run(main, host=host, loop_factory=loop_factory)
    finally:
        host.close()
    assert not lost, f"the raced callback waited for another wake-up in rounds {lost}"


def test_the_worker_wake_fd_is_the_hosts_own_watch_and_closes_with_the_loop() -> None:
    """Watched by the host beside the selector's fd, not in the selector (the
    host learns of a worker's call first hand: worker_wake.py); unwatched when
    the run ends, and closed with the loop."""
    host = _FdWakeHost()
    seen: list[tuple[bool, bool]] = []

    async def main() -> int:
        loop: Any = asyncio.get_running_loop()
        wake = loop._guest.worker_wake
        assert wake is not None
        got = loop.create_future()

        def worker() -> None:
            until_handed_over(loop, LONG)  # the guest idle: the host watches
            loop.call_soon_threadsafe(got.set_result, wake.fd)

        thread = threading.Thread(target=worker)
        thread.start()
        try:
            fd: int = await wait_long(got)
        finally:
            thread.join()
        in_selector = fd in {key.fd for key in loop._selector.get_map().values()}
        seen.append((fd in host._watches, in_selector))
        return fd

    try:
        fd = asyncio_guest.run(main, host=host, loop_factory=pollable_loop)
        assert seen == [(True, False)]
        assert not host._watches
    finally:
        host.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_a_process_out_of_fds_runs_with_the_hosts_post_instead_of_a_worker_wake(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The worker wake fd is one fd more than plain asyncio needs: where the
    process has none left (EMFILE) the run still starts, says so, and its
    workers' calls reach it through the host's cross-thread primitive."""
    resource = pytest.importorskip("resource")
    host = _FdWakeHost(refuse_workers=False)
    loop: Any = pollable_loop()
    calls = 20

    async def main() -> int:
        got: list[int] = []
        done = loop.create_future()

        def record(i: int) -> None:
            got.append(i)
            if len(got) == calls:
                done.set_result(None)

        def worker() -> None:
            for i in range(calls):
                loop.call_soon_threadsafe(record, i)
                time.sleep(0.001)

        thread = threading.Thread(target=worker)
        thread.start()
        try:
            await wait_long(done)
        finally:
            thread.join()
        assert got == list(range(calls))
        return len(got)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.dup(0)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no new fd from here
    try:
        with caplog.at_level("WARNING", logger="asyncio_guest"):
            assert asyncio_guest.run(main, host=host, loop_factory=lambda: loop) == calls
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        host.close()
    assert loop._guest.worker_wake is None
    assert host.worker_posts > 0
    assert any("could not make the worker wake fd" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", WORKER_WAKE_KINDS)
def test_a_closed_worker_wake_refuses_writes_even_where_its_fd_number_is_reused(
    kind: str,
) -> None:
    """A worker that read the engine's write before the loop closed and writes
    after: the write end is a file object, so the write fails (and
    call_soon_threadsafe drops it, as a closed self-pipe's send) instead of
    landing in whatever file took the number."""
    wake = WorkerWake(kind)
    write, fd = wake.write, wake.fd
    write()
    wake.drain()
    wake.close()
    wake.close()  # idempotent
    r, w = os.pipe()
    if fd not in (r, w):
        os.dup2(w, fd)  # a new file under the old number
    try:
        with pytest.raises(ValueError):
            write()
        os.set_blocking(r, False)
        with pytest.raises(BlockingIOError):
            os.read(r, 16)  # nothing reached the new pipe
    finally:
        for end in {r, w, fd}:
            os.close(end)


def test_a_workers_callback_runs_before_the_watchs_tick_polls() -> None:
    """On a host whose fd watch a worker wakes, the wake-up's tick runs the
    callback the worker queued with no poll of the selector before it (the
    callback does not wait for an epoll_wait: bench threadsafe), nor after it."""
    host = _FdWakeHost()
    calls = 20

    async def main() -> list[tuple[int, int]]:
        loop = asyncio.get_running_loop()
        io: Any = loop._guest.io  # type: ignore[attr-defined]
        polls = [0]
        poll_raw = io.poll_raw

        def counting_poll() -> Any:
            polls[0] += 1
            return poll_raw()

        io.poll_raw = counting_poll
        seen: list[tuple[int, int]] = []
        ran = threading.Event()

        def record(posted_at: int) -> None:
            seen.append((posted_at, polls[0]))
            ran.set()

        def worker() -> None:
            for _ in range(calls):
                # The guest idle (armed: the host watches the fd), however
                # slowly the machine lets the last tick finish.
                until_handed_over(loop, LONG)
                ran.clear()
                loop.call_soon_threadsafe(record, polls[0])
                ran.wait(LONG)

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.to_thread(thread.join)
        io.poll_raw = poll_raw
        return seen

    try:
        seen = asyncio_guest.run(main, host=host, loop_factory=pollable_loop)
    finally:
        host.close()
    assert host.worker_posts == 0
    assert len(seen) == calls
    # No poll between the worker's call and its callback (the guest was idle,
    # so no other tick ran in between to poll).
    assert all(at_call == polls for at_call, polls in seen), seen
    # Nor after it: the wake-up's tick leaves I/O to the armed watch (as a
    # tick a worker posts does), so a call costs no epoll_wait at all.
    assert seen[-1][1] - seen[0][1] < calls // 2, seen


def test_host_timer_on_time_while_tasks_spin(ref_host: asyncio_guest.ReferenceHost) -> None:
    lateness: list[float] = []

    async def main() -> None:
        due = time.monotonic() + 0.05
        ref_host.call_later(0.05, lambda: lateness.append(time.monotonic() - due))
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            await asyncio.sleep(0)

    asyncio_guest.run(main, host=ref_host, loop_factory=pollable_loop)
    assert lateness and lateness[0] < 0.03, lateness  # ~1 ms tick budget; busy machine


def test_loop_timers_fire_on_time_through_the_host_timer(
    ref_host: asyncio_guest.ReferenceHost,
) -> None:
    async def main() -> list[float]:
        out = []
        for delay in (0.01, 0.03):
            t0 = time.monotonic()
            await asyncio.sleep(delay)
            out.append(time.monotonic() - t0 - delay)
        return out

    late = asyncio_guest.run(main, host=ref_host, loop_factory=pollable_loop)
    assert all(-0.002 < x < 0.05 for x in late), late


def test_host_code_outside_ticks_wakes_and_rearms(ref_host: asyncio_guest.ReferenceHost) -> None:
    """Host-side call_soon, and a call_at earlier than the armed host timer."""
    events: list[str] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        soon = loop.create_future()
        at = loop.create_future()
        far = loop.call_later(LONG, lambda: None)  # the armed host timer is far away
        ref_host.call_later(0.01, lambda: loop.call_soon(soon.set_result, "soon"))
        events.append(await wait_long(soon))
        t0 = time.monotonic()
        ref_host.call_later(0.01, lambda: loop.call_later(0.02, at.set_result, "at"))
        events.append(await wait_long(at))
        far.cancel()
        return time.monotonic() - t0

    took = asyncio_guest.run(main, host=ref_host, loop_factory=pollable_loop)
    assert events == ["soon", "at"]
    assert took < 1.0, took


class _TimerCountingHost(asyncio_guest.ReferenceHost):
    """A reference host that records the delay of every host timer set on it."""

    def __init__(self) -> None:
        super().__init__()
        self.delays: list[float] = []

    def call_later(self, delay: float, fn: Any) -> Any:
        self.delays.append(delay)
        return super().call_later(delay, fn)


def _slow_echo(sock: socket.socket) -> None:
    """Echo each byte 2 ms later: past the linger, so every reply arms the host's wait."""
    with sock:
        while data := sock.recv(1):
            time.sleep(0.002)
            sock.sendall(data)


def test_the_host_timer_is_kept_while_the_loop_deadline_stays() -> None:
    """A far loop timer and many fd wake-ups: one host timer, not one per wake-up.
    When the deadline moves, the host timer moves with it, and fires on time."""
    host = _TimerCountingHost()
    trips = 20

    async def main() -> tuple[list[float], list[float], float]:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        peer = threading.Thread(target=_slow_echo, args=(theirs,))
        peer.start()
        try:
            reader, writer = await asyncio.open_connection(sock=ours)
            far = loop.call_later(LONG, lambda: None)
            await asyncio.sleep(0)
            host.delays.clear()
            for _ in range(trips):
                writer.write(b"x")
                assert await reader.readexactly(1) == b"x"
            with_far = list(host.delays)
            far.cancel()
            host.delays.clear()
            t0 = time.monotonic()
            for _ in range(3):
                writer.write(b"x")
                assert await reader.readexactly(1) == b"x"
                await asyncio.sleep(0.01)  # a new deadline each time
            took = time.monotonic() - t0
            moved = list(host.delays)
            writer.close()
            await writer.wait_closed()
        finally:
            await asyncio.to_thread(peer.join)
        return with_far, moved, took

    try:
        with_far, moved, took = asyncio_guest.run(main, host=host, loop_factory=pollable_loop)
    finally:
        host.close()
    # Each trip sleeps in the host's wait (the reply comes after the linger): the
    # far deadline's host timer is set at most once, wherever the first arming was.
    assert len(with_far) <= 1, with_far
    assert all(d > LONG / 2 for d in with_far), with_far
    # Each sleep(0.01) is a new, nearer deadline: a host timer of its own, on time.
    assert sum(1 for d in moved if d < 0.02) >= 3, moved
    assert took < 3 * 0.01 + 1.0, took


def test_strict_host_one_tick_in_flight(strict_host: StrictHost) -> None:
    """Worker posts, fd wake-ups and timers together never put two ticks in flight."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        count = 0
        done = loop.create_future()

        def bump() -> None:
            nonlocal count
            count += 1
            if count == 2000 and not done.done():
                done.set_result(None)

        def worker() -> None:
            for i in range(1000):
                loop.call_soon_threadsafe(bump)
                if i % 100 == 0:
                    time.sleep(0.001)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        while not done.done():
            await asyncio.sleep(0.0005)
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        assert not _backend_threads()
        return count

    fut = strict_host.start_guest(main, loop_factory=pollable_loop)
    assert fut.result(LONG).unwrap() == 2000
    assert not strict_host._watches and not strict_host.watching


def test_stop_and_restart_of_a_testing_loop() -> None:
    loop = asyncio_guest.testing.new_event_loop()
    try:
        host = None
        for i in range(5):

            async def step(i: int = i) -> int:
                await asyncio.sleep(0.001)
                fut = asyncio.get_running_loop().create_future()
                threading.Timer(0.005, lambda: loop.call_soon_threadsafe(fut.set_result, i)).start()
                return int(await fut)

            assert loop.run_until_complete(step()) == i
            assert not _backend_threads()
            hosted = loop._guest.self_host  # type: ignore[attr-defined]
            host = hosted.host
            assert not host._watches, "the run ended with its fd still watched"
            assert all(entry[2].cancelled for entry in host._timers)
        # stop() from a callback, then another run
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert loop.run_until_complete(asyncio.sleep(0.001, "again")) == "again"
    finally:
        loop.close()


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX signals only")
def test_ctrl_c_while_the_host_sleeps(ref_host: asyncio_guest.ReferenceHost) -> None:
    main_ident = threading.get_ident()

    async def main() -> None:
        threading.Timer(0.05, signal.pthread_kill, (main_ident, signal.SIGINT)).start()
        await asyncio.get_running_loop().create_future()  # idle: only the fd watch

    with pytest.raises(KeyboardInterrupt):
        asyncio_guest.run(main, host=ref_host, loop_factory=pollable_loop)
    time.sleep(0.06)  # the timer thread is done


def test_fd_without_a_watcher_is_a_clear_error(host: QueueHost) -> None:
    with pytest.raises(fd_watch.WaitChoiceError, match="no fd_watcher"):
        host.start(asyncio.sleep, 0, fd_watcher=None, loop_factory=pollable_loop)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_a_bad_choice_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, host: QueueHost) -> None:
    monkeypatch.setenv(fd_watch.ENV, "both")
    with pytest.raises(ValueError, match="ASYNCIO_GUEST_WAIT='both'"):
        host.start(asyncio.sleep, 0, loop_factory=pollable_loop)


def test_loops_without_one_fd_keep_the_thread(host: QueueHost) -> None:
    """poll/select selectors have no single fd: their runs wait in the backend thread."""
    seen: list[list[str]] = []

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()

        def worker() -> None:
            deadline = time.monotonic() + LONG
            while not _backend_threads() and time.monotonic() < deadline:
                time.sleep(0.001)  # until the guest has handed its wait over
            loop.call_soon_threadsafe(fut.set_result, 1)

        thread = threading.Thread(target=worker)
        thread.start()
        await fut
        seen.append(_backend_threads())
        await asyncio.to_thread(thread.join)

    host.guest_run(
        main, loop_factory=lambda: asyncio_guest.GuestSelectorEventLoop(selectors.SelectSelector())
    ).unwrap()
    assert len(seen[0]) == 1


_ABANDON_SCRIPT = """
import asyncio, sys
sys.path.insert(0, ROOT)
import asyncio_guest

host = asyncio_guest.ReferenceHost()

async def main():
    await asyncio.get_running_loop().create_future()  # idle for ever: the fd is watched

asyncio_guest.start_guest_run(
    main,
    run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
    done_callback=lambda out: print("RESULT", out, flush=True),
    fd_watcher=host,
    loop_factory=asyncio_guest.GuestSelectorEventLoop,
)
host.call_later(0.05, host.stop)  # the host loop ends; the run is never finished
host.run()
print("ABANDONED", flush=True)
"""


@pytest.mark.timeout(60)
def test_abandoned_idle_run_is_reported_at_exit() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = f"ROOT = {root!r}\n" + textwrap.dedent(_ABANDON_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=LONG
    )
    assert "ABANDONED" in proc.stdout and "RESULT" not in proc.stdout, (proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" in proc.stderr and "abandoned" in proc.stderr, proc.stderr


@pytest.fixture
def high_fd_pair() -> Iterator[tuple[int, socket.socket]]:
    """A socket pair whose reading end is fd 1500, beyond what select() takes."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1600:
        pytest.skip(f"RLIMIT_NOFILE's hard limit here is {hard}: no fd 1500")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1600), hard))
    r, w = socket.socketpair()
    try:
        high = os.dup2(r.fileno(), 1500)
        try:
            yield high, w
        finally:
            os.close(high)
    finally:
        r.close()
        w.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_watched_fd_beyond_select_wakes_the_reference_host(
    ref_host: asyncio_guest.ReferenceHost, high_fd_pair: tuple[int, socket.socket]
) -> None:
    """With an fd select() cannot take, the host sleeps in poll(): the fd and a
    worker's post still wake it."""
    high, peer = high_fd_pair
    seen: list[str] = []

    def on_readable() -> None:
        seen.append("fd")
        unwatch()
        threading.Timer(0.02, ref_host.run_sync_soon_threadsafe, (on_post,)).start()

    def on_post() -> None:
        seen.append("post")
        ref_host.stop()

    unwatch = ref_host.watch_readable(high, on_readable)
    assert ref_host._select_fds is None
    threading.Timer(0.02, peer.send, (b"x",)).start()
    guard = ref_host.call_later(LONG, ref_host.stop)  # a hang ends the test, failing it
    ref_host.run()
    guard.cancel()
    assert seen == ["fd", "post"]
