"""Which Qt binding ``asyncio_guest.qt`` uses, and the few names that differ.

Two bindings cannot safely share one process (each loads its own copy of the
Qt libraries), so the choice must follow the program's, never make one:

1. an explicit choice (``asyncio_guest.qt.use_binding(name)``, or the binding
   of an ``app=`` given to ``QtHost``/``run``/``start_guest_run``);
2. the environment variable ``ASYNCIO_GUEST_QT`` (``pyside6``, ``pyqt6``,
   ``pyside2``, ``pyqt5``);
3. a binding the program has imported already (``sys.modules``); if several
   are, the one that owns the live ``QCoreApplication``;
4. the first that imports, in the order of ``BINDINGS``.

Nothing here is imported by ``import asyncio_guest.qt``: the binding is
loaded at the first call that needs it. Everything here is typed ``Any``:
the type checker runs without any binding installed.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any

from ._core.interrupts import run_host_loop

# Preference order when nothing is imported yet: the Qt 6 bindings first,
# PySide (Qt's own, LGPL) before PyQt (GPL/commercial).
BINDINGS = ("PySide6", "PyQt6", "PySide2", "PyQt5")
ENV_VAR = "ASYNCIO_GUEST_QT"

_lock = threading.Lock()
_chosen: Binding | None = None


class Binding:
    """One loaded binding: its modules and the shims over what differs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.QtCore: Any = importlib.import_module(f"{name}.QtCore")
        self.QtWidgets: Any = _optional(f"{name}.QtWidgets")
        self.QtGui: Any = _optional(f"{name}.QtGui")
        core = self.QtCore
        self.QCoreApplication: Any = core.QCoreApplication
        self.QObject: Any = core.QObject
        self.QEvent: Any = core.QEvent
        self.QTimer: Any = core.QTimer
        self.QEventLoop: Any = core.QEventLoop
        self.QSocketNotifier: Any = core.QSocketNotifier
        self.QThread: Any = core.QThread
        # Scoped enums (PyQt6 has only these; PySide6 and the Qt 5 bindings
        # also, or only, have the unscoped names).
        self.SocketRead: Any = scoped(core.QSocketNotifier, "Type", "Read")
        self.PreciseTimer: Any = scoped(core.Qt, "TimerType", "PreciseTimer")
        self.LowEventPriority: Any = scoped(core.Qt, "EventPriority", "LowEventPriority")
        if name.startswith("PySide"):
            shiboken = importlib.import_module("shiboken6" if name == "PySide6" else "shiboken2")
            self._is_valid: Any = shiboken.isValid
            self._delete: Any = shiboken.delete
        else:
            try:
                sip = importlib.import_module(f"{name}.sip")
            except ImportError:  # very old PyQt5: sip as a top-level module
                sip = importlib.import_module("sip")
            self._is_valid = lambda obj: not sip.isdeleted(obj)
            self._delete = sip.delete

    @property
    def qt_major(self) -> int:
        return 6 if self.name.endswith("6") else 5

    def is_valid(self, obj: Any) -> bool:
        """The C++ object behind ``obj`` still exists."""
        return bool(self._is_valid(obj))

    def delete(self, obj: Any) -> None:
        """Delete the C++ object now (not ``deleteLater``: that needs a running loop)."""
        self._delete(obj)

    def exec(self, obj: Any) -> Any:
        """``obj.exec()`` (``exec_()`` where that is the only spelling: PySide2).

        The program's slots run under this loop: a second Ctrl+C raises in
        them at once (``interrupts.py``).
        """
        method = getattr(obj, "exec", None) or obj.exec_
        return run_host_loop(method, self.QtCore)

    def new_app(self) -> Any:
        """A ``QApplication`` if QtWidgets imports, else a ``QGuiApplication``, else a
        ``QCoreApplication``; ``sys.argv`` as its arguments (Qt reads -platform etc.)."""
        argv = list(sys.argv) or ["python"]
        for module, cls in (
            (self.QtWidgets, "QApplication"),
            (self.QtGui, "QGuiApplication"),
            (self.QtCore, "QCoreApplication"),
        ):
            if module is not None:
                return getattr(module, cls)(argv)
        raise AssertionError("unreachable: QtCore always imports")


def scoped(cls: Any, scope: str, name: str) -> Any:
    """``cls.scope.name`` (scoped enum), else ``cls.name`` (Qt 5 style)."""
    enum = getattr(cls, scope, None)
    if enum is not None and hasattr(enum, name):
        return getattr(enum, name)
    return getattr(cls, name)


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def normalize(name: str) -> str:
    """``"pyside6"`` -> ``"PySide6"``; ValueError for an unknown binding."""
    for known in BINDINGS:
        if name.strip().lower() == known.lower():
            return known
    raise ValueError(f"unknown Qt binding {name!r}; expected one of {', '.join(BINDINGS)}")


def _imported_choice() -> str | None:
    """The binding the program already uses (see the module doc, step 3)."""
    imported = [n for n in BINDINGS if f"{n}.QtCore" in sys.modules]
    if len(imported) > 1:
        for name in imported:
            core = sys.modules[f"{name}.QtCore"]
            if core.QCoreApplication.instance() is not None:
                return name
    return imported[0] if imported else None


def binding_of_app(app: Any) -> str:
    """The binding ``app`` (a ``QCoreApplication``) belongs to."""
    root = type(app).__module__.split(".")[0]
    try:
        return normalize(root)
    except ValueError:
        for klass in type(app).__mro__:  # a subclass defined in the program's module
            root = klass.__module__.split(".")[0]
            if root in BINDINGS:
                return root
        raise TypeError(f"{app!r} is not a Qt application object") from None


def get(name: str | None = None) -> Binding:
    """The binding in use, choosing (and importing) it on first call.

    ``name`` asks for a particular one; once a binding is in use, asking for
    another is an error (both cannot share a process).
    """
    global _chosen
    with _lock:
        if name is not None:
            wanted = normalize(name)
            if _chosen is not None and _chosen.name != wanted:
                raise RuntimeError(
                    f"asyncio_guest.qt already uses {_chosen.name}; cannot switch to {wanted} "
                    "(two Qt bindings cannot share a process)"
                )
        elif _chosen is not None:
            return _chosen
        else:
            env = os.environ.get(ENV_VAR, "").strip()
            wanted = normalize(env) if env else (_imported_choice() or "")
        if _chosen is None:
            if wanted:
                _chosen = Binding(wanted)
            else:
                errors = []
                for candidate in BINDINGS:
                    try:
                        _chosen = Binding(candidate)
                        break
                    except ImportError as exc:
                        errors.append(f"{candidate}: {exc}")
                else:
                    raise ImportError(
                        "asyncio_guest.qt needs a Qt binding: pip install "
                        "'asyncio-guest[qt]' (PySide6) or 'asyncio-guest[pyqt]' (PyQt6). "
                        + "; ".join(errors)
                    )
        return _chosen
