"""Tuning-step speed: the JAX step of :mod:`.tune` against ``watson_jax.torch`` running the same recipe.

One step: d0 = D(ref, p0), d1 = D(ref, p1) in training mode on a batch, the Watson head, binary
cross-entropy, an Adam(0.5, 0.999) update. Random 64×64 images (the data pipeline is not timed).

    python -m experiments.twoafc.speed --batch 50 --steps 10 --out benchmarks/results/twoafc
"""

from __future__ import annotations

import argparse
import datetime
import os
import time

import jax
import numpy as np
import optax


def jax_stepper(name, batch, rng):
    """A function ``run(steps)`` doing that many JAX tuning steps (compiled and warmed up here)."""
    from watson_jax import twoafc

    from . import losses, tune

    loss = losses.build(name, "RGB", pretrained=False, luminance="image")
    opt = optax.adam(2e-4, b1=0.5, b2=0.999)
    params = {"loss": loss.params, "head": twoafc.watson_head_init()}
    step = tune.make_step(loss, twoafc.watson_head, opt, luminance="image", input_range=False, clamp=False)
    data = {k: rng.integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8) for k in ("ref", "p0", "p1")}
    data |= {"judge": rng.uniform(size=batch).astype(np.float32), "mask": np.ones(batch, bool)}
    data["index"] = np.arange(batch, dtype=np.int32)
    state = {"params": params, "opt": opt.init(params), "step": 0}
    key = jax.random.key(0)

    done = 0

    def run(steps):
        nonlocal state, done
        for _ in range(steps):
            state, _ = step(state, data, jax.random.fold_in(key, done))
            done += 1
        jax.block_until_ready(state)

    run(2)
    return run


def torch_stepper(name, batch, rng):
    """A function ``run(steps)`` doing that many ``watson_jax.torch`` tuning steps (warmed up here)."""
    import torch

    from watson_jax.torch import LossProvider

    loss = LossProvider().get_loss_function(
        name, "RGB", reduction="none", deterministic=True, pretrained=False
    )
    loss.train()
    w = torch.nn.Parameter(torch.tensor(1.0))
    opt = torch.optim.Adam([*loss.parameters(), w], lr=2e-4, betas=(0.5, 0.999))
    ref, p0, p1 = (torch.tensor(rng.uniform(size=(batch, 3, 64, 64)), dtype=torch.float32) for _ in range(3))
    judge = torch.tensor(rng.uniform(size=batch), dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)

    def one():
        opt.zero_grad()
        d0, d1 = loss(ref, p0, gen), loss(ref, p1, gen)
        total = d0 + d1
        ratio = torch.where(total > 0, (d0 - d1) / torch.where(total > 0, total, torch.ones_like(total)), 0.0)
        p_hat = torch.sigmoid(torch.exp(w) * ratio)
        torch.nn.functional.binary_cross_entropy(p_hat, judge).backward()
        opt.step()

    def run(steps):
        for _ in range(steps):
            one()

    run(2)
    return run


def seconds_per_step(run, steps: int) -> float:
    t = time.perf_counter()
    run(steps)
    return (time.perf_counter() - t) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--metric", default="Watson-DFT")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3, help="alternating JAX/torch rounds; medians reported")
    p.add_argument("--out", default=None, help="folder for speed_<backend>_<date>.md")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    run_jax = jax_stepper(args.metric, args.batch, rng)
    run_torch = torch_stepper(args.metric, args.batch, rng)
    rounds = [
        (seconds_per_step(run_jax, args.steps), seconds_per_step(run_torch, args.steps))
        for _ in range(args.rounds)
    ]
    tj = float(np.median([r[0] for r in rounds]))
    tt = float(np.median([r[1] for r in rounds]))
    load = os.getloadavg()[0]
    lines = [
        f"# 2AFC tuning step, {args.metric} RGB, batch {args.batch} ({datetime.date.today()})",
        "",
        "| implementation | s / step | steps / s |",
        "|---|---|---|",
        f"| watson_jax (jit, {jax.default_backend()}) | {tj:.3f} | {1 / tj:.2f} |",
        f"| watson_jax.torch (cpu) | {tt:.3f} | {1 / tt:.2f} |",
        "",
        f"- ratio (torch time / JAX time): **{tt / tj:.2f}×**; medians of {args.rounds} alternating rounds "
        f"(JAX, torch, JAX, ...) of {args.steps} timed steps each, after 2 warm-up steps",
        "- per round (s / step, JAX / torch): " + ", ".join(f"{a:.3f} / {b:.3f}" for a, b in rounds),
        f"- load average (1 min) before / after: {load_before:.1f} / {load:.1f} on {os.cpu_count()} cores",
        f"- command: `python -m experiments.twoafc.speed --metric {args.metric} --batch {args.batch} "
        f"--steps {args.steps} --rounds {args.rounds}`",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from experiments.common import files

        files.write_text(
            os.path.join(args.out, f"speed_{jax.default_backend()}_{datetime.date.today()}.md"), text
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
