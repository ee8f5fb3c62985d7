"""Importing a host module whose toolkit is not installed: an ``ImportError``
(``ModuleNotFoundError`` when the toolkit is simply absent) that says which
toolkit, and how to install it, never a bare "No module named 'gi'"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .child_process import ROOT

_CHILD = """
import sys
for name in sys.argv[2:]:
    sys.modules[name] = None  # import of it raises ModuleNotFoundError
try:
    __import__("asyncio_guest." + sys.argv[1])
    if sys.argv[1] == "qt":  # the binding is chosen at first use
        sys.modules["asyncio_guest.qt"].binding_name()
except ImportError as exc:
    print(type(exc).__name__, exc)
else:
    print("imported")
"""


@pytest.mark.parametrize(
    "module, toolkit, says",
    [
        ("trio", ["trio"], "pip install 'asyncio-guest[trio]'"),
        ("glib", ["gi"], "pip install 'asyncio-guest[glib]'"),
        ("wx", ["wx"], "apt install python3-wxgtk4.0"),
        ("pygame", ["pygame"], "pip install 'asyncio-guest[pygame-ce]'"),
        ("tk", ["tkinter", "_tkinter"], "apt install python3-tk"),
        ("qt", ["PySide6", "PyQt6", "PySide2", "PyQt5"], "pip install 'asyncio-guest[qt]'"),
    ],
)
def test_a_missing_toolkit_says_what_to_install(
    module: str, toolkit: list[str], says: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", _CHILD, module, *toolkit],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    kind, _, message = proc.stdout.strip().partition(" ")
    assert kind in ("ModuleNotFoundError", "ImportError"), proc.stdout
    assert f"asyncio_guest.{module} needs" in message and says in message, message
    if module != "qt":  # (qt tries each binding: its error sums them up)
        assert kind == "ModuleNotFoundError", proc.stdout
