"""start_guest_run basics: outcome delivery, start-up state, host-side wake-ups, cancellation."""

from __future__ import annotations

import asyncio
import functools
import gc
import sys
import threading
from collections.abc import Callable, Coroutine, Generator
from typing import Any, NoReturn

import outcome
import pytest

import asyncio_guest

from .hosts import LONG, QueueHost
from .loops import test_loop_factory

# ------------------------------------------------------------------ outcomes


def test_value_reaches_done_callback(host: QueueHost) -> None:
    async def main() -> str:
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        return "ok"

    out = host.guest_run(main())
    assert out == outcome.Value("ok")


def test_exception_reaches_done_callback(host: QueueHost) -> None:
    async def main() -> NoReturn:
        await asyncio.sleep(0)
        raise KeyError("whoopsiedaisy")

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, KeyError)
    with pytest.raises(KeyError, match="whoopsiedaisy"):
        out.unwrap()


def test_async_function_with_args(host: QueueHost) -> None:
    async def main(a: int, b: str, *, c: int = 0) -> tuple[int, str, int]:
        await asyncio.sleep(0)
        return a, b, c

    assert host.guest_run(main, 1, "two") == outcome.Value((1, "two", 0))


def test_alias_is_the_same_function() -> None:
    assert asyncio_guest.asyncio_guest_run is asyncio_guest.start_guest_run


def test_main_runs_on_host_thread_in_the_guest_loop(host: QueueHost) -> None:
    async def main() -> tuple[threading.Thread, bool]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        return threading.current_thread(), task.get_loop() is loop

    thread, same_loop = host.guest_run(main).unwrap()
    assert thread is threading.current_thread()
    assert same_loop


def test_debug_flag(host: QueueHost) -> None:
    async def main() -> bool:
        return asyncio.get_running_loop().get_debug()

    assert host.guest_run(main, debug=True).unwrap() is True
    assert host.guest_run(main, debug=False).unwrap() is False


class _Awaitable:
    def __await__(self) -> Generator[Any, None, int]:
        yield from []
        return 1


def _sync_function() -> int:
    return 1


async def _async_function() -> int:
    return 1


@pytest.mark.parametrize(
    ("main", "args"),
    [
        pytest.param(_sync_function, (), id="sync-function"),
        pytest.param(42, (), id="not-callable"),
        pytest.param(None, (), id="none"),
    ],
)
def test_non_coroutine_raises_type_error_from_the_call(
    host: QueueHost, main: Any, args: tuple[Any, ...]
) -> None:
    threads = set(threading.enumerate())
    done: list[object] = []
    with pytest.raises(TypeError):
        asyncio_guest.start_guest_run(
            main,
            *args,
            run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
            fd_watcher=host,
            done_callback=done.append,
            loop_factory=test_loop_factory(),
        )
    assert host.queue.empty()
    assert not done
    assert set(threading.enumerate()) == threads
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


class _ForeignCoroutine(Coroutine[Any, Any, int]):
    """A coroutine that is no native one (what Cython makes of ``async def``):
    ``asyncio.iscoroutine`` says it is one, ``inspect.iscoroutine`` does not."""

    def __init__(self) -> None:
        self._inner = _async_function()

    def send(self, value: Any) -> Any:
        return self._inner.send(value)

    def throw(self, *exc: Any) -> Any:
        return self._inner.throw(*exc)

    def close(self) -> None:
        self._inner.close()

    def __await__(self) -> Generator[Any, None, int]:
        return self._inner.__await__()


@pytest.mark.parametrize(
    ("guest_main", "plain_main"),
    [
        pytest.param(_ForeignCoroutine, _ForeignCoroutine, id="foreign-coroutine"),
        pytest.param(lambda: _ForeignCoroutine, _ForeignCoroutine, id="its-function"),
        pytest.param(_Awaitable, _Awaitable, id="awaitable-object"),
        pytest.param(lambda: _Awaitable, _Awaitable, id="function-returning-awaitable"),
    ],
)
def test_main_is_taken_where_asyncio_run_takes_it(
    guest_main: Callable[[], Any], plain_main: type
) -> None:
    """A coroutine is what asyncio says is one (it was refused unless native),
    and from 3.14 on, as ``asyncio.run`` does, any awaitable (it was refused)."""
    try:
        expected: object = asyncio.run(plain_main())
    except (TypeError, ValueError):  # ValueError before 3.14
        expected = TypeError
    try:
        got: object = asyncio_guest.run(guest_main())
    except TypeError:
        got = TypeError
    assert got == expected
    if issubclass(plain_main, Coroutine):
        assert expected == 1  # a foreign coroutine: taken on every version
    if sys.version_info >= (3, 14):
        assert expected == 1  # any awaitable


def test_coroutine_object_with_extra_args_is_a_type_error(host: QueueHost) -> None:
    coro = _async_function()
    try:
        with pytest.raises(TypeError):
            asyncio_guest.start_guest_run(
                coro,
                1,
                run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
                fd_watcher=host,
                done_callback=lambda out: None,
                loop_factory=test_loop_factory(),
            )
    finally:
        coro.close()
    assert host.queue.empty()


def test_done_callback_called_exactly_once_even_with_host_noise(host: QueueHost) -> None:
    """Extra host callbacks and a drained queue after the end never call done_callback again."""
    calls: list[outcome.Outcome[Any]] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()

        def noise() -> None:
            if not loop.is_closed():
                loop.call_soon(lambda: None)

        for _ in range(20):
            host.in_host(noise)
            await asyncio.sleep(0)
        return 7

    asyncio_guest.start_guest_run(
        main,
        run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
        fd_watcher=host,
        done_callback=calls.append,
        loop_factory=test_loop_factory(),
    )
    host.run_until(lambda: bool(calls))
    host.drain()
    assert calls == [outcome.Value(7)]


def test_only_threadsafe_primitive(host: QueueHost) -> None:
    """run_sync_soon_not_threadsafe is optional: the thread-safe one is used for everything."""

    async def main() -> int:
        total = 0
        for i in range(50):
            await asyncio.sleep(0)
            total += i
        await asyncio.to_thread(lambda: None)
        return total

    out = host.guest_run(main, run_sync_soon_not_threadsafe=None)
    assert out == outcome.Value(sum(range(50)))
    assert host.not_threadsafe_calls == 0
    assert host.threadsafe_calls > 0


def test_not_threadsafe_primitive_is_used_on_the_host_thread(host: QueueHost) -> None:
    async def main() -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    host.guest_run(main)
    assert host.not_threadsafe_calls > 0  # the cheap path is taken when offered


# ------------------------------------------------------- initialised on return


def test_run_is_initialized_when_start_returns(host: QueueHost) -> None:
    record: list[str] = []
    loops: dict[str, asyncio.AbstractEventLoop] = {}
    host_tasks: list[asyncio.Future[Any]] = []

    async def main() -> str:
        record.append("main task ran")
        loops["main"] = asyncio.get_running_loop()
        await asyncio.sleep(0)
        return "ok"

    async def early_task() -> None:
        record.append("host-created task ran")
        await asyncio.sleep(0)

    def after_start(task: asyncio.Task[Any]) -> None:
        # Control comes back before the main task runs any code.
        assert record == []
        loop = asyncio.get_running_loop()
        loops["host"] = loop
        assert task.get_loop() is loop
        assert not task.done()
        loop.call_soon(record.append, "call_soon cb ran")
        host_tasks.append(asyncio.create_task(early_task()))
        host_tasks.append(asyncio.ensure_future(asyncio.sleep(0)))

    assert host.guest_run(main, after_start=after_start) == outcome.Value("ok")
    assert set(record) == {"main task ran", "host-created task ran", "call_soon cb ran"}
    assert all(t.done() for t in host_tasks)
    assert loops["main"] is loops["host"]
    assert loops["main"].is_closed()


def test_host_callback_sees_the_guest_loop_as_running(host: QueueHost) -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> bool:
        fut = asyncio.get_running_loop().create_future()

        def in_host() -> None:
            seen.append(asyncio.get_running_loop())
            fut.set_result(None)

        host.in_host(in_host)
        await asyncio.wait_for(fut, LONG)
        return seen[0] is asyncio.get_running_loop()

    assert host.guest_run(main).unwrap() is True


# ------------------------------------------------- host code wakes the guest


def test_host_sets_event_and_guest_wakes(host: QueueHost) -> None:
    async def main() -> str:
        ev = asyncio.Event()
        host.in_host(ev.set)  # runs while the backend waits in a LONG timeout
        await asyncio.wait_for(ev.wait(), LONG)
        return "woken"

    assert host.guest_run(main) == outcome.Value("woken")


def test_host_sets_future_result_and_guest_wakes(host: QueueHost) -> None:
    async def main() -> int:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        host.in_host(lambda: fut.set_result(5))
        return await asyncio.wait_for(fut, LONG)

    assert host.guest_run(main) == outcome.Value(5)


def test_host_event_from_another_thread_wakes_guest(host: QueueHost) -> None:
    """A host event that arrives from outside (a worker posts it to the host queue)."""

    async def main() -> str:
        ev = asyncio.Event()
        ready = threading.Event()

        def worker() -> None:
            ready.wait(LONG)
            host.in_host(ev.set)

        thread = threading.Thread(target=worker)
        thread.start()
        asyncio.get_running_loop().call_soon(ready.set)
        try:
            await asyncio.wait_for(ev.wait(), LONG)
        finally:
            await asyncio.to_thread(thread.join)
        return "woken"

    assert host.guest_run(main) == outcome.Value("woken")


def test_host_call_soon_wakes_guest_with_no_timer_at_all(host: QueueHost) -> None:
    """No guest timer: the backend waits with no timeout; a host call_soon must end it."""

    async def main() -> str:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        host.in_host(lambda: loop.call_soon(fut.set_result, "called"))
        return await fut

    # No guest timer exists, so a missing wake-up would hang: the watchdog
    # turns that into a failure instead of a pytest-timeout.
    watchdog = threading.Timer(LONG, lambda: host.in_host(_fail_hung))
    watchdog.start()
    try:
        assert host.guest_run(main) == outcome.Value("called")
    finally:
        watchdog.cancel()
        watchdog.join()


def _fail_hung() -> None:
    pytest.fail("the guest was not woken by host code")


def test_host_call_later_earliest_timer_wakes_guest(host: QueueHost) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        host.in_host(lambda: loop.call_later(0.01, fut.set_result, "timer"))
        return await asyncio.wait_for(fut, LONG)

    assert host.guest_run(main) == outcome.Value("timer")


def test_host_call_at_in_the_past_wakes_guest(host: QueueHost) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        host.in_host(lambda: loop.call_at(loop.time() - 1, fut.set_result, "past"))
        return await asyncio.wait_for(fut, LONG)

    assert host.guest_run(main) == outcome.Value("past")


def test_host_call_later_not_earliest_timer(host: QueueHost) -> None:
    """A host timer later than the guest's next timer: kept, and fires in its turn."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        order: list[str] = []
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_later(0.02, order.append, "guest timer")

        def in_host() -> None:
            loop.call_later(0.05, order.append, "host timer")
            loop.call_later(0.06, fut.set_result, None)

        host.in_host(in_host)
        await asyncio.wait_for(fut, LONG)
        return order

    assert host.guest_run(main) == outcome.Value(["guest timer", "host timer"])


def test_host_adds_far_timer_then_near_timer(host: QueueHost) -> None:
    """A timer that needs no wake, then one that does (Trio's deadline-change test)."""

    async def main() -> str:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        far: list[asyncio.TimerHandle] = []

        def in_host_far() -> None:
            far.append(loop.call_later(1e6, fut.set_result, "far"))

        def in_host_near() -> None:
            loop.call_later(0, fut.set_result, "near")

        host.in_host(in_host_far)
        host.in_host(in_host_near)
        try:
            return await asyncio.wait_for(fut, LONG)
        finally:
            far[0].cancel()

    assert host.guest_run(main) == outcome.Value("near")


def test_host_cancels_guest_timer_and_adds_another(host: QueueHost) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        fut: asyncio.Future[None] = loop.create_future()
        # Far enough that the host cancels it first on any machine (and beyond
        # the loop's clock resolution, 15.6 ms on Windows Python 3.10, inside
        # which asyncio runs a timer at once).
        early = loop.call_later(0.5, fired.append, "cancelled timer")

        def in_host() -> None:
            early.cancel()
            loop.call_later(0.03, fired.append, "late timer")
            loop.call_later(0.05, fut.set_result, None)

        host.in_host(in_host)
        await asyncio.wait_for(fut, LONG)
        return fired

    assert host.guest_run(main) == outcome.Value(["late timer"])


# ----------------------------------------------------------- cancellation


def _host_cancels_once_main_waits(
    host: QueueHost, waiting: list[bool]
) -> Callable[[asyncio.Task[Any]], None]:
    """``after_start``: a host event cancels the main task once main is waiting.

    The first tick usually runs main's first step, but a tick may end (its
    budget spent, e.g. on the proactor loop's own first callback) before it,
    and a task cancelled before its first step never enters its ``try``.
    """

    def cancel(task: asyncio.Task[Any]) -> None:
        if waiting:
            task.cancel()
        else:
            host.in_host(lambda: cancel(task))  # after the next tick

    return lambda task: host.in_host(lambda: cancel(task))


def test_host_cancels_main_task(host: QueueHost) -> None:
    record: list[str] = []
    waiting: list[bool] = []

    async def main() -> None:
        try:
            waiting.append(True)
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            record.append("cancelled")
            raise
        finally:
            record.append("finally")

    out = host.guest_run(main, after_start=_host_cancels_once_main_waits(host, waiting))
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, asyncio.CancelledError)
    assert record == ["cancelled", "finally"]


def test_host_cancels_main_task_right_after_start(host: QueueHost) -> None:
    record: list[str] = []

    async def main() -> None:
        record.append("ran")  # never: cancelled before its first step

    out = host.guest_run(main, after_start=lambda task: task.cancel())
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, asyncio.CancelledError)
    assert record == []


def test_main_catches_host_cancel_and_returns(host: QueueHost) -> None:
    waiting: list[bool] = []

    async def main() -> str:
        try:
            waiting.append(True)
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            return "graceful"
        return "not cancelled"

    out = host.guest_run(main, after_start=_host_cancels_once_main_waits(host, waiting))
    assert out == outcome.Value("graceful")


def test_leftover_tasks_are_cancelled_at_shutdown(host: QueueHost) -> None:
    """asyncio.run semantics: tasks still pending when main returns are cancelled and awaited."""
    record: list[str] = []

    async def straggler() -> None:
        try:
            await asyncio.sleep(LONG)
        finally:
            await asyncio.sleep(0)  # the loop still runs during shutdown
            record.append("straggler cleaned up")

    tasks: list[asyncio.Task[None]] = []

    async def main() -> str:
        tasks.append(asyncio.create_task(straggler()))
        await asyncio.sleep(0)
        return "main done"

    assert host.guest_run(main) == outcome.Value("main done")
    assert record == ["straggler cleaned up"]


def test_nested_start_guest_run_is_refused(host: QueueHost) -> None:
    """Like asyncio.run, a second run cannot start while this thread has a running loop."""

    async def inner() -> None:
        pass

    async def main() -> str:
        coro = inner()
        try:
            with pytest.raises(RuntimeError):
                host.start(coro)
        finally:
            coro.close()
        await asyncio.sleep(0)
        return "outer still fine"

    assert host.guest_run(main) == outcome.Value("outer still fine")


def test_sequential_runs_get_fresh_loops(host: QueueHost) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)

    for _ in range(3):
        host.guest_run(main).unwrap()
    assert len({id(loop) for loop in loops}) == 3
    assert all(loop.is_closed() for loop in loops)


def test_reference_run_returns_and_raises() -> None:
    async def ok() -> int:
        await asyncio.sleep(0.001)
        return 42

    async def bad() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    factory = test_loop_factory()
    assert asyncio_guest.run(ok(), loop_factory=factory) == 42
    assert asyncio_guest.run(ok, loop_factory=factory) == 42
    with pytest.raises(ValueError, match="boom"):
        asyncio_guest.run(bad(), loop_factory=factory)


def test_reference_run_host_error_shuts_guest_down_first() -> None:
    """A host callback raising ends asyncio_guest.run, once the guest is cancelled and shut down."""
    host = asyncio_guest.ReferenceHost()
    record: list[str] = []

    def host_timer() -> None:
        raise OSError("host timer failed")

    async def main() -> None:
        host.call_later(0.001, host_timer)
        try:
            await asyncio.sleep(LONG)
        finally:
            await asyncio.sleep(0)
            record.append("guest finally")

    with pytest.raises(OSError, match="host timer failed"):
        asyncio_guest.run(main, host=host, loop_factory=test_loop_factory())
    assert record == ["guest finally"]
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_reference_host_call_later_runs_host_timers_in_order() -> None:
    host = asyncio_guest.ReferenceHost()
    fired: list[int] = []

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        # 20 ms apart: each call reads the clock, which may tick between two
        # (1 ms under Wine, 15.6 ms on Windows before 3.13), and a tie runs
        # in the order of the calls.
        for n in (3, 1, 2):
            host.call_later(0.02 * n, functools.partial(fired.append, n))
        cancelled = host.call_later(0.04, lambda: fired.append(99))
        cancelled.cancel()
        host.call_later(0.1, lambda: done.set_result(None))
        await asyncio.wait_for(done, LONG)
        return fired

    assert asyncio_guest.run(main, host=host, loop_factory=test_loop_factory()) == [1, 2, 3]


def test_host_thread_call_soon_threadsafe_outside_tick_wakes_guest(host: QueueHost) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        host.in_host(lambda: loop.call_soon_threadsafe(fut.set_result, "host threadsafe"))
        return await asyncio.wait_for(fut, LONG)

    assert host.guest_run(main) == outcome.Value("host threadsafe")


def test_reference_run_refuses_running_loop() -> None:
    async def inner() -> None:
        pass

    async def main() -> None:
        coro = inner()
        try:
            with pytest.raises(RuntimeError):
                asyncio_guest.run(coro, loop_factory=test_loop_factory())
        finally:
            coro.close()

    asyncio_guest.run(main(), loop_factory=test_loop_factory())


def test_guest_loop_reports_running_and_refuses_nested_runs(host: QueueHost) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        seen = ["running" if loop.is_running() else "not running"]
        inner = asyncio.sleep(0)
        try:
            with pytest.raises(RuntimeError):
                loop.run_until_complete(inner)
        finally:
            inner.close()
        inner = asyncio.sleep(0)
        try:
            with pytest.raises(RuntimeError):
                asyncio.run(inner)
        finally:
            inner.close()
        fut: asyncio.Future[str] = loop.create_future()
        host.in_host(lambda: fut.set_result("running" if loop.is_running() else "not running"))
        seen.append(await asyncio.wait_for(fut, LONG))
        return seen

    assert host.guest_run(main) == outcome.Value(["running", "running"])


def test_reference_run_in_a_worker_thread() -> None:
    """Off the main thread there is no signal handling to set up; the run works the same."""
    results: list[object] = []

    async def main() -> str:
        await asyncio.sleep(0.001)
        await asyncio.to_thread(lambda: None)
        return threading.current_thread().name

    def worker() -> None:
        try:
            results.append(asyncio_guest.run(main, loop_factory=test_loop_factory()))
        except BaseException as exc:
            results.append(exc)

    thread = threading.Thread(target=worker, name="guest-host-worker")
    thread.start()
    thread.join(LONG)
    assert results == ["guest-host-worker"]


@pytest.mark.parametrize("entry", ["run", "start_guest_run"])
def test_a_run_refused_inside_a_running_loop_closes_the_coroutine(entry: str) -> None:
    """Refused, the coroutine it was given is closed: the refusal is the error a
    user sees, not a "coroutine ... was never awaited" warning after it."""

    async def main() -> int:
        return 1

    async def outer() -> Any:
        coro = main()
        with pytest.raises(RuntimeError, match="running"):
            if entry == "run":
                asyncio_guest.run(coro)
            else:
                asyncio_guest.start_guest_run(
                    coro, run_sync_soon_threadsafe=lambda fn: None, done_callback=print
                )
        return coro.cr_frame

    assert asyncio.run(outer()) is None  # closed


def test_a_coroutine_with_extra_arguments_is_refused_and_closed() -> None:
    async def main() -> int:
        return 1

    coro = main()
    with pytest.raises(TypeError, match="extra arguments"):
        asyncio_guest.run(coro, 1)
    assert coro.cr_frame is None


def _policy_loop() -> asyncio.AbstractEventLoop | None:
    """The policy's loop for this thread, never made here (3.14+: no warning)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
    local = getattr(policy, "_local", None)
    return getattr(local, "_loop", None)


def test_the_loop_made_for_the_run_is_the_policys_loop_during_it() -> None:
    """As ``asyncio.run`` without ``loop_factory``: old code asks the policy."""

    async def main() -> bool:
        return _policy_loop() is asyncio.get_running_loop()

    assert asyncio_guest.run(main) is True
    assert _policy_loop() is None  # and no loop is left there after it

    async def other() -> bool:
        return _policy_loop() is asyncio.get_running_loop()

    # With a loop_factory asyncio.run leaves the policy alone; so do we.
    assert asyncio_guest.run(other, loop_factory=asyncio.SelectorEventLoop) is False


def test_a_run_leaves_no_reference_cycle_behind() -> None:
    """Everything a finished run made is freed by reference counting when the
    run returns, as after ``asyncio.run``. The engine and its lifecycle held
    each other, and the loop its own bound method: a later collection, at any
    allocation of any thread, ran the loop's finalizers there, and a Ctrl+C
    landing in their Python code was lost ("Exception ignored")."""

    async def main() -> int:
        await asyncio.sleep(0.001)
        return 1

    gc.collect()
    gc.disable()
    try:
        assert asyncio_guest.run(main) == 1
        assert gc.collect() == 0
        assert asyncio.run(main()) == 1  # the same measure, on plain asyncio
        assert gc.collect() == 0
    finally:
        gc.enable()
