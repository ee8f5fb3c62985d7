"""The conformance gate's own rules (``tools/conformance.py``): what counts as a
regression, and that a gate whose guest mode was not exercised fails.

The gate runs CPython's test_asyncio for real in CI (``make conformance``);
these tests feed its comparison made-up results, to show each rule can fail.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_tool() -> Any:
    spec = importlib.util.spec_from_file_location(
        "conformance_under_test", os.path.join(ROOT, "tools", "conformance.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


conformance = _load_tool()
TEST = "test.test_asyncio.test_locks.LockTests.test_acquire"


def _runs(
    plain_status: str, guest_status: str, **counts: Any
) -> dict[tuple[str, str], Any]:
    def run(mode: str, status: str, runs: Any) -> Any:
        return conformance.ModuleRun(
            module="test_locks", mode=mode, results={TEST: {"status": status}}, runs=runs
        )

    plain_counts = conformance.RunCounts(plain_selector=5)
    guest_counts = conformance.RunCounts(**(counts or {"guest": 5}))
    return {
        ("test_locks", "plain"): run("plain", plain_status, plain_counts),
        ("test_locks", "guest"): run("guest", guest_status, guest_counts),
    }


def _reruns(guest_alone: str, plain_alone: str) -> Callable[[list[str], str], dict[str, str]]:
    def rerun_alone(test_ids: list[str], mode: str) -> dict[str, str]:
        return {t: guest_alone if mode == "guest" else plain_alone for t in test_ids}

    return rerun_alone


@pytest.mark.parametrize(
    "guest_alone, plain_alone, regression",
    [
        ("passed", "-", False),  # flaky in the suite: passes alone
        ("failed", "passed", True),  # fails alone in guest mode, passes on plain
        ("failed", "failed", False),  # fails alone on plain too: unreliable either way
        ("failed", "timeout", False),
        ("failed", "not run", True),  # no plain result: no excuse
        ("failed", "skipped", True),
    ],
)
def test_a_guest_failure_is_a_regression_unless_plain_fails_alone_too(
    guest_alone: str, plain_alone: str, regression: bool
) -> None:
    verdict = conformance.compare(
        _runs("passed", "failed"), [], _reruns(guest_alone, plain_alone)
    )
    assert (verdict.regressions == [TEST]) is regression, verdict


@pytest.mark.parametrize(
    "counts, flagged",
    [
        ({"guest": 5}, False),
        ({"guest": 5, "plain_selector": 1}, True),  # a plain loop ran in guest mode
        ({}, True),  # no guest loop where plain ran real ones
    ],
)
def test_a_module_whose_guest_run_used_no_guest_loop_fails_the_gate(
    counts: dict[str, int], flagged: bool
) -> None:
    runs = _runs("passed", "passed", **counts) if counts else {
        **_runs("passed", "passed"),
        ("test_locks", "guest"): conformance.ModuleRun(
            module="test_locks", mode="guest", results={TEST: {"status": "passed"}}
        ),
    }
    assert conformance.unexercised(["test_locks"], runs) == (["test_locks"] if flagged else [])
