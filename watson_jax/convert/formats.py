"""The key mapping between each original weight file and watson_jax's parameter pytree, both ways.

Each supported file has one :class:`WeightFormat` entry: the Watson-DCT/DFT, Adaptive and Deeploss head
files (``{rgb,gray}_pnet_lin_{vgg,squeeze}_trial0.pth``, ``lin{k}.model.1.weight`` of shape (1, C, 1, 1) ↔
our ``lin{k}`` of shape (C,)). The reference's layout is described in docs/reference.md §9.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from .. import blocks, registry, weights
from ..color import YCBCR_MATRIX, YCBCR_OFFSET
from ..errors import WeightsError
from ..losses import deeploss, watson


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
        """The converted file's name in the weights folder, e.g. 'watson_dft_rgb.npz'."""
        return weights.weights_filename(registry.lookup(self.metric).weights_stem, self.colorspace)

    def template(self) -> dict:
        """The loss's initial parameters: the pytree a converted file must match."""
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
