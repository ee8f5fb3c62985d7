"""One measurement: ``child.py NAME MODE [--quick] [--seed N] [--host H]`` prints one
JSON line: ``{"metrics": ..., "extra": ...}``, or ``{"error": "first line"}`` (and
the traceback on stderr, exit status 1) if the workload failed.

MODE is ``plain``, ``guest`` or ``peer:NAME`` (``spec.PEERS[host]``). Each
(benchmark, mode, round) runs in its own fresh process so allocator, import and
loop state cannot leak from one mode's measurement into the other's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback

from harness import Ctx, Workload, apply_affinity, run_in_mode, warm_allocator
from spec import AFFINITIES, BY_NAME, HOSTS, MODES, PEERS, Sizes

GUEST_MODULES = {
    "reference": "asyncio_guest",
    "trio": "asyncio_guest.trio",
    "tk": "asyncio_guest.tk",
    "qt": "asyncio_guest.qt",
    "glib": "asyncio_guest.glib",
    "wx": "asyncio_guest.wx",
}


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("name", choices=sorted(BY_NAME))
    ap.add_argument("mode", help="plain, guest or peer:NAME")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--affinity", choices=AFFINITIES, default=None,
                    help="CPU placement (default: the benchmark's own)")
    ap.add_argument("--host", choices=HOSTS, default="reference",
                    help="the host loop of the guest and peer modes")
    args = ap.parse_args(argv)
    peers = [f"peer:{p}" for p in PEERS[args.host]]
    if args.mode not in (*MODES, *peers):
        ap.error(f"mode {args.mode!r}: one of {', '.join((*MODES, *peers))} on host {args.host}")

    bench = BY_NAME[args.name]
    workload: Workload = getattr(importlib.import_module(bench.module), bench.name)
    if args.mode == "guest":
        # Import cost before the allocator warm-up, as in plain mode's asyncio import.
        importlib.import_module(GUEST_MODULES[args.host])
    warm_allocator()
    ctx = Ctx(
        mode=args.mode,
        sizes=Sizes.for_run(args.quick),
        seed=args.seed,
        affinity=args.affinity or bench.affinity,
        host_kind=args.host,
    )
    apply_affinity(ctx)
    try:
        metrics = run_in_mode(ctx, workload)
    except BaseException as exc:
        traceback.print_exc()
        json.dump({"error": error_line(exc)}, sys.stdout)
        sys.stdout.write("\n")
        sys.stdout.flush()
        return 1
    json.dump({"metrics": metrics, "extra": ctx.extra}, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
