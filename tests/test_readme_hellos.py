"""Each host's hello in the README is at most five lines and runs as written.

The hellos are what a user pastes first, so they are run here verbatim, each
in a fresh interpreter on the real toolkit (Tk and GTK under the display the
suite has, Qt offscreen, pygame on SDL's dummy driver, wx under Xvfb, Win32
under Wine), where that toolkit is installed: a missing one is a skip, or a
failure where CI requires that host (``ASYNCIO_GUEST_REQUIRE_HOSTS``). Each
suite that tests a host runs its hello (``make test-qt``, ``test-glib``,
``test-wx``, ``test-pygame`` select them by name, as their other tests).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from . import loops
from .scenarios.harness import unavailable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A hello: a fenced Python block that starts with an import of asyncio and
# runs a host module's ``run``.
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_HOST_RUN = re.compile(r"\b(tk|qt|trio|glib|wx|pygame|win32)\.run\(")


def _hellos() -> dict[str, str]:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    hellos: dict[str, str] = {}
    for block in _BLOCK.findall(text):
        found = _HOST_RUN.search(block)
        if block.startswith("import asyncio") and found:
            assert found.group(1) not in hellos, f"two hellos for {found.group(1)}"
            hellos[found.group(1)] = block
    return hellos


HELLOS = _hellos()

# What the hello prints, where it prints something.
_PRINTS = {
    "trio": "asyncio, hosted by Trio\n",
    "pygame": "asyncio ran inside pygame's loop\n",
}


def _display() -> str:
    """Why a toolkit that needs an X display cannot have one here ("": it can)."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return "no X display (run under xvfb-run)"
    return ""


def _why_not(host: str) -> str:
    """Why ``host``'s hello cannot run here ("": it can)."""

    def missing(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except (ImportError, ValueError):
            return True

    if host == "tk":
        return "tkinter does not import" if missing("tkinter") else _display()
    if host == "qt":
        # The hello imports PySide6 (the binding the README shows); offscreen.
        return "PySide6 is not installed (the Qt hello imports it)" if missing("PySide6") else ""
    if host == "trio":
        if missing("trio"):
            return "trio is not installed"
        if loops.wine_version() is not None:
            return "trio cannot start under Wine (its AFD ioctls fail: WinError 10045)"
        return ""
    if host == "glib":
        return "PyGObject is not installed" if missing("gi") else _display()
    if host == "wx":
        return "wxPython does not import here" if missing("wx") else _display()
    if host == "pygame":
        return "pygame (pygame-ce or pygame) is not installed" if missing("pygame") else ""
    if host == "win32":
        return "" if sys.platform == "win32" else "the Win32 host runs on Windows only"
    raise AssertionError(host)


# wxGTK under Xvfb opens the display first (tests/wx_display.py); the hello
# itself runs as the main module, as it would from a file.
_WX_FIRST = """
import runpy, sys
from tests.wx_display import open_x_display_first
open_x_display_first()
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def test_every_host_has_a_hello_of_at_most_five_lines() -> None:
    assert sorted(HELLOS) == ["glib", "pygame", "qt", "tk", "trio", "win32", "wx"]
    for host, hello in HELLOS.items():
        assert len(hello.splitlines()) <= 5, f"{host}'s hello:\n{hello}"


@pytest.mark.parametrize("host", sorted(HELLOS))
def test_the_readme_hello_runs_as_written(host: str, tmp_path: os.PathLike[str]) -> None:
    why = _why_not(host)
    if why:
        if host == "qt" and os.environ.get("ASYNCIO_GUEST_QT", "pyside6") != "pyside6":
            pytest.skip(why)  # make test-qt on another binding: PySide6 may be absent
        unavailable(host, why)  # a failure where CI requires the host
    path = os.path.join(tmp_path, f"hello_{host}.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(HELLOS[host])
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SDL_VIDEODRIVER="dummy",
               SDL_AUDIODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1")
    env.pop("ASYNCIO_GUEST_QT", None)  # the binding is the one the hello imports
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(ROOT, "src"), ROOT,
                                                      env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", _WX_FIRST, path] if host == "wx" else [sys.executable, path]
    # Its output goes to files, not pipes: under Wine the hello's first window
    # may start Wine's desktop process, which inherits the hello's standard
    # handles and outlives it, so a pipe would never reach its end.
    with open(os.path.join(tmp_path, "out"), "w+", encoding="utf-8") as out, \
            open(os.path.join(tmp_path, "err"), "w+", encoding="utf-8") as err:
        proc = subprocess.run(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                              timeout=120, env=env, cwd=ROOT)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert proc.returncode == 0, stdout + stderr
    assert stdout == _PRINTS.get(host, ""), stdout
    # Nothing logged on the way: no traceback, no asyncio error, no warning.
    for bad in ("Traceback", "Error", "Warning", "never awaited", "destroyed"):
        assert bad not in stderr, stderr
