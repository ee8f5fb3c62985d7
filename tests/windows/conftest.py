"""The Win32 host tests run on Windows only (``make test`` runs them under Wine)."""

from __future__ import annotations

import sys

if sys.platform != "win32":
    # Not collected at all elsewhere: these are not skipped tests, they are
    # another platform's suite (tests/test_win32_import.py covers Linux).
    collect_ignore_glob = ["test_*.py"]
else:
    import pytest

    @pytest.fixture(scope="session", autouse=True)
    def _win32_warm_up() -> None:
        """Let user32 initialise once before the per-test leak checks start.

        The first window class and window of a process make the system (and
        Wine) open registry keys and other handles that it keeps for life.
        """
        from asyncio_guest import win32

        win32.Win32Host().close()
