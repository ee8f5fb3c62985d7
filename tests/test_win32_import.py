"""Off Windows, ``asyncio_guest.win32`` refuses to import with a message that says why."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.skipif(sys.platform == "win32", reason="on Windows the module imports (tests/windows)")
def test_importing_win32_elsewhere_is_a_clear_import_error() -> None:
    sys.modules.pop("asyncio_guest.win32", None)
    with pytest.raises(ImportError, match=r"only available on Windows \(this is "):
        importlib.import_module("asyncio_guest.win32")
    assert "asyncio_guest.win32" not in sys.modules
