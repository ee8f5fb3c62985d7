"""asyncio-guest benchmarks: plain ``asyncio.run`` vs ``asyncio_guest.run``, same run.

    .venv/3.11/bin/python bench/run.py [--quick] [--rounds N] [--only a,b] [--json out.json]
    .venv/3.11/bin/python bench/run.py --load [--quick] ...   # the load benchmarks instead
    .venv/3.11/bin/python bench/run.py --wait fd ...          # the guest's wait strategy
    .venv/3.11/bin/python bench/run.py --host qt --wait thread,fd --peers ...  # and the peers

Every (benchmark, mode, round) is one fresh child process (``child.py``). Rounds
alternate the order of the two modes (plain first, then guest first, ...), and
the benchmarks are interleaved inside each round, so slow drift of a noisy
machine hits both modes alike. The table shows medians over rounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from noise import stalls_per_second
from report import LEGEND, Row, cell, format_table, rows_for
from spec import AFFINITIES, BENCHMARKS, BY_NAME, HOSTS, LOAD_BENCHMARKS, PEERS, Benchmark

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "child.py")
CHILD_TIMEOUT = 120.0


# glibc returns the top of the heap to the OS when more than trim_threshold is
# free there, and serves blocks above mmap_threshold with mmap. Whether asyncio's
# 256 KiB read buffers land in one of those cases depends on what else happens to
# be allocated, so bulk-transfer figures flip between two regimes (~0.8 and ~1.8
# GB/s, plain and guest alike: every page of the transfer faulted, or none).
# Fixing both thresholds, for both modes, measures the code instead of that luck.
FIXED_ALLOCATOR = "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=33554432"


@dataclass(frozen=True)
class Mode:
    """One column of the comparison: what the child runs and with which wait strategy."""

    label: str  # "plain", "guest", "guest[fd]" (several --wait), "peer:qasync"
    child: str  # child.py's MODE: plain, guest or peer:NAME
    wait: str | None = None  # ASYNCIO_GUEST_WAIT for this mode's children, if set here

    @property
    def is_guest(self) -> bool:
        return self.child == "guest"

    @property
    def is_peer(self) -> bool:
        return self.child.startswith("peer:")


def child_env(allocator: str, wait: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if allocator == "fixed":
        env["GLIBC_TUNABLES"] = FIXED_ALLOCATOR
    if wait:
        env["ASYNCIO_GUEST_WAIT"] = wait
    return env


def run_child(
    bench: Benchmark,
    mode: str,
    quick: bool,
    seed: int,
    affinity: str | None,
    allocator: str = "fixed",
    host: str = "reference",
    wait: str | None = None,
) -> tuple[dict[str, float] | None, dict[str, Any], str]:
    """One measurement in a fresh process: (metrics or None, extra, error text)."""
    cmd = [sys.executable, CHILD, bench.name, mode, "--seed", str(seed)]
    if quick:
        cmd.append("--quick")
    if affinity:
        cmd += ["--affinity", affinity]
    if host != "reference":
        cmd += ["--host", host]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            stdin=subprocess.DEVNULL,
            env=child_env(allocator, wait),
        )
    except subprocess.TimeoutExpired:
        return None, {}, f"timed out after {CHILD_TIMEOUT:.0f} s"
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        data = None
    if proc.returncode != 0:
        if isinstance(data, dict) and data.get("error"):
            return None, {}, str(data["error"])  # the child's "Type: first line"
        # Died without a report (a crash in C code, a signal): the last stderr line.
        tail = proc.stderr.strip().splitlines()[-1:]
        return None, {}, f"exit {proc.returncode}" + (f": {tail[0]}" if tail else "")
    if not isinstance(data, dict) or "metrics" not in data:
        return None, {}, f"bad output: {proc.stdout[-200:]!r}"
    return data["metrics"], data.get("extra", {}), ""


def progress_line(
    bench: Benchmark,
    rnd: int,
    rounds: int,
    modes: list[Mode],
    got: dict[str, dict[str, float] | None],
) -> str:
    first = bench.metrics[0]
    parts = []
    for mode in modes:
        if mode.label not in got:
            continue
        metrics = got[mode.label]
        value = "ERR" if metrics is None else f"{metrics[first.key] * first.scale:.4g}"
        parts.append(f"{mode.label}={value}")
    return f"  round {rnd + 1}/{rounds} {bench.name:<15} {first.unit:<5} {'  '.join(parts)}"


def build_modes(host: str, waits: list[str], peers: bool) -> list[Mode]:
    """plain, one guest mode per wait strategy asked for, then the host's peers."""
    modes = [Mode("plain", "plain")]
    if len(waits) <= 1:
        modes.append(Mode("guest", "guest"))  # the wait: --wait's, else the environment's
    else:
        modes.extend(Mode(f"guest[{w}]", "guest", w) for w in waits)
    if peers:
        modes.extend(Mode(f"peer:{p}", f"peer:{p}") for p in PEERS[host])
    return modes


def paired(
    bench: Benchmark,
    results: dict[str, list[dict[str, float] | None]],
    label: str,
) -> list[Row]:
    """Rows plain vs ``label``, from the rounds where both succeeded (paired samples)."""
    samples: dict[str, dict[str, list[float]]] = {
        m.key: {"plain": [], "guest": []} for m in bench.metrics
    }
    for plain, other in zip(results["plain"], results[label]):
        if plain is not None and other is not None:
            for m in bench.metrics:
                samples[m.key]["plain"].append(plain[m.key])
                samples[m.key]["guest"].append(other[m.key])
    return rows_for(bench, samples)


def format_comparison(entries: list[dict[str, Any]]) -> str:
    """One line per (benchmark, metric, mode): median, ratio to plain in the same run,
    and ``failed: <the error's first line>`` for a mode that never succeeded."""
    header = ("benchmark", "metric", "mode", "median", "plain", "ratio to plain", "status")
    lines: list[tuple[str, ...]] = []
    for e in entries:
        row: Row = e["row"]
        m = row.metric
        unit = f" [{m.unit}]" if m.unit else ""
        better = "higher" if m.higher_is_better else "lower"
        ratio = "-" if math.isnan(row.ratio) else f"{row.ratio:.2f}x"
        pr = row.paired_ratios
        if len(pr) > 1 and not math.isnan(row.ratio):
            ratio += f" ({min(pr):.2f}-{max(pr):.2f})"
        if e["failed"]:
            status = f"failed: {e['error']}" if e["first_metric"] else "failed"
        elif e["error"]:
            status = f"{e['failures']} round(s) failed: {e['error']}" if e["first_metric"] else ""
        else:
            status = "ok"
        lines.append((
            row.bench if e["first_metric"] else "",
            f"{m.label}{unit} ({better} better)",
            e["mode"],
            cell(row.guest, m.scale),
            cell(row.plain if row.plain else e["plain_all"].get(m.key, []), m.scale),
            ratio,
            status,
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cols: tuple[str, ...]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()

    out = [fmt(header), "-+-".join("-" * w for w in widths)]
    out.extend(fmt(line) for line in lines)
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Compare plain asyncio.run with asyncio_guest.run (alternating A/B)."
    )
    ap.add_argument("--quick", action="store_true", help="smaller workloads, 4 rounds by default")
    ap.add_argument(
        "--rounds", type=int, default=None,
        help="rounds per mode (default 6; 4 quick: each mode runs first as often)",
    )
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument(
        "--load", action="store_true",
        help="run the load benchmarks (load_sockets, load_timers, load_threadsafe) "
        "instead of the default set",
    )
    ap.add_argument("--json", metavar="PATH", help="write every sample and the summary here")
    ap.add_argument(
        "--allocator", choices=("fixed", "default"), default="fixed",
        help="fixed (default): pin glibc's mmap/trim thresholds in every child, both modes "
        "alike; default: leave glibc's dynamic thresholds (bulk figures then flip ~2x)",
    )
    ap.add_argument(
        "--wait", default=None, metavar="W[,W...]",
        help="the guest mode's wait strategy, auto|thread|fd (ASYNCIO_GUEST_WAIT in the "
        "children; default: the environment's, else auto: no backend thread on an "
        "epoll/kqueue loop). Several, comma-separated (thread,fd): one guest mode each, "
        "guest[thread] and guest[fd], measured in the same run",
    )
    ap.add_argument(
        "--affinity", choices=AFFINITIES, default=None,
        help="CPU placement for every benchmark (default: each benchmark's own; "
        "echo_ext uses 'split', the load_* ones 'one', the others 'none')",
    )
    ap.add_argument(
        "--host", choices=HOSTS, default="reference",
        help="the guest mode's host: reference (asyncio_guest.run, default), trio "
        "(asyncio_guest.trio.run: asyncio as the guest of trio.run), tk "
        "(asyncio_guest.tk.run on a real Tk root: needs a display, e.g. xvfb-run -a) or qt "
        "(asyncio_guest.qt.run in a QApplication; binding from ASYNCIO_GUEST_QT, default "
        "PySide6; set QT_QPA_PLATFORM=offscreen without a display)",
    )
    ap.add_argument(
        "--peers", action="store_true",
        help="also run every benchmark under the host's peers (what a user would pick "
        "instead: " + "; ".join(f"{h}: {', '.join(p)}" for h, p in PEERS.items() if p)
        + "), each as a mode peer:NAME in the same run; see bench/README.md, 'Peers'",
    )
    args = ap.parse_args(argv)
    args.waits = [w.strip() for w in (args.wait or "").split(",") if w.strip()]
    bad = [w for w in args.waits if w not in ("auto", "thread", "fd")]
    if bad:
        ap.error(f"--wait: unknown strategy {', '.join(bad)}; known: auto, thread, fd")
    if len(set(args.waits)) != len(args.waits):
        ap.error("--wait: a strategy named twice")
    if args.peers and not PEERS[args.host]:
        ap.error(f"--peers: host {args.host} has none; peers exist for "
                 + ", ".join(h for h, p in PEERS.items() if p))
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    if names and args.load:
        ap.error("--only and --load: name the load benchmarks in --only instead")
    if names:
        args.selected = [BY_NAME[n] for n in names]
    else:
        args.selected = list(LOAD_BENCHMARKS if args.load else BENCHMARKS)
    if args.rounds is None:
        args.rounds = 4 if args.quick else 6
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def environment() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", HERE, "status", "--porcelain", "--", "../src"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    spec = importlib.util.find_spec("asyncio_guest")
    return {
        "asyncio_guest": os.path.dirname(spec.origin) if spec and spec.origin else "not found",
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit + ("+dirty-src" if dirty else ""),
        "loadavg_start": os.getloadavg(),
        "stalls_per_s_start": stalls_per_second(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if len(args.waits) == 1:
        os.environ["ASYNCIO_GUEST_WAIT"] = args.waits[0]  # child_env copies it to every child
    env_wait = os.environ.get("ASYNCIO_GUEST_WAIT", "").strip() or "auto"
    wait = ",".join(args.waits) if len(args.waits) > 1 else env_wait
    modes = build_modes(args.host, args.waits, args.peers)
    env = environment()
    env["wait"] = wait
    print(
        f"asyncio-guest bench ({env['asyncio_guest']}): Python {env['python']}, "
        f"{env['cpus']} CPUs, "
        f"commit {env['commit'] or '?'}, guest host {args.host}, {args.rounds} rounds"
        f"{' (quick)' if args.quick else ''}, guest wait: {wait}, "
        f"modes: {', '.join(m.label for m in modes)}, "
        f"load {env['loadavg_start'][0]:.2f}, "
        f"{env['stalls_per_s_start']:.0f} CPU stalls >1ms/s",
        file=sys.stderr,
    )
    # results[bench][mode label] -> one entry per round: metrics, or None if it failed
    results: dict[str, dict[str, list[dict[str, float] | None]]] = {
        b.name: {m.label: [] for m in modes} for b in args.selected
    }
    first_error: dict[tuple[str, str], str] = {}
    raw: list[dict[str, Any]] = []
    errors: list[str] = []
    t_start = time.monotonic()
    for rnd in range(args.rounds):
        # Each mode takes each place in turn (plain, guest[fd], guest[thread]
        # rotate): the first to run was 10-20% faster on a loaded machine, and a
        # reversal left the middle one in the middle for ever.
        shift = rnd % len(modes)
        order = modes[shift:] + modes[:shift]
        for bench in args.selected:
            got: dict[str, dict[str, float] | None] = {}
            for mode in order:
                if mode.is_peer and not bench.hosted:
                    continue  # a workload that runs its own loops: nothing to host
                metrics, extra, err = run_child(
                    bench, mode.child, args.quick, rnd, args.affinity, args.allocator,
                    args.host, mode.wait,
                )
                got[mode.label] = metrics
                results[bench.name][mode.label].append(metrics)
                raw.append({"round": rnd, "benchmark": bench.name, "mode": mode.label,
                            "wait": mode.wait, "metrics": metrics, "extra": extra,
                            "error": err})
                if err:
                    errors.append(f"{bench.name}/{mode.label} round {rnd + 1}: {err}")
                    first_error.setdefault((bench.name, mode.label), err)
            print(progress_line(bench, rnd, args.rounds, modes, got),
                  file=sys.stderr, flush=True)
    elapsed = time.monotonic() - t_start
    env["loadavg_end"] = os.getloadavg()
    env["stalls_per_s_end"] = stalls_per_second()

    # The bar tables: plain vs each guest mode (rounds where both succeeded).
    summaries: dict[str, list[Row]] = {}
    for mode in modes:
        if mode.is_guest:
            summaries[mode.label] = [
                row for bench in args.selected
                for row in paired(bench, results[bench.name], mode.label)
            ]
    # The comparison: every non-plain mode against plain of the same rounds.
    comparison: list[dict[str, Any]] = []
    for bench in args.selected:
        for mode in modes[1:]:
            runs = results[bench.name][mode.label]
            if not runs:
                continue  # not run (a peer on an unhosted benchmark)
            failures = sum(r is None for r in runs)
            plain_all = {  # every plain round, for a mode with no paired round
                m.key: [r[m.key] for r in results[bench.name]["plain"] if r is not None]
                for m in bench.metrics
            }
            for i, row in enumerate(paired(bench, results[bench.name], mode.label)):
                comparison.append({
                    "row": row, "mode": mode.label, "first_metric": i == 0,
                    "failed": failures == len(runs), "failures": failures,
                    "error": first_error.get((bench.name, mode.label), ""),
                    "plain_all": plain_all,
                })
    for label, rows in summaries.items():
        print()
        if len(summaries) > 1:
            print(f"{label}:")
        print(format_table(rows))
    print()
    print(LEGEND)
    if len(modes) > 2:
        print()
        print("All modes against plain asyncio in the same run (ratio: mode / plain):")
        print(format_comparison(comparison))
    print(f"\nPython {env['python']}, {env['cpus']} CPUs, commit {env['commit'] or '?'}; "
          f"host {args.host}; "
          f"{args.rounds} rounds in {elapsed:.0f} s; load average "
          f"{env['loadavg_start'][0]:.2f} -> {env['loadavg_end'][0]:.2f}; CPU stalls >1 ms/s "
          f"{env['stalls_per_s_start']:.0f} -> {env['stalls_per_s_end']:.0f}"
          + (f"; affinity forced: {args.affinity}" if args.affinity else "")
          + f"; allocator: {args.allocator}; guest wait: {wait}")
    for e in errors:
        print(f"error: {e}")
    if args.json:
        first_guest = next(iter(summaries.values()))
        with open(args.json, "w") as f:
            json.dump({
                "environment": env,
                "rounds": args.rounds,
                "host": args.host,
                "quick": args.quick,
                "modes": [{"label": m.label, "child": m.child,
                           "wait": m.wait or (env_wait if m.is_guest else None)}
                          for m in modes],
                "elapsed_s": elapsed,
                "summary": [r.to_json() for r in first_guest],
                "summaries": {k: [r.to_json() for r in v] for k, v in summaries.items()},
                "comparison": [
                    {**e["row"].to_json(), "mode": e["mode"], "failed": e["failed"],
                     "failures": e["failures"], "error": e["error"]}
                    for e in comparison
                ],
                "samples": raw,
                "errors": errors,
            }, f, indent=1)
    # The exit status is about asyncio-guest: a bar missed, or a plain/guest
    # measurement failed. A failing peer shows in the table and the JSON only.
    failed = [r for rows in summaries.values() for r in rows
              if r.verdict() in ("FAIL", "ERROR", "NO DATA")]
    ours_failed = [e for e in errors if "/peer:" not in e]
    return 1 if failed or ours_failed else 0


if __name__ == "__main__":
    sys.exit(main())
