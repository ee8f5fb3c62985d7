"""Summaries across rounds and the results table."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from spec import Benchmark, Metric

Samples = dict[str, list[float]]  # mode -> one value per successful round


def _finite(values: list[float]) -> list[float]:
    """A NaN sample means the metric had no data that round (see bm_responsive)."""
    return [v for v in values if not math.isnan(v)]


@dataclass(frozen=True)
class Row:
    bench: str
    metric: Metric
    plain: list[float]
    guest: list[float]

    @property
    def plain_med(self) -> float:
        values = _finite(self.plain)
        return statistics.median(values) if values else math.nan

    @property
    def guest_med(self) -> float:
        values = _finite(self.guest)
        return statistics.median(values) if values else math.nan

    @property
    def ratio(self) -> float:
        """The median of the per-round guest/plain ratios: each round ran the two
        back to back, and the order alternates round by round, so a position
        effect (the first to run was 10-20% faster on a loaded machine) cancels
        out over an even number of rounds, which a ratio of medians taken from
        different rounds does not."""
        paired = self.paired_ratios
        if paired:
            return statistics.median(paired)
        p, g = self.plain_med, self.guest_med
        if math.isnan(p) or math.isnan(g) or p <= 0:
            return math.nan
        return g / p

    @property
    def paired_ratios(self) -> list[float]:
        """guest/plain per round (the two ran back to back, so they share the noise)."""
        return [
            g / p
            for p, g in zip(self.plain, self.guest)
            if p > 0 and not (math.isnan(p) or math.isnan(g))
        ]

    def verdict(self) -> str:
        bar = self.metric.bar
        if bar.kind == "info":
            return ""
        if bar.kind == "guest_max":
            value = self.guest_med
            ok = value <= bar.value
        else:
            value = self.ratio
            ok = value >= bar.value if bar.kind == "ratio_min" else value <= bar.value
        if math.isnan(value):
            if not (self.plain or self.guest):
                return "ERROR"
            guest_measured = any(not math.isnan(g) for g in self.guest)
            plain_measured = any(not math.isnan(p) for p in self.plain)
            if not guest_measured and (plain_measured or bar.kind == "guest_max"):
                # A gated metric the guest never measured (every round NaN)
                # passes nothing: it fails the run, as a missed bar does.
                return "NO DATA"
            return "no data"
        return "pass" if ok else "FAIL"

    def to_json(self) -> dict[str, object]:
        return {
            "benchmark": self.bench,
            "metric": self.metric.key,
            "label": self.metric.label,
            "unit": self.metric.unit,
            "higher_is_better": self.metric.higher_is_better,
            "plain": self.plain,
            "guest": self.guest,
            "plain_median": _nan_none(self.plain_med),
            "guest_median": _nan_none(self.guest_med),
            "ratio": _nan_none(self.ratio),
            "paired_ratios": self.paired_ratios,
            "bar": {"kind": self.metric.bar.kind, "value": self.metric.bar.value},
            "verdict": self.verdict(),
        }


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def rows_for(bench: Benchmark, samples: dict[str, Samples]) -> list[Row]:
    """``samples[metric_key][mode]`` -> one Row per metric."""
    return [
        Row(bench.name, m, samples[m.key]["plain"], samples[m.key]["guest"])
        for m in bench.metrics
    ]


def _num(x: float) -> str:
    if math.isnan(x):
        return "-"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.2f}M"
    if ax >= 1e4:
        return f"{x / 1e3:.1f}k"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax >= 0.01:
        return f"{x:.3f}"
    return f"{x:.5f}"


def cell(values: list[float], scale: float) -> str:
    """Median and spread (half the min..max range, in % of the median)."""
    values = _finite(values)
    if not values:
        return "-"
    med = statistics.median(values)
    text = _num(med * scale)
    if len(values) > 1 and med:
        spread = (max(values) - min(values)) / 2 / abs(med) * 100
        text += f" ±{spread:.0f}%" if spread < 1000 else " (wide)"
    return text


def format_table(rows: list[Row]) -> str:
    header = ("benchmark", "metric", "plain", "guest", "ratio", "bar", "result")
    lines: list[tuple[str, ...]] = []
    for r in rows:
        m = r.metric
        unit = f" [{m.unit}]" if m.unit else ""
        better = "higher" if m.higher_is_better else "lower"
        ratio = "-" if math.isnan(r.ratio) else f"{r.ratio:.2f}x"
        if r.paired_ratios and len(r.paired_ratios) > 1 and not math.isnan(r.ratio):
            pr = r.paired_ratios
            ratio += f" ({min(pr):.2f}-{max(pr):.2f})"
        lines.append((
            r.bench,
            f"{m.label}{unit} ({better} better)",
            cell(r.plain, m.scale),
            cell(r.guest, m.scale),
            ratio,
            m.bar.describe(m.unit, m.scale),
            r.verdict(),
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cols: tuple[str, ...]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()

    out = [fmt(header), "-+-".join("-" * w for w in widths)]
    out.extend(fmt(line) for line in lines)
    return "\n".join(out)


LEGEND = (
    "plain/guest: median over rounds, ± = half the min..max spread in % of the median.\n"
    "ratio: the median of the per-round guest/plain ratios (each round ran plain and guest\n"
    "back to back, in an order that rotates); in parentheses their min-max. For throughput a\n"
    "ratio above 1 means the guest is faster; for latency/CPU a ratio below 1 means the\n"
    "guest is better."
)
