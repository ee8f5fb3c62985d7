"""The benchmark table's verdicts (``bench/report.py``): a gated metric the
guest never measured fails the run, as a missed bar does."""

from __future__ import annotations

import math
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)
try:
    import report
    import spec
finally:
    sys.path.remove(BENCH)

NAN = math.nan


def _row(kind: str, value: float, plain: list[float], guest: list[float]) -> report.Row:
    metric = spec.Metric("max", "late max", "ms", False, spec.Bar(kind, value))  # type: ignore[arg-type]
    return report.Row("responsive", metric, plain, guest)


@pytest.mark.parametrize(
    "kind, plain, guest, verdict",
    [
        ("guest_max", [0.4, 0.5], [0.9, 1.1], "pass"),
        ("guest_max", [0.4, 0.5], [2.5, 2.6], "FAIL"),
        ("guest_max", [0.4, 0.5], [NAN, NAN], "NO DATA"),  # the guest measured nothing
        ("ratio_max", [0.4, 0.5], [NAN, NAN], "NO DATA"),
        ("ratio_max", [NAN, NAN], [NAN, NAN], "no data"),  # neither could: the machine
        ("ratio_max", [], [], "ERROR"),
        ("ratio_max", [1.0, 1.0], [1.05, 1.1], "pass"),
    ],
)
def test_a_gated_metric_the_guest_never_measured_is_no_pass(
    kind: str, plain: list[float], guest: list[float], verdict: str
) -> None:
    assert _row(kind, 2.0 if kind == "guest_max" else 1.15, plain, guest).verdict() == verdict
