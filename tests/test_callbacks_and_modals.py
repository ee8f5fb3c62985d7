"""``async_callback`` and ``run_modal`` on a plain queue host (tests/hosts.py).

The same helpers on the real toolkits are in the host scenario tests; here the
host is a queue drained by the test, so every step is deterministic.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import warnings
import weakref
from typing import Any

import outcome
import pytest

import asyncio_guest

from .hosts import QueueHost
from .loops import needs_eager_tasks


def _run_with_clicks(host: QueueHost, main: Any) -> Any:
    out = host.guest_run(main)
    return out.unwrap()


# ------------------------------------------------------------ async_callback


def test_a_click_starts_a_task_that_is_kept_until_it_ends(host: QueueHost) -> None:
    got: list[str] = []

    async def fetch(what: str) -> str:
        await asyncio.sleep(0.01)
        gc.collect()  # the task is referenced by the callback only
        await asyncio.sleep(0.01)
        got.append(what)
        return what

    callback = asyncio_guest.async_callback(fetch)

    async def main() -> str:
        done = asyncio.get_running_loop().create_future()
        # A host event, outside any tick: the widget calls the plain callback.
        host.in_host(lambda: done.set_result(callback("clicked")))
        task = await done
        assert callback.running == {task}
        return str(await task)

    assert _run_with_clicks(host, main) == "clicked"
    assert got == ["clicked"] and not callback.running


def test_a_failing_callback_task_is_reported_through_the_exception_handler(
    host: QueueHost,
) -> None:
    reported: list[dict[str, Any]] = []

    async def broken() -> None:
        await asyncio.sleep(0)
        raise ZeroDivisionError("in a click handler")

    callback = asyncio_guest.async_callback(broken)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        host.in_host(callback)
        while not reported:
            await asyncio.sleep(0.001)

    _run_with_clicks(host, main)
    (context,) = reported
    assert isinstance(context["exception"], ZeroDivisionError)
    assert "broken" in context["message"]


@pytest.mark.parametrize("on_busy", ["run", "ignore", "cancel"])
def test_a_second_click_while_the_first_task_runs(host: QueueHost, on_busy: Any) -> None:
    started: list[int] = []
    finished: list[int] = []
    cancelled: list[int] = []

    async def work(n: int) -> None:
        started.append(n)
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        finished.append(n)

    callback = asyncio_guest.async_callback(work, on_busy=on_busy)

    async def main() -> None:
        host.in_host(lambda: callback(1))
        while not started:
            await asyncio.sleep(0)
        host.in_host(lambda: callback(2))
        await asyncio.sleep(0.01)
        while callback.running:
            await asyncio.sleep(0.01)

    _run_with_clicks(host, main)
    if on_busy == "run":
        assert (started, sorted(finished), cancelled) == ([1, 2], [1, 2], [])
    elif on_busy == "ignore":
        assert (started, finished, cancelled) == ([1], [1], [])
    else:
        assert (started, finished, cancelled) == ([1, 2], [2], [1])


def test_cancel_leaves_a_task_an_earlier_click_cancelled_to_finish_its_clean_up(
    host: QueueHost,
) -> None:
    """Three quick clicks under ``on_busy="cancel"``: the second cancels the
    first, whose ``finally`` awaits (closing a connection); the third cancels
    the second only. Cancelled again, the first's clean-up was cut short."""
    record: list[str] = []

    async def work(n: int) -> None:
        record.append(f"{n} start")
        try:
            await asyncio.sleep(10)
        finally:
            record.append(f"{n} cleaning up")
            await asyncio.sleep(0.05)
            record.append(f"{n} clean")

    callback = asyncio_guest.async_callback(work, on_busy="cancel")

    async def main() -> None:
        for n in (1, 2, 3):
            host.in_host(lambda n=n: callback(n))
            await asyncio.sleep(0.01)
        while len(callback.running) > 1:
            await asyncio.sleep(0.01)
        (last,) = callback.running
        last.cancel()
        while callback.running:
            await asyncio.sleep(0.01)

    _run_with_clicks(host, main)
    assert record == [
        "1 start", "1 cleaning up", "2 start", "2 cleaning up", "3 start",
        "1 clean", "2 clean", "3 cleaning up", "3 clean",
    ], record


def test_sys_exit_in_a_callbacks_task_ends_the_run_without_an_error_report(
    host: QueueHost, caplog: pytest.LogCaptureFixture
) -> None:
    """A Quit button's handler calls ``sys.exit(0)``: the run ends with
    ``SystemExit``, as the program asked, and nothing is reported as an error
    of the callback (a plain ``command=sys.exit`` says nothing either)."""
    reported: list[dict[str, Any]] = []

    @asyncio_guest.async_callback
    async def quit_app() -> None:
        await asyncio.sleep(0)
        raise SystemExit(0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        host.in_host(quit_app)
        await asyncio.sleep(10)

    with caplog.at_level(logging.WARNING):
        out = host.guest_run(main)
    assert isinstance(out, outcome.Error) and type(out.error) is SystemExit, out
    assert reported == [] and caplog.records == []


def test_arguments_the_callback_does_not_take_are_dropped(host: QueueHost) -> None:
    seen: list[tuple[Any, ...]] = []

    async def no_args() -> None:
        seen.append(())

    async def one_arg(event: Any) -> None:
        seen.append((event,))

    async def any_args(*args: Any) -> None:
        seen.append(args)

    callbacks = [asyncio_guest.async_callback(f) for f in (no_args, one_arg, any_args)]

    async def main() -> None:
        for cb in callbacks:  # as Qt's clicked(checked) or Tk's bind(event) call them
            host.in_host(lambda cb=cb: cb("event", "extra"))
        while len(seen) < 3:
            await asyncio.sleep(0.001)

    _run_with_clicks(host, main)
    assert seen == [(), ("event",), ("event", "extra")]


def test_as_a_method_decorator_each_object_has_its_own_policy(host: QueueHost) -> None:
    class Panel:
        def __init__(self, name: str) -> None:
            self.name = name
            self.runs = 0

        @asyncio_guest.async_callback(on_busy="ignore")
        async def refresh(self) -> str:
            self.runs += 1
            await asyncio.sleep(0.02)
            return self.name

    a, b = Panel("a"), Panel("b")

    async def main() -> list[Any]:
        tasks: list[Any] = []
        host.in_host(lambda: tasks.extend([a.refresh(), a.refresh(), b.refresh()]))
        while len(tasks) < 3:
            await asyncio.sleep(0.001)
        assert tasks[1] is None  # a is busy: ignored; b has its own policy
        return [await tasks[0], await tasks[2]]

    assert _run_with_clicks(host, main) == ["a", "b"]
    assert (a.runs, b.runs) == (1, 1)


def test_two_attributes_over_one_method_keep_their_own_policies(host: QueueHost) -> None:
    """One async method, two callbacks: a button that ignores double clicks and
    a shortcut that restarts the work. Each object gets one callback per
    attribute, with that attribute's policy (they shared the first one made).

    The work waits for an event, not a sleep: on Windows the clock ticks every
    15.6 ms and asyncio runs a timer up to one tick early, so two sleeps begun
    30 ms apart could end in either order (seen once under Wine)."""
    release = asyncio.Event()

    class Panel:
        def __init__(self) -> None:
            self.log: list[str] = []

        async def _refresh(self, who: str) -> None:
            self.log.append(f"start {who}")
            try:
                await release.wait()
                self.log.append(f"end {who}")
            except asyncio.CancelledError:
                self.log.append(f"cancelled {who}")
                raise

        refresh_button = asyncio_guest.async_callback(_refresh, on_busy="ignore")
        refresh_shortcut = asyncio_guest.async_callback(_refresh, on_busy="cancel")

    panel = Panel()

    async def main() -> None:
        assert (panel.refresh_button.on_busy, panel.refresh_shortcut.on_busy) == (
            "ignore", "cancel"
        )
        host.in_host(lambda: panel.refresh_button("button"))
        await asyncio.sleep(0.01)
        host.in_host(lambda: panel.refresh_button("button again"))  # ignored
        host.in_host(lambda: panel.refresh_shortcut("F5"))  # its own tasks: none busy
        await asyncio.sleep(0.01)
        host.in_host(lambda: panel.refresh_shortcut("F5 again"))  # cancels F5's
        while len(panel.log) < 4:
            await asyncio.sleep(0.001)
        release.set()  # wakes its waiters in the order they began to wait
        while panel.refresh_button.running or panel.refresh_shortcut.running:
            await asyncio.sleep(0.01)

    _run_with_clicks(host, main)
    assert panel.log == [
        "start button", "start F5", "cancelled F5", "start F5 again",
        "end button", "end F5 again",
    ], panel.log


def test_a_methods_callback_does_not_keep_its_object_alive(host: QueueHost) -> None:
    """A connection holds the object's callback (``button.clicked.connect(
    self.on_click)``): the callback must not hold the object, or a widget and
    its callback keep each other alive through the toolkit's C++ side, where
    no collection sees the cycle. Once the object is gone, a call does nothing."""
    ran: list[str] = []

    class Window:
        @asyncio_guest.async_callback
        async def on_click(self, what: str) -> None:
            ran.append(what)

    async def main() -> tuple[bool, Any]:
        window = Window()
        connection = window.on_click  # what a signal connection keeps
        connection("while alive")
        await asyncio.sleep(0.01)  # (its task, which holds the object, has ended)
        gone = weakref.ref(window)
        del window  # no collection: a reference cycle would keep it
        alive = gone() is not None
        result = connection("after")
        await asyncio.sleep(0.01)
        return alive, result

    alive, result = _run_with_clicks(host, main)
    assert not alive, "the object's callback kept the object alive"
    assert result is None and ran == ["while alive"]


@pytest.mark.parametrize("how", ["made in the run", "loop given"])
def test_a_call_from_another_thread_is_handed_to_the_runs_thread(
    host: QueueHost, how: str
) -> None:
    """A Qt signal emitted in a QThread reaches a plain callable in the
    emitting thread (PySide6): the call is handed to the run's thread, as a
    queued connection would be, and the task runs there. (It failed with "no
    asyncio guest run on this thread", and with ``loop=`` given, the task was
    made on the worker thread.)"""
    ran_on: list[int] = []

    async def handler(n: int) -> int:
        ran_on.append(threading.get_ident())
        return n

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        if how == "loop given":
            callback = asyncio_guest.async_callback(handler, loop=loop)
        else:
            callback = asyncio_guest.async_callback(handler)
        returned: list[Any] = []
        worker = threading.Thread(target=lambda: returned.append(callback(7)))
        worker.start()
        await asyncio.to_thread(worker.join)
        for _ in range(2000):  # (bounded: a call lost in the worker fails, not hangs)
            if ran_on and not callback.running:
                break
            await asyncio.sleep(0.001)
        return returned

    assert _run_with_clicks(host, main) == [None]  # handed over: no task yet there
    assert ran_on == [threading.get_ident()]


def test_as_a_method_decorator_on_a_slotted_class_it_says_what_works() -> None:
    """Without a ``__dict__`` an object cannot keep its callback (a fresh one at
    each access would lose the policy and the strong reference to its tasks):
    a clear error, and the two ways that work."""

    class Slotted:
        __slots__ = ("runs",)

        def __init__(self) -> None:
            self.runs = 0

        @asyncio_guest.async_callback(on_busy="ignore")
        async def refresh(self) -> None:
            self.runs += 1

    class SlottedWithDict:
        __slots__ = ("__dict__", "runs")

        def __init__(self) -> None:
            self.runs = 0

        @asyncio_guest.async_callback(on_busy="ignore")
        async def refresh(self) -> None:
            self.runs += 1
            await asyncio.sleep(0.02)

    with pytest.raises(TypeError, match=r"__slots__.*'__dict__'.*async_callback\(obj\.method\)"):
        Slotted().refresh  # noqa: B018 (the access is what fails)
    obj = SlottedWithDict()
    assert obj.refresh is obj.refresh

    async def main() -> int:
        first = obj.refresh()
        assert obj.refresh() is None  # busy: ignored, per object
        assert first is not None
        await first
        return obj.runs

    assert asyncio_guest.run(main) == 1


def test_an_override_that_awaits_the_parents_callback_runs_the_parents(
    host: QueueHost,
) -> None:
    class Base:
        @asyncio_guest.async_callback
        async def fetch(self) -> list[str]:
            await asyncio.sleep(0)
            return ["base"]

    class Child(Base):
        calls = 0

        @asyncio_guest.async_callback
        async def fetch(self) -> list[str]:
            Child.calls += 1
            if Child.calls > 1:  # super() ran this override again
                raise RecursionError("Child.fetch ran again for super().fetch()")
            return [*(await super().fetch()), "child"]

    child = Child()

    async def main() -> Any:
        tasks: list[Any] = []
        host.in_host(lambda: tasks.append(child.fetch()))
        while not tasks:
            await asyncio.sleep(0.001)
        return await asyncio.wait_for(tasks[0], 5)

    assert _run_with_clicks(host, main) == ["base", "child"]


def test_called_with_no_guest_run_it_says_so() -> None:
    async def fetch() -> None:
        pass

    with pytest.raises(RuntimeError, match="no asyncio guest run"):
        asyncio_guest.async_callback(fetch)()
    with pytest.raises(ValueError, match="on_busy"):
        asyncio_guest.async_callback(fetch, on_busy="twice")  # type: ignore[call-overload]


# ----------------------------------------------------------------- run_modal


def test_called_after_its_run_ended_it_says_so_and_leaves_no_coroutine() -> None:
    """A callback bound to a run's loop (``loop=``) and clicked after that run
    ended: a clear error, before any coroutine is made (it was "Event loop is
    closed" and a "coroutine ... was never awaited" warning)."""
    made: list[str] = []

    async def fetch() -> None:
        made.append("coroutine ran")

    async def main() -> Any:
        return asyncio_guest.async_callback(fetch, loop=asyncio.get_running_loop())

    callback = asyncio_guest.run(main)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="after its guest run ended"):
            callback()
        gc.collect()
    assert made == []


def test_a_plain_function_given_for_an_async_one_is_a_clear_type_error(
    host: QueueHost,
) -> None:
    def not_async() -> None:
        pass

    callback = asyncio_guest.async_callback(not_async)  # type: ignore[arg-type, var-annotated]

    async def main() -> None:
        with pytest.raises(TypeError, match="returned None, not a coroutine"):
            callback()

    _run_with_clicks(host, main)


@pytest.mark.parametrize("fd_watch", [False, True], ids=["backend-thread", "host-fd-watch"])
def test_a_dialog_closing_with_a_tick_queued_keeps_one_tick_in_flight(
    host: QueueHost, fd_watch: bool
) -> None:
    """The dialog closes while a tick a worker posted is still in the host's
    queue. ``run_modal`` then runs a tick at once, for the awaiting coroutine;
    the queued one stays owed, so nothing posts another before it runs: one
    tick in flight, as ever (``QueueHost`` counts them). It was two: the
    immediate tick cleared the posted flag, and its end posted the next one
    beside the queued tick (seen once in CI, under Wine)."""

    async def main() -> str:
        loop = asyncio.get_running_loop()

        def dialog() -> str:
            # A worker's call_soon_threadsafe while the dialog is open; the host
            # runs nothing more before the dialog closes.
            worker = threading.Thread(target=loop.call_soon_threadsafe, args=(lambda: None,))
            worker.start()
            worker.join()
            return "OK pressed"

        answer = await asyncio_guest.run_modal(dialog)
        for _ in range(3):
            await asyncio.sleep(0)  # work left when the immediate tick ends
        return answer

    kwargs = {} if fd_watch else {"fd_watcher": None}
    assert host.guest_run(main, **kwargs).unwrap() == "OK pressed"


def test_run_modal_keeps_asyncio_running_while_the_dialog_is_open(host: QueueHost) -> None:
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    def dialog() -> str:
        # A modal dialog: a nested host loop, here until the guest ticked 5 more times.
        seen = len(ticks)
        host.run_until(lambda: len(ticks) >= seen + 5)
        return "OK pressed"

    async def main() -> str:
        t = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        answer = await asyncio_guest.run_modal(dialog)
        t.cancel()
        return answer

    assert _run_with_clicks(host, main) == "OK pressed"


def test_run_modal_raises_what_the_dialog_raised(host: QueueHost) -> None:
    def dialog() -> None:
        raise LookupError("no such file")

    async def main() -> None:
        await asyncio_guest.run_modal(dialog)

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error) and isinstance(out.error, LookupError)


async def _record_steps(ticks: list[float]) -> None:
    """A task that records when each of its steps runs: how far asyncio got."""
    while True:
        ticks.append(time.monotonic())
        await asyncio.sleep(0.002)


def _nested_host_loop(host: QueueHost, seconds: float = 0.1) -> str:
    """A modal dialog run the wrong way, straight from loop code: a nested host
    loop (posted callbacks, fd watches, timers) for ``seconds``, then "closed"."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        host.pump()
        time.sleep(0.001)
    return "closed"


def test_a_dialog_run_straight_from_a_task_pauses_asyncio_and_says_so(
    host: QueueHost, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail safe: the nested loop runs inside the tick, the guest waits for it
    (no crash, no re-entered task), resumes after it, and in debug mode the
    log names run_modal."""
    ticks: list[float] = []

    async def main() -> tuple[str, int, int]:
        t = asyncio.create_task(_record_steps(ticks))
        await asyncio.sleep(0.01)
        before = len(ticks)
        answer = _nested_host_loop(host)  # wrong, but must not break anything
        during = len(ticks) - before
        await asyncio.sleep(0.02)
        after = len(ticks)
        t.cancel()
        return answer, during, after - before

    caplog.set_level(logging.WARNING, logger="asyncio_guest")
    answer, during, resumed = host.guest_run(main, debug=True).unwrap()
    assert answer == "closed"
    assert during == 0  # paused while the nested loop ran
    assert resumed > 0  # and running again afterwards
    assert any("run_modal" in r.getMessage() for r in caplog.records)


def test_run_modal_outside_a_guest_run_is_an_error() -> None:
    async def main() -> None:
        await asyncio_guest.run_modal(lambda: None)

    with pytest.raises(RuntimeError, match="asyncio-guest run"):
        asyncio.run(main())


@needs_eager_tasks
def test_ignore_does_not_count_a_task_that_ended_in_its_eager_first_step(host: QueueHost) -> None:
    """With an eager task factory a handler that never waits ends inside the call
    that starts it; its done callbacks come a tick later. A second click meanwhile
    (the same host callback) finds nothing running: "ignore" must not drop it."""
    runs: list[int] = []

    @asyncio_guest.async_callback(on_busy="ignore")
    async def handler(n: int) -> int:
        runs.append(n)
        return n

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[arg-type]
        clicks: list[Any] = []
        host.in_host(lambda: clicks.extend([handler(1), handler(2)]))
        while len(clicks) < 2:
            await asyncio.sleep(0.001)
        return [None if task is None else await task for task in clicks]

    assert _run_with_clicks(host, main) == [1, 2]
    assert runs == [1, 2]


@needs_eager_tasks
@pytest.mark.parametrize("on_busy", ["ignore", "cancel"])
def test_a_call_from_the_first_tasks_eager_step_follows_on_busy(
    host: QueueHost, on_busy: str
) -> None:
    """The first step of a handler emits its own signal (a GTK entry's "changed"
    handler that sets the text): with an eager task factory that step runs inside
    the first call, before it has returned the task, and the second call must
    still see the first as running, as with lazy tasks."""
    events: list[str] = []

    @asyncio_guest.async_callback(on_busy=on_busy)  # type: ignore[arg-type]
    async def handler(n: int) -> None:
        events.append(f"start {n}")
        if n == 1:
            handler(2)  # the same signal again, from the first step
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            events.append(f"cancelled {n}")
            raise
        events.append(f"end {n}")

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)  # type: ignore[arg-type]
        host.in_host(lambda: handler(1))
        while not handler.running:
            await asyncio.sleep(0.001)
        while handler.running:
            await asyncio.sleep(0.01)

    _run_with_clicks(host, main)
    if on_busy == "ignore":
        assert events == ["start 1", "end 1"]
    else:
        assert events == ["start 1", "start 2", "cancelled 1", "end 2"]


@needs_eager_tasks
@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_ctrl_c_or_exit_from_an_eager_first_step_ends_the_run_not_the_host_callback(
    host: QueueHost, exc_type: type[BaseException]
) -> None:
    """A handler whose eager first step raises KeyboardInterrupt or SystemExit,
    started by host code: the run ends with it (main's ``finally`` runs), as from
    a lazy task's step; the host's callback returns normally (under GLib the
    exception would otherwise be printed, and SystemExit end the process there)."""
    record: list[str] = []

    @asyncio_guest.async_callback
    async def handler() -> None:
        raise exc_type(3)

    def click() -> None:
        try:
            record.append(f"callback returned {handler()!r}")
        except BaseException as exc:  # (what the fix stops: reported, not let into the host)
            record.append(f"callback raised {exc!r}")
            asyncio.get_running_loop().stop()

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)  # type: ignore[arg-type]
        host.in_host(click)
        try:
            await asyncio.sleep(10)
        finally:
            record.append("main's finally")

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error) and type(out.error) is exc_type, out
    assert record == ["callback returned None", "main's finally"]


@needs_eager_tasks
def test_a_dialog_run_straight_from_an_eager_first_step_pauses_asyncio_too(
    host: QueueHost, caplog: pytest.LogCaptureFixture
) -> None:
    """A widget callback's handler opens a dialog before its first await, with an
    eager task factory: the nested host loop runs inside create_task, outside any
    tick, while the handler is the current task. It must pause asyncio as from a
    lazy task (a tick run there would step the ticker inside the handler's step:
    "Cannot enter into task", the ticker lost and the run's shutdown hung), then
    everything resumes, and debug mode names run_modal."""
    ticks: list[float] = []
    errors: list[Any] = []

    @asyncio_guest.async_callback
    async def handler() -> tuple[str, int]:
        before = len(ticks)
        answer = _nested_host_loop(host)  # wrong, but must not break anything
        return answer, len(ticks) - before

    async def main() -> tuple[str, int, int]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: errors.append(context))
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[arg-type]
        t = asyncio.create_task(_record_steps(ticks))
        await asyncio.sleep(0.01)
        started: asyncio.Future[Any] = loop.create_future()
        host.in_host(lambda: started.set_result(handler()))
        answer, during = await (await started)
        before = len(ticks)
        await asyncio.sleep(0.02)
        t.cancel()
        return answer, during, len(ticks) - before

    caplog.set_level(logging.WARNING, logger="asyncio_guest")
    out = host.guest_run(main, debug=True, after_start=lambda task: None)
    answer, during, resumed = out.unwrap()
    assert errors == []
    assert answer == "closed"
    assert during == 0  # paused while the nested loop ran
    assert resumed > 0  # and running again afterwards
    assert any("run_modal" in r.getMessage() for r in caplog.records)
