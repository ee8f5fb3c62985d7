"""``asyncio_guest.qt`` on a real Qt (offscreen): what the shared scenarios do not cover.

One binding per process (``tests/scenarios/harness_qt.py`` chooses it;
``ASYNCIO_GUEST_QT=pyside6|pyqt6``). Tests that need a fresh process (binding
choice, the dispatcher, Ctrl+C) run a child Python and may use either binding.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import warnings
from typing import Any

import pytest

import asyncio_guest

from .scenarios import harness_qt
from .scenarios.harness import unavailable

if not harness_qt.HARNESSES:
    unavailable("qt", "no Qt binding imports here")

H: Any = harness_qt.HARNESSES[0]
qt: Any = H.qt
b: Any = H.b
app: Any = H.app
W: Any = b.QtWidgets
INSTALLED = [n for n in ("PySide6", "PyQt6") if importlib.util.find_spec(n) is not None]


def _child(code: str, *, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    full_env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    full_env.pop("ASYNCIO_GUEST_QT", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def _later(ms: int, fn: Any) -> None:
    """A host event after ``ms`` (a single-shot QTimer made on the host thread)."""
    b.QTimer.singleShot(ms, fn)


# ------------------------------------------------------------ primitives


def test_worker_threads_flooding_call_soon_threadsafe_all_land_on_the_qt_thread() -> None:
    per_thread, n_threads = 5000, 4

    async def main() -> dict[int, list[int]]:
        loop = asyncio.get_running_loop()
        seen: dict[int, list[int]] = {i: [] for i in range(n_threads)}
        wrong_thread: list[int] = []
        done = asyncio.Event()
        remaining = [per_thread * n_threads]

        def record(t: int, i: int) -> None:
            if threading.current_thread() is not threading.main_thread():
                wrong_thread.append(i)
            seen[t].append(i)
            remaining[0] -= 1
            if not remaining[0]:
                done.set()

        def flood(t: int) -> None:
            for i in range(per_thread):
                loop.call_soon_threadsafe(record, t, i)

        threads = [threading.Thread(target=flood, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        await asyncio.wait_for(done.wait(), 30)
        for th in threads:
            th.join()
        assert not wrong_thread
        return seen

    seen = qt.run(main, app=app)
    for t in seen:
        assert seen[t] == list(range(per_thread)), "order per thread lost"


def test_qthost_coalesces_wake_ups_from_many_threads() -> None:
    """Many submits from threads while the host is busy cost one pending event."""
    host = qt.QtHost(app)
    try:
        ran: list[int] = []
        posts: list[int] = []
        real_post = host._post_wake

        def counting_post() -> None:
            posts.append(1)
            real_post()

        host._queue._post = counting_post  # count, then post as usual
        def submit_500() -> None:
            for _ in range(500):
                host.run_sync_soon_threadsafe(lambda: ran.append(1))

        threads = [threading.Thread(target=submit_500) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(posts) == 1  # the host thread did not run meanwhile
        deadline = time.monotonic() + 10
        while len(ran) < 2000 and time.monotonic() < deadline:
            app.processEvents()
        assert len(ran) == 2000
    finally:
        host.close()


def test_watch_readable_and_call_later_for_a_zero_thread_wait() -> None:
    async def main() -> None:
        host = qt.QtHost(app)
        a, c = socket.socketpair()
        try:
            got: list[bytes] = []
            readable = asyncio.Event()

            def on_readable() -> None:
                got.append(c.recv(100))
                readable.set()

            unwatch = host.watch_readable(c.fileno(), on_readable)
            await asyncio.sleep(0.05)
            assert not got  # nothing to read: no call
            a.send(b"x")
            await asyncio.wait_for(readable.wait(), 5)
            assert got == [b"x"]
            unwatch()
            unwatch()  # idempotent
            a.send(b"y")
            await asyncio.sleep(0.1)
            assert got == [b"x"]  # unwatched: not called again

            fired: list[float] = []
            start = time.perf_counter()
            host.call_later(0.05, lambda: fired.append(time.perf_counter() - start))
            cancel = host.call_later(0.05, lambda: fired.append(-1.0))
            cancel()
            cancel()
            await asyncio.sleep(0.3)
            assert len(fired) == 1 and fired[0] >= 0.05, fired
        finally:
            host.close()
            a.close()
            c.close()

    qt.run(main, app=app)


def test_a_watch_removed_and_replaced_from_inside_its_own_callback() -> None:
    """The zero-thread wait removes a watch from inside that watch's callback
    (a wake-up that finds a tick owed) and makes another later: on GLib's
    loop (Linux) the new source may reuse the old one's C entry point, which
    the old callback is still returning through."""

    async def main() -> list[str]:
        host = qt.QtHost(app)
        a1, c1 = socket.socketpair()
        a2, c2 = socket.socketpair()
        seen: list[str] = []
        done = asyncio.Event()
        unwatch: list[Any] = []
        try:

            def second() -> None:
                seen.append("second:" + c2.recv(100).decode())
                done.set()

            def first() -> None:
                seen.append("first:" + c1.recv(100).decode())
                unwatch.pop()()  # from inside its own callback
                unwatch.append(host.watch_readable(c2.fileno(), second))
                a2.send(b"b")

            unwatch.append(host.watch_readable(c1.fileno(), first))
            a1.send(b"a")
            await asyncio.wait_for(done.wait(), 5)
            a1.send(b"again")  # the first watch is gone
            await asyncio.sleep(0.1)
            return seen
        finally:
            host.close()
            for s in (a1, c1, a2, c2):
                s.close()

    assert qt.run(main, app=app) == ["first:a", "second:b"]


_WATCH_KIND = """
    import asyncio, socket, sys, threading
    from {name}.QtWidgets import QApplication
    app = QApplication([])
    import asyncio_guest.qt as q

    async def main():
        loop = asyncio.get_running_loop()
        host = loop._guest.engine._watcher
        got = loop.create_future()
        threading.Timer(0.05, loop.call_soon_threadsafe, (got.set_result, "worker")).start()
        worker = await asyncio.wait_for(got, 10)
        a, c = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=c)
        a.send(b"ping")
        data = await asyncio.wait_for(reader.readexactly(4), 10)
        writer.close()
        a.close()
        kind = "glib" if host._glib_fds is not None and host._glib_fds._sources else "notifier"
        notifiers = sum(type(c).__name__ == "QSocketNotifier" for c in host._children)
        return worker, data.decode(), kind, notifiers

    print(*q.run(main), flush=True)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Qt's loop is GLib's on Linux only"
)
@pytest.mark.parametrize("no_glib", ["", "1"], ids=["glib-loop", "qt-no-glib"])
def test_the_zero_thread_watches_follow_qts_loop(no_glib: str) -> None:
    """Where Qt's loop is GLib's (every binding's Linux wheels) the host's fd
    watches are GLib sources of its own; with ``QT_NO_GLIB=1`` (Qt's own loop,
    as on Windows and macOS) they are ``QSocketNotifier``s. Either way a
    worker's call and socket I/O reach the guest, with no backend thread."""
    env = {"ASYNCIO_GUEST_WAIT": "fd", "ASYNCIO_GUEST_QT": b.name.lower()}
    env["QT_NO_GLIB"] = no_glib  # (set either way: a +noglib CI entry sets it for the suite)
    r = _child(_WATCH_KIND.format(name=b.name), env=env)
    assert r.returncode == 0, (r.stdout, r.stderr[-2000:])
    expected = ["worker", "ping"] + (["notifier", "2"] if no_glib else ["glib", "0"])
    assert r.stdout.split() == expected, (r.stdout, r.stderr[-2000:])


# ---------------------------------------------------------------- binding


@pytest.mark.parametrize("first", INSTALLED)
def test_the_binding_the_program_imported_is_used_and_no_other_is_imported(first: str) -> None:
    other = [n for n in ("PySide6", "PyQt6", "PySide2", "PyQt5") if n != first]
    r = _child(
        f"""
        import sys, asyncio
        import asyncio_guest.qt as q
        assert not any(m in sys.modules for m in {[*other, first]!r}), "a binding was imported"
        import {first}.QtWidgets
        async def main():
            await asyncio.sleep(0.01)
            return q.binding_name()
        print(q.run(main))
        print(sorted(m for m in {other!r} if m in sys.modules))
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == [first, "[]"]


@pytest.mark.parametrize("name", INSTALLED)
def test_the_environment_variable_chooses_the_binding(name: str) -> None:
    r = _child(
        """
        import sys
        import asyncio_guest.qt as q
        print(q.binding_name(), sorted(m for m in ("PySide6", "PyQt6") if m in sys.modules))
        try:
            q.use_binding("pyqt6" if q.binding_name() == "PySide6" else "pyside6")
        except RuntimeError as e:
            print("refused:", "cannot switch" in str(e))
        """,
        env={"ASYNCIO_GUEST_QT": name.lower()},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == [f"{name} ['{name}']", "refused: True"]


def test_an_unknown_binding_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown Qt binding"):
        qt.use_binding("tkinter")


# ----------------------------------------------------------- responsiveness


def _qtimer_lateness(n_tasks: int, seconds: float) -> tuple[list[float], int]:
    async def main() -> tuple[list[float], int]:
        stop = False
        spins = 0

        async def spin() -> None:
            nonlocal spins
            while not stop:
                await asyncio.sleep(0)
                spins += 1

        tasks = [asyncio.create_task(spin()) for _ in range(n_tasks)]
        gaps: list[float] = []
        last: list[float] = []
        timer = b.QTimer()
        timer.setTimerType(b.PreciseTimer)

        def tick() -> None:
            now = time.perf_counter()
            if last:
                gaps.append((now - last[0]) * 1000 - 10)
            last[:] = [now]

        timer.timeout.connect(tick)
        timer.start(10)
        await asyncio.sleep(seconds)
        timer.stop()
        stop = True
        await asyncio.gather(*tasks)
        return gaps, spins

    result: tuple[list[float], int] = qt.run(main, app=app)
    return result


def test_a_repeating_qtimer_keeps_its_pace_while_200_tasks_spin() -> None:
    gaps, spins = _qtimer_lateness(200, 1.5)
    # Generous bounds (a shared CI machine): the timer ran, asyncio ran too.
    assert len(gaps) > 30, gaps
    assert statistics.median(gaps) < 50, sorted(gaps)
    assert spins > 10_000


def test_the_same_with_qt_no_glib_in_a_fresh_process() -> None:
    r = _child(
        """
        import statistics
        from tests import test_qt_host as t
        gaps, spins = t._qtimer_lateness(200, 1.5)
        print(len(gaps), statistics.median(gaps), spins)
        """,
        env={"QT_NO_GLIB": "1", "ASYNCIO_GUEST_QT": b.name.lower()},
    )
    assert r.returncode == 0, r.stderr
    n, median, spins = r.stdout.split()
    assert int(n) > 30 and float(median) < 50 and int(spins) > 10_000, r.stdout


# ---------------------------------------------------------------- ending


def test_app_quit_mid_run_cancels_main_and_lets_it_clean_up(caplog: Any) -> None:
    cleaned: list[str] = []

    async def main() -> None:
        _later(30, app.quit)
        try:
            await asyncio.sleep(5)  # quitting must cut this short
        finally:
            await asyncio.sleep(0.02)  # the guest still runs during its shutdown
            cleaned.append("done")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            qt.run(main, app=app)
    assert time.monotonic() - start < 4
    assert cleaned == ["done"]
    assert not caught, [str(w.message) for w in caught]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("second", ["quit", "exit"])
def test_quitting_again_after_main_declined_cancels_it_again(second: str) -> None:
    """"Unsaved changes: quit anyway?" answered No: ``main`` declines the first
    ``quit()`` (catches the cancellation, ``uncancel()``), and the next request
    cancels it again. The second was ignored: the run went on to its end
    (``quit()``), or hung in a busy loop (``exit()``)."""
    asked: list[float] = []

    async def main() -> str:
        _later(30, app.quit)
        while True:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                if asked:
                    return "quit the second time"
                asked.append(time.monotonic())
                if sys.version_info >= (3, 11):
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
                _later(30, app.quit if second == "quit" else lambda: app.exit(0))
                continue
            return "ran to the end"

    start = time.monotonic()
    assert qt.run(main, app=app) == "quit the second time"
    assert time.monotonic() - start < 4


def test_closing_the_last_window_mid_run_cancels_main() -> None:
    async def main() -> str:
        window = W.QWidget()
        window.show()
        _later(30, window.close)
        try:
            await asyncio.sleep(5)  # quitting must cut this short
        except asyncio.CancelledError:
            return "cancelled, and main chose to return"
        return "not cancelled"

    assert qt.run(main, app=app) == "cancelled, and main chose to return"
    # And the next run is not hit by a stale quit.
    assert qt.run(asyncio.sleep, 0.01, "again", app=app) == "again"


@pytest.mark.parametrize(
    ("option", "says"),
    [("--smoke", "smoke ok:"), ("--smoke-close", "smoke: closing the window")],
)
def test_the_example_app_runs_and_closes_cleanly(option: str, says: str) -> None:
    """examples/qt_app.py: its own smoke run; and the window closed while a
    fetch and the feed stream, which must exit 0 without a traceback."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", ASYNCIO_GUEST_QT=b.name.lower())
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(here, "src"), here])
    proc = subprocess.run(
        [sys.executable, os.path.join(here, "examples", "qt_app.py"), option],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert says in proc.stdout
    # Qt writes its own chatter there (the offscreen platform's propagateSizeHints,
    # Qt 5's QStandardPaths without XDG_RUNTIME_DIR): no traceback is the check.
    assert "Traceback" not in proc.stderr and "Exception" not in proc.stderr, proc.stderr


def test_an_exception_in_main_comes_out_of_run_with_its_traceback() -> None:
    async def deep() -> None:
        await asyncio.sleep(0.001)
        raise LookupError("deep")

    async def main() -> None:
        await deep()

    with pytest.raises(LookupError) as info:
        qt.run(main, app=app)
    names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "deep" in names and "main" in names


def test_start_guest_run_with_the_programs_own_exec() -> None:
    results: list[Any] = []

    async def main() -> int:
        await asyncio.sleep(0.01)
        return 7

    def done(out: Any) -> None:
        results.append(out)
        app.quit()

    task = qt.start_guest_run(main, done_callback=done, app=app)
    assert isinstance(task, asyncio.Task)
    b.exec(app)
    assert results[0].unwrap() == 7


@pytest.mark.parametrize("name", INSTALLED)
def test_ctrl_c_while_qt_idles_ends_the_run_with_keyboard_interrupt(name: str) -> None:
    code = """
        import asyncio, sys
        import asyncio_guest.qt as q
        async def main():
            print("ready", flush=True)
            await asyncio.sleep(60)
        try:
            q.run(main)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            sys.exit(3)
        """
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", ASYNCIO_GUEST_QT=name.lower())
    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # Qt is asleep in its dispatcher now
        start = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    elapsed = time.monotonic() - start
    assert (p.returncode, out) == (3, "KeyboardInterrupt\n"), err
    assert "Traceback" not in err, err
    assert elapsed < 5


# ------------------------------------------------------------ helpers


@pytest.fixture
def window() -> Any:
    """A shown main window: a dialog closing is then not "the last window closed"
    (with no other window, Qt's quitOnLastWindowClosed quits the app, which ends the run)."""
    w = W.QWidget()
    w.setWindowTitle("main window")
    w.show()
    yield w
    w.hide()
    b.delete(w)


def test_async_callback_on_clicked_drops_the_checked_argument(window: Any) -> None:
    """``clicked`` passes ``checked`` on PyQt6; PySide6 passes nothing to a callable
    that takes ``*args`` (as ``AsyncCallback.__call__`` does), so a coroutine
    function for ``clicked`` needs a default for ``checked`` to run on both."""

    async def main() -> tuple[list[Any], list[Any]]:
        got_none: list[Any] = []
        got_checked: list[Any] = []
        finished = asyncio.Event()

        async def takes_nothing() -> None:
            await asyncio.sleep(0.001)
            got_none.append("ran")

        async def takes_checked(checked: Any = "not passed") -> None:
            await asyncio.sleep(0.002)
            got_checked.append(checked)
            finished.set()

        button = W.QPushButton("go", window)
        button.clicked.connect(asyncio_guest.async_callback(takes_nothing))
        button.clicked.connect(asyncio_guest.async_callback(takes_checked))
        _later(0, button.click)
        await asyncio.wait_for(finished.wait(), 10)
        await asyncio.sleep(0.01)
        return got_none, got_checked

    expected = "not passed" if b.name.startswith("PySide") else False
    assert qt.run(main, app=app) == (["ran"], [expected])


def test_a_qthread_workers_signal_reaches_an_async_callback_method_on_the_gui_thread(
    window: Any,
) -> None:
    """A worker object in a ``QThread`` emits a signal connected to an
    ``@async_callback`` method of a widget: each emission runs the handler on
    the GUI thread. PySide6 calls a plain callable (not a QObject's bound
    method) in the emitting thread, where no guest run is: every emission
    failed there ("no asyncio guest run on this thread")."""
    core = b.QtCore
    signal_type = core.Signal if b.name.startswith("PySide") else core.pyqtSignal
    gui_thread = threading.get_ident()

    class Worker(b.QObject):  # type: ignore[misc]
        data = signal_type(int)

        def work(self) -> None:
            for i in range(3):
                self.data.emit(i)

    class View(W.QWidget):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(window)
            self.got: list[tuple[int, bool]] = []

        @asyncio_guest.async_callback
        async def on_data(self, i: int) -> None:
            await asyncio.sleep(0)
            self.got.append((i, threading.get_ident() == gui_thread))

    async def main() -> list[tuple[int, bool]]:
        view = View()
        thread = b.QThread()
        worker = Worker()
        worker.moveToThread(thread)
        worker.data.connect(view.on_data)
        thread.started.connect(worker.work)
        thread.start()
        for _ in range(500):
            if len(view.got) == 3:
                break
            await asyncio.sleep(0.01)
        thread.quit()
        await asyncio.to_thread(thread.wait)
        return view.got

    assert qt.run(main, app=app) == [(0, True), (1, True), (2, True)]


def test_an_async_callback_slot_of_a_deleted_widget_does_nothing() -> None:
    """Qt disconnects a destroyed QObject's own bound-method slots; an
    ``@async_callback`` method is a plain callable to the binding, and kept
    firing while the program still held the widget's wrapper: its task ran on
    a dead object ("Internal C++ object already deleted")."""
    signal_type = b.QtCore.Signal if b.name.startswith("PySide") else b.QtCore.pyqtSignal

    class Source(b.QObject):  # type: ignore[misc]
        fired = signal_type()

    class Panel(W.QWidget):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.label = W.QLabel("x", self)

        def plain_slot(self) -> None:
            ran.append("plain slot")

        @asyncio_guest.async_callback
        async def async_slot(self) -> None:
            ran.append("async slot")
            self.label.setText("y")

    ran: list[str] = []

    async def main() -> list[str]:
        errors: list[Any] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, c: errors.append(c))
        source = Source()
        panel = Panel()  # the program keeps its wrapper (self.panel)
        source.fired.connect(panel.plain_slot)
        source.fired.connect(panel.async_slot)
        source.fired.emit()
        await asyncio.sleep(0.02)
        panel.deleteLater()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not b.is_valid(panel):
                break
        assert not b.is_valid(panel)
        source.fired.emit()
        await asyncio.sleep(0.05)
        assert errors == []
        return ran

    assert qt.run(main, app=app) == ["plain slot", "async slot"]


@pytest.mark.parametrize("helper", ["exec_dialog", "run_modal"])
def test_a_dialog_before_the_main_window_through_the_helpers_keeps_the_run(helper: str) -> None:
    """The login dialog, then the main window: the dialog is the only window,
    so its closing posts Qt's automatic quit, which Qt drops when a window is
    shown before it is delivered (the code after a plain ``exec()`` shows the
    main window at once). Through the helpers the coroutine resumed a tick
    later, after the quit: ``main`` was cancelled."""
    visible = [w for w in app.topLevelWidgets() if w.isVisible()]
    assert visible == [], visible  # else no "last window closed" to test

    async def main() -> tuple[int, str]:
        dialog = W.QDialog()
        _later(50, dialog.accept)
        if helper == "exec_dialog":
            code = await qt.exec_dialog(dialog)
        else:
            code = await asyncio_guest.run_modal(b.exec, dialog)
        window = W.QWidget()
        window.show()  # the main window
        try:
            await asyncio.sleep(0.2)
        finally:
            window.hide()
            b.delete(window)
            b.delete(dialog)
        return code, "main window kept"

    assert qt.run(main, app=app) == (1, "main window kept")


def test_exec_dialog_keeps_asyncio_running_and_returns_the_result_code(window: Any) -> None:
    async def main() -> tuple[int, int]:
        dialog = W.QDialog(window)
        ticks = 0

        async def count() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        counter = asyncio.create_task(count())
        _later(200, dialog.accept)
        code = await qt.exec_dialog(dialog)
        counter.cancel()
        b.delete(dialog)
        return code, ticks

    code, ticks = qt.run(main, app=app)
    assert code == 1  # QDialog.Accepted
    assert ticks > 5  # asyncio ran while the dialog was open


def test_cancelling_exec_dialog_closes_the_dialog(window: Any) -> None:
    async def main() -> tuple[bool, bool]:
        dialog = W.QDialog(window)
        task = asyncio.create_task(qt.exec_dialog(dialog))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if dialog.isVisible():
                break
        was_open = dialog.isVisible()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        still_open = dialog.isVisible()
        b.delete(dialog)
        return was_open, still_open

    assert qt.run(main, app=app) == (True, False)


def test_run_modal_with_a_static_qmessagebox(window: Any) -> None:
    mb = W.QMessageBox
    yes = b.QtWidgets.QMessageBox.StandardButton.Yes

    def answer_yes() -> None:
        box = app.activeModalWidget()
        if box is None:
            _later(20, answer_yes)
            return
        box.button(yes).click()

    async def main() -> tuple[Any, int]:
        ticks = 0

        async def count() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        counter = asyncio.create_task(count())
        _later(200, answer_yes)
        answer = await asyncio_guest.run_modal(
            mb.question, window, "asyncio-guest", "Proceed?", yes | mb.StandardButton.No
        )
        counter.cancel()
        return answer, ticks

    answer, ticks = qt.run(main, app=app)
    assert answer == yes
    assert ticks > 5


def test_dialog_exec_straight_from_a_task_fails_safe_and_says_so(
    caplog: Any, window: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio_guest")

    async def main() -> tuple[int, str]:
        dialog = W.QDialog(window)
        _later(100, dialog.accept)
        code = b.exec(dialog)  # blocks this tick: asyncio is paused meanwhile
        b.delete(dialog)
        await asyncio.sleep(0.01)  # and the guest resumes afterwards
        return int(code), "resumed"

    assert qt.run(main, app=app, debug=True) == (1, "resumed")
    assert any("run_modal" in r.getMessage() for r in caplog.records), caplog.records


@pytest.mark.parametrize("no_glib", ["", "1"], ids=["glib-loop", "qt-no-glib"])
@pytest.mark.parametrize("name", INSTALLED)
def test_dialog_exec_straight_from_a_tick_the_notifier_started_does_not_crash(
    name: str, no_glib: str
) -> None:
    """The task resumes from I/O, so the ``QSocketNotifier``'s slot runs its
    tick, and calls ``exec()`` there; a worker's callback arrives meanwhile.
    Inside the dialog's loop the notifier fires again and its watch is
    removed: the notifier's delete then ran in that loop, under the outer
    emission of the same notifier (PyQt6: a segmentation fault, 5 runs in 5).
    In a fresh process: a crash must fail this test, not end the suite. On
    Linux the watch is a GLib source of the host's own unless ``QT_NO_GLIB``
    gives Qt its own loop: both kinds are run."""
    code = f"""
        import asyncio, sys, threading, time
        from {name}.QtCore import QTimer
        from {name}.QtWidgets import QApplication, QDialog
        app = QApplication([])
        import asyncio_guest.qt as q

        async def main():
            window = QDialog()
            window.show()  # closing the dialog must not quit the application
            loop = asyncio.get_running_loop()
            await asyncio.to_thread(time.sleep, 0.05)  # resumed by the notifier's tick
            threading.Timer(0.05, loop.call_soon_threadsafe, (print, "worker")).start()
            dialog = QDialog(window)
            QTimer.singleShot(200, dialog.accept)
            code = dialog.exec()
            await asyncio.sleep(0.1)
            return code

        print("exec", q.run(main), flush=True)
    """
    for _ in range(3):
        r = _child(code, env={"ASYNCIO_GUEST_WAIT": "fd", "QT_NO_GLIB": no_glib})
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-2000:])
        assert r.stdout.split() == ["worker", "exec", "1"], (r.stdout, r.stderr[-2000:])


# ----------------------------------------------------- other async libraries


def test_sniffio_and_anyio_inside_the_guest() -> None:
    import anyio  # test dependencies ('.[test]'): a missing one is a failure
    import sniffio

    async def main() -> tuple[str, int, bool]:
        library = sniffio.current_async_library()
        results: list[int] = []

        async def child(i: int) -> None:
            await anyio.sleep(0.01)
            results.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(child, i)
        on_worker = await anyio.to_thread.run_sync(
            lambda: threading.current_thread() is not threading.main_thread()
        )
        return library, len(results), on_worker

    assert qt.run(main, app=app) == ("asyncio", 5, True)
