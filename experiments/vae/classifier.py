"""A small MNIST classifier whose penultimate layer is the feature space of the VAEs' Fréchet distance.

``python -m experiments.vae classifier --out DIR`` trains it on the 60k training digits (padded to 32×32,
as the VAEs see them) and writes ``DIR/classifier.npz`` (the parameters) and ``DIR/classifier.json`` (test
accuracy on the 10k test digits, the settings, the seconds taken), each atomically.

Architecture (NHWC, [0, 1] input): conv 3×3 1→32, ReLU, 2×2 max pool → conv 3×3 32→64, ReLU, max pool →
conv 3×3 64→64, ReLU → flatten (8·8·64) → dense 128, ReLU (**the features**, 128 numbers per image) →
dense 10 (logits). Cross-entropy, Adam (lr 1e-3, cosine-decayed to 0 over the run), batch 128, 4 epochs,
shuffled per epoch from the seed, last partial batch dropped. The run takes a few minutes on a CPU and is
deterministic given the seed, so a killed run is started again from the beginning: nothing is written
until it has finished.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments.common import files, logs

from . import input_pipeline

FEATURES = 128
NPZ = "classifier.npz"
JSON = "classifier.json"


class MnistClassifier(nnx.Module):
    """Three convolutions and two dense layers; :meth:`features` is the 128-wide penultimate layer."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), padding="SAME", rngs=rngs)
        self.conv3 = nnx.Conv(64, 64, kernel_size=(3, 3), padding="SAME", rngs=rngs)
        self.hidden = nnx.Linear(8 * 8 * 64, FEATURES, rngs=rngs)
        self.out = nnx.Linear(FEATURES, 10, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """(N, 32, 32, 1) images in [0, 1] → (N, 128) features."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (32, 32, 1):
            raise ValueError(f"the MNIST classifier takes (N, 32, 32, 1) images; got shape {tuple(x.shape)}.")
        pool = lambda h: nnx.max_pool(h, (2, 2), strides=(2, 2))  # noqa: E731
        h = pool(jax.nn.relu(self.conv1(x)))
        h = pool(jax.nn.relu(self.conv2(h)))
        h = jax.nn.relu(self.conv3(h))
        return jax.nn.relu(self.hidden(h.reshape(h.shape[0], -1)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.features(x))


@dataclasses.dataclass(frozen=True)
class Settings:
    epochs: int = 4
    batch: int = 128
    lr: float = 1e-3
    seed: int = 0


def _path_key(path) -> str:
    return jax.tree_util.keystr(path)


def save(model: MnistClassifier, folder: Path, report: dict) -> None:
    """The parameters (one npz array per state path) and the report, each written atomically."""
    state = nnx.state(model, nnx.Param)
    arrays = {_path_key(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(state)}
    with files.atomic_open(folder / NPZ, "wb") as f:
        np.savez(f, **arrays)
    files.write_json(folder / JSON, report)


def load(folder: str | Path) -> tuple[MnistClassifier, dict]:
    """(classifier, its report) from a folder written by :func:`train`."""
    folder = Path(folder)
    if not (folder / NPZ).is_file():
        raise FileNotFoundError(
            f"no {NPZ} in {folder}: train the classifier first (python -m experiments.vae classifier "
            f"--out {folder})."
        )
    model = MnistClassifier(rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model, nnx.Param)
    with np.load(folder / NPZ) as stored:
        expected = {_path_key(p) for p, _ in jax.tree_util.tree_leaves_with_path(state)}
        if set(stored.files) != expected:
            raise ValueError(f"{folder / NPZ} is not a checkpoint of this classifier (its arrays differ).")

        def restore(path, leaf):
            value = stored[_path_key(path)]
            if value.shape != leaf.shape:
                raise ValueError(
                    f"{folder / NPZ}: {_path_key(path)} has shape {value.shape}, not {leaf.shape}."
                )
            return jnp.asarray(value)

        state = jax.tree_util.tree_map_with_path(restore, state)
    return nnx.merge(graphdef, state), json.loads((folder / JSON).read_text())


@nnx.jit
def _train_step(model: MnistClassifier, optimizer: nnx.Optimizer, images: jax.Array, labels: jax.Array):
    def loss_fn(m):
        return optax.softmax_cross_entropy_with_integer_labels(m(images), labels).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def _predict(model: MnistClassifier, images: jax.Array) -> jax.Array:
    return jnp.argmax(model(images), axis=-1)


@nnx.jit
def _features(model: MnistClassifier, images: jax.Array) -> jax.Array:
    return model.features(images)


def features(model: MnistClassifier, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """(N, 128) float32 features of (N, 32, 32, 1) float images in [0, 1], in batches."""
    return np.concatenate(
        [
            np.asarray(_features(model, jnp.asarray(images[i : i + batch])))
            for i in range(0, len(images), batch)
        ]
    )


def accuracy(model: MnistClassifier, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    predicted = np.concatenate(
        [
            np.asarray(_predict(model, jnp.asarray(images[i : i + batch])))
            for i in range(0, len(images), batch)
        ]
    )
    return float(np.mean(predicted == labels))


def train(
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    settings: Settings = Settings(),
    limit_train: int | None = None,
) -> dict:
    """Train the classifier on MNIST and write it to ``out``; returns the report (test accuracy etc.)."""
    folder = Path(input_pipeline.DEFAULT_DIRS["mnist"] if data_dir is None else data_dir)
    images = input_pipeline.load_mnist(folder)
    labels = input_pipeline.load_mnist_labels(folder)
    for split in ("train", "test"):
        if len(images[split]) != len(labels[split]):
            raise ValueError(
                f"{folder}: {len(images[split])} {split} images but {len(labels[split])} labels."
            )
    x_train, y_train = images["train"][:limit_train], labels["train"][:limit_train]
    steps = len(x_train) // settings.batch
    if steps == 0:
        raise ValueError(f"{len(x_train)} training images make no batch of {settings.batch}.")
    model = MnistClassifier(rngs=nnx.Rngs(settings.seed))
    optimizer = nnx.Optimizer(
        model, optax.adam(optax.cosine_decay_schedule(settings.lr, steps * settings.epochs)), wrt=nnx.Param
    )
    rng = np.random.default_rng(settings.seed)
    began = time.perf_counter()
    for epoch in range(settings.epochs):
        order = rng.permutation(len(x_train))
        bar = logs.progress(steps, desc=f"classifier epoch {epoch + 1}/{settings.epochs}")
        for s in range(steps):
            rows = order[s * settings.batch : (s + 1) * settings.batch]
            loss = _train_step(
                model,
                optimizer,
                jnp.asarray(input_pipeline.unit_float(x_train[rows])),
                jnp.asarray(y_train[rows]),
            )
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
        bar.close()
    report = {
        "test_accuracy": accuracy(model, input_pipeline.unit_float(images["test"]), labels["test"]),
        "test_images": int(len(labels["test"])),
        "train_images": int(len(x_train)),
        "seconds": time.perf_counter() - began,
        **dataclasses.asdict(settings),
    }
    save(model, Path(out), report)
    return report
