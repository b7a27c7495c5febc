"""Run any watson_jax loss inside a PyTorch training loop, at JAX speed.

:func:`from_jax` wraps a :class:`watson_jax.Loss` as a ``torch.nn.Module`` whose forward and backward are
one compiled JAX program each. Tensors cross between the frameworks through DLPack, without a copy when
both live on the same device (CPU here; the same GPU when JAX and torch see one). The module takes NCHW
tensors like the rest of ``watson_jax.torch``; the NCHW → NHWC transpose happens inside the compiled
program.

    loss = from_jax(watson_jax.LossProvider().get_loss_function('Watson-DFT'))
    value = loss(reconstruction, target)      # torch tensors, NCHW
    value.backward()
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import torch

from ..errors import InputError
from ..provider import Loss


def _to_jax(t: torch.Tensor) -> jax.Array:
    """A JAX view of a torch tensor (no copy for contiguous tensors on a device JAX can address)."""
    if t.dtype == torch.float64 and not jax.config.jax_enable_x64:
        raise InputError("float64 tensors need JAX's 64-bit mode: jax.config.update('jax_enable_x64', True), "
                         "or pass float32 tensors.")
    try:
        return jnp.from_dlpack(t.detach().contiguous())
    except Exception as err:   # e.g. a CUDA tensor while JAX only has the CPU
        raise InputError(f"cannot hand a {t.dtype} tensor on {t.device} to JAX (devices: {jax.devices()}): "
                         f"{err}") from err


def _nhwc(a: jax.Array) -> jax.Array:
    return jnp.transpose(a, (0, 2, 3, 1))


@jax.jit
def _forward(loss: Loss, x, y, key, shift):
    """The loss of NCHW arrays and the function that maps an output cotangent to (dx, dy)."""
    return jax.vjp(lambda a, b: loss(_nhwc(a), _nhwc(b), key, shift=shift), x, y)


@jax.jit
def _backward(vjp_fn, cotangent):
    return vjp_fn(cotangent)


class _LossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, loss, key, shift):
        value, vjp_fn = _forward(loss, _to_jax(x), _to_jax(y), key, shift)
        ctx.vjp_fn = vjp_fn
        return torch.from_dlpack(value)

    @staticmethod
    def backward(ctx, grad_output):
        dx, dy = _backward(ctx.vjp_fn, _to_jax(grad_output))
        return torch.from_dlpack(dx), torch.from_dlpack(dy), None, None, None


class JaxLoss(torch.nn.Module):
    """A watson_jax loss as a torch module: ``forward(input, target, generator=None, *, shift=None)``.

    ``input`` and ``target`` are NCHW tensors. When the loss is random (Watson with deterministic=False,
    or the tuning mode), a seed is drawn from torch's random generator (or ``generator``), so torch's
    seeding controls it. The loss's parameters stay fixed (they are JAX arrays, not torch parameters).
    """

    def __init__(self, loss: Loss):
        super().__init__()
        self.loss = loss

    def extra_repr(self) -> str:
        return repr(self.loss)

    def forward(self, input: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None, *,
                shift=None) -> torch.Tensor:
        key = None
        if self.loss.needs_key(shift=shift):
            seed = int(torch.randint(0, 2 ** 31 - 1, (), generator=generator))
            key = jax.random.key(seed)
        shift = None if shift is None else jnp.asarray(shift, jnp.int32)
        return _LossFunction.apply(input, target, self.loss, key, shift)


def from_jax(loss: Loss) -> JaxLoss:
    """Wrap a :class:`watson_jax.Loss` for PyTorch (see the module docstring)."""
    if not isinstance(loss, Loss):
        raise TypeError(f"from_jax takes a watson_jax Loss, got {type(loss).__name__}")
    return JaxLoss(loss)
