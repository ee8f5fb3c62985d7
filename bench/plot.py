"""Bar chart of the key ratios from one or more ``run.py --json`` files.

    .venv-peers/bin/python bench/plot.py bench/results/*.json -o bench/results/ratios.png

One panel per host (the ``host`` of each file). In each panel, one group of bars
per key metric (default: ``spin`` rate, ``echo_ext`` rate, ``threadsafe`` median
latency) and one bar per mode: asyncio-guest under each wait strategy, then each
peer. A bar is the mode's median divided by plain asyncio's median *in the same
run* (``comparison`` in the JSON); the whisker spans the per-round ratios. The
line at 1.0 is plain asyncio. Throughput: higher is better; latency: lower is
better (the group's label says which). A mode that never succeeded is drawn as
a hatched stub labelled "failed". The y axis is logarithmic (peers can be 30x
off in either direction).

If several files measured the same (host, mode, metric), the bar is the median
of their ratios. matplotlib is needed (the bench venv has it; the package does
not depend on it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

KEYS = "spin.rate,echo_ext.rate,threadsafe.median"


def mode_label(mode: dict[str, Any]) -> str:
    """The bar's name: ours with its wait strategy, or the peer's name."""
    if mode["child"] == "guest":
        return f"asyncio-guest ({mode.get('wait') or 'auto'})"
    return str(mode["child"]).removeprefix("peer:")


def collect(
    paths: list[str], keys: list[tuple[str, str]]
) -> tuple[dict[str, dict[str, dict[tuple[str, str], list[dict[str, Any]]]]], dict[str, bool]]:
    """data[host][label][(bench, metric)] -> the comparison entries; higher_is_better per key."""
    data: dict[str, dict[str, dict[tuple[str, str], list[dict[str, Any]]]]] = {}
    higher: dict[str, bool] = {}
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        if "comparison" not in run:
            print(f"{path}: no 'comparison' (written by an older run.py?); skipped",
                  file=sys.stderr)
            continue
        host = run.get("host", "reference")
        labels = {m["label"]: mode_label(m) for m in run.get("modes", [])}
        for entry in run["comparison"]:
            key = (entry["benchmark"], entry["metric"])
            if key not in keys:
                continue
            label = labels.get(entry["mode"], entry["mode"])
            higher[f"{key[0]}.{key[1]}"] = bool(entry["higher_is_better"])
            data.setdefault(host, {}).setdefault(label, {}).setdefault(key, []).append(entry)
    return data, higher


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="run.py --json output(s)")
    ap.add_argument("-o", "--output", default="ratios.png", help="PNG to write")
    ap.add_argument("--keys", default=KEYS,
                    help=f"benchmark.metric list, comma-separated (default {KEYS})")
    args = ap.parse_args(argv)
    keys = [tuple(k.strip().split(".", 1)) for k in args.keys.split(",") if k.strip()]
    if any(len(k) != 2 for k in keys):
        ap.error("--keys: each must be benchmark.metric")
    key_list: list[tuple[str, str]] = [(k[0], k[1]) for k in keys]
    data, higher = collect(args.json, key_list)
    if not data:
        print("nothing to plot", file=sys.stderr)
        return 1

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    hosts = sorted(data)
    all_labels: list[str] = []
    for host in hosts:
        for label in data[host]:
            if label not in all_labels:
                all_labels.append(label)
    # Ours first, then the peers, in order of appearance.
    seen = list(all_labels)
    all_labels.sort(key=lambda lb: (not lb.startswith("asyncio-guest"), seen.index(lb)))
    colours = {lb: plt.get_cmap("tab10")(i % 10) for i, lb in enumerate(all_labels)}

    fig, axes = plt.subplots(len(hosts), 1, figsize=(10, 3.6 * len(hosts)), squeeze=False)
    for ax, host in zip(axes[:, 0], hosts):
        labels = [lb for lb in all_labels if lb in data[host]]
        width = 0.8 / max(1, len(labels))
        for j, label in enumerate(labels):
            for i, key in enumerate(key_list):
                entries = data[host][label].get(key, [])
                if not entries:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                ratios = [e["ratio"] for e in entries if e["ratio"] is not None]
                if not ratios:
                    error = next((e["error"] for e in entries if e["error"]), "no data")
                    ax.bar(x, 1.0, width, color="none", edgecolor=colours[label], hatch="//")
                    ax.text(x, 1.0, "failed", rotation=90, ha="center", va="bottom", fontsize=7)
                    print(f"{host}/{label}/{key[0]}: failed: {error}", file=sys.stderr)
                    continue
                ratio = statistics.median(ratios)
                paired = [r for e in entries for r in e["paired_ratios"]]
                lo, hi = (min(paired), max(paired)) if paired else (ratio, ratio)
                ax.bar(x, ratio, width, color=colours[label],
                       yerr=[[max(0.0, ratio - lo)], [max(0.0, hi - ratio)]], capsize=2)
                ax.text(x, ratio, f"{ratio:.2f}", ha="center", va="bottom", fontsize=7)
        ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
        ax.set_yscale("log")
        ax.set_xticks(range(len(key_list)))
        ax.set_xticklabels([
            f"{b} {m}\n({'higher' if higher.get(f'{b}.{m}', True) else 'lower'} is better)"
            for b, m in key_list
        ])
        ax.set_ylabel("ratio to plain asyncio")
        ax.set_title(f"host: {host}")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.legend(handles=[Patch(color=colours[lb], label=lb) for lb in labels],
                  fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("mode / plain asyncio, medians over rounds (dashed: plain = 1.0)")
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
