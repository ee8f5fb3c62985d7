"""The shared scenario set, run on every host harness found (see ``harness.py``).

Each scenario is written once, against ``Harness``; ``HARNESSES`` collects the
harnesses of every ``harness_<host>.py`` module in this package whose toolkit
imports here. A scenario that needs widgets is generated only for harnesses
that have them. ``ASYNCIO_GUEST_REQUIRE_HOSTS=tk,qt,trio`` (CI) makes a missing
toolkit a failure instead of an absent parametrisation.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import math
import os
import pkgutil
import sys
import threading
import time
import warnings
from typing import Any

import pytest

from asyncio_guest import async_callback, run_modal

from ..child_process import ctrl_c, ready_child, reaped, second_ctrl_c
from . import harness as harness_api
from .harness import SIGINT, TOOLKIT_LOOP, WIDGETS, Harness


def _collect() -> tuple[list[Harness], list[str]]:
    found: list[Harness] = []
    modules: list[str] = []
    package = os.path.dirname(__file__)
    for info in pkgutil.iter_modules([package]):
        if info.name.startswith("harness_"):
            module = importlib.import_module(f"{__package__}.{info.name}")
            modules.append(info.name[len("harness_"):])
            found.extend(
                harness_api.WaitHarness(h, wait)
                for h in module.HARNESSES
                # A host that cannot watch an fd (wx) says which waits it has.
                for wait in getattr(h, "waits", None) or harness_api.wait_strategies()
            )
    return found, modules


HARNESSES, _MODULES = _collect()
REQUIRED = [h for h in os.environ.get("ASYNCIO_GUEST_REQUIRE_HOSTS", "").split(",") if h]


def _with(capability: str | None = None) -> list[Any]:
    chosen = [h for h in HARNESSES if capability is None or capability in h.capabilities]
    return [pytest.param(h, id=h.name) for h in chosen]


def test_required_hosts_are_here() -> None:
    """CI names the hosts it installed; each must have given a harness."""
    names = harness_api.describe(HARNESSES)
    def given(required: str) -> bool:
        return any(n == required or n.startswith((required + "-", required + "[")) for n in names)

    missing = [r for r in REQUIRED if not given(r)]
    assert not missing, f"no harness for {missing}; harnesses here: {names}"


@pytest.mark.parametrize("host", _with())
def test_timers_and_a_socket_round_trip(host: Harness) -> None:
    async def main() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        data = await reader.read(100)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return data

    assert host.run(main) == b"ping"


@pytest.mark.parametrize("host", _with())
def test_an_exception_in_main_surfaces_from_run(host: Harness) -> None:
    async def main() -> None:
        await asyncio.sleep(0.001)
        raise LookupError("from deep in a task")

    with pytest.raises(LookupError, match="from deep in a task"):
        host.run(main)


@pytest.mark.parametrize("host", _with(WIDGETS))
def test_a_real_click_starts_a_task_that_answers(host: Harness) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()

        async def work() -> None:
            await asyncio.sleep(0.01)
            answer.set_result("done")

        button = host.make_button(lambda: asyncio.create_task(work()))
        host.call_soon_in_host(lambda: host.click(button))
        return await asyncio.wait_for(answer, 10)

    assert host.run(main) == "done"


# ------------------------------------------------------------ the rest of the set


@pytest.mark.parametrize("host", _with())
def test_timers_fire_in_order_and_not_early(host: Harness) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        order: list[str] = []
        # asyncio runs a timer that is due within the clock's resolution (15.6 ms
        # on Windows): "early" is earlier than that, on any loop, plain included.
        slack: float = getattr(loop, "_clock_resolution", 0.0)
        t0 = loop.time()
        # From one reading of the clock: on Windows it may tick 15.6 ms between
        # two call_later calls, which would make c's deadline earlier than b's.
        loop.call_at(t0 + 0.03, order.append, "c")
        loop.call_at(t0 + 0.01, order.append, "a")
        loop.call_at(t0 + 0.02, order.append, "b")
        await asyncio.sleep(0.05)
        assert loop.time() - t0 >= 0.05 - slack
        for _ in range(5):
            t = loop.time()
            await asyncio.sleep(0.005)
            assert loop.time() - t >= 0.005 - slack
        return order

    assert host.run(main) == ["a", "b", "c"]


@pytest.mark.parametrize("host", _with())
def test_a_subprocess(host: Harness) -> None:
    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; print(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(b"hello")
        return out.strip(), await proc.wait()

    assert host.run(main) == (b"HELLO", 0)


@pytest.mark.parametrize("host", _with())
def test_to_thread(host: Harness) -> None:
    main_thread = threading.get_ident()

    async def main() -> tuple[int, bool]:
        def work(n: int) -> tuple[int, int]:
            time.sleep(0.01)
            return n * 2, threading.get_ident()

        results = await asyncio.gather(*(asyncio.to_thread(work, i) for i in range(4)))
        assert threading.get_ident() == main_thread  # the guest runs on the host thread
        return sum(r for r, _ in results), all(t != main_thread for _, t in results)

    assert host.run(main) == (12, True)


@pytest.mark.parametrize("host", _with())
def test_an_exception_in_a_task_surfaces_from_run(host: Harness) -> None:
    async def main() -> None:
        async def deep() -> None:
            await asyncio.sleep(0.001)
            raise ValueError("raised in a task")

        await asyncio.create_task(deep())

    with pytest.raises(ValueError, match="raised in a task") as info:
        host.run(main)
    # The traceback reaches the raising frame.
    assert any(entry.name == "deep" for entry in info.traceback)


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("host", _with())
def test_the_host_timer_stays_on_time_while_200_tasks_spin(host: Harness, debug: bool) -> None:
    """Also in asyncio's debug mode, whose per-tick probe keeps two callbacks
    queued at each of the host's drains (it once carried a busy guest ahead of
    the host's timers on GLib and wx: not one fire in a second). Debug mode
    records a stack for every task and handle, which takes milliseconds under
    Wine: fewer tasks there, and the second counts from when they are made.
    On a loaded machine (Wine, debug mode, a CI lane beside) the spin goes on
    past its second, up to ten more, until each task has taken two steps."""
    interval = 0.01
    n_tasks = 20 if debug else 200

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        loop.set_debug(debug)
        loop.slow_callback_duration = 10.0  # the spin's own ticks are not the point
        end = [math.inf]
        spins = [0]

        async def spin() -> None:
            while loop.time() < end[0] or (
                spins[0] <= 2 * n_tasks and loop.time() < end[0] + 10.0
            ):
                spins[0] += 1
                await asyncio.sleep(0)

        spinners = [asyncio.ensure_future(spin()) for _ in range(n_tasks)]
        fired: list[float] = []
        stop = host.call_every(interval, lambda: fired.append(time.perf_counter()))
        end[0] = loop.time() + 1.0
        try:
            await asyncio.gather(*spinners)
        finally:
            stop()
        assert spins[0] > 2 * n_tasks, spins  # asyncio did run meanwhile
        return fired

    fired = host.run(main)
    gaps = sorted(b - a for a, b in itertools.pairwise(fired))
    assert len(gaps) >= 20, f"the host timer fired {len(fired)} times in 1 s"
    lateness = gaps[len(gaps) // 2] - interval
    assert lateness < 0.05, f"median host timer lateness {lateness * 1e3:.1f} ms"


@pytest.mark.parametrize("host", _with())
def test_sniffio_and_anyio_see_asyncio(host: Harness) -> None:
    import anyio  # test dependencies ('.[test]'): a missing one is a failure
    import sniffio

    async def main() -> str:
        await anyio.sleep(0)
        await anyio.sleep(0.001)
        with anyio.fail_after(5):
            await asyncio.sleep(0)
        return str(sniffio.current_async_library())

    assert host.run(main) == "asyncio"


@pytest.mark.parametrize("host", _with(WIDGETS))
@pytest.mark.parametrize("on_busy", ["run", "ignore", "cancel"])
def test_async_callback_on_a_real_button(host: Harness, on_busy: str) -> None:
    async def main() -> tuple[int, int, int]:
        release = asyncio.Event()
        started = [0]
        finished = [0]
        cancelled = [0]

        async def handler() -> None:
            started[0] += 1
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled[0] += 1
                raise
            finished[0] += 1

        callback = async_callback(handler, on_busy=on_busy)  # type: ignore[arg-type]
        button = host.make_button(callback)
        for _ in range(3):
            clicked = asyncio.Event()

            def click() -> None:
                host.click(button)
                clicked.set()  # noqa: B023 (called before the next iteration)

            host.call_soon_in_host(click)
            await asyncio.wait_for(clicked.wait(), 10)
            await asyncio.sleep(0.01)  # the handler started meanwhile (if it was)
        release.set()
        while callback.running:
            await asyncio.sleep(0.001)
        return started[0], finished[0], cancelled[0]

    expected = {"run": (3, 3, 0), "ignore": (1, 1, 0), "cancel": (3, 1, 2)}[on_busy]
    assert host.run(main) == expected


@pytest.mark.parametrize("host", _with(WIDGETS))
def test_a_modal_dialog_through_run_modal(host: Harness) -> None:
    async def main() -> tuple[str, int]:
        opened = asyncio.Event()
        closer: list[Any] = []
        ticks = [0]

        def on_open(close: Any) -> None:
            closer.append(close)
            opened.set()

        async def meanwhile() -> None:
            await opened.wait()
            for _ in range(10):  # asyncio keeps running while the dialog is open
                await asyncio.sleep(0.005)
                ticks[0] += 1
            closer[0]("accepted")

        helper = asyncio.create_task(meanwhile())
        result = await asyncio.wait_for(run_modal(host.open_modal, on_open), 10)
        await helper
        return result, ticks[0]

    assert host.run(main) == ("accepted", 10)


@pytest.mark.parametrize("host", _with(WIDGETS))
def test_closing_the_window_mid_run_cancels_main(host: Harness) -> None:
    seen: list[str] = []

    async def main() -> None:
        host.call_soon_in_host(host.close_window)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            await asyncio.sleep(0.01)  # the guest still runs while it shuts down
            seen.append("cleaned up")
            raise

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(asyncio.CancelledError):
            host.run(main)
    assert seen == ["cancelled", "cleaned up"]


@pytest.mark.parametrize("host", _with(WIDGETS))
def test_closing_the_window_when_main_handles_it_returns_its_value(host: Harness) -> None:
    async def main() -> str:
        host.call_soon_in_host(host.close_window)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "closed politely"
        return "not closed"

    assert host.run(main) == "closed politely"


# The end of a child script: run ``main`` on the host the script's argument names,
# report how the run ended (exit status 3: KeyboardInterrupt).
_RUN_AND_REPORT = """
try:
    host.run(main)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(3)
print("returned", flush=True)
"""

_SIGINT_CHILD = """
import asyncio, sys
from tests.scenarios.test_scenarios import HARNESSES
host = next(h for h in HARNESSES if h.name == sys.argv[1])

async def main():
    print("ready", flush=True)
    await asyncio.sleep(60)
""" + _RUN_AND_REPORT


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX here")
@pytest.mark.parametrize("host", _with(SIGINT))
def test_ctrl_c_while_the_host_idles(host: Harness) -> None:
    with reaped(ready_child(_SIGINT_CHILD, host.name)) as proc:
        time.sleep(0.3)  # the host is idle now, blocked in its own wait
        out, err, elapsed = ctrl_c(proc, timeout=20)
    assert proc.returncode == 3, (proc.returncode, out, err)
    assert out == b"KeyboardInterrupt\n"
    assert elapsed < 5.0, elapsed


_STUCK_CALLBACK_CHILD = """
import asyncio, sys, time
from tests.scenarios.test_scenarios import HARNESSES
host = next(h for h in HARNESSES if h.name == sys.argv[1])

def spin(seconds):
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        pass

def stuck():  # a widget's callback doing blocking work, or caught in a loop
    print("ready", flush=True)
    try:
        # (Not the loop itself here: on CPython 3.13.0 a signal handler's
        # exception raised at a loop's own test can leave its frame without
        # running the frame's except and finally clauses.)
        spin(30)
    except KeyboardInterrupt:
        print("interrupted", flush=True)

async def main():
    host.call_soon_in_host(stuck)
    await asyncio.sleep(60)
""" + _RUN_AND_REPORT


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX here")
@pytest.mark.parametrize("host", _with(TOOLKIT_LOOP))
def test_a_second_ctrl_c_interrupts_a_stuck_callback_of_the_program(host: Harness) -> None:
    """A callback the toolkit's loop runs (a button's command) is stuck in Python
    code: the first Ctrl+C cancels ``main`` (which must wait for the callback to
    return), the second raises ``KeyboardInterrupt`` in the callback at once, as
    in a plain toolkit program; then the run ends with ``KeyboardInterrupt``.
    It was held back, as if it had landed in our machinery, until the callback
    returned by itself (never, for an endless loop)."""
    with reaped(ready_child(_STUCK_CALLBACK_CHILD, host.name)) as proc:
        out, err, elapsed = second_ctrl_c(proc, timeout=25)
    assert out == b"interrupted\nKeyboardInterrupt\n", (out, err)
    assert proc.returncode == 3
    assert elapsed < 10.0, elapsed


_SIGINT_IN_SHUTDOWN_CHILD = """
import asyncio, os, sys, time
from tests.scenarios.test_scenarios import HARNESSES
host = next(h for h in HARNESSES if h.name == sys.argv[1])

async def slow_cleanup():
    try:
        await asyncio.sleep(3600)
    finally:
        print("shutting down", flush=True)  # the run's shutdown cancelled this task
        await asyncio.sleep(60)  # a graceful close that hangs

async def main():
    if sys.argv[2] == "task":
        asyncio.create_task(slow_cleanup())
    print("ready", flush=True)
    if sys.argv[2] == "executor":
        try:
            await asyncio.to_thread(time.sleep, 60)  # the executor's join waits for it
        except asyncio.CancelledError:
            print("shutting down", flush=True)  # main ends: the shutdown follows
            raise
    else:
        await asyncio.sleep(3600)

try:
    host.run(main)
except KeyboardInterrupt as exc:
    print("KeyboardInterrupt", type(exc.__context__).__name__, flush=True)
    os._exit(3)  # the executor's thread still sleeps, as after asyncio.run
print("returned", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX here")
@pytest.mark.parametrize("waits_for", ["task", "executor"])
@pytest.mark.parametrize("host", _with(SIGINT))
def test_a_second_ctrl_c_cuts_the_runs_shutdown_short(host: Harness, waits_for: str) -> None:
    """The first Ctrl+C cancels main and the run shuts down, waiting for a task's
    slow ``finally`` or for the default executor's thread; a second one ends the
    run at once with ``KeyboardInterrupt`` (chained to the first), as it ends
    ``asyncio.run``'s clean-up."""
    with reaped(ready_child(_SIGINT_IN_SHUTDOWN_CHILD, host.name, waits_for)) as proc:
        # The first cancels main, and the shutdown waits: in the task's finally
        # (the line comes from there), or for the executor (from main's end on).
        out, err, elapsed = second_ctrl_c(
            proc,
            timeout=30,
            wait=0.1 if waits_for == "task" else 0.3,
            first_seen=b"shutting down\n",
        )
    assert proc.returncode == 3, (proc.returncode, out, err)
    assert out == b"KeyboardInterrupt KeyboardInterrupt\n", (out, err)
    assert elapsed < 10.0, elapsed


_SHUTDOWN_CUT_SHORT_THEN_EXIT_CHILD = """
import asyncio, sys, time
from tests.scenarios.test_scenarios import HARNESSES
host = next(h for h in HARNESSES if h.name == sys.argv[1])

async def main():
    # Debug mode (-X dev): no "Executing ... took 0.1 seconds" on a loaded machine.
    asyncio.get_running_loop().slow_callback_duration = 60.0
    print("ready", flush=True)
    await asyncio.to_thread(time.sleep, 1.5)  # the executor's join waits for it

try:
    host.run(main)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
# The interpreter exits normally: it joins the executor's thread, then ends.
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX here")
@pytest.mark.parametrize("wait", ["fd", "thread"])
def test_a_program_whose_shutdown_a_second_ctrl_c_cut_short_exits_quietly(wait: str) -> None:
    """After the second Ctrl+C the program goes on and exits normally, in debug
    mode: the shutdown left pending is closed at exit without a word on stderr,
    as after ``asyncio.run`` (3.13 printed "Exception ignored ... sys.meta_path
    is None" when the interpreter's last collection closed it)."""
    child = ready_child(
        _SHUTDOWN_CUT_SHORT_THEN_EXIT_CHILD, f"reference[{wait}]", flags=("-X", "dev")
    )
    with reaped(child) as proc:
        # The first cancels main, and the shutdown waits.
        out, err, _ = second_ctrl_c(proc, timeout=30, wait=0.3)
    assert (proc.returncode, out, err) == (0, b"KeyboardInterrupt\n", b"")
