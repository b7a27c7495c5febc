"""Conversion between the original PyTorch weight files and watson_jax weight files, and their download.

The original files (``*_trial0.pth``: legacy torch pickles holding plain dicts of tensors, docs/reference.md
§9) are read with ``torch.load(weights_only=True)`` after their sha256 is checked against the pinned table of
the known upstream files; they are written as ``.npz`` parameter pytrees (see :mod:`watson_jax.weights`).
``--to-torch`` writes our files back in the reference's key layout and tensor shapes, constants included, so
they load strictly into the reference code. torch is imported only when a ``.pth`` is read or written.

Modules: :mod:`.hashes` (pinned sha256 digests and upstream URLs), :mod:`.formats` (key maps of the
original files), :mod:`.torchio` (``.pth`` reading and writing), :mod:`.reference` (converting the original
files), :mod:`.backbones` (torchvision's ImageNet backbones for Deeploss), :mod:`.download` (fetching on
first use), :mod:`.commands` (how messages name the converter), :mod:`.command` (``watson-jax convert``).
"""

# The private names below stay importable from here for the code that used them before the split.
# ruff: noqa: F401

from .backbones import (
    _BACKBONE_BY_FILENAME,
    _FEATURES,
    BACKBONE_PREFIX_VERIFIED,
    BACKBONE_VERIFIED,
    BACKBONES,
    UNVERIFIED,
    _download_hint,
    backbone_to_ours,
    backbone_to_reference,
    convert_backbone,
    export_backbone,
    exported_backbone_name,
    find_backbone_checkpoint,
    verify_backbone,
)
from .command import FROM_HUB_CACHE, _parser, main
from .commands import BACKBONE_FLAGS, CONVERT_COMMAND, backbone_flag, converter_command
from .download import DownloadError, download_backbone, download_reference_file, fetch, offline
from .formats import (
    _BY_OUR_NAME,
    _BY_REFERENCE_NAME,
    ADAPTIVE_KEYS,
    ADAPTIVE_PREFIX,
    DEEPLOSS_NETS,
    FORMATS,
    WeightFormat,
    deeploss_head_key,
)
from .hashes import (
    KNOWN_SHA256,
    PARTITION_SPLINE_SHA256,
    TORCHVISION_SHA256,
    UPSTREAM_COMMITS,
    VERSIONS,
    known_version,
    sha256,
    torchvision_prefix,
    torchvision_url,
    upstream_url,
)
from .reference import (
    _known,
    convert_reference_file,
    export_reference_file,
    import_partition_spline,
    verify,
)
from .torchio import _load_state_dict, _to_numpy, _torch, read_reference, write_reference

__all__ = [
    "ADAPTIVE_KEYS",
    "ADAPTIVE_PREFIX",
    "BACKBONES",
    "BACKBONE_FLAGS",
    "BACKBONE_PREFIX_VERIFIED",
    "BACKBONE_VERIFIED",
    "CONVERT_COMMAND",
    "DEEPLOSS_NETS",
    "FORMATS",
    "FROM_HUB_CACHE",
    "KNOWN_SHA256",
    "PARTITION_SPLINE_SHA256",
    "TORCHVISION_SHA256",
    "UNVERIFIED",
    "UPSTREAM_COMMITS",
    "VERSIONS",
    "DownloadError",
    "WeightFormat",
    "backbone_flag",
    "backbone_to_ours",
    "backbone_to_reference",
    "convert_backbone",
    "convert_reference_file",
    "converter_command",
    "deeploss_head_key",
    "download_backbone",
    "download_reference_file",
    "export_backbone",
    "export_reference_file",
    "exported_backbone_name",
    "fetch",
    "find_backbone_checkpoint",
    "import_partition_spline",
    "known_version",
    "main",
    "offline",
    "read_reference",
    "sha256",
    "torchvision_prefix",
    "torchvision_url",
    "upstream_url",
    "verify",
    "verify_backbone",
    "write_reference",
]
