"""Figures and numbers of trained VAE runs: ``python -m experiments.vae evaluate`` (docs/reference.md §11).

Per run, in ``<out>/<run folder name>/`` (the ``best`` checkpoint, in evaluation mode):
- ``reconstructions.png``: fixed test images (top row) and their reconstructions decode(μ) (bottom row);
  MNIST the paper's test images 500 + 950·i, i < 10 (modulo the test set's size, for short test sets),
  celebA the first 10 test images of the run's split;
- ``samples.png``: decodings of latents z ~ N(0, I) drawn from ``seed`` (the same latents for every run);
- ``interpolations.png``: decodings of (1 − t)·μ_a + t·μ_b, t = 0, 1/9, …, 1, one row per pair of test
  images: MNIST the paper's (1117, 7031) and (21, 6501), celebA (0, 1) and (2, 3);
- ``manifold.png`` (2-D latent spaces only, i.e. MNIST): a 6×6 grid of decodings over [−1.5, 1.5]².
MNIST images are enlarged 8× (nearest), celebA 2×.

Across the runs of a dataset: ``comparison_<dataset>.png``, the paper's comparison figure — the test images,
then one row of reconstructions per run, then one row of samples per run (the same test images and the same
latents in every row).

``summary.md`` and ``summary.json``: per run, the mean per test image of D(decode(μ(x)), x) for D = L2,
SSIM, Watson-DFT (pretrained) and Deeploss-VGG (pretrained; when its converted VGG16 backbone is in the
weights folder), in the dataset's colour space, deterministic (no random shift); and the Fréchet distance
(:mod:`.frechet`) between the test images and as many samples, in the features of the project's MNIST
classifier (MNIST; ``--classifier``) or of VGG16's relu5_3 tap averaged over positions (celebA; the
converted backbone). A distance that cannot be computed is left out with a note saying why.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.common import figures, files

from . import classifier, frechet, input_pipeline, train

FIGURE_IMAGES = 10
MNIST_RECONSTRUCTED = tuple(500 + 950 * i for i in range(FIGURE_IMAGES))
INTERPOLATION_PAIRS = {"mnist": ((1117, 7031), (21, 6501)), "celeba": ((0, 1), (2, 3))}
INTERPOLATION_STEPS = 10
MANIFOLD_SIDE, MANIFOLD_RADIUS = 6, 1.5
ENLARGE = {"mnist": 8, "celeba": 2}
SCORES = ("L2", "SSIM", "Watson-DFT", "Deeploss-VGG")
BATCH = 250


@dataclasses.dataclass
class Run:
    """One trained run: its folder, the name its figures go under, its config.json and its model."""

    path: Path
    name: str
    config: dict
    model: nnx.Module

    @property
    def dataset(self) -> str:
        return self.config["dataset"]

    @property
    def label(self) -> str:
        return self.config["loss"]


def load_runs(paths) -> list[Run]:
    """The runs of ``paths`` (folders written by ``train``), each from its best checkpoint."""
    if not paths:
        raise ValueError("no runs given: pass the run folders written by 'python -m experiments.vae train'.")
    runs, names = [], set()
    for p in map(Path, paths):
        if not (p / "config.json").is_file():
            raise FileNotFoundError(f"{p} is not a VAE run folder (no config.json); train it first.")
        if p.name in names:
            raise ValueError(f"two runs are named {p.name!r}; their figures would overwrite each other.")
        names.add(p.name)
        model, config = train.load_run(p)
        runs.append(Run(p, p.name, config, model))
    return runs


# -- the model's maps, jitted once per model structure ----------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 1))
def _apply(graphdef, what: str, state, x):
    model = nnx.merge(graphdef, state)
    if what == "encode":
        return model.encode(x)[0]
    if what == "decode":
        return model.decode(x)
    return model.decode(model.encode(x)[0])


def _padded_size(n: int) -> int:
    """Rows per batch for n rows: BATCH, or n rounded up to a multiple of 16 when smaller (so the handful of
    figure rows and a short test set share one compiled shape)."""
    return BATCH if n >= BATCH else -(-n // 16) * 16


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([a, np.repeat(a[-1:], size - len(a), axis=0)]) if len(a) < size else a


def _batched(fn, *arrays: np.ndarray) -> np.ndarray:
    """fn over the rows of ``arrays`` (equal lengths) in batches of :func:`_padded_size` rows, the last one
    padded by repeating its last row, so that one shape compiles."""
    n = len(arrays[0])
    size = _padded_size(n)
    out = []
    for i in range(0, n, size):
        parts = [jnp.asarray(_pad(a[i : i + size], size)) for a in arrays]
        out.append(np.asarray(fn(*parts))[: min(size, n - i)])
    return np.concatenate(out)


def model_map(model: nnx.Module, what: str):
    """``x -> μ`` ('encode'), ``z -> image`` ('decode') or ``x -> decode(μ(x))`` ('reconstruct'), batched."""
    graphdef, state = nnx.split(model)
    return lambda x: _batched(functools.partial(_apply, graphdef, what, state), np.asarray(x, np.float32))


# -- figures -------------------------------------------------------------------------------------------------


def figure_indices(dataset: str, n_test: int) -> np.ndarray:
    wanted = MNIST_RECONSTRUCTED if dataset == "mnist" else range(FIGURE_IMAGES)
    return np.asarray([i % n_test for i in wanted])


def interpolation_rows(encode, decode, test: np.ndarray, dataset: str) -> list[np.ndarray]:
    t = np.linspace(0.0, 1.0, INTERPOLATION_STEPS)[:, None]
    rows = []
    for a, b in INTERPOLATION_PAIRS[dataset]:
        mu = encode(test[[a % len(test), b % len(test)]])
        rows.append(decode((1 - t) * mu[0] + t * mu[1]))
    return rows


def manifold_rows(decode) -> list[np.ndarray]:
    """Rows from latent 2 = +r (top) to −r, columns latent 1 from −r to +r."""
    axis = np.linspace(-MANIFOLD_RADIUS, MANIFOLD_RADIUS, MANIFOLD_SIDE)
    return [decode(np.stack([axis, np.full_like(axis, v)], axis=1)) for v in axis[::-1]]


def latent_samples(latent: int, count: int, seed: int) -> np.ndarray:
    """``count`` latents z ~ N(0, I) from ``seed``: the same for every run of one latent size."""
    return np.asarray(jax.random.normal(jax.random.key(seed), (count, latent), jnp.float32))


# -- numbers -------------------------------------------------------------------------------------------------


def _backbone_path(weights_dir) -> Path:
    from watson_jax import weights
    from watson_jax.losses.deeploss import BACKBONES

    return weights.weights_dir(weights_dir) / BACKBONES["Deeploss-VGG"].filename


def _backbone_present(weights_dir) -> bool:
    return _backbone_path(weights_dir).is_file()


def backbone_provenance(weights_dir) -> dict | None:
    """Where the converted VGG16 backbone came from (the converter's metadata: source file, sha256 and
    'version', 'unverified' for a checkpoint that is not torchvision's), or None when there is none."""
    from watson_jax import weights

    path = _backbone_path(weights_dir)
    if not path.is_file():
        return None
    _, meta = weights.read_params(path)
    return {"file": str(path), **{k: meta[k] for k in ("source", "sha256", "version") if k in meta}}


@jax.jit
def _score_batch(loss, x, y):
    return loss(x, y)


def scorers(dataset: str, weights_dir) -> dict:
    """{D: the loss} for the distances of SCORES available with ``weights_dir`` (Deeploss-VGG needs its
    converted backbone): pretrained, per image, deterministic, in the dataset's colour space."""
    from watson_jax import LossProvider

    return {
        name: LossProvider().get_loss_function(
            name,
            colorspace=train.COLORSPACE[dataset],
            reduction="none",
            deterministic=True,
            pretrained=True,
            weights_dir=weights_dir,
            download=False,
        )  # fmt: skip
        for name in SCORES
        if name != "Deeploss-VGG" or _backbone_present(weights_dir)
    }


def reconstruction_scores(losses: dict, reconstructions: np.ndarray, images: np.ndarray) -> dict:
    """{D: mean over images of D(reconstruction, image)} for each loss of :func:`scorers`."""
    return {
        name: float(
            np.mean(
                _batched(functools.partial(_score_batch, loss), reconstructions, images), dtype=np.float64
            )
        )
        for name, loss in losses.items()
    }


class FeatureSpace:
    """The features a dataset's Fréchet distance is measured in, or the reason there are none."""

    def __init__(self, dataset: str, *, classifier_dir, weights_dir):
        self.fn, self.name, self.note = None, None, None
        if dataset == "mnist":
            if classifier_dir is None:
                self.note = "no --classifier given: train one with 'python -m experiments.vae classifier'"
                return
            model, report = classifier.load(classifier_dir)
            self.fn = functools.partial(classifier.features, model)
            self.name = f"MNIST classifier (test accuracy {report['test_accuracy']:.4f})"
        elif not _backbone_present(weights_dir):
            self.note = "no converted VGG16 backbone (vgg16_backbone.npz) in the weights folder"
        else:
            from watson_jax.parameters import load_backbone

            backbone = load_backbone("Deeploss-VGG", weights_dir=weights_dir, download=False)
            self.fn = lambda x: _batched(
                functools.partial(_vgg_relu5_3_mean, backbone), np.asarray(x, np.float32)
            )
            self.name = "VGG16 relu5_3, averaged over positions"


@jax.jit
def _vgg_relu5_3_mean(backbone, x):
    from watson_jax.losses import deeploss

    return jnp.mean(deeploss.vgg16_features(backbone, deeploss.scaled_rgb(x))[-1], axis=(1, 2))


# -- the command ---------------------------------------------------------------------------------------------


def _test_images(dataset: str, data_dir, seed: int, limit_test: int | None) -> np.ndarray:
    data = input_pipeline.load(dataset, data_dir, seed=seed)
    test = input_pipeline.unit_float(data["test"][:limit_test])
    if len(test) < 2:
        raise ValueError(f"{len(test)} test image(s) of {dataset}: the Fréchet distance needs at least 2.")
    return test


def evaluate_runs(
    runs,
    out: str | Path,
    *,
    data_dir=None,
    classifier_dir=None,
    weights_dir=None,
    limit_test: int | None = None,
    seed: int = 0,
) -> dict:
    """Write the figures, summary.md and summary.json of ``runs`` to ``out`` (module docstring); returns
    the summary."""
    out = Path(out)
    loaded = load_runs(runs)
    datasets = list(dict.fromkeys(r.dataset for r in loaded))
    summary = {"runs": {}, "notes": [], "seed": seed, "limit_test": limit_test}
    for dataset in datasets:
        group = [r for r in loaded if r.dataset == dataset]
        features = FeatureSpace(dataset, classifier_dir=classifier_dir, weights_dir=weights_dir)
        losses = scorers(dataset, weights_dir)
        if features.note:
            summary["notes"].append(f"{dataset}: no Fréchet distance, {features.note}.")
        test_cache, test_features = {}, {}
        comparison_recon, comparison_samples = [], []
        for run in group:
            data_seed = run.config["seed"]  # celebA's split depends on it
            if data_seed not in test_cache:
                test_cache[data_seed] = _test_images(dataset, data_dir, data_seed, limit_test)
            test = test_cache[data_seed]
            encode, decode = model_map(run.model, "encode"), model_map(run.model, "decode")
            reconstruct = model_map(run.model, "reconstruct")
            shown = test[figure_indices(dataset, len(test))]
            samples = decode(latent_samples(run.model.latent_space, len(test), seed))
            folder = out / run.name
            enlarge = ENLARGE[dataset]
            shown_recon = reconstruct(shown)
            figures.image_grid(folder / "reconstructions.png", [shown, shown_recon], enlarge=enlarge)
            figures.image_grid(folder / "samples.png", [samples[:FIGURE_IMAGES]], enlarge=enlarge)
            interpolations = interpolation_rows(encode, decode, test, dataset)
            figures.image_grid(folder / "interpolations.png", interpolations, enlarge=enlarge)
            if run.model.latent_space == 2:
                figures.image_grid(folder / "manifold.png", manifold_rows(decode), enlarge=enlarge)
            comparison_recon.append(shown_recon)
            comparison_samples.append(samples[:FIGURE_IMAGES])

            entry = {
                "dataset": dataset,
                "loss": run.label,
                "folder": str(run.path),
                "epochs": run.config["epochs"],
                "test_images": len(test),
                "reconstruction": reconstruction_scores(losses, reconstruct(test), test),
            }
            if features.fn is not None:
                if data_seed not in test_features:
                    test_features[data_seed] = features.fn(test)
                entry["frechet"] = frechet.frechet_distance_of_features(
                    test_features[data_seed], features.fn(samples)
                )
                entry["frechet_features"] = features.name
            summary["runs"][run.name] = entry
        if not _backbone_present(weights_dir):
            summary["notes"].append(f"{dataset}: no Deeploss-VGG score, no converted VGG16 backbone.")
        first = test_cache[group[0].config["seed"]]
        labels = ["test"] + [f"rec {r.label}" for r in group] + [f"sample {r.label}" for r in group]
        figures.image_grid(
            out / f"comparison_{dataset}.png",
            [first[figure_indices(dataset, len(first))], *comparison_recon, *comparison_samples],
            enlarge=ENLARGE[dataset],
            labels=labels,
        )
    provenance = backbone_provenance(weights_dir)
    if provenance is not None:
        summary["vgg16_backbone"] = provenance
        if provenance.get("version") == "unverified":
            summary["notes"].append(
                f"the VGG16 backbone ({provenance['source']}) is not torchvision's ImageNet checkpoint "
                "(converted unverified): Deeploss-VGG scores and celebA Fréchet distances are in its "
                "features, not VGG16's."
            )
    files.write_json(out / "summary.json", summary)
    files.write_text(out / "summary.md", summary_markdown(summary))
    return summary


def summary_markdown(summary: dict) -> str:
    """The summary as Markdown tables, one per dataset."""
    lines = ["# VAE evaluation", ""]
    datasets = list(dict.fromkeys(e["dataset"] for e in summary["runs"].values()))
    for dataset in datasets:
        entries = {k: e for k, e in summary["runs"].items() if e["dataset"] == dataset}
        scores = list(dict.fromkeys(s for e in entries.values() for s in e["reconstruction"]))
        frechet_name = next((e["frechet_features"] for e in entries.values() if "frechet" in e), None)
        head = ["run", "loss", "epochs", "test images", *[f"{s} ↓" for s in scores]]
        if frechet_name:
            head.append("Fréchet ↓")
        lines += [f"## {dataset}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, e in entries.items():
            row = [name, e["loss"], str(e["epochs"]), str(e["test_images"])]
            row += [f"{e['reconstruction'][s]:.4g}" for s in scores]
            if frechet_name:
                row.append(f"{e['frechet']:.4g}" if "frechet" in e else "—")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        lines.append(
            "Scores: the mean per test image of each distance between a test image and its reconstruction "
            "decode(μ); lower is closer."
        )
        if frechet_name:
            lines.append(f"Fréchet distance between the test images and as many samples, in {frechet_name}.")
        lines.append("")
    if summary["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in summary["notes"]], ""]
    return "\n".join(lines)
