"""Conversion between the original PyTorch weight files and watson_jax weight files.

The original files (``*_trial0.pth``: legacy torch pickles holding plain dicts of tensors, SPEC §9) are
read with ``torch.load(weights_only=True)`` after their sha256 is checked against the pinned table of the
known upstream files; they are written as ``.npz`` parameter pytrees (see :mod:`watson_jax.weights`).
``--to-torch`` writes our files back in the reference's key layout and tensor shapes, constants included,
so they load strictly into the reference code. torch is imported only when a ``.pth`` is read or written.

Each supported file has one :class:`WeightFormat` entry — a key mapping both ways: the Watson-DCT/DFT,
Adaptive and Deeploss head files (``{rgb,gray}_pnet_lin_{vgg,squeeze}_trial0.pth``, ``lin{k}.model.1.weight``
of shape (1, C, 1, 1) ↔ our ``lin{k}`` of shape (C,)).

Deeploss also needs an ImageNet backbone, which the original repository does not ship: torchvision's
``vgg16-397923af.pth`` and ``squeezenet1_1-b8a52dc0.pth`` (or the older ``squeezenet1_1-f364aa15.pth``).
``--vgg16 [PATH]`` / ``--squeezenet [PATH]`` convert them (without PATH: from the torch hub cache,
:func:`watson_jax.weights.torch_hub_checkpoints`) into ``<name>_backbone.npz`` holding only the layers the
loss uses (``features.<i>[.<part>]`` → {'kernel': HWIO, 'bias'}; the classifier is dropped). A whole-model
state dict (``features.<i>.*`` and ``classifier.*``), a features-only one (``features.<i>.*``) and the state
dict of the ``features`` Sequential itself (``<i>.weight``, ``<i>.squeeze.weight``, ...) are accepted.
Verification: a checkpoint is accepted when its sha256 equals the full digest pinned in
:data:`TORCHVISION_SHA256` (``vgg16-397923af.pth`` and ``squeezenet1_1-b8a52dc0.pth``, as published in
several independent checksum lists), or, for a known file whose full digest is not pinned
(``squeezenet1_1-f364aa15.pth``), when its sha256 starts with the 8 hex digits in that file name — exactly
the check torch hub's ``check_hash`` makes when torchvision downloads it. Anything else needs
``--allow-unverified``. ``--to-torch`` writes converted backbones back as ``<name>_features.pth``:
torchvision's keys ``features.<i>.weight`` (OIHW) and ``features.<i>.bias``, in torchvision's order.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import blocks, partition, registry, weights
from .color import YCBCR_MATRIX, YCBCR_OFFSET
from .errors import WeightsError
from .losses import deeploss, watson

#: sha256 of the upstream weight files: 'current' = the repository at its last commit (3729dd1, retrained
#: Dec 2020 on [0, 1] data); 'neurips' = the files as published with the paper (Nov 2020 tag).
KNOWN_SHA256 = {
    "current": {
        "gray_adaptive_trial0.pth": "db9673847841ebdfa130f9d861e6e8a27426cc4f88e5f8b702639eda7a089667",
        "gray_pnet_lin_squeeze_trial0.pth": "09edfe8565911f6c275646e1a5a5a04a17997e8175bb79bbc10c6ca3e87e602a",
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
        "gray_pnet_lin_squeeze_trial0.pth": "2f718da9e581f45ee60fda2edca52b532d963480e6280efc61b8b40df422ca4a",
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


@dataclasses.dataclass(frozen=True)
class WeightFormat:
    """One reference weight file and the key mapping between it and our parameter pytree."""

    reference_name: str  # e.g. 'rgb_watson_fft_trial0.pth'
    metric: str  # canonical loss name
    colorspace: str  # 'rgb' | 'grey'
    to_ours: Callable[[dict], dict]  # reference state dict (numpy) → our params
    to_reference: Callable[[dict], OrderedDict]  # our params → reference state dict (numpy)

    @property
    def our_name(self) -> str:
        return weights.weights_filename(registry.lookup(self.metric).weights_stem, self.colorspace)

    def template(self) -> dict:
        return registry.lookup(self.metric).init_params(self.colorspace)


# -- Watson-DCT / Watson-DFT ------------------------------------------------------------------------


def _watson_channel_to_reference(p: dict, transform: str) -> OrderedDict[str, np.ndarray]:
    names = list(watson.init_channel_params(transform))
    out = OrderedDict(blocksize=np.asarray(blocks.BLOCK, np.int64))
    out.update((k, np.asarray(p[k], np.float32)) for k in names)
    if transform == "dct":
        out["dct.A"] = blocks.dct_matrix()
    return out


def _expect_constant(sd: dict, key: str, expected: np.ndarray, source: str) -> None:
    if key not in sd:
        raise WeightsError(f"{source}: missing key '{key}'.")
    if np.shape(sd[key]) != np.shape(expected) or not np.array_equal(sd[key], expected):
        raise WeightsError(
            f"{source}: '{key}' differs from the constant the loss uses; this is not a "
            "Watson weight file of the reference implementation."
        )


def _watson_channel_to_ours(sd: dict, prefix: str, transform: str, source: str) -> dict:
    names = list(watson.init_channel_params(transform))
    missing = [prefix + k for k in names if prefix + k not in sd]
    if missing:
        raise WeightsError(f"{source}: missing keys {missing}.")
    _expect_constant(sd, prefix + "blocksize", np.asarray(blocks.BLOCK, np.int64), source)
    if transform == "dct":
        _expect_constant(sd, prefix + "dct.A", blocks.dct_matrix(), source)
    return {k: np.asarray(sd[prefix + k], np.float32) for k in names}


def _watson_format(transform: str, colorspace: str) -> WeightFormat:
    file_transform = {"dct": "dct", "dft": "fft"}[transform]
    name = f"{'rgb' if colorspace == 'rgb' else 'gray'}_watson_{file_transform}_trial0.pth"
    metric = {"dct": "Watson-DCT", "dft": "Watson-DFT"}[transform]

    def to_ours(sd: dict) -> dict:
        unexpected = sorted(set(sd) - set(to_reference(registry.lookup(metric).init_params(colorspace))))
        if unexpected:
            raise WeightsError(
                f"{name}: unexpected keys {unexpected}; this is not a {metric} weight file of the "
                "reference implementation."
            )
        if colorspace == "grey":
            return _watson_channel_to_ours(sd, "", transform, name)
        _expect_constant(sd, "to_YCbCr.transform", YCBCR_MATRIX.T, name)
        _expect_constant(sd, "to_YCbCr.bias", YCBCR_OFFSET, name)
        if "w_tild" not in sd:
            raise WeightsError(f"{name}: missing key 'w_tild'.")
        params = {"w_tild": np.asarray(sd["w_tild"], np.float32)}
        params.update(
            {c: _watson_channel_to_ours(sd, c + ".", transform, name) for c in watson.YCBCR_CHANNELS}
        )
        return params

    def to_reference(params: dict) -> OrderedDict[str, np.ndarray]:
        if colorspace == "grey":
            return _watson_channel_to_reference(params, transform)
        out = OrderedDict(w_tild=np.asarray(params["w_tild"], np.float32))
        out["to_YCbCr.transform"] = YCBCR_MATRIX.T.copy()
        out["to_YCbCr.bias"] = YCBCR_OFFSET.copy()
        for c in watson.YCBCR_CHANNELS:
            out.update((f"{c}.{k}", v) for k, v in _watson_channel_to_reference(params[c], transform).items())
        return out

    return WeightFormat(name, metric, colorspace, to_ours, to_reference)


# -- Adaptive -----------------------------------------------------------------------------------------

#: The reference stores the latents under these keys (with a leading dot: an empty module name).
ADAPTIVE_PREFIX = ".robust_loss.adaptive_lossfun."
ADAPTIVE_KEYS = ("latent_alpha", "latent_scale")


def _adaptive_format(colorspace: str) -> WeightFormat:
    name = f"{'rgb' if colorspace == 'rgb' else 'gray'}_adaptive_trial0.pth"

    def to_ours(sd: dict) -> dict:
        expected = {ADAPTIVE_PREFIX + k for k in ADAPTIVE_KEYS}
        if set(sd) != expected:
            raise WeightsError(f"{name}: expected exactly the keys {sorted(expected)}, found {sorted(sd)}.")
        return {k: np.asarray(sd[ADAPTIVE_PREFIX + k], np.float32) for k in ADAPTIVE_KEYS}

    def to_reference(params: dict) -> OrderedDict[str, np.ndarray]:
        return OrderedDict((ADAPTIVE_PREFIX + k, np.asarray(params[k], np.float32)) for k in ADAPTIVE_KEYS)

    return WeightFormat(name, "Adaptive", colorspace, to_ours, to_reference)


# -- Deeploss heads ----------------------------------------------------------------------------------

#: The reference's file names of the heads: '<colorspace>_pnet_lin_<net>_trial0.pth'.
DEEPLOSS_NETS = {"Deeploss-VGG": "vgg", "Deeploss-Squeeze": "squeeze"}


def deeploss_head_key(k: int) -> str:
    """The reference's key of head ``k``: a 1×1 convolution (C → 1, no bias) after a dropout layer."""
    return f"lin{k}.model.1.weight"


def _deeploss_format(metric: str, colorspace: str) -> WeightFormat:
    name = f"{'rgb' if colorspace == 'rgb' else 'gray'}_pnet_lin_{DEEPLOSS_NETS[metric]}_trial0.pth"
    channels = deeploss.BACKBONES[metric].channels
    keys = [deeploss_head_key(k) for k in range(len(channels))]

    def to_ours(sd: dict) -> dict:
        if set(sd) != set(keys):
            raise WeightsError(
                f"{name}: expected exactly the keys {keys}, found {sorted(sd)}; this is not a "
                f"{metric} head file of the reference implementation."
            )
        params = {}
        for k, (key, c) in enumerate(zip(keys, channels)):
            if np.shape(sd[key]) != (1, c, 1, 1):
                raise WeightsError(f"{name}: '{key}' has shape {np.shape(sd[key])}, expected {(1, c, 1, 1)}.")
            params[f"lin{k}"] = np.asarray(sd[key], np.float32).reshape(c)
        return params

    def to_reference(params: dict) -> OrderedDict[str, np.ndarray]:
        return OrderedDict(
            (key, np.asarray(params[f"lin{k}"], np.float32).reshape(1, c, 1, 1))
            for k, (key, c) in enumerate(zip(keys, channels))
        )

    return WeightFormat(name, metric, colorspace, to_ours, to_reference)


FORMATS: tuple[WeightFormat, ...] = (
    *(_watson_format(t, cs) for t in watson.TRANSFORMS for cs in ("rgb", "grey")),
    *(_adaptive_format(cs) for cs in ("rgb", "grey")),
    *(_deeploss_format(m, cs) for m in DEEPLOSS_NETS for cs in ("rgb", "grey")),
)
_BY_REFERENCE_NAME = {f.reference_name: f for f in FORMATS}
_BY_OUR_NAME = {f.our_name: f for f in FORMATS}


# -- reading and writing ----------------------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _torch():
    try:
        import torch
    except ImportError as err:
        raise WeightsError(
            "reading or writing .pth files needs PyTorch: pip install torch==2.13.0 "
            "(or the project's 'torch' extra)"
        ) from err
    return torch


def known_version(path: Path, digest: str) -> str | None:
    """The upstream version whose pinned sha256 for this file name is ``digest``, if any."""
    return next((v for v in VERSIONS if KNOWN_SHA256[v].get(path.name) == digest), None)


def verify(path: Path, version: str, allow_unverified: bool) -> tuple[str, str]:
    """Check ``path`` against the pinned sha256 of ``version``; returns (digest, label) where label is the
    version the file really is, or 'unverified'.

    Raises WeightsError for an unknown or modified file, or one of another version, unless
    ``allow_unverified``.
    """
    digest = sha256(path)
    found = known_version(path, digest)
    if found == version or allow_unverified:
        return digest, found or "unverified"
    if found is not None:
        raise WeightsError(
            f"{path} is the '{found}' version of this file, not '{version}'; pass "
            f"--version {found} to convert it."
        )
    raise WeightsError(
        f"{path} does not match any known upstream file (sha256 {digest}): it is corrupt, "
        "modified or unknown. Re-download it, or pass --allow-unverified to convert it anyway."
    )


def _load_state_dict(path: Path, what: str = "the reference implementation") -> dict:
    """A ``.pth`` state dict as {key: torch.Tensor}, loaded without executing pickled code."""
    torch = _torch()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises various types for corrupt or unsafe files
        raise WeightsError(
            f"cannot read {path} as a PyTorch state dict ({type(err).__name__}: {err})."
        ) from err
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict.")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise WeightsError(
            f"{path}: entries {not_tensors} are not tensors; this is not a state dict of {what}."
        )
    return state


def _to_numpy(path: Path, tensor) -> np.ndarray:
    try:
        return tensor.detach().cpu().numpy()
    except (TypeError, RuntimeError) as err:  # e.g. bfloat16 tensors, which numpy cannot hold
        raise WeightsError(f"{path}: cannot convert its tensors to numpy ({err}).") from err


def read_reference(path: Path) -> dict[str, np.ndarray]:
    """A reference ``.pth`` as {key: numpy array}, loaded without executing pickled code."""
    return {k: _to_numpy(path, v) for k, v in _load_state_dict(path).items()}


def write_reference(path: Path, state: OrderedDict[str, np.ndarray]) -> None:
    """Save {key: array} as a torch state dict (C-contiguous tensors, in the given key order)."""
    torch = _torch()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(OrderedDict((k, torch.from_numpy(np.array(v, order="C"))) for k, v in state.items()), path)


def _known(table: dict, path: Path, what: str):
    """``table[path.name]``, or a WeightsError naming ``what`` and the names the table knows."""
    entry = table.get(path.name)
    if entry is None:
        raise WeightsError(f"{path.name} is not {what}; expected one of {', '.join(sorted(table))}.")
    return entry


def convert_reference_file(
    path: Path, dest: Path, *, version: str = "current", allow_unverified: bool = False
) -> Path:
    """Convert one original ``.pth`` into ``dest`` and return the written path."""
    path = Path(path)
    fmt = _known(_BY_REFERENCE_NAME, path, "a weight file this converter knows")
    digest, label = verify(path, version, allow_unverified)
    params = weights.check_params(fmt.to_ours(read_reference(path)), fmt.template(), str(path))
    return weights.save_params(
        Path(dest) / fmt.our_name, params, source=path.name, sha256=digest, version=label
    )


def export_reference_file(path: Path, dest: Path) -> Path:
    """Write one of our weight files in the reference's layout (``*_trial0.pth``) into ``dest``."""
    path = Path(path)
    fmt = _known(_BY_OUR_NAME, path, "a watson_jax weight file name")
    params = weights.read_checked_params(path, fmt.template())
    out = Path(dest) / fmt.reference_name
    write_reference(out, fmt.to_reference(params))
    return out


def import_partition_spline(path: Path, dest: Path, *, allow_unverified: bool = False) -> Path:
    """Copy Barron's ``partition_spline.npz`` into ``dest`` as the table the Adaptive loss uses (instead
    of the one the library computes)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path} not found: pass the path of robust_loss_pytorch's partition_spline.npz.")
    digest = sha256(path)
    if digest != PARTITION_SPLINE_SHA256 and not allow_unverified:
        raise WeightsError(
            f"{path} is not the known partition_spline.npz (sha256 {digest}); pass "
            "--allow-unverified to import it anyway."
        )
    table = partition.read_table(path)
    return partition.save_table(
        Path(dest) / partition.TABLE_FILE, table, f"imported from {path.name} (sha256 {digest})"
    )


# -- ImageNet backbones (torchvision checkpoints) ---------------------------------------------------

#: sha256 of torchvision's ImageNet checkpoints (``https://download.pytorch.org/models/<file>``) where the
#: full digest is known — the same value in several independent public checksum lists, and each starts with
#: the 8 hex digits torchvision puts in the file name. None: only those 8 digits are known, and they are
#: what is checked (as torch hub's ``check_hash`` does on download).
TORCHVISION_SHA256: dict[str, str | None] = {
    "vgg16-397923af.pth": "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    "squeezenet1_1-b8a52dc0.pth": "b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b",
    "squeezenet1_1-f364aa15.pth": None,
}
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


def torchvision_prefix(filename: str) -> str:
    """The hash prefix torchvision puts in a checkpoint's name: 'vgg16-397923af.pth' → '397923af'."""
    return filename.rsplit("-", 1)[-1].split(".", 1)[0]


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
            f"{folder} not found: pass {backbone.converter_flag} the path of {_download_hint(backbone)}."
        )
    for name in backbone.torchvision_files:
        if (folder / name).is_file():
            return folder / name
    place = "the torch hub cache " if where is None else ""
    raise WeightsError(
        f"no {backbone.name} checkpoint found in {place}{folder}: {backbone.metric} needs "
        f"{_download_hint(backbone)}. Put it there, or pass its path: {backbone.converter_flag} PATH."
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
            f"option of that backbone, and {_download_hint(backbone)} to {backbone.converter_flag}."
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
                    f"{source}: missing key '{key}'; this is not a torchvision {backbone.name} checkpoint (a state "
                    f"dict of torchvision.models.{backbone.name}() or of its .features, keys "
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


# -- command line -----------------------------------------------------------------------------------


class _FromHubCache:
    def __repr__(self) -> str:
        return "<the torch hub cache>"


#: The value of ``--vgg16`` / ``--squeezenet`` given without a path: look in the torch hub cache (not a
#: string, which argparse would turn into a Path).
FROM_HUB_CACHE = _FromHubCache()

_VERIFICATION_HELP = (
    "Verification: the original *_trial0.pth files must match the pinned sha256 of --version; a torchvision "
    "checkpoint must match the pinned full sha256 of vgg16-397923af.pth or squeezenet1_1-b8a52dc0.pth, or, "
    "for squeezenet1_1-f364aa15.pth (full digest not pinned), start with the 8 hex digits in that name "
    "(the check torch hub makes on download). Anything else needs --allow-unverified."
)


def _backbone_dest(backbone: deeploss.Backbone) -> str:
    return "backbone_" + backbone.name


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convert_weights.py",
        description="Convert the original Czolbe et al. weight files (.pth) and torchvision's ImageNet backbones "
        "for Deeploss to watson_jax weights (.npz), or back with --to-torch.",
        epilog=_VERIFICATION_HELP,
    )
    p.add_argument(
        "--source",
        type=Path,
        default=None,
        help="folder with the original *_trial0.pth files (e.g. the original repository's "
        "src/loss/weights); optional when only backbones or --partition-spline are converted. "
        "With --to-torch, the folder of watson_jax weights "
        f"(default: ${weights.ENV_VAR} or ~/.cache/watson_jax)",
    )
    p.add_argument(
        "--dest",
        type=Path,
        default=None,
        help=f"output folder (default: ${weights.ENV_VAR} or ~/.cache/watson_jax; required with --to-torch)",
    )
    p.add_argument(
        "--version",
        choices=VERSIONS,
        default="current",
        help="which upstream release the original files must match: 'current' (last commit, default) "
        "or 'neurips' (as published with the paper)",
    )
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="convert files whose sha256 matches no known upstream file (original files and "
        "torchvision checkpoints alike)",
    )
    p.add_argument(
        "--to-torch",
        action="store_true",
        help="export watson_jax weights to the reference's .pth layout, and converted backbones to "
        "torchvision's features state dicts ("
        + ", ".join(exported_backbone_name(b) for b in BACKBONES.values())
        + ": keys features.<i>.weight "
        "(OIHW) and features.<i>.bias)",
    )
    p.add_argument(
        "--partition-spline",
        type=Path,
        default=None,
        metavar="NPZ",
        help="also import Barron's partition_spline.npz (robust_loss_pytorch) as the Adaptive loss's "
        "log-partition table, instead of the one watson_jax computes on first use",
    )
    for backbone in BACKBONES.values():
        p.add_argument(
            backbone.converter_flag,
            dest=_backbone_dest(backbone),
            type=Path,
            nargs="?",
            const=FROM_HUB_CACHE,
            default=None,
            metavar="PATH",
            help=f"also convert torchvision's ImageNet {backbone.name} ({backbone.metric}'s backbone) "
            f"to {backbone.filename}: PATH is the checkpoint "
            f"({' or '.join(backbone.torchvision_files)}; a state dict of the whole model or of "
            "its .features) or a folder holding it under that name; without PATH, the torch hub "
            "cache ($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints)",
        )
    return p


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    backbones = {
        name: getattr(args, _backbone_dest(b))
        for name, b in BACKBONES.items()
        if getattr(args, _backbone_dest(b)) is not None
    }  # name → PATH or FROM_HUB_CACHE

    jobs = []  # (what it converts, function writing its converted form and returning (written path, source))
    if args.to_torch:
        if args.dest is None:
            parser.error("--to-torch needs --dest, the folder to write the .pth files to")
        if (
            args.allow_unverified
            or args.version != "current"
            or args.partition_spline is not None
            or backbones
        ):
            parser.error(
                "--version, --allow-unverified, --partition-spline, "
                f"{', '.join(b.converter_flag for b in BACKBONES.values())} apply to reading the original "
                "files, not to --to-torch (which exports every watson_jax weight file in --source)"
            )
        source, dest = weights.weights_dir(args.source), args.dest
        if not source.is_dir():
            parser.error(f"--source {source} is not a folder")
        for path in sorted(source.glob("*.npz")):
            if path.name in _BY_OUR_NAME:
                jobs.append((path.name, lambda p=path: (export_reference_file(p, dest), p.name)))
            elif path.name in _BACKBONE_BY_FILENAME:
                jobs.append((path.name, lambda p=path: (export_backbone(p, dest), p.name)))
    else:
        if args.source is None and not backbones and args.partition_spline is None:
            parser.error(
                "--source is required: the folder with the original *_trial0.pth files (optional only "
                f"with {', '.join(b.converter_flag for b in BACKBONES.values())} or --partition-spline)"
            )
        if args.source is not None and not args.source.is_dir():
            parser.error(f"--source {args.source} is not a folder")
        source, dest = args.source, weights.weights_dir(args.dest)
        if args.partition_spline is not None:
            spline = args.partition_spline
            jobs.append(
                (
                    spline.name,
                    lambda: (
                        import_partition_spline(spline, dest, allow_unverified=args.allow_unverified),
                        spline.name,
                    ),
                )
            )
        for path in sorted(source.glob("*.pth")) if source is not None else ():
            if path.name not in _BY_REFERENCE_NAME:
                print(f"skipped {path.name}: not supported by this version of the converter")
                continue
            jobs.append(
                (
                    path.name,
                    lambda p=path: (
                        convert_reference_file(
                            p, dest, version=args.version, allow_unverified=args.allow_unverified
                        ),
                        p.name,
                    ),
                )
            )
        for name, where in backbones.items():

            def job(backbone=BACKBONES[name], where=where):
                path = find_backbone_checkpoint(backbone, None if where is FROM_HUB_CACHE else where)
                return convert_backbone(
                    path, backbone, dest, allow_unverified=args.allow_unverified
                ), path.name

            jobs.append((BACKBONES[name].converter_flag, job))

    written, failed = 0, 0
    for _, job in jobs:
        try:
            out, name = job()
        except WeightsError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
        else:
            print(f"wrote {out}  (from {name})")
            written += 1
    if written == 0 and failed == 0:
        print(f"error: no convertible files in {source}", file=sys.stderr)
        return 1
    return 1 if failed else 0
