"""The examples run headless (``--smoke``) and exit cleanly.

The Tk example is run by tests/test_tk_host.py (it needs the display those
tests get); the Qt one by ``make test-qt`` for each binding.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from . import loops

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
