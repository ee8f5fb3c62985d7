"""The examples run headless (``--smoke``) and exit cleanly.

The Tk example is run by tests/test_tk_host.py (it needs the display those
tests get); the Qt one by ``make test-qt`` for each binding. The wx one runs
here where wxPython imports and a display exists (``make test-wx``: Xvfb); the
pygame one here, required by ``make test-pygame``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from . import loops
from .scenarios.harness import required_hosts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(
    loops.wine_version() is not None,
    reason="trio cannot start under Wine (its AFD ioctls fail: WinError 10045)",
)
def test_trio_example_smoke() -> None:
    env = dict(os.environ)
    paths = [os.path.join(ROOT, "src"), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "trio_app.py"), "--smoke"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


_WX_EXAMPLE = """
import runpy, sys
from tests.wx_display import open_x_display_first

open_x_display_first()  # wxGTK under Xvfb: see tests/wx_display.py
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize(
    ("option", "says"),
    [
        # A real loopback feed, fetches (one cancelled) and a modal dialog.
        ("--smoke", "smoke ok:"),
        # The window closed mid-fetch: the fetch's cancel handler must not
        # touch the destroyed widgets; exit 0, no traceback.
        ("--smoke-close", "smoke: closing the window"),
    ],
)
def test_wx_example_smoke(option: str, says: str) -> None:
    """examples/wx_app.py, in wx under Xvfb."""
    try:
        import wx  # noqa: F401
    except ImportError:
        reason = "wxPython does not import here"
    else:
        reason = "" if os.environ.get("DISPLAY") or sys.platform != "linux" else "no display"
    if reason:
        if "wx" in required_hosts():
            pytest.fail(f"wx is required here (ASYNCIO_GUEST_REQUIRE_HOSTS) but {reason}")
        pytest.skip(reason)
    env = dict(os.environ)
    paths = [os.path.join(ROOT, "src"), ROOT, env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    proc = subprocess.run(
        [sys.executable, "-c", _WX_EXAMPLE, os.path.join(ROOT, "examples", "wx_app.py"), option],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(says), proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr


def test_pygame_example_smoke() -> None:
    """The 60 fps game streaming over loopback (SDL dummy driver); required by
    ``make test-pygame`` (ASYNCIO_GUEST_REQUIRE_HOSTS=pygame) in each pygame venv."""
    from .scenarios.harness import unavailable

    try:
        import pygame  # noqa: F401
    except ImportError:
        unavailable("pygame", "pygame (pygame-ce or pygame) is not installed")
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    paths = [os.path.join(ROOT, "src"), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "pygame_app.py"), "--smoke"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "frame time p50" in proc.stdout and "bytes over loopback" in proc.stdout
    assert not proc.stderr, proc.stderr  # no asyncio error logged on the way out
