"""The MNIST and celebA VAEs of the reference (docs/reference.md §11) in Flax NNX, layer for layer, and their
conversion from and to the original PyTorch state dicts.

Images are NHWC with values in [0, 1]. Inside, the layers are PyTorch's: 3×3 convolutions with padding 1,
LeakyReLU with slope 0.01, 2×2 max pooling, dense layers; activations are flattened in NCHW order before the
first dense layer and reshaped the same way after the last decoder dense layer (so converted torch weights
work unchanged); upsampling is bilinear with aligned corners (torch's ``UpsamplingBilinear2d``); the celebA
encoder's BatchNorms follow PyTorch (eps 1e-5, momentum 0.1, batch statistics and an update of the running
statistics with the *unbiased* batch variance in training, running statistics in evaluation).

The model's forward pass ``model(x, key) -> (reconstruction, mu, logvar)`` draws z = μ + ε·exp(½ logvar)
with ε ~ N(0, 1) from the explicit ``key``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

LEAKY_SLOPE = 0.01


# -- layers with PyTorch's semantics ----------------------------------------------------------------------


def _torch_uniform(fan_in: int):
    """PyTorch's default initialiser of Conv2d/Linear weights and biases: U(−1/√fan_in, 1/√fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def conv3x3(in_channels: int, out_channels: int, rngs: nnx.Rngs) -> nnx.Conv:
    """torch.nn.Conv2d(in, out, 3, padding=1) in NHWC (kernel HWIO), with torch's initialisation."""
    init = _torch_uniform(in_channels * 9)
    return nnx.Conv(
        in_channels,
        out_channels,
        kernel_size=(3, 3),
        padding=((1, 1), (1, 1)),
        kernel_init=init,
        bias_init=init,
        rngs=rngs,
    )


def dense(in_features: int, out_features: int, rngs: nnx.Rngs) -> nnx.Linear:
    """torch.nn.Linear(in, out) (kernel stored (in, out)), with torch's initialisation."""
    init = _torch_uniform(in_features)
    return nnx.Linear(in_features, out_features, kernel_init=init, bias_init=init, rngs=rngs)


def leaky_relu(x: jax.Array) -> jax.Array:
    return jax.nn.leaky_relu(x, LEAKY_SLOPE)


def max_pool2(x: jax.Array) -> jax.Array:
    """torch.nn.MaxPool2d(2) on NHWC (floor of odd sizes, as torch)."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _align_corners_weights(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) matrix of linear interpolation with aligned corners: output i samples the input
    at i·(n_in − 1)/(n_out − 1)."""
    matrix = np.zeros((n_out, n_in), np.float64)
    if n_out == 1 or n_in == 1:
        matrix[:, 0] = 1.0
        return matrix.astype(np.float32)
    pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    frac = pos - lo
    matrix[np.arange(n_out), lo] = 1.0 - frac
    matrix[np.arange(n_out), lo + 1] += frac
    return matrix.astype(np.float32)


def upsample_bilinear_align_corners(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """torch.nn.UpsamplingBilinear2d(size) (bilinear, align_corners=True) on NHWC images: separable linear
    interpolation whose first and last output samples sit exactly on the first and last input pixels."""
    _, h, w, _ = x.shape
    rows = jnp.asarray(_align_corners_weights(h, size[0]), x.dtype)
    cols = jnp.asarray(_align_corners_weights(w, size[1]), x.dtype)
    hp = jax.lax.Precision.HIGHEST
    x = jnp.einsum("oh,nhwc->nowc", rows, x, precision=hp)
    return jnp.einsum("pw,nowc->nopc", cols, x, precision=hp)


class TorchBatchNorm(nnx.Module):
    """torch.nn.BatchNorm2d(num_features) on NHWC.

    Training (``use_running_average=False``): y = (x − mean_b)/√(var_b + eps)·scale + bias with the batch's
    biased variance var_b, and running_mean ← (1 − m)·running_mean + m·mean_b, running_var ← (1 − m)·
    running_var + m·var_b·n/(n − 1), num_batches_tracked ← +1 (n = N·H·W, m = 0.1). Evaluation: the running
    statistics instead of the batch's. ``model.eval()`` / ``model.train()`` switch the mode.
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1):
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.use_running_average = False
        self.scale = nnx.Param(jnp.ones((num_features,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((num_features,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((num_features,), jnp.float32))
        self.num_batches_tracked = nnx.BatchStat(jnp.zeros((), jnp.int32))

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            mean = jnp.mean(x, axis=(0, 1, 2))
            var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
            n = x.shape[0] * x.shape[1] * x.shape[2]
            unbiased = var * (n / max(n - 1, 1))
            m = self.momentum
            self.mean[...] = (1 - m) * self.mean[...] + m * jax.lax.stop_gradient(mean)
            self.var[...] = (1 - m) * self.var[...] + m * jax.lax.stop_gradient(unbiased)
            self.num_batches_tracked[...] = self.num_batches_tracked[...] + 1
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]


def nchw_flatten(x: jax.Array) -> jax.Array:
    """(N, H, W, C) → (N, C·H·W) in torch's NCHW order."""
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


def nchw_unflatten(x: jax.Array, channels: int, height: int, width: int) -> jax.Array:
    """(N, C·H·W) in torch's NCHW order → (N, H, W, C)."""
    return jnp.transpose(x.reshape(x.shape[0], channels, height, width), (0, 2, 3, 1))


def reparameterise(mu: jax.Array, logvar: jax.Array, key: jax.Array) -> jax.Array:
    """z = μ + ε·exp(½ logvar), ε ~ N(0, 1) drawn from ``key``."""
    return mu + jax.random.normal(key, mu.shape, mu.dtype) * jnp.exp(0.5 * logvar)


# -- the two VAEs ---------------------------------------------------------------------------------------


class _VAE(nnx.Module):
    """Shared forward pass; subclasses define encode/decode and their torch layer table."""

    #: torch state-dict prefix → (attribute name, 'conv' | 'dense' | 'bn'), in the torch model's key order.
    TORCH_LAYERS: dict[str, tuple[str, str]] = {}
    dataset: str = ""

    def __call__(self, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(reconstruction, mu, logvar) of NHWC images in [0, 1]; ``key`` draws the latent sample."""
        mu, logvar = self.encode(x)
        return self.decode(reparameterise(mu, logvar, key)), mu, logvar


class MnistVAE(_VAE):
    """The reference's ``MnistVAE(latent_space=2, input_size=(32, 32))``: (N, 32, 32, 1) images."""

    TORCH_LAYERS = {
        "encoder.0": ("enc0", "conv"),
        "encoder.3": ("enc3", "conv"),
        "fc0": ("fc0", "dense"),
        "mu": ("mu", "dense"),
        "logvar": ("logvar", "dense"),
        "dec": ("dec", "dense"),
        "fc1": ("fc1", "dense"),
        "decoder.0": ("dec0", "conv"),
        "decoder.3": ("dec3", "conv"),
        "decoder.5": ("dec5", "conv"),
        "decoder.7": ("dec7", "conv"),
    }
    dataset = "mnist"
    image_shape = (32, 32, 1)

    def __init__(self, latent_space: int = 2, *, rngs: nnx.Rngs):
        self.latent_space = latent_space
        self.enc0 = conv3x3(1, 32, rngs)
        self.enc3 = conv3x3(32, 64, rngs)
        self.fc0 = dense(64 * 16 * 16, 1024, rngs)
        self.mu = dense(1024, latent_space, rngs)
        self.logvar = dense(1024, latent_space, rngs)
        self.dec = dense(latent_space, 1024, rngs)
        self.fc1 = dense(1024, 64 * 16 * 16, rngs)
        self.dec0 = conv3x3(64, 64, rngs)
        self.dec3 = conv3x3(64, 32, rngs)
        self.dec5 = conv3x3(32, 32, rngs)
        self.dec7 = conv3x3(32, 1, rngs)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mu, logvar), each (N, latent_space), of (N, 32, 32, 1) images."""
        _check_images(x, self.image_shape, "MnistVAE")
        h = max_pool2(leaky_relu(self.enc0(x)))
        h = leaky_relu(self.enc3(h))
        h = jax.nn.relu(self.fc0(nchw_flatten(h)))
        return self.mu(h), self.logvar(h)

    def decode(self, z: jax.Array) -> jax.Array:
        """(N, 32, 32, 1) images in (0, 1) from (N, latent_space) latents."""
        h = jax.nn.relu(self.fc1(jax.nn.relu(self.dec(z))))
        h = leaky_relu(self.dec0(nchw_unflatten(h, 64, 16, 16)))
        h = upsample_bilinear_align_corners(h, (32, 32))
        h = leaky_relu(self.dec3(h))
        h = leaky_relu(self.dec5(h))
        return jax.nn.sigmoid(self.dec7(h))


class CelebAVAE(_VAE):
    """The reference's ``CelebAVAE(latent_space=256, input_size=(3, 64, 64))``: (N, 64, 64, 3) images."""

    TORCH_LAYERS = {
        "encoder.0": ("enc0", "conv"),
        "encoder.3": ("enc3", "bn"),
        "encoder.4": ("enc4", "conv"),
        "encoder.7": ("enc7", "bn"),
        "encoder.8": ("enc8", "conv"),
        "fc0": ("fc0", "dense"),
        "mu": ("mu", "dense"),
        "logvar": ("logvar", "dense"),
        "dec": ("dec", "dense"),
        "fc1": ("fc1", "dense"),
        "decoder.0": ("dec0", "conv"),
        "decoder.3": ("dec3", "conv"),
        "decoder.6": ("dec6", "conv"),
        "decoder.8": ("dec8", "conv"),
        "decoder.10": ("dec10", "conv"),
    }
    dataset = "celeba"
    image_shape = (64, 64, 3)

    def __init__(self, latent_space: int = 256, *, rngs: nnx.Rngs):
        self.latent_space = latent_space
        self.enc0 = conv3x3(3, 64, rngs)
        self.enc3 = TorchBatchNorm(64)
        self.enc4 = conv3x3(64, 128, rngs)
        self.enc7 = TorchBatchNorm(128)
        self.enc8 = conv3x3(128, 128, rngs)
        self.fc0 = dense(128 * 16 * 16, 2048, rngs)
        self.mu = dense(2048, latent_space, rngs)
        self.logvar = dense(2048, latent_space, rngs)
        self.dec = dense(latent_space, 2048, rngs)
        self.fc1 = dense(2048, 128 * 16 * 16, rngs)
        self.dec0 = conv3x3(128, 128, rngs)
        self.dec3 = conv3x3(128, 64, rngs)
        self.dec6 = conv3x3(64, 64, rngs)
        self.dec8 = conv3x3(64, 64, rngs)
        self.dec10 = conv3x3(64, 3, rngs)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mu, logvar), each (N, latent_space), of (N, 64, 64, 3) images."""
        _check_images(x, self.image_shape, "CelebAVAE")
        h = self.enc3(max_pool2(leaky_relu(self.enc0(x))))
        h = self.enc7(max_pool2(leaky_relu(self.enc4(h))))
        h = leaky_relu(self.enc8(h))
        h = jax.nn.relu(self.fc0(nchw_flatten(h)))
        return self.mu(h), self.logvar(h)

    def decode(self, z: jax.Array) -> jax.Array:
        """(N, 64, 64, 3) images in (0, 1) from (N, latent_space) latents."""
        h = jax.nn.relu(self.fc1(jax.nn.relu(self.dec(z))))
        h = leaky_relu(self.dec0(nchw_unflatten(h, 128, 16, 16)))
        h = leaky_relu(self.dec3(upsample_bilinear_align_corners(h, (32, 32))))
        h = leaky_relu(self.dec6(upsample_bilinear_align_corners(h, (64, 64))))
        h = leaky_relu(self.dec8(h))
        return jax.nn.sigmoid(self.dec10(h))


MODELS: dict[str, type[_VAE]] = {"mnist": MnistVAE, "celeba": CelebAVAE}
DEFAULT_LATENT = {"mnist": 2, "celeba": 256}


def _check_images(x: jax.Array, shape: tuple[int, int, int], name: str) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"{name} takes NHWC images of shape (N, {', '.join(map(str, shape))}); "
            f"got shape {tuple(x.shape)}."
        )


def build(dataset: str, *, seed: int = 0, latent_space: int | None = None) -> _VAE:
    """A freshly initialised VAE for 'mnist' or 'celeba' (torch's default initialisation), seeded."""
    cls = MODELS.get(str(dataset).lower())
    if cls is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(MODELS)}.")
    latent = DEFAULT_LATENT[cls.dataset] if latent_space is None else latent_space
    return cls(latent, rngs=nnx.Rngs(seed))


# -- torch interop --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Entry:
    attr: str
    kind: str  # conv | dense | bn
    part: str  # torch suffix: weight | bias | running_mean | running_var | num_batches_tracked


def _torch_entries(cls: type[_VAE]) -> dict[str, _Entry]:
    parts = {
        "conv": ("weight", "bias"),
        "dense": ("weight", "bias"),
        "bn": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
    }
    return {
        f"{prefix}.{part}": _Entry(attr, kind, part)
        for prefix, (attr, kind) in cls.TORCH_LAYERS.items()
        for part in parts[kind]
    }


def _variable(model: _VAE, entry: _Entry):
    layer = getattr(model, entry.attr)
    name = {
        ("conv", "weight"): "kernel",
        ("dense", "weight"): "kernel",
        ("bn", "weight"): "scale",
        ("bn", "running_mean"): "mean",
        ("bn", "running_var"): "var",
    }.get((entry.kind, entry.part), entry.part)
    return getattr(layer, name)


def _to_torch_layout(entry: _Entry, value: np.ndarray) -> np.ndarray:
    if entry.part == "weight" and entry.kind == "conv":
        return np.transpose(value, (3, 2, 0, 1))  # HWIO → OIHW
    if entry.part == "weight" and entry.kind == "dense":
        return np.transpose(value)  # (in, out) → (out, in)
    return value


def _from_torch_layout(entry: _Entry, value: np.ndarray) -> np.ndarray:
    if entry.part == "weight" and entry.kind == "conv":
        return np.transpose(value, (2, 3, 1, 0))  # OIHW → HWIO
    if entry.part == "weight" and entry.kind == "dense":
        return np.transpose(value)
    return value


def torch_shapes(model: _VAE) -> dict[str, tuple[int, ...]]:
    """The torch state-dict keys of ``model``'s architecture and their shapes, in the original's order."""
    return {
        key: _to_torch_layout(entry, np.empty(_variable(model, entry).shape, np.float32)).shape
        for key, entry in _torch_entries(type(model)).items()
    }


def _load_state_dict(path_or_state_dict) -> dict[str, np.ndarray]:
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        import torch  # only the conversion needs torch

        state = torch.load(os.fspath(path_or_state_dict), map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
    else:
        state = path_or_state_dict
    if not isinstance(state, Mapping):
        raise ValueError(
            f"expected a state dict (a mapping of names to tensors), got {type(state).__name__}."
        )
    out = {}
    for key, value in state.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        # a copy: torch tensors' numpy views (and jnp.asarray of them on CPU) alias the torch storage
        out[str(key)] = np.array(value, copy=True)
    return out


def from_torch(path_or_state_dict, dataset: str = "mnist") -> _VAE:
    """The NNX VAE holding the weights of an original ``MnistVAE`` / ``CelebAVAE`` state dict, in evaluation
    mode (BatchNorms on their running statistics).

    ``path_or_state_dict`` is a ``.pth`` file (read with ``torch.load(weights_only=True)``; no pickled code
    runs) or a mapping of the original's keys to tensors/arrays. The latent size is read from the ``mu``
    layer. A state dict of another architecture is refused with a ValueError naming the first key that is
    missing, unexpected or of the wrong shape.
    """
    state = _load_state_dict(path_or_state_dict)
    cls = MODELS.get(str(dataset).lower())
    if cls is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(MODELS)}.")
    latent = DEFAULT_LATENT[cls.dataset]
    if "mu.weight" in state and np.ndim(state["mu.weight"]) == 2:
        latent = int(state["mu.weight"].shape[0])
    # shapes from an abstract model (no 67M random numbers drawn for a state dict that is refused)
    expected = torch_shapes(nnx.eval_shape(lambda: build(cls.dataset, latent_space=latent)))
    for key, shape in expected.items():
        if key not in state:
            raise ValueError(
                f"not a {cls.__name__} state dict: key {key!r} (shape {shape}) is missing; "
                f"check dataset= (got {dataset!r})."
            )
        if tuple(state[key].shape) != shape:
            raise ValueError(
                f"not a {cls.__name__} state dict: {key!r} has shape {tuple(state[key].shape)}, expected "
                f"{shape}; check dataset= (got {dataset!r})."
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise ValueError(
            f"not a {cls.__name__} state dict: unexpected key {extra[0]!r} "
            f"(shape {tuple(state[extra[0]].shape)}); "
            f"check dataset= (got {dataset!r})."
        )
    model = build(cls.dataset, latent_space=latent)
    for key, entry in _torch_entries(cls).items():
        var = _variable(model, entry)
        value = _from_torch_layout(entry, state[key])
        var[...] = jnp.asarray(value, var[...].dtype)
    model.eval()
    return model


def to_torch_state_dict(model: _VAE) -> dict:
    """A state dict (torch tensors, the original's keys and layouts) that loads strictly into the original
    ``MnistVAE`` / ``CelebAVAE``."""
    import torch

    out = {}
    for key, entry in _torch_entries(type(model)).items():
        value = _to_torch_layout(entry, np.asarray(_variable(model, entry)[...]))
        if entry.part == "num_batches_tracked":
            out[key] = torch.tensor(int(value), dtype=torch.int64)
        else:
            out[key] = torch.from_numpy(np.array(value, dtype=np.float32, copy=True))
    return out
