"""experiments.twoafc data: the folder reader against PIL, its errors, the tfds 'bapps' builder."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from experiments.twoafc import data, synthetic


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return synthetic.make_bapps(tmp_path_factory.mktemp("bapps") / "2afc", per_category=3)


def test_reader_matches_pil(root):
    src = data.FolderSource(root, "val")
    assert src.categories == ("traditional", "cnn") and len(src) == 6
    item = src[4]  # cnn, second name
    path = root / "val" / "cnn" / "p0" / "000001.png"
    want = np.asarray(Image.open(path).convert("RGB").resize((64, 64), Image.BILINEAR))
    np.testing.assert_array_equal(item["p0"], want)
    assert item["ref"].shape == (64, 64, 3) and item["category"] == 1
    judge = float(np.load(root / "val" / "cnn" / "judge" / "000001.npy")[0])
    assert item["judge"] == np.float32(judge)
    np.testing.assert_allclose(data.to_float(item["p0"]), want / 255.0)


@pytest.mark.parametrize("shape", [(), (1,), (1, 1, 1)])
def test_judge_shapes(tmp_path, shape):
    np.save(tmp_path / "j.npy", np.full(shape, 0.25, np.float32))
    assert data.read_judge(tmp_path / "j.npy") == np.float32(0.25)


def test_bad_judges(tmp_path):
    np.save(tmp_path / "j.npy", np.zeros((2,), np.float32))
    with pytest.raises(data.DataError, match="one number"):
        data.read_judge(tmp_path / "j.npy")
    np.save(tmp_path / "k.npy", np.asarray([1.5], np.float32))
    with pytest.raises(data.DataError, match=r"fraction in \[0, 1\]"):
        data.read_judge(tmp_path / "k.npy")


def test_layout_errors(root, tmp_path):
    with pytest.raises(data.DataError, match="folder holding train/ and val/"):
        data.FolderSource(tmp_path, "val")
    with pytest.raises(data.DataError, match="category 'superres' not found"):
        data.FolderSource(root, "val", ("superres",))
    with pytest.raises(data.DataError, match="split must be"):
        data.FolderSource(root, "test")
    bad = tmp_path / "bad"
    shutil.copytree(root / "val" / "cnn", bad / "val" / "cnn")
    (bad / "val" / "cnn" / "judge" / "000002.npy").unlink()
    with pytest.raises(data.DataError, match=r"judge does not match .*missing \['000002'\]"):
        data.FolderSource(bad, "val")
    shutil.rmtree(bad / "val" / "cnn" / "p1")
    with pytest.raises(data.DataError, match="p1 is missing"):
        data.FolderSource(bad, "val")


def test_tfds_builder_without_tensorflow(root, tmp_path):
    code = f"""
import sys
import numpy as np
from experiments.twoafc import bapps, data
bapps.prepare({str(root)!r}, {str(tmp_path)!r}, ("traditional", "cnn"))
prepared = bapps.PreparedSource({str(tmp_path)!r}, "val", ("traditional", "cnn"))
folder = data.FolderSource({str(root)!r}, "val")
assert len(prepared) == len(folder) == 6
for i in range(6):
    a, b = prepared[i], folder[i]
    assert all(np.array_equal(a[k], b[k]) for k in a), i
assert "tensorflow" not in sys.modules, "tensorflow was imported"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
    assert list(tmp_path.glob("bapps/cnn/1.0.0/bapps-val.array_record-*"))
