"""Time one VAE training step per loss and estimate what the paper's full runs take on this machine.

    python -m experiments.vae.step_time [--dataset mnist celeba] [--losses l2 ...] [--weights-dir DIR]

One jitted step of :func:`experiments.vae.train.make_steps` (the paper's batch: 128 MNIST, 64 celebA; random
images, the paper's λ), median of ``--repeats`` steps after two warm-up steps (compilation excluded). The
full run is the paper's schedule: MNIST 250 epochs of 60 000 // 128 = 468 steps, celebA 100 epochs of the
90 % training split of the 202 599 aligned faces, 182 339 // 64 = 2 849 steps. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from . import models, train

FULL_STEPS = {"mnist": 250 * (60_000 // 128), "celeba": 100 * ((202_599 - 202_599 // 10) // 64)}


def step_seconds(dataset: str, loss_name: str, *, weights_dir=None, repeats: int = 10) -> float:
    """Median wall time of one training step (seconds)."""
    schedule = train.DEFAULTS[dataset]
    model = models.build(dataset, seed=0)
    graphdef_train, graphdef_eval, params, rest = train._split(model)
    tx = train.optimiser(schedule, 1)
    step, _ = train.make_steps(graphdef_train, graphdef_eval, tx)
    loss = train.make_loss(loss_name, dataset, weights_dir=weights_dir)
    shape = (schedule.batch, *models.MODELS[dataset].image_shape)
    images = jnp.asarray(np.random.default_rng(0).uniform(size=shape), jnp.float32)
    batch = {"image": images, "mask": jnp.ones(schedule.batch, bool), "index": jnp.arange(schedule.batch)}
    log_lambda = float(train.LOG_LAMBDA[dataset].get(train.canonical_loss(loss_name), 0.0))
    opt = tx.init(params)
    times = []
    for i in range(repeats + 2):
        began = time.perf_counter()
        params, rest, opt, metrics = step(params, rest, opt, loss, batch, jax.random.key(i), log_lambda)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - began)
    return float(np.median(times[2:]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.vae.step_time", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dataset", nargs="+", default=["mnist", "celeba"])
    parser.add_argument("--losses", nargs="+", default=["l2", "ssim", "watson-dft", "adaptive"])
    parser.add_argument("--weights-dir", default=None)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}), {jax.device_count()} device(s)\n")
    print("| dataset | loss | batch | s / step | full run (h) |")
    print("|---|---|---:|---:|---:|")
    for dataset in args.dataset:
        for loss in args.losses:
            seconds = step_seconds(dataset, loss, weights_dir=args.weights_dir, repeats=args.repeats)
            hours = seconds * FULL_STEPS[dataset] / 3600
            print(
                f"| {dataset} | {loss} | {train.DEFAULTS[dataset].batch} | {seconds:.3g} | {hours:.3g} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
