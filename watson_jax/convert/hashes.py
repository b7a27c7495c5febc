"""The pinned sha256 digests and upstream locations of every file the converter reads.

The original weight files are those of Czolbe et al.'s repository
https://github.com/SteffenCzolbe/PerceptualSimilarity, folder ``src/loss/weights``: version 'current' at its
last commit 3729dd1fc7e7082c0c66f7dc74d119a78948cb17 (retrained Dec 2020 on [0, 1] data), version 'neurips'
at the tag ``NeurIPS-pub`` (commit 727781cddebffeace979ccd32e2667e6cc566850, Nov 2020, as published with the
paper). The files are plain git blobs there (not LFS), served as raw files by GitHub.
torchvision's ImageNet checkpoints come from https://download.pytorch.org/models/.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: sha256 of the upstream weight files: 'current' = the repository at its last commit (3729dd1, retrained
#: Dec 2020 on [0, 1] data); 'neurips' = the files as published with the paper (Nov 2020 tag).
KNOWN_SHA256 = {
    "current": {
        "gray_adaptive_trial0.pth": "db9673847841ebdfa130f9d861e6e8a27426cc4f88e5f8b702639eda7a089667",
        "gray_pnet_lin_squeeze_trial0.pth": "09edfe8565911f6c275646e1a5a5a04a17997e8175bb79bbc10c6ca3e87e602a",  # noqa: E501
        "gray_pnet_lin_vgg_trial0.pth": "bbf8ea727bac61aaaefba7fae63a10547c03d4cd5b81a7ba05d8003a1ca96788",
        "gray_watson_dct_trial0.pth": "6401e9d3a430ac5dac691f93f1b9b61562ce13457a26b4dcb87eea39c5ea7ff4",
        "gray_watson_fft_trial0.pth": "74fda350525e4660671bc957944d6e9773b3989effc5aa9d2b73eccd5943584e",
        "rgb_adaptive_trial0.pth": "3b2d5d28b8468f5e1d119f1fa709199b6c645dc7f58538d939ebc27287fb95d4",
        "rgb_pnet_lin_squeeze_trial0.pth": "7f4c84e909231e6eb253f55f8484e5895c2044178fe3316912ef4ebd50dc7b14",
        "rgb_pnet_lin_vgg_trial0.pth": "df4bad76bf9d8bca8466f4e34adc12289dbce25c6e040cba3a5152c24cdf3682",
        "rgb_watson_dct_trial0.pth": "bde40e0bc1912060da45b4487df660450ba91fa44c031f22a144c661d99488ef",
        "rgb_watson_fft_trial0.pth": "98386c0e0841fc346ab4c7d296788ed0af81f2ca8866a885be4405d03321a717",
    },
    "neurips": {
        "gray_adaptive_trial0.pth": "656c1034e3e5d7901f3f68ec1213d65b0734ebc5beb6d29906dcf4c8f189f6d4",
        "gray_pnet_lin_squeeze_trial0.pth": "2f718da9e581f45ee60fda2edca52b532d963480e6280efc61b8b40df422ca4a",  # noqa: E501
        "gray_pnet_lin_vgg_trial0.pth": "4aca0ec1c134ceab7485ced19409ac372778d7f58bde518ab7775fe37e14d519",
        "gray_watson_dct_trial0.pth": "9f21ca312e23e3483462f6658f0e7e8f0ea3c0a685f5e98c7c2ad8ac5c1f4acf",
        "gray_watson_fft_trial0.pth": "ef415e97bd2654035e6481387fd79d6f232c646861d3a001490dcfd5a45d34dd",
        "rgb_adaptive_trial0.pth": "a826a3367732df26d7fda8d763d7a93575205947dcaabfd035e48ad675387848",
        "rgb_pnet_lin_squeeze_trial0.pth": "2051619f3331a45f21913a3bebd8cb20238a946b7cef53effc9e8407e2f91f8c",
        "rgb_pnet_lin_vgg_trial0.pth": "3debe45dcd1813186348c80c48b77c63aae5d480aad66b3349ae55eed68d6a14",
        "rgb_watson_dct_trial0.pth": "3bf6f274ee0a4d3b7d0afcc18bd0357589650b223e481c1fd68e56dec1bd7bf6",
        "rgb_watson_fft_trial0.pth": "ab5e833a26d7797a2ecca4a44be9ff3c1cd09d16665df5b732e82dd56157b76b",
    },
}
VERSIONS = tuple(KNOWN_SHA256)
#: Barron's log-partition table (robust_loss_pytorch's ``partition_spline.npz``).
PARTITION_SPLINE_SHA256 = "e60b3f3f55ee53bd72da29dc6ffd8e43024574aff03bf7d0dccc6dc60d78de10"


#: The original repository and the commit of each version (``git rev-parse 3729dd1 NeurIPS-pub^{commit}``).
UPSTREAM_REPOSITORY = "SteffenCzolbe/PerceptualSimilarity"
UPSTREAM_COMMITS = {
    "current": "3729dd1fc7e7082c0c66f7dc74d119a78948cb17",
    "neurips": "727781cddebffeace979ccd32e2667e6cc566850",
}
UPSTREAM_FOLDER = "src/loss/weights"
#: Replaces the base location of the original weight files: files are fetched as ``<base>/<file name>``.
DOWNLOAD_URL_ENV = "WATSON_JAX_DOWNLOAD_URL"
#: Replaces the base location of torchvision's checkpoints (``<base>/<file name>``).
TORCHVISION_URL_ENV = "WATSON_JAX_TORCHVISION_URL"
TORCHVISION_BASE_URL = "https://download.pytorch.org/models"


def upstream_url(name: str, version: str = "current") -> str:
    """Where the original file ``name`` of ``version`` is fetched from: ``$WATSON_JAX_DOWNLOAD_URL/<name>``
    when that is set, else the raw file at the pinned commit of the original repository."""
    base = os.environ.get(DOWNLOAD_URL_ENV)
    if base:
        return f"{base.rstrip('/')}/{name}"
    return (
        f"https://raw.githubusercontent.com/{UPSTREAM_REPOSITORY}/{UPSTREAM_COMMITS[version]}/"
        f"{UPSTREAM_FOLDER}/{name}"
    )


def torchvision_url(name: str) -> str:
    """Where torchvision's checkpoint ``name`` is fetched from (``$WATSON_JAX_TORCHVISION_URL`` or
    https://download.pytorch.org/models, then ``/<name>``)."""
    base = os.environ.get(TORCHVISION_URL_ENV) or TORCHVISION_BASE_URL
    return f"{base.rstrip('/')}/{name}"


def sha256(path: str | os.PathLike) -> str:
    """The hex sha256 digest of the file at ``path`` (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def known_version(path: Path, digest: str) -> str | None:
    """The upstream version whose pinned sha256 for this file name is ``digest``, if any."""
    return next((v for v in VERSIONS if KNOWN_SHA256[v].get(path.name) == digest), None)


#: sha256 of torchvision's ImageNet checkpoints (``https://download.pytorch.org/models/<file>``) where the
#: full digest is known — the same value in several independent public checksum lists, and each starts with
#: the 8 hex digits torchvision puts in the file name. None: only those 8 digits are known, and they are
#: what is checked (as torch hub's ``check_hash`` does on download).
TORCHVISION_SHA256: dict[str, str | None] = {
    "vgg16-397923af.pth": "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    "squeezenet1_1-b8a52dc0.pth": "b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b",
    "squeezenet1_1-f364aa15.pth": None,
}


def torchvision_prefix(filename: str) -> str:
    """The hash prefix torchvision puts in a checkpoint's name: 'vgg16-397923af.pth' → '397923af'."""
    return filename.rsplit("-", 1)[-1].split(".", 1)[0]
