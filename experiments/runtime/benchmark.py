"""The benchmark's plan and its run: the settings per backend, the shared input files, one worker process
per loss, colour space, precision and side, the sides taking turns round after round."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments.common.machine import load_faces
from experiments.runtime.measure import DISTURBED_CORES, wait_until_idle
from experiments.runtime.names import COLORSPACES, label
from experiments.runtime.prepare import PARAMETER_FREE
from experiments.runtime.workers import run_worker
from watson_jax.color import rgb_to_grey

LR = 1e-4
SIZE = 64


class SetupFailed(RuntimeError):
    """The setup worker did not report the backend and the losses (its error is the message)."""


def median_round(results: list[dict]) -> dict:
    """One side's result over the rounds: the round with the median ms/step (the lower middle one for an
    even count), with every round's ms/step in ``rounds_ms``; the last result if no round has a time."""
    timed = sorted((r for r in results if "ms_per_step" in r), key=lambda r: r["ms_per_step"])
    if not timed:
        return results[-1]
    return {**timed[(len(timed) - 1) // 2], "rounds_ms": [r.get("ms_per_step") for r in results]}


class Progress:
    """A one-line progress bar on stderr: [#####-----] 3/24 Watson-DFT RGB torch, 1m02s."""

    def __init__(self, total: int, enabled: bool, width: int = 30) -> None:
        self.total, self.enabled, self.width, self.done = total, enabled, width, 0
        self.start = time.monotonic()

    def show(self, what: str) -> None:
        """Redraw the bar with ``what`` as the current task."""
        if not self.enabled:
            return
        filled = self.width * self.done // max(self.total, 1)
        elapsed = int(time.monotonic() - self.start)
        line = (
            f"[{'#' * filled}{'-' * (self.width - filled)}] {self.done}/{self.total} {what}, "
            f"{elapsed // 60}m{elapsed % 60:02d}s"
        )
        sys.stderr.write("\r" + line.ljust(100)[:100])
        sys.stderr.flush()

    def step(self, what: str) -> None:
        """Count one task done and redraw."""
        self.done += 1
        self.show(what)

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def write_inputs(images: np.ndarray, colorspaces: list[str], folder: Path) -> dict[str, tuple[Path, Path]]:
    """Save each colour space's images x (greyscale by ``watson_jax.color.rgb_to_grey``) and starting
    point p0 ~ N(0, 1) (one generator, seed 0, in the order of ``colorspaces``) as .npy files under
    ``folder`` → colour space → (images file, p0 file)."""
    rng = np.random.default_rng(0)
    files = {}
    for cs in colorspaces:
        x = images if cs == "rgb" else np.asarray(rgb_to_grey(images))
        files[cs] = (folder / f"images_{cs}.npy", folder / f"p0_{cs}.npy")
        np.save(files[cs][0], x.astype(np.float32))
        np.save(files[cs][1], rng.normal(0, 1, x.shape).astype(np.float32))
    return files


def take_turns(
    plan: list[tuple[dict, dict]], sides: list[str], info: dict, args: argparse.Namespace, envs: dict
) -> float:
    """Run every job of ``plan`` on each side that has its loss, ``args.rounds`` times, the sides taking
    turns round after round (so that slow spells of the machine hit both); a worker runs again (up to
    ``args.retries`` times) while other processes kept more than DISTURBED_CORES cores busy. Each row
    gets its side's results under ``row['rounds'][side]``. → seconds waited for an idle CPU."""
    tasks = [
        (row, job, side)
        for row, job in plan
        for _ in range(args.rounds)
        for side in sides
        if row["loss"] in info[f"{side}_losses"]
    ]
    progress = Progress(len(tasks), args.progress or sys.stderr.isatty())
    waited = 0.0
    for row, job, side in tasks:
        what = f"{label(row)} {COLORSPACES[row['colorspace']]} {side}"
        progress.show(what)
        for _ in range(args.retries + 1):
            if args.wait_idle:
                waited += wait_until_idle(args.wait_idle)
            result = run_worker(side, job, envs[side], args.timeout)
            if result.get("others_cores", 0) <= DISTURBED_CORES:
                break
        row.setdefault("rounds", {}).setdefault(side, []).append(result)
        progress.step(what)
    progress.close()
    return waited


def run(args: argparse.Namespace, command: str) -> tuple[list[dict], dict, dict]:
    """Run the benchmark the flags of ``python -m experiments.runtime`` ask for → (rows, info, settings).

    A row per loss, colour space and precision, with each side's result (``median_round`` over the
    rounds) under 'jax' and 'torch'; ``info`` is the setup worker's report (backend, devices, losses,
    notes); ``settings`` what the report states about the run (batch, steps, repeats, data, load, command).
    Raises SetupFailed if the setup worker fails.
    """
    env = dict(os.environ)
    if "xla_force_host_platform_device_count" in env.get("XLA_FLAGS", ""):  # set by the test suite
        env.pop("XLA_FLAGS")
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    requested = (
        [n.strip() for n in args.losses.split(",")] if args.losses else (["L2"] if args.quick else None)
    )
    colorspaces = [c.strip() for c in (args.colorspaces or ("RGB" if args.quick else "RGB,grey")).split(",")]
    colorspaces = ["rgb" if c.lower() == "rgb" else "grey" for c in colorspaces]

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="watson_jax_runtime_") as tmp:
        tmp = Path(tmp)
        (tmp / "weights").mkdir()
        setup_job = {
            "losses": requested,
            "weights_dir": str(tmp / "weights"),
            "user_weights_dir": args.weights_dir,
            "original_weights": str(args.original_weights) if args.original_weights else None,
        }
        info = run_worker("setup", setup_job, env, args.timeout)
        if "error" in info:
            raise SetupFailed(info["error"])
        cpu = info["backend"] == "cpu"
        batch = args.batch or (4 if args.quick else 32 if cpu else 128)
        steps = args.steps or (3 if args.quick else 20 if cpu else 100)
        deep_steps = args.deep_steps or (min(steps, 2) if cpu else steps)
        repeats = args.repeats or (2 if args.quick else 3 if cpu else 5)
        min_time = args.min_time if args.min_time is not None else (0 if args.quick else 3 if cpu else 1)
        both = args.precision == "both" or (args.precision is None and not cpu)

        images, data_source = load_faces(args.data, batch, SIZE)
        files = write_inputs(images, colorspaces, tmp)

        torch_env = dict(env, JAX_PLATFORMS="cpu")  # the PyTorch worker must not start JAX on the GPU
        plan = []
        for name in info["losses"]:
            deep = name in info["deep_losses"]
            for cs in colorspaces:
                for precision in ("default", "float32") if both and deep else ("default",):
                    row = {
                        "loss": name,
                        "colorspace": cs,
                        "precision": precision,
                        "steps": deep_steps if deep else steps,
                        "pretrained_applies": name not in PARAMETER_FREE,
                    }
                    job = {
                        "loss": name,
                        "colorspace": COLORSPACES[cs],
                        "precision": precision,
                        "images": str(files[cs][0]),
                        "p0": str(files[cs][1]),
                        "steps": row["steps"],
                        "repeats": repeats,
                        "min_time": min_time,
                        "lr": LR,
                        "weights_dir": str(tmp / "weights"),
                        "torch_device": info.get("torch_device", "cpu"),
                    }
                    plan.append((row, job))
        waited = take_turns(plan, sides, info, args, {"jax": env, "torch": torch_env})
        for row, _ in plan:
            for side, results in row.pop("rounds", {}).items():
                row[side] = median_round(results)

    rows = []
    for row, _ in plan:
        j, t = row.get("jax") or {}, row.get("torch") or {}
        row["ratio"] = (
            t["ms_per_step"] / j["ms_per_step"] if "ms_per_step" in j and "ms_per_step" in t else None
        )
        rows.append(row)
    settings = {
        "date": datetime.date.today().isoformat(),
        "batch": batch,
        "steps": steps,
        "deep_steps": deep_steps,
        "repeats": repeats,
        "min_time": min_time,
        "rounds": args.rounds,
        "data": data_source,
        "threads": os.cpu_count(),
        "command": command,
        "load": (load_before, os.getloadavg()[0]),
        "waited": waited,
    }
    return rows, info, settings
