"""Tuning a loss on 2AFC data (the reference's recipe, docs/reference.md §10), data-parallel, resumable.

One jitted step: d0 = D(ref, p0), d1 = D(ref, p1) in training mode (input ref, target p_i), the head,
binary cross-entropy against the judges (mean over the real examples of the global batch), Adam(0.5, 0.999)
with LPIPS's schedule over the loss's and the head's parameters, Deeploss's loss weights clamped to ≥ 0.
The global batch is sharded over a one-axis mesh of every device; batches that do not divide the device
count are padded and masked. With ``--luminance image`` each example draws its randomness from
``fold_in(step_key, its row in the global batch)``, so results do not depend on how the batch is split.
With ``--luminance batch`` (the reference's coupling: one mean luminance over the batch) the padded rows
are set to the mean of the real rows before the loss sees them: the mean luminance is affine in the pixels,
so it is then the real images' mean, and any batch size runs on any device count.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common import checkpoint, logs, pipeline, sharding
from watson_jax import registry, twoafc, weights

from . import data, losses


class TuneError(ValueError):
    """A tuning request that cannot run (a loss without parameters, a bad option)."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    lr: float
    epochs: int
    decay_epochs: int


RECIPES = {"deeploss": Recipe(1e-4, 5, 5), "other": Recipe(2e-4, 10, 10)}


def recipe_for(name: str) -> Recipe:
    return RECIPES["deeploss" if name.startswith("Deeploss") else "other"]


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric", required=True, help="the loss to tune (one with parameters)")
    p.add_argument("--init", choices=("pretrained", "untrained"), default="untrained")
    p.add_argument("--out", required=True, help="output folder (weights, head, checkpoints, logs)")
    p.add_argument("--lr", type=float, default=None, help="initial learning rate (default: the recipe's)")
    p.add_argument("--epochs", type=int, default=None, help="epochs at the initial rate, n (recipe: 10 / 5)")
    p.add_argument("--decay-epochs", type=int, default=None, help="epochs of linear decay (recipe: 10 / 5)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--luminance", choices=("image", "batch"), default="image")
    p.add_argument(
        "--reference-input-range", action="store_true", help="map both images through x ↦ (x + 1)/2 first"
    )
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (quick runs)")


def _head(name: str, seed: int):
    if name.startswith("Deeploss"):
        return twoafc.ranking_head_init(jax.random.key(seed + 1)), twoafc.ranking_head
    return twoafc.watson_head_init(), twoafc.watson_head


def _fill_padding(images: jax.Array, mask: jax.Array) -> jax.Array:
    """The batch with its padded rows (mask False) replaced by the mean of its real rows."""
    real = mask.astype(images.dtype).reshape(-1, *([1] * (images.ndim - 1)))
    mean = jnp.sum(images * real, axis=0) / jnp.maximum(jnp.sum(real), 1.0)
    return jnp.where(real > 0, images, mean)


def make_step(loss, head_fn, optimizer, *, luminance: str, input_range: bool, clamp: bool):
    """The jitted training step (state, batch, key) → (state, metrics)."""

    def prepare(a):
        x = jnp.asarray(a, jnp.float32) / 255.0
        return (x + 1) / 2 if input_range else x

    def objective(params, batch, key):
        ref, p0, p1 = (prepare(batch[k]) for k in data.IMAGES)
        if luminance == "batch":
            ref, p0, p1 = (_fill_padding(v, batch["mask"]) for v in (ref, p0, p1))
        if luminance == "image":

            def one(index, r, a, b):
                k0, k1 = jax.random.split(jax.random.fold_in(key, index))
                d0 = losses.distance(loss, params["loss"], r[None], a[None], k0, tuning=True)[0]
                d1 = losses.distance(loss, params["loss"], r[None], b[None], k1, tuning=True)[0]
                return d0, d1

            d0, d1 = jax.vmap(one)(batch["index"], ref, p0, p1)
        else:
            k0, k1 = jax.random.split(key)
            d0 = losses.distance(loss, params["loss"], ref, p0, k0, tuning=True)
            d1 = losses.distance(loss, params["loss"], ref, p1, k1, tuning=True)
        p_hat = head_fn(params["head"], d0, d1)
        return twoafc.bce(p_hat, batch["judge"], batch["mask"]), p_hat

    @jax.jit
    def step(state, batch, key):
        (value, p_hat), grads = jax.value_and_grad(objective, has_aux=True)(state["params"], batch, key)
        updates, opt = optimizer.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        if clamp:
            params = {**params, "loss": twoafc.clamp_nonnegative(params["loss"])}
        metrics = {"loss": value, "accuracy": twoafc.accuracy(p_hat, batch["judge"], batch["mask"])}
        return {"params": params, "opt": opt, "step": state["step"] + 1}, metrics

    return step


def _atomic_npz(path: Path, params, **meta) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    weights.save_params(tmp, jax.tree.map(np.asarray, params), **meta)
    os.replace(tmp, path)


def run(args) -> int:
    metric = registry.lookup(args.metric)
    name = metric.name
    if metric.weights_stem is None:
        tunable = ", ".join(m.name for m in registry.METRICS if m.weights_stem is not None)
        raise TuneError(f"{name} has no parameters to tune; tunable losses: {tunable}")
    recipe = recipe_for(name)
    lr = recipe.lr if args.lr is None else args.lr
    n = recipe.epochs if args.epochs is None else args.epochs
    nd = recipe.decay_epochs if args.decay_epochs is None else args.decay_epochs
    if n < 0 or nd < 1:
        raise TuneError("--epochs must be ≥ 0 and --decay-epochs ≥ 1")
    cats = tuple(args.categories.split(",")) if args.categories else None
    source = data.FolderSource(args.data, "train", cats)  # checks the layout before anything is written
    if getattr(args, "source", "folder") == "tfds":
        from . import bapps

        bapps.prepare(args.data, args.cache, source.categories)
        source = bapps.PreparedSource(args.cache, "train", source.categories)
    mesh = sharding.data_mesh()
    devices, processes = jax.device_count(), jax.process_count()
    out = Path(args.out)
    loss = losses.build(
        name, args.colorspace, pretrained=args.init == "pretrained", luminance=args.luminance,
        weights_dir=args.weights_dir,
    )  # fmt: skip
    head, head_fn = _head(name, args.seed)
    plan = pipeline.BatchPlan(len(source), args.batch_size, args.seed, shuffle=True, drop_remainder=False)
    total_epochs = n + nd
    steps = total_epochs * plan.batches_per_epoch
    schedule = twoafc.learning_rate_schedule(lr, plan.batches_per_epoch, n, nd)
    optimizer = optax.adam(schedule, b1=0.5, b2=0.999)
    params = {"loss": loss.params, "head": head}
    state = {"params": params, "opt": optimizer.init(params), "step": jnp.asarray(0, jnp.int32)}
    state = sharding.replicate(mesh, jax.tree.map(np.asarray, state))
    step_fn = make_step(
        loss, head_fn, optimizer, luminance=args.luminance, input_range=args.reference_input_range,
        clamp=name.startswith("Deeploss"),
    )  # fmt: skip

    def read(indices):
        rows = source.read(indices)
        return {k: rows[k] for k in (*data.IMAGES, "judge")}

    batches = pipeline.batches(
        plan, read, epochs=total_epochs, devices=devices, process=jax.process_index(), processes=processes
    )
    it = iter(batches)
    ckpt = checkpoint.Checkpoints(out / "checkpoints")
    start = 0
    if ckpt.latest_step() is not None:
        state, data_state = ckpt.restore(state)
        it.set_state(data_state)
        start = int(ckpt.latest_step())
    log = logs.MetricsLog(out, resume_step=start)
    base_key = jax.random.key(args.seed)
    last = steps if args.max_steps is None else min(steps, args.max_steps)
    bar = logs.progress(last, start, desc=f"tune {name}")
    for s in range(start, last):
        local = next(it)
        batch = sharding.global_batch(mesh, {k: local[k] for k in (*data.IMAGES, "judge", "mask", "index")})
        state, metrics = step_fn(state, batch, jax.random.fold_in(base_key, s))
        done = s + 1
        log.append({"step": done, "epoch": s // plan.batches_per_epoch + 1, **sharding.to_host(metrics)})
        bar.update(1)
        if done % args.checkpoint_every == 0 or done % plan.batches_per_epoch == 0 or done == last:
            ckpt.save(done, state, it.get_state())
            log.flush()
    bar.close()
    ckpt.close()
    log.flush()
    final = sharding.to_host(state["params"])
    if jax.process_index() == 0:
        colorspace = registry.canonical_colorspace(args.colorspace)
        _atomic_npz(out / weights.weights_filename(metric.weights_stem, colorspace), final["loss"],
                    tuned_by="experiments.twoafc tune", steps=str(last))  # fmt: skip
        _atomic_npz(out / "head.npz", final["head"])
    return 0
