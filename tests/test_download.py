"""Fetching the original weights on first use (watson_jax/convert/download.py, weights.load_pretrained).

A local HTTP server on 127.0.0.1 (a thread of this process) serves the original files of
../shared/original_weights as the mirror named by $WATSON_JAX_DOWNLOAD_URL, and tampered copies; the
internet is never touched. Each test records the paths the server was asked for.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import shared

from watson_jax import LossProvider, convert, weights
from watson_jax.cli import main as cli_main
from watson_jax.convert.download import DownloadError
from watson_jax.errors import MissingWeightsError

DFT = "rgb_watson_fft_trial0.pth"
REPO = Path(__file__).resolve().parents[1]


class _Server:
    """A folder served over HTTP on 127.0.0.1; ``requests`` lists the paths asked for."""

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """current/ (the original files as published at the last commit), neurips/ (at the NeurIPS tag),
    tampered/ (rgb_watson_fft_trial0.pth with one byte changed), big/ (a 2 MB file)."""
    originals = shared("original_weights")
    root = tmp_path_factory.mktemp("mirror")
    shutil.copytree(originals, root / "current", ignore=shutil.ignore_patterns("neurips_pub_tag", "lpips*"))
    shutil.copytree(originals / "neurips_pub_tag", root / "neurips")
    (root / "tampered").mkdir()
    data = bytearray((originals / DFT).read_bytes())
    data[-10] ^= 0xFF
    (root / "tampered" / DFT).write_bytes(bytes(data))
    (root / "big").mkdir()
    (root / "big" / "big.bin").write_bytes(np.random.default_rng(0).bytes(2 << 20))
    server = _Server(root)
    yield server
    server.close()


@pytest.fixture
def online(monkeypatch, mirror):
    """Downloads allowed (the suite sets WATSON_JAX_OFFLINE=1), from the mirror's current/ folder."""
    monkeypatch.delenv("WATSON_JAX_OFFLINE", raising=False)
    monkeypatch.setenv("WATSON_JAX_DOWNLOAD_URL", f"{mirror.url}/current")
    monkeypatch.setenv("WATSON_JAX_TORCHVISION_URL", f"{mirror.url}/torchvision")
    mirror.requests.clear()
    return mirror


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_pretrained_loss_fetches_checks_and_converts_on_first_use(online, tmp_path, capsys):
    folder = tmp_path / "weights"
    loss = LossProvider().get_loss_function("Watson-DFT", deterministic=True, weights_dir=folder)
    assert online.requests == [f"/current/{DFT}"]
    assert _files(folder) == ["watson_dft_rgb.npz"]
    assert f"fetched {DFT} from {online.url}/current/{DFT}" in capsys.readouterr().err
    # The same parameters as converting the original file directly.
    direct = convert.convert_reference_file(shared("original_weights", DFT), tmp_path / "direct")
    expected = weights.flatten(weights.read_params(direct)[0])
    got = weights.flatten({k: v for k, v in loss.params.items()})
    assert sorted(got) == sorted(expected)
    for k in expected:
        np.testing.assert_array_equal(np.asarray(got[k]), expected[k])
    _, meta = weights.read_params(folder / "watson_dft_rgb.npz")
    assert meta["version"] == "current" and meta["sha256"] == convert.KNOWN_SHA256["current"][DFT]
    # Second use: read from the folder, no request.
    LossProvider().get_loss_function("Watson-DFT", deterministic=True, weights_dir=folder)
    assert online.requests == [f"/current/{DFT}"]


def test_torch_provider_fetches_too(online, tmp_path):
    torch_provider = pytest.importorskip("watson_jax.torch").LossProvider
    folder = tmp_path / "weights"
    torch_provider().get_loss_function(
        "Watson-DCT", colorspace="grey", deterministic=True, weights_dir=folder
    )
    assert online.requests == ["/current/gray_watson_dct_trial0.pth"]
    assert _files(folder) == ["watson_dct_gray.npz"]


def test_tampered_download_is_refused_and_leaves_nothing(online, monkeypatch, tmp_path):
    monkeypatch.setenv("WATSON_JAX_DOWNLOAD_URL", f"{online.url}/tampered")
    folder = tmp_path / "weights"
    actual = convert.sha256(Path(online.root) / "tampered" / DFT)
    expected = convert.KNOWN_SHA256["current"][DFT]
    with pytest.raises(DownloadError, match=f"(?s)sha256 is {actual}, expected {expected}"):
        LossProvider().get_loss_function("Watson-DFT", deterministic=True, weights_dir=folder)
    assert online.requests == [f"/tampered/{DFT}"]
    assert not folder.exists() or _files(folder) == []


def test_network_failure_leaves_nothing_and_says_how_to_work_offline(online, monkeypatch, tmp_path):
    monkeypatch.setenv("WATSON_JAX_DOWNLOAD_URL", f"{online.url}/missing")  # 404
    folder = tmp_path / "weights"
    with pytest.raises(
        DownloadError, match="(?s)could not fetch.*404.*WATSON_JAX_OFFLINE=1.*watson-jax convert"
    ):
        LossProvider().get_loss_function("Watson-DFT", deterministic=True, weights_dir=folder)
    assert not folder.exists() or _files(folder) == []


def test_connection_refused(online, monkeypatch, tmp_path):
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("WATSON_JAX_DOWNLOAD_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadError, match="(?s)could not fetch.*WATSON_JAX_OFFLINE"):
        LossProvider().get_loss_function("Watson-DFT", deterministic=True, weights_dir=tmp_path / "weights")
    assert not (tmp_path / "weights").exists() or _files(tmp_path / "weights") == []


@pytest.mark.parametrize("how", ["env", "keyword"])
def test_offline_never_touches_the_network(online, monkeypatch, tmp_path, how):
    options = {}
    if how == "env":
        monkeypatch.setenv("WATSON_JAX_OFFLINE", "1")
    else:
        options["download"] = False
    with pytest.raises(MissingWeightsError, match="(?s)not found.*watson-jax convert --download --dest"):
        LossProvider().get_loss_function("Watson-DFT", weights_dir=tmp_path, **options)
    assert online.requests == []


def test_progress_bar_for_files_over_1mb(online, tmp_path, capsys):
    path = tmp_path / "big.bin"
    digest = convert.sha256(Path(online.root) / "big" / "big.bin")
    convert.fetch(f"{online.url}/big/big.bin", path, sha256=digest)
    err = capsys.readouterr().err
    assert "big.bin: [" in err and "2.0/2.0 MB" in err
    assert convert.sha256(path) == digest
    # A small file: no bar, one line.
    convert.fetch(f"{online.url}/current/{DFT}", tmp_path / DFT, sha256=convert.KNOWN_SHA256["current"][DFT])
    assert capsys.readouterr().err.strip().splitlines() == [
        f"watson_jax: fetched {DFT} from {online.url}/current/{DFT}"
    ]


def test_backbone_from_the_torchvision_mirror_is_checked(online, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty torch hub cache
    # A file of the right name but not torchvision's: refused by the pinned full sha256.
    (Path(online.root) / "fake_torchvision").mkdir(exist_ok=True)
    (Path(online.root) / "fake_torchvision" / "vgg16-397923af.pth").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("WATSON_JAX_TORCHVISION_URL", f"{online.url}/fake_torchvision")
    backbone = convert.BACKBONES["vgg16"]
    with pytest.raises(DownloadError, match=f"expected {convert.TORCHVISION_SHA256['vgg16-397923af.pth']}"):
        weights.load_backbone(backbone, tmp_path / "weights")
    assert online.requests == ["/fake_torchvision/vgg16-397923af.pth"]
    assert not (tmp_path / "weights").exists() or _files(tmp_path / "weights") == []


def test_upstream_urls_are_pinned(monkeypatch):
    monkeypatch.delenv("WATSON_JAX_DOWNLOAD_URL", raising=False)
    monkeypatch.delenv("WATSON_JAX_TORCHVISION_URL", raising=False)
    base = "https://raw.githubusercontent.com/SteffenCzolbe/PerceptualSimilarity"
    assert (
        convert.upstream_url(DFT) == f"{base}/3729dd1fc7e7082c0c66f7dc74d119a78948cb17/src/loss/weights/{DFT}"
    )
    assert convert.upstream_url(DFT, "neurips") == (
        f"{base}/727781cddebffeace979ccd32e2667e6cc566850/src/loss/weights/{DFT}"
    )
    assert (
        convert.torchvision_url("vgg16-397923af.pth")
        == "https://download.pytorch.org/models/vgg16-397923af.pth"
    )


def test_convert_download_command(online, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty torch hub cache
    monkeypatch.setenv("WATSON_JAX_DOWNLOAD_URL", f"{online.url}/neurips")
    dest = tmp_path / "weights"
    status = cli_main(["convert", "--download", "--version", "neurips", "--dest", str(dest)])
    out, err = capsys.readouterr()
    # The ten original files are fetched and converted; the backbones are not on the mirror (404): exit 1.
    assert status == 1
    assert sorted(online.requests)[:10] == sorted(f"/neurips/{n}" for n in convert.KNOWN_SHA256["neurips"])
    assert _files(dest) == sorted(f.our_name for f in convert.FORMATS)
    assert out.count("wrote ") == 10 and err.count("could not fetch") == 2
    assert sorted(online.requests)[10:] == [
        "/torchvision/squeezenet1_1-b8a52dc0.pth",
        "/torchvision/vgg16-397923af.pth",
    ]
    for f in convert.FORMATS:
        assert weights.read_params(dest / f.our_name)[1]["version"] == "neurips"


def test_convert_subcommand_help(capsys):
    assert cli_main(["convert", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m watson_jax convert") and "--download" in out


def test_download_command_refused_offline(mirror, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WATSON_JAX_OFFLINE", "1")
    mirror.requests.clear()
    assert cli_main(["convert", "--download", "--dest", str(tmp_path)]) == 2
    assert "WATSON_JAX_OFFLINE is set" in capsys.readouterr().err
    assert mirror.requests == [] and _files(tmp_path) == []


def test_python_m_watson_jax_convert_and_the_wrapper():
    for command in (["-m", "watson_jax", "convert", "--help"], [str(REPO / "convert_weights.py"), "--help"]):
        result = subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, cwd=REPO, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert "--download" in result.stdout and "--to-torch" in result.stdout
