"""VAE evaluation: the evaluate command on two tiny runs writes every figure and table with the scores it
promises; the MNIST label reader and the classifier; bad input gives one clear error."""

import gzip
import json

import numpy as np
import pytest
from PIL import Image

from experiments.vae import classifier, evaluate, frechet, input_pipeline, train

N_TRAIN, N_TEST = 32, 16


def _write_idx(path, magic: int, array: np.ndarray) -> None:
    header = np.array([magic, *array.shape], ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A tiny MNIST-like IDX folder with labels: class k is a bar at column 2 + 2k."""
    folder = tmp_path_factory.mktemp("mnist_labelled")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        labels = rng.integers(0, 10, n)
        images = np.zeros((n, 28, 28), np.uint8)
        for k, label in enumerate(labels):
            images[k, 4:24, 2 + 2 * label : 4 + 2 * label] = 255
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 2051, images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 2049, labels)
    return folder


def test_labels_are_read_as_written(mnist_dir, tmp_path):
    labels = input_pipeline.load_mnist_labels(mnist_dir)
    rng = np.random.default_rng(0)
    assert np.array_equal(labels["train"], rng.integers(0, 10, N_TRAIN))
    assert labels["test"].shape == (N_TEST,) and labels["test"].dtype == np.uint8
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes((mnist_dir / name).read_bytes())
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 2051, np.zeros(3))  # an image file's magic
    with pytest.raises(ValueError, match="2049"):
        input_pipeline.load_mnist_labels(tmp_path)


@pytest.fixture(scope="module")
def trained_classifier(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("classifier")
    report = classifier.train(out, data_dir=mnist_dir, settings=classifier.Settings(epochs=1, batch=8))
    return out, report


def test_classifier_report_matches_the_saved_model(trained_classifier, mnist_dir):
    out, report = trained_classifier
    model, saved = classifier.load(out)
    assert saved == json.loads((out / classifier.JSON).read_text()) == report
    images = input_pipeline.load_mnist(mnist_dir)["test"].astype(np.float32) / 255
    labels = input_pipeline.load_mnist_labels(mnist_dir)["test"]
    predicted = np.argmax(np.asarray(model(images)), axis=-1)  # independent of classifier.accuracy
    assert report["test_accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert report["train_images"] == N_TRAIN and report["test_images"] == N_TEST
    assert classifier.features(model, images).shape == (N_TEST, classifier.FEATURES)


def test_classifier_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train the classifier first"):
        classifier.load(tmp_path)


@pytest.fixture(scope="module")
def two_runs(mnist_dir, tmp_path_factory, converted_weights):
    root = tmp_path_factory.mktemp("runs")
    runs = []
    for seed in (0, 1):  # one loss: the second run reuses the first one's compiled steps
        run = root / f"mnist_l2_seed{seed}"
        train.train_and_evaluate(
            dataset="mnist", loss_name="l2", out=run, data_dir=mnist_dir, epochs=1, batch_size=8,
            seed=seed, weights_dir=converted_weights,
        )  # fmt: skip
        runs.append(run)
    return runs


def test_evaluate_writes_every_figure_and_table(
    two_runs, mnist_dir, trained_classifier, converted_weights, tmp_path
):
    out = tmp_path / "eval"
    summary = evaluate.evaluate_runs(
        two_runs, out, data_dir=mnist_dir, classifier_dir=trained_classifier[0], weights_dir=converted_weights
    )
    cell = 32 * evaluate.ENLARGE["mnist"] + 2  # an enlarged image and its gap
    sizes = {  # (columns, rows) of each figure
        "reconstructions.png": (10, 2),
        "samples.png": (10, 1),
        "interpolations.png": (evaluate.INTERPOLATION_STEPS, 2),
        "manifold.png": (6, 6),
    }
    for run in two_runs:
        for name, (cols, rows) in sizes.items():
            with Image.open(out / run.name / name) as im:
                assert im.size == (cols * cell + 2, rows * cell + 2), (run.name, name)
    with Image.open(out / "comparison_mnist.png") as im:
        assert im.size[1] == 5 * cell + 2  # test images, 2 rows of reconstructions, 2 of samples
    assert json.loads((out / "summary.json").read_text()) == summary
    markdown = (out / "summary.md").read_text()
    data = input_pipeline.load_mnist(mnist_dir)["test"].astype(np.float32) / 255
    samples = evaluate.latent_samples(2, N_TEST, 0)
    model_classifier, _ = classifier.load(trained_classifier[0])
    for run in two_runs:
        entry = summary["runs"][run.name]
        assert set(entry["reconstruction"]) == set(evaluate.SCORES)
        assert all(np.isfinite(v) for v in entry["reconstruction"].values())
        # The L2 score, computed here from the checkpoint: mean over the test images of Σ (x̂ − x)².
        model, _ = train.load_run(run)
        recon = np.asarray(model.decode(model.encode(data)[0]))
        want = np.mean(np.sum((recon - data) ** 2, axis=(1, 2, 3)))
        assert entry["reconstruction"]["L2"] == pytest.approx(want, rel=1e-5)
        # The Fréchet distance between the test images and decodings of the documented latents.
        feats = (
            classifier.features(model_classifier, data),
            classifier.features(model_classifier, model.decode(samples)),
        )
        assert entry["frechet"] == pytest.approx(frechet.frechet_distance_of_features(*feats), rel=1e-4)
        assert f"| {run.name} | {entry['loss']} |" in markdown
    # the random stand-in backbone of the test weights is labelled as such
    assert summary["vgg16_backbone"]["version"] == "unverified"
    assert any("not torchvision's ImageNet checkpoint" in n for n in summary["notes"])


def test_evaluate_without_classifier_or_backbone_notes_it(two_runs, mnist_dir, converted_weights, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    for f in converted_weights.iterdir():
        if f.name != "vgg16_backbone.npz":
            (weights / f.name).symlink_to(f)
    summary = evaluate.evaluate_runs(two_runs[:1], tmp_path / "out", data_dir=mnist_dir, weights_dir=weights)
    entry = summary["runs"][two_runs[0].name]
    assert "frechet" not in entry and set(entry["reconstruction"]) == {"L2", "SSIM", "Watson-DFT"}
    assert any("no --classifier given" in n for n in summary["notes"])
    assert any("no Deeploss-VGG score" in n for n in summary["notes"])
    assert "vgg16_backbone" not in summary


def test_evaluate_bad_input(tmp_path, two_runs, capsys):
    from experiments.vae.__main__ import main

    with pytest.raises(ValueError, match="no runs given"):
        evaluate.evaluate_runs([], tmp_path)
    with pytest.raises(FileNotFoundError, match="not a VAE run folder"):
        evaluate.evaluate_runs([tmp_path], tmp_path / "out")
    with pytest.raises(ValueError, match="two runs are named"):
        evaluate.evaluate_runs([two_runs[0], two_runs[0]], tmp_path / "out")
    assert main(["evaluate", "--runs", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "not a VAE run folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written
