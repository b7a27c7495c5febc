"""``python -m experiments.runtime [flags]``: parse the flags, run the benchmark, write the report.

With the hidden ``--worker KIND --job JSON`` it is one worker process instead (see ``workers``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.common.machine import DEFAULT_DATA, REPO, SHARED
from experiments.runtime import benchmark, report, workers
from experiments.runtime.measure import DISTURBED_CORES

DEFAULT_ORIGINAL_WEIGHTS = SHARED / "original_weights"
DEFAULT_OUT = REPO / "benchmarks" / "results"


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's flags (``--help`` lists them)."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.runtime",
        description="The resource benchmark (docs/reference.md §12): JAX against watson_jax.torch.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--losses", help="comma-separated loss names (default: every available loss)")
    p.add_argument("--colorspaces", default=None, help="comma-separated: RGB, grey (default both)")
    p.add_argument("--batch", type=int, help="images per batch (default 32 on CPU, 128 on GPU/TPU)")
    p.add_argument("--steps", type=int, help="SGD steps per timed run (default 20 on CPU, 100 on GPU/TPU)")
    p.add_argument(
        "--deep-steps",
        type=int,
        help="steps per run for the deep losses (default 2 on CPU, else --steps): they take seconds per "
        "step on a CPU",
    )
    p.add_argument(
        "--repeats", type=int, help="timed runs; the median is reported (default 3 on CPU, else 5)"
    )
    p.add_argument(
        "--min-time",
        type=float,
        help="keep repeating runs until this many seconds have passed "
        "(default 3 on CPU, 1 on GPU/TPU, 0 with --quick)",
    )
    p.add_argument("--sides", default="jax,torch", help="comma-separated: jax, torch (default both)")
    p.add_argument(
        "--precision",
        choices=["default", "both"],
        default=None,
        help="'both' adds a full-float32 run (JAX 'highest', PyTorch TF32 off) of the deep losses; "
        "default: both on GPU/TPU, default only on CPU (no TF32 there)",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: L2 (or --losses), RGB, batch 4, 3 steps, 2 runs"
    )
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder with celebA JPEGs (../shared/data)"
    )
    p.add_argument(
        "--weights-dir", help="converted weights (default $WATSON_JAX_WEIGHTS or ~/.cache/watson_jax)"
    )
    p.add_argument(
        "--original-weights",
        type=Path,
        default=DEFAULT_ORIGINAL_WEIGHTS,
        help="original .pth files to convert when converted ones are missing (../shared/original_weights)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (benchmarks/results)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per worker process (900)")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each worker, wait up to SECONDS until other processes use < 25%% of the CPUs",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help=f"run a worker again (up to this many times) if other processes kept more than "
        f"{DISTURBED_CORES} cores busy meanwhile (default 1)",
    )
    p.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="run each loss's JAX and PyTorch workers this many times, taking turns, and report "
        "each side's median round (default 1)",
    )
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    p.add_argument("--worker", choices=sorted(workers.WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one worker) → the exit status."""
    args = parse_args(argv)
    if args.worker:
        return workers.worker_main(args.worker, args.job)
    given = sys.argv[1:] if argv is None else argv
    command = "python -m experiments.runtime" + ("".join(f" {a}" for a in given))
    try:
        rows, info, settings = benchmark.run(args, command)
    except benchmark.SetupFailed as err:
        print(f"setup failed: {err}", file=sys.stderr)
        return 1
    text, stem = report.write_results(args.out, rows, info, settings)
    print(text)
    print(
        f"wrote {args.out / stem}.{{md,csv,png}} and {args.out / ('latest_' + info['backend'] + '.md')}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
