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

import functools

import jax
import jax.numpy as jnp
import torch

from ..errors import InputError
from ..provider import Loss
from .validation import check_images, check_shift


def _to_jax(t: torch.Tensor) -> jax.Array:
    """A JAX view of a torch tensor (no copy for contiguous tensors on a device JAX can address)."""
    if t.dtype == torch.float64 and not jax.config.jax_enable_x64:
        raise InputError(
            "float64 tensors need JAX's 64-bit mode: jax.config.update('jax_enable_x64', True), "
            "or pass float32 tensors."
        )
    try:
        return jnp.from_dlpack(t.detach().contiguous())
    except Exception as err:  # e.g. a CUDA tensor while JAX only has the CPU
        raise InputError(
            f"cannot hand a {t.dtype} tensor on {t.device} to JAX (devices: {jax.devices()}): {err}"
        ) from err


def _nhwc(a: jax.Array) -> jax.Array:
    return jnp.transpose(a, (0, 2, 3, 1))


def _call(loss: Loss, x, y, key, shift, elementwise, spatial):
    out = loss(_nhwc(x), _nhwc(y), key, shift=shift, elementwise=elementwise, spatial=spatial)
    return jnp.transpose(out, (0, 3, 1, 2)) if elementwise else out  # maps back to NCHW


@functools.partial(jax.jit, static_argnames=("elementwise", "spatial"))
def _value(loss: Loss, x, y, key, shift, elementwise, spatial):
    return _call(loss, x, y, key, shift, elementwise, spatial)


@functools.partial(jax.jit, static_argnames=("elementwise", "spatial"))
def _forward(loss: Loss, x, y, key, shift, elementwise, spatial):
    """The loss of NCHW arrays and the function that maps an output cotangent to (dx, dy)."""
    return jax.vjp(lambda a, b: _call(loss, a, b, key, shift, elementwise, spatial), x, y)


@jax.jit
def _backward(vjp_fn, cotangent):
    return vjp_fn(cotangent)


class _LossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, loss, key, shift, elementwise, spatial):
        value, vjp_fn = _forward(loss, _to_jax(x), _to_jax(y), key, shift, elementwise, spatial)
        ctx.vjp_fn = vjp_fn
        return torch.from_dlpack(value)

    @staticmethod
    @torch.autograd.function.once_differentiable  # no second derivatives: say so instead of returning 0
    def backward(ctx, grad_output):
        dx, dy = _backward(ctx.vjp_fn, _to_jax(grad_output))
        return torch.from_dlpack(dx), torch.from_dlpack(dy), None, None, None, None, None


class JaxLoss(torch.nn.Module):
    """A watson_jax loss as a torch module: ``forward(input, target, generator=None, *, shift=None,
    elementwise=False, spatial=False)`` (the options of :meth:`watson_jax.Loss.apply`; maps come back NCHW,
    distance maps as (N, H, W)).

    ``input`` and ``target`` are NCHW tensors, checked like the torch losses' inputs. When the loss is
    random (Watson with deterministic=False), a seed is drawn from torch's random generator (or
    ``generator``), so torch's seeding controls it. The loss's parameters stay fixed (they are JAX arrays,
    not torch parameters), and the module's train()/eval() mode has no effect: this wraps the loss as
    built, for evaluation or for training a generator. First derivatives only.
    """

    def __init__(self, loss: Loss):
        super().__init__()
        self.loss = loss

    def extra_repr(self) -> str:
        return repr(self.loss)

    def forward(
        self,
        input: torch.Tensor,
        target: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        shift=None,
        elementwise: bool = False,
        spatial: bool = False,
    ) -> torch.Tensor:
        config = self.loss.config
        metric = config.metric
        config.check_call(shift=shift, elementwise=elementwise, spatial=spatial)
        check_images(
            input,
            target,
            channels=config.channels,
            loss_name=metric.name,
            blocks=metric.blocks,
            min_size=metric.min_size,
        )
        if shift is not None:
            shift = jnp.asarray(check_shift(shift), jnp.int32)
        key = None
        if self.loss.needs_key(shift=shift, spatial=spatial):
            key = jax.random.key(int(torch.randint(0, 2**31 - 1, (), generator=generator)))
        if torch.is_grad_enabled() and (input.requires_grad or target.requires_grad):
            return _LossFunction.apply(input, target, self.loss, key, shift, elementwise, spatial)
        return torch.from_dlpack(
            _value(self.loss, _to_jax(input), _to_jax(target), key, shift, elementwise, spatial)
        )


def from_jax(loss: Loss) -> JaxLoss:
    """Wrap a :class:`watson_jax.Loss` for PyTorch (see the module docstring)."""
    if not isinstance(loss, Loss):
        raise TypeError(f"from_jax takes a watson_jax Loss, got {type(loss).__name__}")
    return JaxLoss(loss)
