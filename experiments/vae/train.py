"""Training a VAE with a perceptual loss (docs/reference.md §11).

Loss per batch: e^L · Σ_images D(reconstruction, image) + KL, KL = −½ Σ (1 + logvar − μ² − e^logvar) over
the batch and the latent dimensions; z = μ + ε·e^(½ logvar). D comes from the provider with the paper's
options (:func:`make_loss`): per image (reduction 'none') and summed over the batch's real rows, which is
the provider's reduction 'sum' with the padding rows of a data-parallel batch masked out; the Watson losses
train with their random shift (deterministic=False), keyed per step. Adam (0.9, 0.999) with
lr = lr0 · decline^epoch. One jitted step takes the loss as an argument (a pytree), not closed over.

Outputs in ``--out DIR``: ``log.csv``/``log.json`` (one row per epoch: train loss, test loss, test
reconstruction and KL terms), ``checkpoints/`` (model, optimiser and data-iterator state after every epoch;
a run started again with the same DIR resumes exactly), ``best/`` (the checkpoint of the lowest test loss,
as the reference keeps), ``config.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments.common import checkpoint, files, logs, pipeline, sharding

from . import input_pipeline, models

#: Canonical loss names of the command line → the provider's names.
LOSSES = {
    "l1": "L1",
    "l2": "L2",
    "ssim": "SSIM",
    "watson-dct": "Watson-DCT",
    "watson-dft": "Watson-DFT",
    "adaptive": "Adaptive",
    "deeploss-vgg": "Deeploss-VGG",
    "deeploss-squeeze": "Deeploss-Squeeze",
}

#: The paper's log-lambda L per dataset and loss (λ = e^L); L1, L2 and Watson-DCT: 0 (not in the paper).
LOG_LAMBDA = {
    "mnist": {"ssim": 9, "watson-dft": 0, "deeploss-vgg": 9, "deeploss-squeeze": 9, "adaptive": 0},
    "celeba": {"ssim": 13, "watson-dft": 0, "deeploss-vgg": 10, "deeploss-squeeze": 9, "adaptive": 3},
}


@dataclasses.dataclass(frozen=True)
class Schedule:
    epochs: int
    batch: int
    lr: float
    decline: float  # per epoch


DEFAULTS = {
    "mnist": Schedule(epochs=250, batch=128, lr=1e-4, decline=0.5 ** (1 / 100)),
    "celeba": Schedule(epochs=100, batch=64, lr=1e-4, decline=0.5 ** (1 / 20)),
}
COLORSPACE = {"mnist": "LA", "celeba": "RGB"}


def canonical_loss(name: str) -> str:
    key = str(name).lower().replace("_", "-")
    key = {"watson-fft": "watson-dft", "watson": "watson-dct"}.get(key, key)
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}.")
    return key


def make_loss(name: str, dataset: str, *, weights_dir=None):
    """The loss of the paper's VAE runs: the provider's, in the dataset's colour space, per image, random
    Watson shift; Adaptive untrained (α = 1, scale = 1) at the images' size and never optimised; the
    others pretrained (Deeploss needs its converted backbone in the weights folder)."""
    from watson_jax import LossProvider

    key = canonical_loss(name)
    shape = models.MODELS[dataset].image_shape
    return LossProvider().get_loss_function(
        LOSSES[key],
        colorspace=COLORSPACE[dataset],
        reduction="none",
        deterministic=False,
        pretrained=key != "adaptive",
        image_size=(shape[2], shape[0], shape[1]) if key == "adaptive" else None,
        weights_dir=weights_dir,
    )


def _terms(model, loss, images, mask, index, key):
    """(reconstruction term Σ D, KL term) over the batch's real rows; ε per example from fold_in(key, row)."""
    z_key, loss_key = jax.random.split(key)
    mu, logvar = model.encode(images)
    eps = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(z_key, i), mu.shape[1:], mu.dtype))(index)
    recon = model.decode(mu + eps * jnp.exp(0.5 * logvar))
    m = mask.astype(images.dtype)
    rec = jnp.sum(loss(recon, images, loss_key) * m)
    kl = -0.5 * jnp.sum((1 + logvar - jnp.square(mu) - jnp.exp(logvar)) * m[:, None])
    return rec, kl


def make_steps(graphdef_train, graphdef_eval, tx: optax.GradientTransformation):
    """The jitted train and eval steps for one model structure and optimiser."""

    @jax.jit
    def train(params, rest, opt_state, loss, batch, key, log_lambda):
        def objective(p):
            # copy: the BatchStats of `rest` come from outside this trace; flax refuses to mutate them here
            model = nnx.merge(graphdef_train, p, rest, copy=True)
            rec, kl = _terms(model, loss, batch["image"], batch["mask"], batch["index"], key)
            return jnp.exp(log_lambda) * rec + kl, (rec, kl, nnx.state(model, nnx.BatchStat))

        (total, (rec, kl, new_rest)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, new_rest, opt_state, {"loss": total, "rec": rec, "kl": kl}

    @jax.jit
    def evaluate(params, rest, loss, batch, key, log_lambda):
        model = nnx.merge(graphdef_eval, params, rest)
        rec, kl = _terms(model, loss, batch["image"], batch["mask"], batch["index"], key)
        return {"loss": jnp.exp(log_lambda) * rec + kl, "rec": rec, "kl": kl}

    return train, evaluate


@functools.cache
def compiled_steps(graphdef_train, graphdef_eval, schedule: Schedule, steps_per_epoch: int):
    """(optimiser, train step, eval step) for one model structure and schedule, built once per process, so
    that runs of the same structure (a resumed run, several runs in one process) share their compilations."""
    tx = optimiser(schedule, steps_per_epoch)
    return (tx, *make_steps(graphdef_train, graphdef_eval, tx))


def _split(model):
    model.train()
    graphdef_train, params, rest = nnx.split(model, nnx.Param, ...)
    model.eval()
    graphdef_eval, _, _ = nnx.split(model, nnx.Param, ...)
    return graphdef_train, graphdef_eval, params, rest


def optimiser(schedule: Schedule, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam (0.9, 0.999), lr = lr0 · decline^epoch (constant within an epoch)."""
    return optax.adam(lambda count: schedule.lr * schedule.decline ** (count // steps_per_epoch), 0.9, 0.999)


def train_and_evaluate(
    *,
    dataset: str,
    loss_name: str,
    out: str | Path,
    data_dir=None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    log_lambda: float | None = None,
    seed: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
    weights_dir=None,
    stop_after_epoch: int | None = None,
) -> dict:
    """Train (or resume) a run in ``out``; returns the last log row. ``stop_after_epoch`` ends the process's
    work after that epoch (to test resuming)."""
    dataset = str(dataset).lower()
    if dataset not in models.MODELS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(models.MODELS)}.")
    key_name = canonical_loss(loss_name)
    base = DEFAULTS[dataset]
    schedule = Schedule(
        epochs=base.epochs if epochs is None else epochs,
        batch=base.batch if batch_size is None else batch_size,
        lr=base.lr if lr is None else lr,
        decline=base.decline,
    )
    log_lam = float(LOG_LAMBDA[dataset].get(key_name, 0.0) if log_lambda is None else log_lambda)
    out = Path(out)
    mesh = sharding.data_mesh()
    devices = mesh.devices.size
    if schedule.batch % devices:
        raise ValueError(f"--batch-size {schedule.batch} must be a multiple of the {devices} devices.")

    data = input_pipeline.load(dataset, data_dir, seed=seed)
    train_images = data["train"][:limit_train]
    test_images = data["test"][:limit_test]
    loss = make_loss(key_name, dataset, weights_dir=weights_dir)
    model = models.build(dataset, seed=seed)
    graphdef_train, graphdef_eval, params, rest = _split(model)
    plan, train_ds = input_pipeline.train_batches(
        train_images,
        batch=schedule.batch,
        seed=seed,
        epochs=schedule.epochs,
        devices=devices,
        process=jax.process_index(),
        processes=jax.process_count(),
    )
    steps_per_epoch = plan.batches_per_epoch
    tx, train_step, eval_step = compiled_steps(graphdef_train, graphdef_eval, schedule, steps_per_epoch)
    state = {
        "params": params,
        "rest": rest,
        "opt": tx.init(params),
        "best": jnp.asarray(np.inf, jnp.float32),
    }
    state = sharding.replicate(mesh, jax.tree.map(np.asarray, state))
    loss = sharding.replicate(mesh, loss)

    ckpt = checkpoint.Checkpoints(out / "checkpoints", max_to_keep=2)
    best_ckpt = checkpoint.Checkpoints(out / "best", max_to_keep=1)
    it = iter(train_ds)
    start_epoch = 0
    latest = ckpt.latest_step()
    if latest is not None:
        state, data_state = ckpt.restore(state)
        it.set_state(data_state)
        start_epoch = latest
    if jax.process_index() == 0:
        files.write_json(
            out / "config.json",
            {"dataset": dataset, "loss": key_name, "log_lambda": log_lam, "seed": seed,
             "limit_train": limit_train, "limit_test": limit_test, **dataclasses.asdict(schedule)},
        )  # fmt: skip
    log = logs.MetricsLog(out, resume_step=start_epoch)
    run_key = jax.random.key(seed)
    test_plan = pipeline.BatchPlan(len(test_images), schedule.batch, seed, shuffle=False, drop_remainder=True)
    last = {}
    for epoch in range(start_epoch, schedule.epochs):
        began = time.perf_counter()
        bar = logs.progress(steps_per_epoch, desc=f"epoch {epoch + 1}/{schedule.epochs}")
        train_sum = 0.0
        for s in range(steps_per_epoch):
            step = epoch * steps_per_epoch + s
            batch = sharding.global_batch(mesh, {k: v for k, v in next(it).items() if k != "global_size"})
            params, rest, opt, metrics = train_step(
                state["params"], state["rest"], state["opt"], loss, batch,
                jax.random.fold_in(run_key, step), log_lam,
            )  # fmt: skip
            state = {**state, "params": params, "rest": rest, "opt": opt}
            train_sum += float(metrics["loss"])
            bar.update(1)
        bar.close()
        epoch_time = time.perf_counter() - began
        test = {"loss": 0.0, "rec": 0.0, "kl": 0.0}
        eval_key = jax.random.fold_in(jax.random.key(seed + 1), 0)  # the same noise every epoch
        for b in range(test_plan.batches_per_epoch):
            local = pipeline.local_batch(
                test_plan, b, input_pipeline.reader(test_images), devices,
                jax.process_index(), jax.process_count(),
            )  # fmt: skip
            local.pop("global_size")
            metrics = eval_step(state["params"], state["rest"], loss, sharding.global_batch(mesh, local),
                                jax.random.fold_in(eval_key, b), log_lam)  # fmt: skip
            for k in test:
                test[k] += float(metrics[k])
        n_test = max(test_plan.batches_per_epoch, 1)
        last = {
            "step": epoch + 1,
            "train_loss": train_sum / steps_per_epoch,
            "test_loss": test["loss"] / n_test,
            "test_rec": test["rec"] / n_test,
            "test_kl": test["kl"] / n_test,
            "epoch_seconds": epoch_time,
        }
        if last["test_loss"] < float(np.asarray(sharding.to_host(state["best"]))):
            state = {**state, "best": sharding.replicate(mesh, np.asarray(last["test_loss"], np.float32))}
            best_ckpt.save(epoch + 1, state, it.get_state())
        ckpt.save(epoch + 1, state, it.get_state())
        log.append(last)
        log.flush()
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    ckpt.close()
    best_ckpt.close()
    return last


def load_run(run: str | Path, which: str = "best"):
    """(model in evaluation mode, config) of a finished run: the ``best`` or the ``latest`` checkpoint."""
    run = Path(run)
    config = json.loads((run / "config.json").read_text())
    model = models.build(config["dataset"], seed=config["seed"])
    graphdef_train, graphdef_eval, params, rest = _split(model)
    tx = optimiser(Schedule(config["epochs"], config["batch"], config["lr"], config["decline"]), 1)
    template = {"params": params, "rest": rest, "opt": tx.init(params), "best": jnp.zeros((), jnp.float32)}
    ckpt = checkpoint.Checkpoints(run / ("best" if which == "best" else "checkpoints"), max_to_keep=None)
    if ckpt.latest_step() is None:
        raise FileNotFoundError(f"{run} holds no {which} checkpoint; train it first.")
    state, _ = ckpt.restore(template)
    ckpt.close()
    return nnx.merge(graphdef_eval, state["params"], state["rest"]), config
