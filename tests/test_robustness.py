"""Failures anywhere end the run cleanly: internal errors, abandoned runs, stop(), KI/SystemExit."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, NoReturn

import outcome
import pytest

import asyncio_guest

from .conftest import settle_threads
from .hosts import LONG, QueueHost, lose_the_next_tick
from .loops import needs_eager_tasks, resolved_factory, test_loop_factory
from .os_resources import CAN_CHECK, DESCRIPTION, Resources

# --------------------------------------------------------------- internal errors


class _SelectorFailingInBackend(selectors.SelectSelector):
    """A selector whose blocking ``select()`` fails outside the host thread.

    A subclass of a stdlib selector goes through the generic strategy, where the
    backend thread calls ``selector.select(timeout)`` itself.
    """

    def __init__(self, host_thread: threading.Thread, fail_after: int = 0) -> None:
        super().__init__()
        self.host_thread = host_thread
        self.fail_after = fail_after
        self.backend_calls = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if threading.current_thread() is not self.host_thread:
            self.backend_calls += 1
            if self.backend_calls > self.fail_after:
                raise OSError("backend select failed (test)")
        return super().select(timeout)


def _cause_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 10:
        chain.append(cur)
        cur = cur.__cause__
    return chain


def _no_pending_task_destroyed(caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(3):
        gc.collect()
    messages = [r.getMessage() for r in caplog.records]
    bad = [m for m in messages if "destroyed but it is pending" in m]
    assert not bad, bad


@pytest.mark.parametrize("fail_after", [0, 3])
def test_backend_wait_raising_reaches_done_callback(
    host: QueueHost, fail_after: int, caplog: pytest.LogCaptureFixture
) -> None:
    threads = set(threading.enumerate())
    record: list[str] = []

    async def main() -> None:
        # Longer than the loop's clock resolution, or asyncio runs the timer at
        # once with no wait (15.6 ms on Windows Python 3.10: GetTickCount64).
        step = max(0.001, 2 * asyncio.get_running_loop()._clock_resolution)  # type: ignore[attr-defined]
        try:
            for _ in range(fail_after + 1):
                await asyncio.sleep(step)  # each sleep is one backend wait
            await asyncio.sleep(LONG)
        finally:
            record.append("main finally")

    out = host.guest_run(
        main,
        loop_factory=lambda: asyncio.SelectorEventLoop(
            _SelectorFailingInBackend(threading.current_thread(), fail_after)
        ),
    )
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, asyncio_guest.InternalError)
    chain = _cause_chain(out.error)
    assert any(isinstance(e, OSError) and "backend select failed" in str(e) for e in chain), chain
    assert record == ["main finally"]  # the loop was still shut down
    assert not settle_threads(threads)
    _no_pending_task_destroyed(caplog)


@pytest.mark.parametrize("fail_on_call", [2, 5])
def test_host_primitive_raising_reaches_done_callback(
    host: QueueHost, fail_on_call: int, caplog: pytest.LogCaptureFixture
) -> None:
    threads = set(threading.enumerate())
    calls = 0
    record: list[str] = []

    def flaky_not_threadsafe(fn: Callable[[], object]) -> None:
        nonlocal calls
        calls += 1
        if calls == fail_on_call:
            raise RuntimeError("host primitive failed (test)")
        host.run_sync_soon_not_threadsafe(fn)

    async def main() -> None:
        try:
            for _ in range(100):
                await asyncio.sleep(0)
        finally:
            record.append("main finally")

    out = host.guest_run(main, run_sync_soon_not_threadsafe=flaky_not_threadsafe, tick_budget=1e-9)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, asyncio_guest.InternalError)
    assert any(
        isinstance(e, RuntimeError) and "host primitive failed" in str(e)
        for e in _cause_chain(out.error)
    )
    assert calls == fail_on_call  # nothing posted after the failure
    assert record == ["main finally"]
    assert not settle_threads(threads)
    _no_pending_task_destroyed(caplog)


@pytest.mark.usefixtures("thread_wait")  # a host that cannot watch fds
def test_host_primitive_raising_on_first_call_raises_from_start(host: QueueHost) -> None:
    threads = set(threading.enumerate())

    def broken(fn: Callable[[], object]) -> None:
        raise RuntimeError("host refuses (test)")

    async def main() -> None:
        pass

    done: list[object] = []
    with pytest.raises(RuntimeError, match="host refuses"):
        asyncio_guest.start_guest_run(
            main,
            run_sync_soon_threadsafe=broken,
            run_sync_soon_not_threadsafe=broken,
            done_callback=done.append,
            loop_factory=test_loop_factory(),
        )
    assert not done
    assert not settle_threads(threads)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


# --------------------------------------------------------------- abandonment


def _abandon_a_run() -> None:
    """Start a busy run, let the host crash and drop its pending callbacks (a tick among them).

    The warning comes when the run's token is garbage-collected, so everything
    that could keep it alive (frames, tracebacks) must be garbage by then: the
    run lives and dies inside this function.
    """
    host = QueueHost()

    async def main() -> NoReturn:
        host.in_host(lambda: 1 / 0)
        while True:
            await asyncio.sleep(0)

    try:
        with pytest.raises(ZeroDivisionError):
            host.guest_run(main)
    finally:
        host.queue = queue.SimpleQueue()  # the crashed host forgets what was queued


def test_a_host_that_drops_the_first_tick_at_once_is_told_so() -> None:
    """A host primitive that drops what it is handed, inside the call: the run
    is abandoned before ``start_guest_run`` returns. The warning says so, and
    ``start_guest_run`` raises an error that says what happened (it raised
    "Event loop is closed" from making the main task)."""
    outcomes: list[Any] = []
    threads = set(threading.enumerate())

    async def main() -> None:
        await asyncio.sleep(0)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="dropped the first callback"):
            asyncio_guest.start_guest_run(
                main, run_sync_soon_threadsafe=lambda fn: None, done_callback=outcomes.append
            )
        gc.collect()
    assert any("abandoned" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert outcomes == []
    assert not settle_threads(threads)


class _HostDroppingOneTick(asyncio_guest.ReferenceHost):
    """A reference host that drops the next callback it is handed once told to."""

    drop_next = False

    def _maybe_drop(self, fn: Callable[[], object], post: Callable[[Any], None]) -> None:
        if self.drop_next:
            self.drop_next = False
            return
        post(fn)

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        self._maybe_drop(fn, super().run_sync_soon_threadsafe)

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        self._maybe_drop(fn, super().run_sync_soon_not_threadsafe)


@pytest.mark.parametrize("wait", ["fd", "thread"])
@pytest.mark.timeout(60)
def test_a_one_call_entry_whose_run_is_abandoned_raises_instead_of_waiting_for_ever(
    wait: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``asyncio_guest.run`` runs a host loop of its own until the run is
    delivered. A run abandoned under it (a tick dropped: by a host bug, or a
    hand-over race of ours, as the switches sweep found twice) used to leave
    that loop waiting for ever, the run torn down half-way (its loop could not
    be closed while it counted as running). Now the run is shut down on the
    host thread and ``run`` raises ``InternalError``, with no thread left."""
    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", wait)
    threads = set(threading.enumerate())
    host = _HostDroppingOneTick()
    cleaned_up: list[bool] = []

    def drop_next() -> None:
        host.drop_next = True

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(asyncio_guest.InternalError, match="abandoned"):
                asyncio_guest.run(lose_the_next_tick, drop_next, cleaned_up, host=host)
    finally:
        host.close()
    assert any("abandoned" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert cleaned_up == [True]  # main was cancelled and ran its clean-up
    assert not settle_threads(threads)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_abandoned_run_warns_and_releases_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    threads = set(threading.enumerate())
    with pytest.warns(RuntimeWarning, match="abandoned"):
        _abandon_a_run()
        for _ in range(4):
            gc.collect()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    assert not settle_threads(threads)


_ABANDON_SCRIPT = """
import asyncio, queue, socket, sys, threading
import asyncio_guest

sys.path.insert(0, ROOT)
from tests.loops import test_loop_factory

q = queue.SimpleQueue()
state = {"stop": False}
keep = []

async def main():
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    keep.extend((a, b))
    a.setblocking(False)
    q.put(lambda: state.update(stop=True))
    if MODE == "waiting":
        await loop.sock_recv(a, 1)  # no timeout: the backend blocks for ever
    else:
        while True:
            await asyncio.sleep(0)

asyncio_guest.start_guest_run(
    main,
    run_sync_soon_threadsafe=q.put,
    done_callback=lambda out: print("RESULT", out, flush=True),
    loop_factory=test_loop_factory(),  # the test loop: the child has ASYNCIO_GUEST_TEST_LOOP
)
while not state["stop"]:
    q.get()()
print("ABANDONED", flush=True)
"""


@pytest.mark.usefixtures("thread_wait")  # the child's host cannot watch fds
@pytest.mark.parametrize("mode", ["waiting", "busy"])
@pytest.mark.timeout(60)
def test_abandoned_run_does_not_hang_interpreter_exit(mode: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = f"MODE = {mode!r}\nROOT = {root!r}\n" + textwrap.dedent(_ABANDON_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=LONG,
    )
    assert "ABANDONED" in proc.stdout, (proc.stdout, proc.stderr)
    assert "RESULT" not in proc.stdout
    assert proc.returncode == 0, proc.stderr
    # Not silent either: the abandoned run is reported.
    assert "RuntimeWarning" in proc.stderr and "abandoned" in proc.stderr, proc.stderr


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt, LookupError])
@pytest.mark.parametrize("waiting_on", ["an event", "a timer"])
def test_a_host_callback_raising_ends_the_run_through_its_shutdown(
    exc_type: type[BaseException], waiting_on: str
) -> None:
    """``sys.exit()`` (or any exception) in a host callback: ``run`` shuts the guest
    down at once, synchronously, with ``main``'s clean-up awaiting as it likes,
    then raises that exception. The zero-thread wait's watch held the run's
    last references: removing it reported the run abandoned and tore it down
    under that shutdown (``main``'s ``finally`` cut short, "Task was destroyed
    but it is pending")."""
    from asyncio_guest.reference import ReferenceHost, run

    host = ReferenceHost()
    record: list[str] = []
    raised = exc_type(3)

    def host_callback() -> None:
        raise raised

    async def main() -> None:
        host.call_later(0.02, host_callback)
        try:
            if waiting_on == "an event":
                await asyncio.Event().wait()  # no asyncio timer: no host timer either
            else:
                await asyncio.sleep(LONG)
        finally:
            await asyncio.sleep(0.01)
            record.append("clean-up done")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(exc_type) as info:
            run(main, host=host, loop_factory=test_loop_factory())
    host.close()
    assert info.value is raised
    assert record == ["clean-up done"]
    assert not caught, [str(w.message) for w in caught]


_DAEMON_SCRIPT = """
import asyncio, sys, threading
import asyncio_guest

started = threading.Event()

async def main():
    started.set()
    await asyncio.sleep(60)

run = asyncio.run if MODE == "plain" else asyncio_guest.run
threading.Thread(target=run, args=(main(),), daemon=True).start()
assert started.wait(LONG)
print("EXITING", flush=True)
"""


@pytest.mark.parametrize("mode", ["plain", "guest"])
@pytest.mark.timeout(60)
def test_a_run_on_a_daemon_thread_still_running_at_exit_ends_without_a_word(mode: str) -> None:
    """The exit stops a daemon thread where it stands, and with it a run whose
    host loop is still going, as it stops an ``asyncio.run`` there: no warning
    of an abandoned run (the host loop did not give up on it)."""
    script = f"MODE = {mode!r}\nLONG = {LONG!r}\n" + textwrap.dedent(_DAEMON_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=LONG
    )
    assert proc.stdout == "EXITING\n", proc.stderr
    assert proc.returncode == 0
    assert proc.stderr == ""


_DAEMON_SLOW_EXIT_SCRIPT = """
import asyncio, atexit, sys, threading, time
import asyncio_guest

atexit.register(time.sleep, 1.0)  # a slow exit: after the handlers registered later

started = threading.Event()

async def main():
    if FIRST_WAIT == "before":
        # With the backend thread (wait "thread"), it starts here.
        await asyncio.sleep(0.05)
    started.set()
    time.sleep(0.3)  # the run's thread is busy while the main thread exits
    await asyncio.sleep(60)  # "during": the backend thread starts in the exit

run = asyncio.run if MODE == "plain" else asyncio_guest.run
threading.Thread(target=run, args=(main(),), daemon=True).start()
assert started.wait(LONG)
print("EXITING", flush=True)
"""


@pytest.mark.parametrize("first_wait", ["before", "during"])
@pytest.mark.parametrize("wait", ["fd", "thread"])
@pytest.mark.parametrize("mode", ["plain", "guest"])
@pytest.mark.timeout(60)
def test_a_run_on_a_daemon_thread_keeps_its_wake_pipe_through_a_slow_exit(
    mode: str, wait: str, first_wait: str
) -> None:
    """The same run, its thread still busy when the main thread exits, and the
    exit slow (a handler of the program's own): the run's thread goes on
    meanwhile and waits again. The exit must not close the host loop's wake-up
    pipe under it (``weakref.finalize`` runs at exit by default): its select()
    raised EBADF, "Exception in thread" (CI, once, on a loaded machine).

    "during": the run's first wait comes only while the exit runs its
    handlers, and 3.12 refuses to start a thread then ("can't create new
    thread at interpreter shutdown"): with the backend thread the run ended
    with InternalError and a traceback; it must stall without a word, as the
    plain run does."""
    script = (
        f"MODE = {mode!r}\nLONG = {LONG!r}\nFIRST_WAIT = {first_wait!r}\n"
        + textwrap.dedent(_DAEMON_SLOW_EXIT_SCRIPT)
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=LONG,
        env=dict(os.environ, ASYNCIO_GUEST_WAIT=wait),
    )
    assert proc.stdout == "EXITING\n", proc.stderr
    assert proc.returncode == 0
    assert proc.stderr == "", proc.stderr


# --------------------------------------------------------- stop(), KI, SystemExit


def test_loop_stop_inside_run_is_runtime_error(host: QueueHost) -> None:
    record: list[str] = []

    async def main() -> None:
        asyncio.get_running_loop().stop()
        try:
            await asyncio.sleep(LONG)
        finally:
            record.append("main finally")

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, RuntimeError)
    assert "stopped before" in str(out.error)
    assert record == ["main finally"]


def test_loop_stop_from_host_callback_is_runtime_error(host: QueueHost) -> None:
    """``loop.stop()`` from host code while the guest waits: the wait ends at
    once (stop wakes it) and the run ends with the error that says why. (With
    a safety timeout on main's sleep, a stop that woke nothing passed too,
    30 s later, when the timeout ended the wait.)"""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        host.in_host(loop.stop)  # runs while the backend waits
        await asyncio.sleep(LONG * 2)

    began = time.monotonic()
    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, RuntimeError)
    assert "stopped before" in str(out.error)
    assert time.monotonic() - began < LONG / 3, "stop() from host code woke nothing"


@pytest.mark.parametrize("wait", ["fd", "thread"])
@pytest.mark.timeout(60)
def test_a_host_loop_the_program_stops_early_ends_the_run_as_asyncio_run_does(
    wait: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``asyncio_guest.run(main, host=host)`` with the program's own host,
    whose loop the program stops (``host.stop()``) while ``main`` still waits:
    ``run`` raises RuntimeError, as ``asyncio.run`` does when its loop is
    stopped before ``main`` is done, and, as there, the guest is shut down
    first: ``main`` is cancelled and runs its ``finally``, the loop is closed,
    no thread is left and nothing is reported abandoned. Before, ``main``'s
    clean-up never ran, and the still-running loop was reported abandoned at
    interpreter exit (a RuntimeWarning)."""
    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", wait)
    threads = set(threading.enumerate())
    host = asyncio_guest.ReferenceHost()
    record: list[str] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        host.call_later(0.05, host.stop)  # the program's own host code
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            record.append("cancelled")
            await asyncio.sleep(0.01)  # clean-up that needs the loop
            record.append("cleaned up")
            raise

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(RuntimeError, match="stopped before the guest run finished"):
                asyncio_guest.run(main, host=host)
            gc.collect()
    finally:
        host.close()
    assert record == ["cancelled", "cleaned up"]
    assert loops[0].is_closed()
    assert not [str(w.message) for w in caught]
    assert not settle_threads(threads)


def test_loop_stop_after_main_done_keeps_result(host: QueueHost) -> None:
    async def main() -> str:
        asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)
        return "value"

    assert host.guest_run(main) == outcome.Value("value")


def _raise(exc: BaseException) -> NoReturn:
    raise exc


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_guest_callback_ends_run(
    host: QueueHost, exc_type: type[BaseException]
) -> None:
    record: list[str] = []
    raised = exc_type("from a callback")

    async def main() -> None:
        asyncio.get_running_loop().call_soon(_raise, raised)
        try:
            await asyncio.sleep(LONG)
        finally:
            await asyncio.sleep(0)  # the loop still runs: shutdown is the normal one
            record.append("main finally")

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    assert out.error is raised
    assert record == ["main finally"]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_guest_task_ends_run(
    host: QueueHost, exc_type: type[BaseException]
) -> None:
    record: list[str] = []
    raised = exc_type("from a task")

    async def bad_task() -> None:
        await asyncio.sleep(0)
        raise raised

    async def other() -> None:
        try:
            await asyncio.sleep(LONG)
        finally:
            record.append("other finally")

    tasks: list[asyncio.Task[None]] = []

    async def main() -> None:
        tasks.append(asyncio.create_task(other()))
        tasks.append(asyncio.create_task(bad_task()))
        try:
            await asyncio.sleep(LONG)
        finally:
            record.append("main finally")

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    assert out.error is raised
    assert sorted(record) == ["main finally", "other finally"]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_an_escaping_exception_cancels_every_task_before_its_next_step(
    host: QueueHost, exc_type: type[BaseException]
) -> None:
    """Once ``sys.exit()`` or a ``KeyboardInterrupt`` leaves a task, a task whose
    first step is queued never starts, and one whose wake-up is queued resumes
    with ``CancelledError``, as under ``asyncio.run`` (which cancels every task
    before the loop runs again); a callback queued before still runs."""

    def record_of(run: Callable[[Callable[[], Any]], object]) -> list[str]:
        record: list[str] = []

        async def fresh() -> None:
            record.append("a task created before the exit ran")
            await asyncio.sleep(LONG)

        async def woken(event: asyncio.Event) -> None:
            try:
                await event.wait()
            except asyncio.CancelledError:
                record.append("the woken task was cancelled")
                raise
            record.append("the woken task resumed as if nothing happened")

        async def main() -> None:
            event = asyncio.Event()
            tasks = [asyncio.create_task(woken(event))]
            await asyncio.sleep(0)
            event.set()  # the woken task's wake-up is queued
            asyncio.get_running_loop().call_soon(record.append, "a queued callback ran")
            tasks.append(asyncio.create_task(fresh()))
            raise exc_type(2)

        try:
            run(main)
        except exc_type:
            record.append("raised")
        return record

    plain = record_of(lambda main: asyncio.run(main()))
    assert plain == ["the woken task was cancelled", "a queued callback ran", "raised"]
    assert record_of(lambda main: host.guest_run(main).unwrap()) == plain


@needs_eager_tasks
@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_a_main_that_exits_before_its_first_await_on_an_eager_loop(
    exc_type: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    """``main`` is not started inside the set-up on a loop whose task factory is
    eager (``asyncio.run`` makes its task before the loop runs): its ``sys.exit()``
    before any ``await`` ends the run through the shutdown, which cancels the
    task ``main`` started, and leaves no "exception was never retrieved" behind."""

    def record_of(run: Callable[..., object], new_loop: Callable[[], Any]) -> list[str]:
        record: list[str] = []

        def eager_loop() -> asyncio.AbstractEventLoop:
            loop = new_loop()
            loop.set_task_factory(asyncio.eager_task_factory)
            return loop  # type: ignore[no-any-return]

        async def worker() -> None:
            try:
                await asyncio.sleep(LONG)
            finally:
                record.append("worker finally")

        async def main() -> None:
            task = asyncio.create_task(worker())
            raise exc_type(task.get_name())

        try:
            run(main(), loop_factory=eager_loop)
        except exc_type:
            record.append("raised")
        gc.collect()  # a task whose exception nobody read says so when collected
        return record

    plain = record_of(asyncio.run, asyncio.new_event_loop)
    assert plain == ["worker finally", "raised"]
    caplog.clear()
    assert record_of(asyncio_guest.run, resolved_factory()) == plain
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_keyboard_interrupt_in_main_task_itself(host: QueueHost) -> None:
    async def main() -> NoReturn:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, KeyboardInterrupt)


_INTERRUPT_SCRIPT = """
import asyncio, socket, sys, threading, time
sys.path.insert(0, ROOT)
from tests.loops import new_test_loop

loop = new_test_loop()
a, b = socket.socketpair()
a.setblocking(False)


def backend_state():
    engine = loop._guest.engine
    return None if engine is None else engine._ch.state.name


def wait_for_state(name):
    deadline = time.monotonic() + 10
    while backend_state() != name:
        assert time.monotonic() < deadline, (name, backend_state())
        time.sleep(0.001)


def interrupt():
    # A ready-only tick: the backend waits for the read. Make the read
    # complete, let the backend take that completion, then Ctrl+C here.
    b.send(b"x")
    wait_for_state("RETURNED")
    raise KeyboardInterrupt


def worker():
    wait_for_state("WAITING")
    loop.call_soon_threadsafe(interrupt)


read = None


async def main():
    global read
    read = asyncio.ensure_future(loop.sock_recv(a, 1))
    thread = threading.Thread(target=worker)
    thread.start()
    try:
        await read
    finally:
        thread.join()


try:
    loop.run_until_complete(main())
except KeyboardInterrupt:
    print("interrupted", type(loop).__name__, flush=True)
# As with a plain loop, the run can go on: the completed read is not lost.
print("read", loop.run_until_complete(asyncio.wait_for(read, 10)), flush=True)
loop.close()
a.close()
b.close()
print("closed", flush=True)
"""


@pytest.mark.usefixtures("thread_wait")  # the backend holds a completion
@pytest.mark.timeout(60)
def test_keyboard_interrupt_out_of_run_until_complete_loses_no_io() -> None:
    """Ctrl+C out of ``run_until_complete`` while the backend holds an I/O completion.

    With a plain loop the completion is already processed when a callback
    raises. The guest's backend may hold it (dequeued, not yet decoded): it
    must not be dropped, or the read never completes, and a proactor loop's
    ``close()`` waits for ever for a packet the port will not deliver again.
    In a child process, so that a hang is a failure, not a stuck suite.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = f"ROOT = {root!r}\n" + textwrap.dedent(_INTERRUPT_SCRIPT)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=LONG
        )
    except subprocess.TimeoutExpired as exc:
        hung: list[object] = [exc.stdout]
    else:
        hung = []
    if hung:
        pytest.fail(f"the child hung (killed after {LONG} s); its output: {hung[0]!r}")
    lines = proc.stdout.splitlines()
    assert lines[1:] == ["read b'x'", "closed"], (proc.stdout, proc.stderr)
    assert lines[0].startswith("interrupted"), (proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stderr


def test_exception_in_guest_callback_goes_to_exception_handler(host: QueueHost) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        loop.set_exception_handler(lambda lp, ctx: seen.append(repr(ctx.get("exception"))))
        loop.call_soon(_raise, ValueError("ordinary"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return seen

    out = host.guest_run(main)
    assert out == outcome.Value(["ValueError('ordinary')"])


def test_done_callback_sees_closed_loop_and_no_running_loop(host: QueueHost) -> None:
    loops: list[asyncio.AbstractEventLoop] = []
    seen: list[tuple[bool, bool]] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())

    def done(out: outcome.Outcome[Any]) -> None:
        try:
            asyncio.get_running_loop()
            running = True
        except RuntimeError:
            running = False
        seen.append((running, loops[0].is_closed()))

    asyncio_guest.start_guest_run(
        main,
        run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
        fd_watcher=host,
        done_callback=done,
        loop_factory=test_loop_factory(),
    )
    host.run_until(lambda: bool(seen))
    assert seen == [(False, True)]


# ------------------------------------------------------------------- leaks


@pytest.mark.skipif(not CAN_CHECK, reason=f"no leak check here: {DESCRIPTION}")
def test_no_thread_or_fd_leaked(host: QueueHost) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    async def main() -> bytes:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"leak?")
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
        await asyncio.to_thread(lambda: None)
        await asyncio.get_running_loop().run_in_executor(None, lambda: None)
        return data

    for _ in range(2):  # warm-up: lazily created module-level objects
        host.guest_run(main).unwrap()
    gc.collect()
    threads = set(threading.enumerate())
    resources = Resources()
    for _ in range(3):
        assert host.guest_run(main) == outcome.Value(b"leak?")
    assert not settle_threads(threads)
    gc.collect()
    leaked = Resources().leaked_since(resources)
    assert not leaked, leaked


def test_no_backend_thread_during_host_callbacks_after_done(host: QueueHost) -> None:
    """done_callback runs after the backend thread has been joined."""
    names: list[list[str]] = []
    threads = set(threading.enumerate())

    async def main() -> None:
        await asyncio.sleep(0.001)

    def done(out: outcome.Outcome[Any]) -> None:
        names.append([t.name for t in set(threading.enumerate()) - threads])

    asyncio_guest.start_guest_run(
        main,
        run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
        fd_watcher=host,
        done_callback=done,
        loop_factory=test_loop_factory(),
    )
    host.run_until(lambda: bool(names))
    assert names == [[]]


def test_normal_run_warns_and_logs_nothing(
    host: QueueHost, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        for _ in range(10):
            await asyncio.sleep(0)
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            b.sendall(b"x")
            await asyncio.get_running_loop().sock_recv(a, 1)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        host.guest_run(main).unwrap()
        gc.collect()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("main_raises", [False, True], ids=["main-running", "shutdown-begun"])
def test_shutdown_after_a_failure_is_woken_by_worker_threads(
    host: QueueHost, main_raises: bool
) -> None:
    """After our machinery failed, the shutdown runs the plain loop on this
    thread; a worker's ``call_soon_threadsafe`` must still wake its wait.

    On the proactor that needs a read pending on the self-socket (the stock
    ``ProactorEventLoop.run_forever`` keeps one; ``BaseEventLoop``'s does not):
    without it this run hangs once the loop blocks on the port before the
    executor's thread finishes. When the failure comes after the run's own
    shutdown began, that shutdown is finished, not a second one started.
    """
    calls = 0
    record: list[str] = []
    raised_at: list[int] = []

    def failing_not_threadsafe(fn: Callable[[], object]) -> None:
        nonlocal calls
        calls += 1
        if record[-1:] == ["main raised"] and not raised_at:
            raised_at.append(calls)
        if main_raises:  # the call after the one that posted the raise's tick:
            fail = bool(raised_at) and calls == raised_at[0] + 1  # shutdown begun
        else:
            fail = calls == 6
        if fail:
            raise RuntimeError("host primitive failed (test)")
        host.run_sync_soon_not_threadsafe(fn)

    async def main() -> None:
        slow = asyncio.ensure_future(asyncio.to_thread(time.sleep, 0.3))
        record.append("main started")
        if main_raises:
            await asyncio.sleep(0)  # the thread starts
            record.append("main raised")
            raise ZeroDivisionError
        try:
            for _ in range(100):
                await asyncio.sleep(0)
        finally:
            record.append("main finally")
            # The shutdown's default-executor join waits for the sleeping thread.
            del slow

    out = host.guest_run(  # checks that no task was left pending
        main, run_sync_soon_not_threadsafe=failing_not_threadsafe, tick_budget=1e-9
    )
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, asyncio_guest.InternalError), out.error
    if main_raises:
        assert record == ["main started", "main raised"], (record, calls)
    else:
        assert record == ["main started", "main finally"], (record, calls)


# ------------------------------------------------------------ the run's shutdown


def test_a_task_failing_during_the_shutdown_is_reported(host: QueueHost) -> None:
    """A leftover task whose clean-up raises when the shutdown cancels it is
    reported through the loop's exception handler, as ``asyncio.run`` reports
    it; the run's own outcome is ``main``'s."""
    seen: list[tuple[str, type[BaseException]]] = []
    left_over: list[asyncio.Task[None]] = []

    async def main() -> str:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(
            lambda _loop, context: seen.append((context["message"], type(context["exception"])))
        )

        async def bad_clean_up() -> None:
            try:
                await asyncio.sleep(LONG)
            finally:
                raise LookupError("in clean-up")

        left_over.append(loop.create_task(bad_clean_up()))  # the shutdown's to end
        await asyncio.sleep(0)
        return "main's value"

    assert host.guest_run(main) == outcome.Value("main's value")
    assert seen == [("unhandled exception during asyncio-guest run shutdown", LookupError)]


def test_a_failing_shutdown_is_the_runs_outcome(
    host: QueueHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shutdown's own step fails (the default executor's shutdown raises):
    that error is the run's outcome, not ``main``'s value over a clean-up
    that did not happen."""

    async def broken(self: object, *args: object) -> None:
        raise OSError("executor shutdown failed")

    monkeypatch.setattr(asyncio.BaseEventLoop, "shutdown_default_executor", broken)

    async def main() -> str:
        return "main's value"

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error) and isinstance(out.error, OSError), out


def test_the_default_executors_work_ends_before_done_callback(host: QueueHost) -> None:
    finished = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, lambda: (time.sleep(0.3), finished.set()))
        await asyncio.sleep(0)

    assert host.guest_run(main) == outcome.Value(None)
    assert finished.is_set(), "done_callback ran before the executor's work had finished"


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="Ctrl+C counted apart from other cancels needs 3.11's Task.uncancel() "
    "(and 3.10's asyncio.run raises SIGINT in main itself)",
)
def test_ctrl_c_after_another_cancel_ends_main_as_asyncio_run_does(host: QueueHost) -> None:
    """``main`` was cancelled (a window closed) and then Ctrl+C came: plain
    ``asyncio.run`` raises ``CancelledError`` (the cancellation was not the
    interrupt's), and so does the guest run."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT handling needs the main thread")

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(LONG)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    out = host.guest_run(main)
    assert isinstance(out, outcome.Error) and isinstance(out.error, asyncio.CancelledError), out


def test_a_ctrl_c_deferred_during_the_teardown_becomes_the_outcome(
    host: QueueHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl+C that lands in the run's own teardown (deferred there)
    is the run's outcome, ``KeyboardInterrupt`` through ``done_callback``, not
    a value followed by a ``KeyboardInterrupt`` raised into the host."""
    from asyncio_guest._core import lifecycle

    teardown = lifecycle.RunLifecycle._teardown

    def teardown_hit_by_ctrl_c(self: lifecycle.RunLifecycle) -> None:
        if self._sigint_installed and not self._unprotected:
            self.interrupts = max(self.interrupts, 1)  # as if the first was spent
            signal.raise_signal(signal.SIGINT)  # lands in our own code: deferred
        teardown(self)

    monkeypatch.setattr(lifecycle.RunLifecycle, "_teardown", teardown_hit_by_ctrl_c)

    async def main() -> str:
        return "main's value"

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT handling needs the main thread")
    got: list[object] = []
    try:
        got.append(host.guest_run(main))
    except KeyboardInterrupt:
        got.append("KeyboardInterrupt raised into the host after done_callback")
    assert len(got) == 1, got
    assert isinstance(got[0], outcome.Error) and isinstance(got[0].error, KeyboardInterrupt), got


def test_cancelled_timers_are_compacted_out_of_the_heap(host: QueueHost) -> None:
    """Cancelled timers behind a live one leave the heap once they are most of
    it, as ``_run_once`` compacts them: a program that sets and cancels
    timeouts all day keeps a small heap."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        timers = [loop.call_later(LONG + i, lambda: None) for i in range(1000)]
        for timer in timers[10:]:  # behind a live head: popping heads never reaches them
            timer.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)  # a real wait: its timeout is computed
        size = len(loop._scheduled)  # type: ignore[attr-defined]
        for timer in timers[:10]:
            timer.cancel()
        return size

    assert host.guest_run(main).unwrap() <= 100


def test_a_ctrl_c_deferred_between_ticks_comes_before_the_next_ticks_callbacks(
    host: QueueHost,
) -> None:
    """A Ctrl+C that landed in our own code between ticks is deferred
    (``interrupts.py``) and delivered at the start of the next tick: as when a
    callback raises it, every task is cancelled before any takes a normal step,
    so a task whose wake-up is queued resumes with ``CancelledError``."""
    from asyncio_guest._core.guest_loop import engine_of

    record: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def ctrl_c_deferred_then_a_wake_up() -> None:
            engine = engine_of(loop)
            assert engine is not None
            woken.set_result(None)  # main's wake-up, queued for the next tick
            engine.interrupt_pending = True  # as the run's SIGINT handler defers one
            engine.host_wake()

        host.in_host(ctrl_c_deferred_then_a_wake_up)
        try:
            await woken
            record.append("resumed normally")
        except asyncio.CancelledError:
            record.append("cancelled")
            raise

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error) and isinstance(out.error, KeyboardInterrupt), out
    assert record == ["cancelled"]
