"""The Qt host (``asyncio_guest.qt``): a real ``QApplication``, offscreen by default.

Two Qt bindings cannot share a process, so this module gives the harness of
one binding per process: ``ASYNCIO_GUEST_QT=pyside6|pyqt6`` chooses, else the
first of PySide6, PyQt6 that is installed. CI runs the suite once per binding:

    ASYNCIO_GUEST_QT=pyside6 pytest tests/scenarios tests/test_qt_host.py
    ASYNCIO_GUEST_QT=pyqt6   pytest tests/scenarios tests/test_qt_host.py

The application is made here, at import (collection), once per process: Qt
allows one, and what it opens for good (the platform plugin, fonts) must
exist before the leak checks of the first test take their snapshot.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .harness import SIGINT, TOOLKIT_LOOP, WIDGETS, Harness

_T = TypeVar("_T")
_CANDIDATES = ("PySide6", "PyQt6")


def chosen_binding() -> str | None:
    """The binding this process tests (see the module doc), or None if none is installed."""
    env = os.environ.get("ASYNCIO_GUEST_QT", "").strip()
    if env:
        from asyncio_guest._qt_binding import normalize

        name = normalize(env)
        return name if importlib.util.find_spec(name) is not None else None
    for name in _CANDIDATES:
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def _load() -> tuple[Any, Any, Any] | None:
    """(asyncio_guest.qt, the binding, the app); None if no binding imports."""
    name = chosen_binding()
    if name is None:
        return None
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        import asyncio_guest.qt as qt

        qt.use_binding(name)
    except ImportError:
        return None
    from asyncio_guest import _qt_binding

    b = _qt_binding.get()
    app = b.QCoreApplication.instance() or b.new_app()
    # Warm up what Qt opens once and keeps (fonts, the platform's resources).
    window = b.QtWidgets.QWidget()
    b.QtWidgets.QPushButton("warm-up", window)
    window.show()
    window.grab()
    app.processEvents()
    window.hide()
    b.delete(window)
    app.processEvents()
    return qt, b, app


class QtHarness:
    capabilities: frozenset[str] = frozenset({WIDGETS, SIGINT, TOOLKIT_LOOP})

    def __init__(self, qt: Any, binding: Any, app: Any) -> None:
        self.qt = qt
        self.b = binding
        self.app = app
        self.name = f"qt-{binding.name.lower()}"
        self._window: Any = None
        self._layout: Any = None
        self._keep: list[Any] = []
        self.errors: list[BaseException] = []

    def _guard(self, fn: Callable[[], object]) -> Callable[..., None]:
        """A Qt slot that records what ``fn`` raises (PyQt would abort the process)."""

        def slot(*_: Any) -> None:
            try:
                fn()
            except BaseException as exc:
                self.errors.append(exc)

        return slot

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        w = self.b.QtWidgets
        self.errors = []
        self._window = w.QWidget()
        self._window.setWindowTitle(f"asyncio-guest scenario ({self.name})")
        self._layout = w.QVBoxLayout(self._window)
        self._window.show()
        try:
            result = self.qt.run(main, app=self.app)
        finally:
            window, self._window = self._window, None
            if self.b.is_valid(window):
                window.hide()  # hide, not close: a close would count as the last window closed
                self.b.delete(window)
            for obj in self._keep:
                if self.b.is_valid(obj):
                    self.b.delete(obj)
            self._keep.clear()
        if self.errors:
            raise AssertionError(f"a host callback raised: {self.errors[0]!r}") from self.errors[0]
        return result

    def make_button(self, command: Callable[[], object]) -> Any:
        button = self.b.QtWidgets.QPushButton("scenario button", self._window)
        self._layout.addWidget(button)
        button.clicked.connect(self._guard(command))
        return button

    def click(self, button: Any) -> None:
        button.click()

    def call_every(self, interval: float, fn: Callable[[], object]) -> Callable[[], None]:
        timer = self.b.QTimer()
        timer.setTimerType(self.b.PreciseTimer)
        timer.timeout.connect(self._guard(fn))
        timer.start(max(1, round(interval * 1000)))
        self._keep.append(timer)
        return timer.stop  # type: ignore[no-any-return]

    def call_soon_in_host(self, fn: Callable[[], object]) -> None:
        self.b.QTimer.singleShot(0, self._guard(fn))

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        dialog = self.b.QtWidgets.QDialog(self._window)
        dialog.setWindowTitle("scenario dialog")
        closed_with: list[Any] = []

        def close(value: Any) -> None:
            closed_with.append(value)
            dialog.accept()

        self.b.QTimer.singleShot(0, self._guard(lambda: on_open(close)))
        try:
            self.b.exec(dialog)
        finally:
            if self.b.is_valid(dialog):
                dialog.hide()
                self.b.delete(dialog)
        return closed_with[0] if closed_with else None

    def close_window(self) -> None:
        self._window.close()


_loaded = _load()
HARNESSES: list[Harness] = [QtHarness(*_loaded)] if _loaded is not None else []
