"""Deeploss's ImageNet backbones: finding, verifying and converting torchvision's checkpoints.

The original repository does not ship them: torchvision's ``vgg16-397923af.pth`` and
``squeezenet1_1-b8a52dc0.pth`` (or the older ``squeezenet1_1-f364aa15.pth``) are converted into
``<name>_backbone.npz`` holding only the layers the loss uses (``features.<i>[.<part>]`` → {'kernel': HWIO,
'bias'}; the classifier is dropped). A whole-model state dict (``features.<i>.*`` and ``classifier.*``), a
features-only one (``features.<i>.*``) and the state dict of the ``features`` Sequential itself
(``<i>.weight``, ``<i>.squeeze.weight``, ...) are accepted. A checkpoint is accepted when its sha256 equals
the full digest pinned in :data:`~watson_jax.convert.hashes.TORCHVISION_SHA256`, or, for a known file whose
full digest is not pinned (``squeezenet1_1-f364aa15.pth``), when it starts with the 8 hex digits in that file
name (the check torch hub makes on download). Anything else needs ``allow_unverified``.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from .. import weights
from ..errors import WeightsError
from ..losses import deeploss
from .commands import backbone_flag
from .hashes import TORCHVISION_SHA256, sha256, torchvision_prefix
from .reference import _known
from .torchio import _load_state_dict, write_reference

#: The backbones by file stem ('vgg16', 'squeezenet1_1').
BACKBONES: dict[str, deeploss.Backbone] = {b.name: b for b in deeploss.BACKBONES.values()}
_BACKBONE_BY_FILENAME = {b.filename: b for b in BACKBONES.values()}
#: Labels of the provenance recorded in a converted backbone (metadata 'version').
BACKBONE_VERIFIED, BACKBONE_PREFIX_VERIFIED, UNVERIFIED = (
    "torchvision",
    "torchvision-prefix",
    "unverified",
)
_FEATURES = "features."


def exported_backbone_name(backbone: deeploss.Backbone) -> str:
    """The file ``--to-torch`` writes a converted backbone to, e.g. 'vgg16_features.pth'."""
    return f"{backbone.name}_features.pth"


def _download_hint(backbone: deeploss.Backbone) -> str:
    return (
        f"torchvision's ImageNet checkpoint {' or '.join(backbone.torchvision_files)} (e.g. "
        f"https://download.pytorch.org/models/{backbone.torchvision_files[0]}, which "
        f"torchvision.models.{backbone.name}(weights='IMAGENET1K_V1') downloads into the torch hub cache)"
    )


def find_backbone_checkpoint(backbone: deeploss.Backbone, where: Path | None = None) -> Path:
    """The checkpoint to convert: ``where`` itself if it is a file; else the first of the backbone's
    torchvision file names found in the folder ``where`` (default: the torch hub cache)."""
    folder = weights.torch_hub_checkpoints() if where is None else Path(where).expanduser()
    if where is not None and not folder.is_dir():
        if folder.is_file():
            return folder
        raise WeightsError(
            f"{folder} not found: pass {backbone_flag(backbone)} the path of {_download_hint(backbone)}."
        )
    for name in backbone.torchvision_files:
        if (folder / name).is_file():
            return folder / name
    place = "the torch hub cache " if where is None else ""
    raise WeightsError(
        f"no {backbone.name} checkpoint found in {place}{folder}: {backbone.metric} needs "
        f"{_download_hint(backbone)}. Put it there, or pass its path: {backbone_flag(backbone)} PATH."
    )


def verify_backbone(
    path: Path, backbone: deeploss.Backbone, allow_unverified: bool = False
) -> tuple[str, str]:
    """Check a torchvision checkpoint's sha256; returns (digest, label), label one of 'torchvision' (equal
    to a pinned full digest), 'torchvision-prefix' (starts with the 8 hex digits of a known file name whose
    full digest is not pinned) or 'unverified' (only with ``allow_unverified``; else WeightsError)."""
    path = Path(path)
    digest = sha256(path)
    for name in backbone.torchvision_files:
        full = TORCHVISION_SHA256.get(name)
        if full is not None and digest == full:
            return digest, BACKBONE_VERIFIED
        if full is None and digest.startswith(torchvision_prefix(name)):
            return digest, BACKBONE_PREFIX_VERIFIED
    if allow_unverified:
        return digest, UNVERIFIED
    other = next(
        (
            f"{b.name} ({name})"
            for b in BACKBONES.values()
            if b is not backbone
            for name in b.torchvision_files
            if TORCHVISION_SHA256.get(name) == digest
            or (TORCHVISION_SHA256.get(name) is None and digest.startswith(torchvision_prefix(name)))
        ),
        None,
    )
    if other is not None:
        raise WeightsError(
            f"{path} is torchvision's {other} checkpoint, not {backbone.name}: pass it to the "
            f"option of that backbone, and {_download_hint(backbone)} to {backbone_flag(backbone)}."
        )
    if path.name in backbone.torchvision_files:
        expected = TORCHVISION_SHA256.get(path.name) or f"{torchvision_prefix(path.name)}…"
        raise WeightsError(
            f"{path} is named like torchvision's {backbone.name} checkpoint, but its sha256 {digest} "
            f"is not the published one ({expected}): it is corrupt, truncated or modified. "
            "Download it again, or pass --allow-unverified to convert it anyway."
        )
    raise WeightsError(
        f"{path} is not a known torchvision {backbone.name} checkpoint (sha256 {digest}; known: "
        f"{', '.join(backbone.torchvision_files)}, verified by sha256). Pass --allow-unverified to "
        "convert it anyway."
    )


def backbone_to_ours(state: dict, backbone: deeploss.Backbone, source: str) -> dict:
    """A torchvision state dict ({key: tensor or array}) → our backbone pytree {layer: {'kernel': HWIO,
    'bias'}}, keeping only the layers the loss uses. Keys are ``features.<i>.*`` (whole model or its
    features) or ``<i>.*`` (the ``features`` Sequential's own state dict)."""
    prefix = _FEATURES if any(k.startswith(_FEATURES) for k in state) else ""
    params = {}
    for layer, (kh, kw, cin, cout) in backbone.layout.items():
        base = layer if prefix else layer[len(_FEATURES) :]
        leaves = {}
        for part, shape in (("weight", (cout, cin, kh, kw)), ("bias", (cout,))):
            key = f"{base}.{part}"
            if key not in state:
                raise WeightsError(
                    f"{source}: missing key '{key}'; this is not a torchvision {backbone.name} checkpoint "
                    f"(a state dict of torchvision.models.{backbone.name}() or of its .features, keys "
                    f"'{layer}.{part}' or '{layer[len(_FEATURES) :]}.{part}')."
                )
            value = state[key]
            if tuple(value.shape) != shape:
                raise WeightsError(
                    f"{source}: '{key}' has shape {tuple(value.shape)}, expected {shape}; this is not "
                    f"a torchvision {backbone.name} checkpoint."
                )
            if hasattr(value, "detach"):  # a torch tensor: float32 first (numpy cannot hold bfloat16)
                if not value.is_floating_point():
                    raise WeightsError(f"{source}: '{key}' holds {value.dtype}, not floating-point weights.")
                value = value.detach().cpu().float().numpy()
            leaves[part] = np.asarray(value)
        leaves["weight"] = np.transpose(leaves["weight"], (2, 3, 1, 0))  # OIHW → HWIO
        params[layer] = {
            "kernel": np.array(leaves["weight"], np.float32, order="C"),
            "bias": np.array(leaves["bias"], np.float32, order="C"),
        }
    return params


def backbone_to_reference(params: dict, backbone: deeploss.Backbone) -> OrderedDict[str, np.ndarray]:
    """Our backbone pytree → torchvision's state dict keys ``features.<i>.weight`` (OIHW) / ``.bias``, in
    torchvision's order."""
    state = OrderedDict()
    for layer in backbone.layout:
        state[f"{layer}.weight"] = np.transpose(np.asarray(params[layer]["kernel"], np.float32), (3, 2, 0, 1))
        state[f"{layer}.bias"] = np.asarray(params[layer]["bias"], np.float32)
    return state


def convert_backbone(
    path: Path, backbone: deeploss.Backbone | str, dest: Path, *, allow_unverified: bool = False
) -> Path:
    """Convert a torchvision checkpoint of ``backbone`` (a Backbone or its name, 'vgg16' /
    'squeezenet1_1') into ``dest``/<name>_backbone.npz and return the written path."""
    path = Path(path)
    backbone = BACKBONES[backbone] if isinstance(backbone, str) else backbone
    digest, label = verify_backbone(path, backbone, allow_unverified)
    state = _load_state_dict(path, f"torchvision's {backbone.name}")
    params = weights.check_params(
        backbone_to_ours(state, backbone, str(path)), backbone.template(), str(path)
    )
    return weights.save_params(
        Path(dest) / backbone.filename, params, source=path.name, sha256=digest, version=label
    )


def export_backbone(path: Path, dest: Path) -> Path:
    """Write a converted backbone (``<name>_backbone.npz``) as torchvision's features state dict
    (``<name>_features.pth``) into ``dest``."""
    path = Path(path)
    backbone = _known(_BACKBONE_BY_FILENAME, path, "a watson_jax backbone file name")
    params = weights.read_checked_params(path, backbone.template())
    out = Path(dest) / exported_backbone_name(backbone)
    write_reference(out, backbone_to_reference(params, backbone))
    return out
