"""asyncio-guest benchmarks: plain ``asyncio.run`` vs ``asyncio_guest.run``, same run.

    .venv/3.11/bin/python bench/run.py [--quick] [--rounds N] [--only a,b] [--json out.json]
    .venv/3.11/bin/python bench/run.py --load [--quick] ...   # the load benchmarks instead
    .venv/3.11/bin/python bench/run.py --wait fd ...          # the guest's wait strategy

Every (benchmark, mode, round) is one fresh child process (``child.py``). Rounds
alternate the order of the two modes (plain first, then guest first, ...), and
the benchmarks are interleaved inside each round, so slow drift of a noisy
machine hits both modes alike. The table shows medians over rounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

from noise import stalls_per_second
from report import LEGEND, Row, format_table, rows_for
from spec import AFFINITIES, BENCHMARKS, BY_NAME, HOSTS, LOAD_BENCHMARKS, MODES, Benchmark

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


def child_env(allocator: str) -> dict[str, str]:
    env = dict(os.environ)
    if allocator == "fixed":
        env["GLIBC_TUNABLES"] = FIXED_ALLOCATOR
    return env


def run_child(
    bench: Benchmark,
    mode: str,
    quick: bool,
    seed: int,
    affinity: str | None,
    allocator: str = "fixed",
    host: str = "reference",
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
            env=child_env(allocator),
        )
    except subprocess.TimeoutExpired:
        return None, {}, f"timed out after {CHILD_TIMEOUT:.0f} s"
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return None, {}, tail[0]
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, {}, f"bad output: {proc.stdout[-200:]!r}"
    return data["metrics"], data.get("extra", {}), ""


def progress_line(
    bench: Benchmark, rnd: int, rounds: int, got: dict[str, dict[str, float] | None]
) -> str:
    first = bench.metrics[0]
    parts = []
    for mode in MODES:
        metrics = got[mode]
        value = "ERR" if metrics is None else f"{metrics[first.key] * first.scale:.4g}"
        parts.append(f"{mode}={value}")
    return f"  round {rnd + 1}/{rounds} {bench.name:<15} {first.unit:<5} {'  '.join(parts)}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Compare plain asyncio.run with asyncio_guest.run (alternating A/B)."
    )
    ap.add_argument("--quick", action="store_true", help="smaller workloads, 3 rounds by default")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per mode (default 5; 3 quick)")
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
        "--wait", choices=("auto", "thread", "fd"), default=None,
        help="the guest mode's wait strategy (ASYNCIO_GUEST_WAIT in every child; default: "
        "the environment's, else auto: no backend thread on an epoll/kqueue loop)",
    )
    ap.add_argument(
        "--affinity", choices=AFFINITIES, default=None,
        help="CPU placement for every benchmark (default: each benchmark's own; "
        "echo_ext uses 'split', the load_* ones 'one', the others 'none')",
    )
    ap.add_argument(
        "--host", choices=HOSTS, default="reference",
        help="the guest mode's host: reference (asyncio_guest.run, default) or trio "
        "(asyncio_guest.trio.run: asyncio as the guest of trio.run)",
    )
    args = ap.parse_args(argv)
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
        args.rounds = 3 if args.quick else 5
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
    if args.wait:
        os.environ["ASYNCIO_GUEST_WAIT"] = args.wait  # child_env copies it to every child
    wait = os.environ.get("ASYNCIO_GUEST_WAIT", "").strip() or "auto"
    env = environment()
    env["wait"] = wait
    print(
        f"asyncio-guest bench ({env['asyncio_guest']}): Python {env['python']}, "
        f"{env['cpus']} CPUs, "
        f"commit {env['commit'] or '?'}, guest host {args.host}, {args.rounds} rounds"
        f"{' (quick)' if args.quick else ''}, guest wait: {wait}, "
        f"load {env['loadavg_start'][0]:.2f}, "
        f"{env['stalls_per_s_start']:.0f} CPU stalls >1ms/s",
        file=sys.stderr,
    )
    # samples[bench][metric][mode] -> list of values (one per successful round)
    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        b.name: {m.key: {mode: [] for mode in MODES} for m in b.metrics} for b in args.selected
    }
    raw: list[dict[str, Any]] = []
    errors: list[str] = []
    t_start = time.monotonic()
    for rnd in range(args.rounds):
        order = MODES if rnd % 2 == 0 else MODES[::-1]
        for bench in args.selected:
            got: dict[str, dict[str, float] | None] = {}
            for mode in order:
                metrics, extra, err = run_child(
                    bench, mode, args.quick, rnd, args.affinity, args.allocator, args.host
                )
                got[mode] = metrics
                raw.append({"round": rnd, "benchmark": bench.name, "mode": mode,
                            "metrics": metrics, "extra": extra, "error": err})
                if err:
                    errors.append(f"{bench.name}/{mode} round {rnd + 1}: {err}")
            # Keep a round only if both modes succeeded, so samples stay paired.
            plain, guest = got["plain"], got["guest"]
            if plain is not None and guest is not None:
                for m in bench.metrics:
                    samples[bench.name][m.key]["plain"].append(plain[m.key])
                    samples[bench.name][m.key]["guest"].append(guest[m.key])
            print(progress_line(bench, rnd, args.rounds, got), file=sys.stderr, flush=True)
    elapsed = time.monotonic() - t_start
    env["loadavg_end"] = os.getloadavg()
    env["stalls_per_s_end"] = stalls_per_second()

    rows: list[Row] = []
    for bench in args.selected:
        rows.extend(rows_for(bench, samples[bench.name]))
    print()
    print(format_table(rows))
    print()
    print(LEGEND)
    print(f"\nPython {env['python']}, {env['cpus']} CPUs, commit {env['commit'] or '?'}; "
          f"{args.rounds} rounds in {elapsed:.0f} s; load average "
          f"{env['loadavg_start'][0]:.2f} -> {env['loadavg_end'][0]:.2f}; CPU stalls >1 ms/s "
          f"{env['stalls_per_s_start']:.0f} -> {env['stalls_per_s_end']:.0f}"
          + (f"; affinity forced: {args.affinity}" if args.affinity else "")
          + f"; allocator: {args.allocator}; guest wait: {wait}")
    for e in errors:
        print(f"error: {e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "environment": env,
                "rounds": args.rounds,
                "host": args.host,
                "quick": args.quick,
                "elapsed_s": elapsed,
                "summary": [r.to_json() for r in rows],
                "samples": raw,
                "errors": errors,
            }, f, indent=1)
    failed = [r for r in rows if r.verdict() in ("FAIL", "ERROR")]
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
