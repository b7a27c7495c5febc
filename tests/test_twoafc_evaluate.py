"""experiments.twoafc evaluate against an independent computation with the losses called directly."""

import json

import numpy as np
import pytest

from experiments.twoafc import __main__ as cli
from experiments.twoafc import data, evaluate, synthetic
from watson_jax import LossProvider


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return synthetic.make_bapps(tmp_path_factory.mktemp("bapps") / "2afc", per_category=6, seed=3)


def _independent(root, name, luminance, batch):
    """Scores by hand: every image read with PIL, the loss called on batches in file order."""
    from PIL import Image

    loss = LossProvider().get_loss_function(
        name, "RGB", reduction="none", deterministic=True, pretrained=False, luminance=luminance
    )
    out = {}
    for category in ("traditional", "cnn"):
        folder = root / "val" / category
        names = sorted(p.stem for p in (folder / "ref").glob("*.png"))

        def img(sub, n, folder=folder):
            im = Image.open(folder / sub / f"{n}.png").convert("RGB").resize((64, 64), Image.BILINEAR)
            return np.asarray(im, np.float32) / 255

        ref, p0, p1 = (np.stack([img(s, n) for n in names]) for s in ("ref", "p0", "p1"))
        j = np.array([float(np.load(folder / "judge" / f"{n}.npy").reshape(())) for n in names])
        d0 = np.concatenate(
            [np.asarray(loss(p0[i : i + batch], ref[i : i + batch])) for i in range(0, 6, batch)]
        )
        d1 = np.concatenate(
            [np.asarray(loss(p1[i : i + batch], ref[i : i + batch])) for i in range(0, 6, batch)]
        )
        s = (d0 < d1) * (1 - j) + (d1 < d0) * j + 0.5 * (d0 == d1)
        out[category] = (s.mean(), (j**2 + (1 - j) ** 2).mean())
    return out


@pytest.mark.parametrize("protocol,luminance", [("per-image", "image"), ("reference", "batch")])
def test_evaluate_matches_direct_losses(root, protocol, luminance):
    src = data.FolderSource(root, "val")
    got = evaluate.evaluate(src, ["watson-dft", "l2"], "RGB", protocol=protocol, pretrained=False, batch=4)
    assert set(got) == {"Watson-DFT", "L2", "Human"}
    for name in ("Watson-DFT", "L2"):
        want = _independent(root, name, luminance, 6 if protocol == "per-image" else 4)
        for category, (score, human) in want.items():
            # 1e-6: our scores are float32 (judges stored as float32), the direct ones float64
            assert got[name][category] == pytest.approx(score, abs=1e-6)
            assert got["Human"][category] == pytest.approx(human, rel=1e-6)
        assert got[name]["mean"] == pytest.approx(np.mean([w[0] for w in want.values()]))


def test_cli_outputs_and_errors(root, tmp_path, capsys):
    js, out = tmp_path / "s.json", tmp_path / "fig"
    argv = ["evaluate", "--data", str(root), "--metrics", "L2", "--untrained", "--json", str(js)]
    rc = cli.main([*argv, "--out", str(out), "--compare-published"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "| L2 |" in table and "| Human |" in table
    scores = json.loads(js.read_text())
    assert set(scores) == {"L2", "Human"} and set(scores["L2"]) == {"traditional", "cnn", "mean"}
    assert all(0 <= v <= 1 for per in scores.values() for v in per.values())
    assert (out / "twoafc.png").read_bytes()[:4] == b"\x89PNG"
    rc = cli.main(
        ["evaluate", "--data", str(root), "--categories", "superres", "--json", str(tmp_path / "x.json")]
    )
    assert rc == 2 and "superres" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
