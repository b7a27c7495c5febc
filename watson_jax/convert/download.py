"""Fetching the original weight files and torchvision's backbones on first use.

A file is fetched into a temporary folder, its sha256 checked against the pinned table
(:mod:`watson_jax.convert.hashes`), converted, and the converted ``.npz`` written atomically into the weights
folder: a failed or refused download leaves nothing there. ``WATSON_JAX_OFFLINE=1`` forbids all of it.
Only the standard library is used (``urllib``); the progress bar on stderr is this module's own.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import WeightsError
from .commands import CONVERT_COMMAND
from .hashes import KNOWN_SHA256, TORCHVISION_SHA256, torchvision_prefix, torchvision_url, upstream_url

#: Set to 1 (or any value but '' and '0') to never touch the network.
OFFLINE_ENV = "WATSON_JAX_OFFLINE"
#: Files above this size get a progress bar on stderr.
PROGRESS_MIN_BYTES = 1 << 20
_CHUNK = 1 << 16


class DownloadError(WeightsError):
    """A download failed (network) or was refused (sha256 mismatch)."""


def offline() -> bool:
    """Whether ``$WATSON_JAX_OFFLINE`` forbids downloads."""
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def _progress(done: int, total: int, name: str) -> None:
    width = 30
    filled = width * done // total
    sys.stderr.write(
        f"\r{name}: [{'#' * filled}{'.' * (width - filled)}] {done / 2**20:.1f}/{total / 2**20:.1f} MB"
    )
    sys.stderr.flush()


def fetch(url: str, path: Path, *, sha256: str | None = None, sha256_prefix: str | None = None) -> Path:
    """Download ``url`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    The file's sha256 must equal ``sha256`` (or start with ``sha256_prefix``); otherwise the download is
    refused with a :class:`DownloadError` naming the expected and the actual digest, and nothing is left at
    ``path``. A network failure raises :class:`DownloadError` saying how to work offline. Prints one line
    on stderr saying what was fetched from where, and a progress bar for files over 1 MB.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    total = int(response.headers.get("Content-Length") or 0)
                    done, shown = 0, 0.0
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if total > PROGRESS_MIN_BYTES and time.monotonic() - shown > 0.1:
                            _progress(done, total, path.name)
                            shown = time.monotonic()
                    if total > PROGRESS_MIN_BYTES:
                        _progress(done, total, path.name)
                        sys.stderr.write("\n")
                    if total and done != total:
                        raise OSError(f"connection closed after {done} of {total} bytes")
            except (urllib.error.URLError, OSError) as err:
                raise DownloadError(
                    f"could not fetch {url} ({type(err).__name__}: {err}). To work offline, set "
                    f"{OFFLINE_ENV}=1 and convert local copies of the files with: {CONVERT_COMMAND} --source "
                    "<folder of the original *_trial0.pth files> (or the backbone options, see "
                    f"{CONVERT_COMMAND} --help)"
                ) from err
        actual = digest.hexdigest()
        if (sha256 is not None and actual != sha256) or (
            sha256_prefix is not None and not actual.startswith(sha256_prefix)
        ):
            expected = sha256 if sha256 is not None else f"{sha256_prefix}…"
            raise DownloadError(
                f"refused {url}: its sha256 is {actual}, expected {expected} (a corrupt or modified file, "
                "or a mirror serving another version); nothing was written."
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"watson_jax: fetched {path.name} from {url}", file=sys.stderr)
    return path


def download_reference_file(name: str, dest: str | os.PathLike, *, version: str = "current") -> Path:
    """Fetch the original file ``name`` (e.g. 'rgb_watson_fft_trial0.pth') of ``version``, check it and
    convert it into ``dest``; returns the converted file's path."""
    from .reference import convert_reference_file

    if name not in KNOWN_SHA256[version]:
        raise WeightsError(
            f"{name} is not an original weight file; known: {', '.join(KNOWN_SHA256[version])}"
        )
    with tempfile.TemporaryDirectory(prefix="watson_jax-") as tmp:
        pth = fetch(upstream_url(name, version), Path(tmp) / name, sha256=KNOWN_SHA256[version][name])
        return convert_reference_file(pth, dest, version=version)


def download_backbone(backbone, dest: str | os.PathLike) -> Path:
    """Fetch torchvision's checkpoint of ``backbone`` (a :class:`~watson_jax.losses.deeploss.Backbone`),
    checked by its pinned sha256 (or the name's hash prefix), and convert it into ``dest``. A checkpoint
    already in the torch hub cache is converted from there (and checked the same way) without a download."""
    from .. import weights
    from .backbones import convert_backbone

    hub = weights.torch_hub_checkpoints()
    cached = next((hub / n for n in backbone.torchvision_files if (hub / n).is_file()), None)
    if cached is not None:
        return convert_backbone(cached, backbone, dest)
    name = backbone.torchvision_files[0]
    with tempfile.TemporaryDirectory(prefix="watson_jax-") as tmp:
        checkpoint = fetch(
            torchvision_url(name),
            Path(tmp) / name,
            sha256=TORCHVISION_SHA256.get(name),
            sha256_prefix=None if TORCHVISION_SHA256.get(name) else torchvision_prefix(name),
        )
        return convert_backbone(checkpoint, backbone, dest)
