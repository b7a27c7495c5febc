"""Multi-host start-up: ``jax.distributed.initialize`` from command-line flags or the environment.

Call :func:`initialize` before anything touches a device. With ``--coordinator HOST:PORT --num-processes N
--process-id I`` (or ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID``) it starts the
distributed runtime with those values; with ``--distributed auto`` it lets JAX detect a TPU pod or SLURM job;
otherwise it does nothing (one process).
"""

from __future__ import annotations

import argparse
import os

import jax


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The flags :func:`initialize` reads."""
    group = parser.add_argument_group("several hosts")
    group.add_argument("--coordinator", default=None, help="HOST:PORT of process 0's coordinator")
    group.add_argument("--num-processes", type=int, default=None, help="number of JAX processes")
    group.add_argument("--process-id", type=int, default=None, help="this process's index, 0 … N−1")
    group.add_argument(
        "--distributed",
        choices=("off", "auto"),
        default="off",
        help="'auto': let JAX detect the cluster (TPU pods, SLURM) without the three flags above",
    )
    group.add_argument(
        "--cpu-collectives",
        default=None,
        help="CPU collectives across processes, e.g. 'gloo' (several CPU processes on one machine)",
    )


def initialize(args: argparse.Namespace) -> bool:
    """Start ``jax.distributed`` as the flags (or the environment) say; True when it was started."""
    coordinator = args.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num = args.num_processes if args.num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    pid = args.process_id if args.process_id is not None else _env_int("JAX_PROCESS_ID")
    if getattr(args, "cpu_collectives", None):
        jax.config.update("jax_cpu_collectives_implementation", args.cpu_collectives)
    given = [coordinator is not None, num is not None, pid is not None]
    if any(given) and not all(given):
        raise SystemExit(
            "--coordinator, --num-processes and --process-id go together: give all three (or none)."
        )
    if all(given):
        if not 0 <= pid < num:
            raise SystemExit(f"--process-id must be in 0 … {num - 1}, not {pid}.")
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num, process_id=pid)
        return True
    if getattr(args, "distributed", "off") == "auto":
        jax.distributed.initialize()
        return True
    return False


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return None if value is None else int(value)


def is_main() -> bool:
    """Whether this process writes the outputs (process 0)."""
    return jax.process_index() == 0
