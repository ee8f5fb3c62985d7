"""``asyncio_guest.wx`` on real wxPython (wxGTK under Xvfb): what the shared
scenarios (``tests/scenarios/harness_wx.py``) do not cover.

The wx application is the harness's (one per process, made at import).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from .child_process import ctrl_c, expect_line, reaped, start_child
from .scenarios import harness_wx
from .scenarios.harness import unavailable

if not harness_wx.HARNESSES:
    unavailable("wx", "wxPython does not import here (or no display)")

import wx

from asyncio_guest import async_callback
from asyncio_guest import wx as agwx
from asyncio_guest._core.fd_watch import WaitChoiceError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_T = TypeVar("_T")


def _run_with_frame(main: Callable[[], Awaitable[_T]]) -> tuple[_T, Any]:
    """``agwx.run(main)`` with a frame shown (destroyed after, unless the run did)."""
    frame = wx.Frame(None, title="test_wx_host")
    frame.Show()
    try:
        return agwx.run(main), frame
    finally:
        if frame:
            frame.Destroy()


def _child(code: str, *, argv: list[str] | None = None) -> subprocess.Popen[bytes]:
    return start_child(textwrap.dedent(code), *(argv or []))


def test_a_wx_timer_keeps_its_time_while_200_tasks_spin() -> None:
    """Busy ticks are idle-event turns: a wx.Timer still fires every 10 ms.

    (A busy tick re-posted with wx.CallAfter would starve it completely: wx
    handles events posted while it handles posted events in the same pass.)
    """
    interval_ms = 10
    fired: list[float] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        timer = wx.Timer()
        timer.Bind(wx.EVT_TIMER, lambda _evt: fired.append(time.perf_counter()))
        timer.Start(interval_ms)
        end = loop.time() + 1.0
        spins = [0]

        async def spin() -> None:
            while loop.time() < end:
                spins[0] += 1
                await asyncio.sleep(0)

        try:
            await asyncio.gather(*(spin() for _ in range(200)))
        finally:
            timer.Stop()
        return spins[0]

    spins, _ = _run_with_frame(main)
    assert spins > 2000, spins  # the guest was busy
    gaps = sorted(b - a for a, b in itertools.pairwise(fired))
    assert len(gaps) >= 50, f"the wx.Timer fired {len(fired)} times in 1 s"
    lateness = gaps[len(gaps) // 2] - interval_ms / 1000
    assert lateness < 0.005, f"median wx.Timer lateness {lateness * 1e3:.1f} ms"


def test_run_sync_soon_threadsafe_from_workers_lands_on_the_wx_thread_in_order() -> None:
    host = agwx.WxHost()
    got: dict[int, list[int]] = {t: [] for t in range(4)}
    on_main: list[bool] = []
    n = 500
    loop = wx.GUIEventLoop()

    def record(t: int, i: int) -> None:
        got[t].append(i)
        on_main.append(wx.IsMainThread())
        if sum(map(len, got.values())) == 4 * n:
            loop.Exit()

    def worker(t: int) -> None:
        for i in range(n):
            host.run_sync_soon_threadsafe(lambda t=t, i=i: record(t, i))
            if i % 50 == 0:
                time.sleep(0.001)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    watchdog = wx.CallLater(10_000, loop.Exit)
    try:
        loop.Run()
    finally:
        watchdog.Stop()
        for thread in threads:
            thread.join()
        host.close()
    assert all(got[t] == list(range(n)) for t in got), {t: len(v) for t, v in got.items()}
    assert all(on_main)


def test_the_idle_handler_is_bound_only_while_the_guest_is_busy() -> None:
    """wx sends an idle event after each of its events and each fd-watch tick:
    a handler of ours bound for good would run on every one (bench threadsafe).
    A busy chain (each callback queues the next from the host thread) still
    runs to its end through idle turns, and leaves nothing bound."""
    app = wx.GetApp()
    host = agwx.WxHost()
    loop = wx.GUIEventLoop()
    ran: list[int] = []
    bound_midway: list[bool] = []

    def chain(n: int) -> None:
        ran.append(n)
        if n == 50:
            bound_midway.append(host._busy)
        if n < 300:
            host.run_sync_soon_not_threadsafe(lambda: chain(n + 1))
        else:
            wx.CallLater(50, loop.Exit)

    try:
        assert not app.Unbind(wx.EVT_IDLE, handler=host._idle_handler)
        host.run_sync_soon_threadsafe(lambda: chain(0))
        watchdog = wx.CallLater(10_000, loop.Exit)
        try:
            loop.Run()
        finally:
            watchdog.Stop()
        assert ran == list(range(301))
        assert bound_midway == [True]
        # Unbind says whether it found the handler bound (and unbinds it).
        assert not app.Unbind(wx.EVT_IDLE, handler=host._idle_handler)
    finally:
        host.close()


def test_close_is_idempotent_and_drops_what_was_queued() -> None:
    host = agwx.WxHost()
    ran: list[str] = []
    host.run_sync_soon_threadsafe(lambda: ran.append("queued before close"))
    host.close()
    host.close()
    assert host.closed
    with pytest.raises(RuntimeError, match="closed"):
        host.run_sync_soon_threadsafe(lambda: ran.append("after"))
    with pytest.raises(RuntimeError, match="closed"):
        host.run_sync_soon_not_threadsafe(lambda: ran.append("after"))
    # The wx.CallAfter already posted finds the host closed.
    loop = wx.GUIEventLoop()
    wx.CallLater(50, loop.Exit)
    loop.Run()
    assert ran == []


async def _uses_a_backend_thread() -> bool:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.05)  # one real wait
    backend = getattr(getattr(loop, "_guest", None), "backend", None)
    return getattr(backend, "thread", None) is not None


def test_without_a_glib_watch_the_wait_is_the_backend_thread_and_fd_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """wxMSW, wxMac, or wxGTK without PyGObject: nothing can watch the fd."""
    monkeypatch.setattr(agwx, "_glib_watcher", lambda: None)
    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", "auto")
    assert _run_with_frame(_uses_a_backend_thread)[0] is True
    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", "fd")
    with pytest.raises(WaitChoiceError, match="fd_watcher"):
        _run_with_frame(_uses_a_backend_thread)


def _glib_watch_here() -> bool:
    watcher = agwx._glib_watcher()
    if watcher is None:
        return False
    watcher.close()
    return True


@pytest.mark.skipif(
    not _glib_watch_here(), reason="wxGTK with PyGObject only (GLib watches the fd)"
)
def test_on_wxgtk_with_pygobject_glib_watches_the_fd_and_no_thread_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", "auto")
    assert _run_with_frame(_uses_a_backend_thread)[0] is False


def test_a_run_under_w_error_is_not_ended_by_pygobjects_import_warning() -> None:
    """Probing for GLib (the zero-thread wait on wxGTK) imports PyGObject, whose
    importer warns on some builds (Debian's, for Python 3.11): under ``-W
    error`` that warning must not end the run, nor turn the probe into "no GLib"."""
    proc = _child(
        """
        import warnings
        warnings.simplefilter("error")  # as -W error, before anything is imported
        import asyncio, sys, wx
        import asyncio_guest.wx as agwx
        app = wx.App(False)
        async def main():
            await asyncio.sleep(0.01)
            return "ok"
        print(agwx.run(main), agwx._glib_watcher() is not None, "gi" in sys.modules)
        """,
    )
    out_b, err_b = proc.communicate(timeout=60)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, err
    # With PyGObject importable, the probe still finds GLib under -W error.
    assert out.split() in (["ok", "True", "True"], ["ok", "False", "False"]), (out, err)
    assert out.split()[1] == str(_glib_watch_here()), (out, err)


def test_exit_main_loop_mid_run_cancels_main_with_a_clear_message_and_loses_nothing() -> None:
    seen: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        wx.CallLater(30, wx.GetApp().ExitMainLoop)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            # The guest still runs while it shuts down: a worker's callbacks
            # sent now arrive, in order.
            got: list[int] = []
            done = asyncio.Event()

            def worker() -> None:
                for i in range(100):
                    loop.call_soon_threadsafe(got.append, i)
                loop.call_soon_threadsafe(done.set)

            threading.Thread(target=worker).start()
            await done.wait()
            seen.append(got)
            raise

    with pytest.raises(asyncio.CancelledError, match="wx main loop ended"):
        _run_with_frame(main)
    assert seen == [(agwx.CLOSED_MESSAGE,), list(range(100))]


def test_the_last_window_closed_mid_run_cancels_main() -> None:
    async def main() -> str:
        frame = wx.GetTopLevelWindows()[0]
        wx.CallLater(30, frame.Close)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)
            return "closed"
        return "not closed"

    result, frame = _run_with_frame(main)
    assert result == "closed"
    assert not frame  # the frame is gone: destroyed by its close


def test_start_guest_run_in_the_programs_own_main_loop() -> None:
    frame = wx.Frame(None, title="own MainLoop")
    frame.Show()
    results: list[Any] = []

    async def main() -> str:
        await asyncio.sleep(0.01)
        return await asyncio.to_thread(lambda: "from a thread")

    def done(outcome: Any) -> None:
        results.append(outcome.unwrap())
        frame.Close()

    task = agwx.start_guest_run(main, done_callback=done)
    assert isinstance(task, asyncio.Task)
    wx.GetApp().MainLoop()
    assert results == ["from a thread"]


def test_run_with_no_window_runs_a_loop_of_its_own() -> None:
    assert not wx.GetTopLevelWindows()

    async def main() -> str:
        await asyncio.sleep(0.02)
        return "no window needed"

    assert agwx.run(main) == "no window needed"


def test_a_window_destroyed_before_the_run_does_not_end_it() -> None:
    """A frame ``Destroy()`` left for deletion at the next idle time is still
    listed by ``wx.GetTopLevelWindows()``: the run entered ``MainLoop``, the
    deletion ended it, and ``main`` was cancelled before its first step."""
    frame = wx.Frame(None, title="destroyed first")
    frame.Show()
    frame.Destroy()
    assert wx.GetTopLevelWindows()  # still listed

    async def main() -> str:
        await asyncio.sleep(0.05)
        return "ran"

    assert agwx.run(main) == "ran"


def test_show_modal_keeps_asyncio_running_and_cancel_ends_the_dialog() -> None:
    async def main() -> tuple[int, int, int]:
        parent = wx.GetTopLevelWindows()[0]

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(100):
                writer.write(data)
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        dialog = wx.Dialog(parent, title="modal")
        trips = [0]

        async def meanwhile() -> None:
            while not dialog.IsModal():
                await asyncio.sleep(0.005)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(20):  # sockets work while the dialog's loop runs
                writer.write(b"ping")
                assert await reader.readexactly(4) == b"ping"
                trips[0] += 1
            writer.close()
            dialog.EndModal(wx.ID_OK)

        helper = asyncio.create_task(meanwhile())
        code = await asyncio.wait_for(agwx.show_modal(dialog), 10)
        await helper
        # Cancelling the awaiting task ends the dialog.
        waiting = asyncio.create_task(agwx.show_modal(dialog))
        while not dialog.IsModal():
            await asyncio.sleep(0.005)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.sleep(0.02)
        still_modal = int(dialog.IsModal())
        dialog.Destroy()
        server.close()
        await server.wait_closed()
        return code, trips[0], still_modal

    result, _ = _run_with_frame(main)
    assert result == (wx.ID_OK, 20, 0)


_MODAL_AT_THE_END_CHILD = """
import asyncio, sys, wx
import asyncio_guest.wx as agwx
from tests.wx_display import open_x_display_first

open_x_display_first()  # see there
app = wx.App(False)
frame = None
if sys.argv[1] == "frame":
    frame = wx.Frame(None, title="modal at the end")
    frame.Show()

async def main():
    for n in range(int(sys.argv[3])):  # a second one opens on top of the first
        dialog = wx.Dialog(frame, title=f"still open {n}")
        asyncio.create_task(agwx.show_modal(dialog))
        while not dialog.IsModal():
            await asyncio.sleep(0.005)
    if sys.argv[2] == "ctrl-c":
        print("ready", flush=True)
        await asyncio.sleep(60)
    return "main's value"

try:
    print(agwx.run(main), flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(3)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX here")
@pytest.mark.parametrize("dialogs", ["1", "2"])
@pytest.mark.parametrize("ending", ["main-returns", "ctrl-c"])
@pytest.mark.parametrize("window", ["frame", "no-frame"])
def test_the_run_ends_while_a_show_modal_dialog_is_open(
    window: str, ending: str, dialogs: str
) -> None:
    """``main`` ends (or Ctrl+C) with a ``show_modal`` dialog open: the dialog is
    ended and ``run`` returns (or raises). wx's ``ExitMainLoop()`` and
    ``Exit()`` act only on the active loop, the dialog's then: the run hung in
    ``MainLoop`` (or in its own loop, without a window) for good. With two
    dialogs open (two tasks, the second's loop inside the first's), the first
    one's ``EndModal`` ended nothing and the run hung in its loop, with no
    window left to answer."""
    with reaped(_child(_MODAL_AT_THE_END_CHILD, argv=[window, ending, dialogs])) as proc:
        if ending == "ctrl-c":
            expect_line(proc, b"ready\n")
            out, err, _ = ctrl_c(proc, timeout=20)
        else:
            out, err = proc.communicate(timeout=20)
    if ending == "ctrl-c":
        assert (proc.returncode, out) == (3, b"KeyboardInterrupt\n"), (proc.returncode, out, err)
    else:
        assert (proc.returncode, out) == (0, b"main's value\n"), (proc.returncode, out, err)


_CANCEL_UNDER_ANOTHER_DIALOG_CHILD = """
import asyncio, time, wx
import asyncio_guest.wx as agwx
from tests.wx_display import open_x_display_first

open_x_display_first()  # see there
app = wx.App(False)
frame = wx.Frame(None, title="nested dialogs")
frame.Show()
began = time.monotonic()

async def main():
    outer, inner = wx.Dialog(frame, title="outer"), wx.Dialog(frame, title="inner")
    outer_task = asyncio.create_task(agwx.show_modal(outer))
    while not outer.IsModal():
        await asyncio.sleep(0.005)
    inner_task = asyncio.create_task(agwx.show_modal(inner))
    while not inner.IsModal():
        await asyncio.sleep(0.005)
    outer_task.cancel()  # the program gives up on the outer one
    try:
        await outer_task
    except asyncio.CancelledError:
        print("outer cancelled", flush=True)
    await asyncio.sleep(0.2)
    inner.EndModal(wx.ID_OK)  # the user answers the inner one
    print("inner returned", await inner_task == wx.ID_OK, flush=True)
    while outer.IsModal():  # its loop ends now, as the inner one's has
        await asyncio.sleep(0.005)
    return "main's value"

print(agwx.run(main), round(time.monotonic() - began) < 10, flush=True)
"""


def test_a_dialog_cancelled_under_another_one_ends_when_that_one_closes() -> None:
    """Two ``show_modal`` dialogs, the second on top; the first one's task is
    cancelled: its task ends at once, its dialog's loop ends when the one
    above it closes, and the run goes on to its end. (It hung in that loop.)"""
    with reaped(_child(_CANCEL_UNDER_ANOTHER_DIALOG_CHILD)) as proc:
        out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (
        0, b"outer cancelled\ninner returned True\nmain's value True\n"
    ), (proc.returncode, out, err)


def test_async_callback_is_a_bind_handler() -> None:
    async def main() -> list[Any]:
        parent = wx.GetTopLevelWindows()[0]
        button = wx.Button(parent, label="async")
        got: list[Any] = []
        clicked = asyncio.Event()

        async def on_click(event: Any) -> None:
            await asyncio.sleep(0.005)
            got.append((type(event).__name__, event.GetId() == button.GetId()))
            clicked.set()

        button.Bind(wx.EVT_BUTTON, async_callback(on_click))
        event = wx.CommandEvent(wx.wxEVT_BUTTON, button.GetId())
        event.SetEventObject(button)
        wx.CallAfter(button.GetEventHandler().ProcessEvent, event)
        await asyncio.wait_for(clicked.wait(), 10)
        return got

    result, _ = _run_with_frame(main)
    assert result == [("CommandEvent", True)]


def test_an_exception_deep_in_a_task_surfaces_from_run() -> None:
    async def deep() -> None:
        await asyncio.sleep(0.001)
        raise KeyError("deep in a task")

    async def middle() -> None:
        await asyncio.gather(asyncio.sleep(0.01), asyncio.create_task(deep()))

    async def main() -> None:
        await asyncio.create_task(middle())

    with pytest.raises(KeyError, match="deep in a task") as info:
        _run_with_frame(main)
    assert any(entry.name == "deep" for entry in info.traceback)


_CTRL_C_CHILD = """
import asyncio, signal, sys, wx
import asyncio_guest.wx as agwx
from tests.wx_display import open_x_display_first

open_x_display_first()  # see there
app = wx.App(False)  # sets SIGINT to SIG_DFL, as every wx program gets it
frame = wx.Frame(None, title="ctrl-c")
frame.Show()
seen = []

async def main():
    print("ready", flush=True)
    try:
        await asyncio.sleep(60)
    finally:
        seen.append("main's finally ran")

try:
    agwx.run(main)
except KeyboardInterrupt:
    print("KeyboardInterrupt", seen, signal.getsignal(signal.SIGINT) == signal.SIG_DFL, flush=True)
    sys.exit(3)
print("returned", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX here")
def test_ctrl_c_in_a_plain_wx_program_cancels_main_and_raises_keyboard_interrupt() -> None:
    with reaped(_child(_CTRL_C_CHILD)) as proc:
        expect_line(proc, b"ready\n")
        time.sleep(0.3)  # wx idles now, blocked in its own wait
        out, err, elapsed = ctrl_c(proc, timeout=20)
    assert proc.returncode == 3, (proc.returncode, out, err)
    assert out == b"KeyboardInterrupt [\"main's finally ran\"] True\n", (out, err)
    assert elapsed < 5.0, elapsed


_TWO_CTRL_C_CHILD = """
import asyncio, sys, time, wx
import asyncio_guest.wx as agwx
from tests.wx_display import open_x_display_first

open_x_display_first()  # see there
app = wx.App(False)
frame = wx.Frame(None, title="ctrl-c twice")
frame.Show()

async def main():
    print("ready", flush=True)
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        print("stubborn", flush=True)
        await asyncio.shield(asyncio.sleep(30))  # a shutdown that takes its time

try:
    agwx.run(main)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(3)
print("returned", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX here")
def test_a_second_ctrl_c_ends_a_stubborn_shutdown_at_once() -> None:
    with reaped(_child(_TWO_CTRL_C_CHILD)) as proc:
        expect_line(proc, b"ready\n")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        expect_line(proc, b"stubborn\n")
        time.sleep(0.3)
        out, err, elapsed = ctrl_c(proc, timeout=20)
    assert proc.returncode == 3, (proc.returncode, out, err)
    assert out == b"KeyboardInterrupt\n", (out, err)
    assert elapsed < 5.0, elapsed  # not the 30 s the shutdown wanted


_CANCELLED_DIALOG_DESTROYED_CHILD = """
import asyncio, sys, wx
import asyncio_guest.wx as agwx
from tests.wx_display import open_x_display_first

open_x_display_first()  # see there
app = wx.App(False)
frame = wx.Frame(None, title="cancelled dialog")
frame.Show()

async def about():  # as examples/wx_app.py writes it
    dialog = wx.Dialog(frame, title="about")
    try:
        return await agwx.show_modal(dialog)
    finally:
        dialog.Destroy()

async def main():
    async def busy():  # a busy guest ticks from wx's idle turns
        while True:
            await asyncio.sleep(0)
    spinner = asyncio.create_task(busy())
    for _ in range(5):
        try:
            await asyncio.wait_for(about(), 0.2)
        except asyncio.TimeoutError:
            pass
    spinner.cancel()
    return "alive"

print(agwx.run(main), flush=True)
"""


@pytest.mark.parametrize("wait", ["thread", "fd"])
def test_a_cancelled_show_modal_returns_once_the_dialog_has_closed(
    wait: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's ``finally: dialog.Destroy()`` (the example's own pattern) ran
    while ShowModal had not yet returned, inside the dialog's ending loop, whose
    idle pass freed the dialog under it: GTK-CRITICAL, and the process crashed
    (segfault, 2 runs in 6). The cancelled task now goes on once ShowModal has
    returned."""
    if wait == "fd" and not _glib_watch_here():
        pytest.skip("the zero-thread wait needs PyGObject beside wxGTK")
    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", wait)  # the child's
    with reaped(_child(_CANCELLED_DIALOG_DESTROYED_CHILD)) as proc:
        out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, b"alive\n"), (proc.returncode, out, err)
    assert b"CRITICAL" not in err, err


def test_an_async_callbacks_task_reads_its_wx_event_after_the_handler_returned() -> None:
    """A timer's or a button's event is wx's, gone once the handler has returned,
    and the task's first step runs after that: reading it crashed the process,
    and a posted event (wx.lib.newevent) was "deleted". The task gets a copy."""
    import wx.lib.newevent

    data_event, evt_data = wx.lib.newevent.NewEvent()

    async def main() -> list[Any]:
        parent = wx.GetTopLevelWindows()[0]
        got: list[Any] = []
        timer = wx.Timer(parent)

        async def on_timer(event: Any) -> None:  # reads it before any await
            got.append(("timer", event.GetInterval(), event.GetTimer() is timer))

        async def on_data(event: Any) -> None:
            await asyncio.sleep(0)
            got.append(("data", event.value))

        parent.Bind(wx.EVT_TIMER, async_callback(on_timer), timer)
        parent.Bind(evt_data, async_callback(on_data))
        timer.StartOnce(10)
        threading.Thread(target=wx.PostEvent, args=(parent, data_event(value=7))).start()
        while len(got) < 2:
            await asyncio.sleep(0.005)
        return sorted(got)

    result, _ = _run_with_frame(main)
    assert result == [("data", 7), ("timer", 10, True)]


_IDLE_MORE_CHILD = """
import asyncio, sys, wx
import asyncio_guest.wx as agwx
from tests.wx_display import open_x_display_first

open_x_display_first()  # see there
app = wx.App(False)
frame = wx.Frame(None, title="idle more")
frame.Show()

def on_idle(event):  # an app that does work in every idle turn
    event.RequestMore()
    event.Skip()

frame.Bind(wx.EVT_IDLE, on_idle)

async def main():
    if sys.argv[1] == "busy":
        n = 0
        while n < 2000:  # main ends from a busy tick (an idle-event turn)
            n += 1
            await asyncio.sleep(0)
    else:
        await asyncio.sleep(0.3)
    return "ended"

print(agwx.run(main), flush=True)
"""


@pytest.mark.parametrize("ending", ["idle", "busy"])
def test_run_returns_beside_an_idle_handler_that_asks_for_more(ending: str) -> None:
    """wxGTK's idle handling loops while the program's EVT_IDLE asks for more and
    no GTK event is pending: the loop's exit, scheduled from a posted event or
    an idle turn, was never taken, and ``run`` hung after main had returned."""
    with reaped(_child(_IDLE_MORE_CHILD, argv=[ending])) as proc:
        out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, b"ended\n"), (proc.returncode, out, err)
