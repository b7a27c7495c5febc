"""Watson distances per image and channel, from block coefficients, with hand-written derivatives.

  Watson-DCT:  D_c = (Σ_{b,u,v} (d + ε))^(1/β)
  Watson-DFT:  D_c = (Σ_{b,u,v} (d·a + ε))^(1/β) + Σ_{b,u,v} w_φ·P·q

with d the masked error (:mod:`.masking`; DCT: ref = c0, change = the DCT of x − y; DFT: ref = A0,
change = A1 − A0), P the phase term (:mod:`.phase`), and a, q the dropout scales of tuning mode (0 or 2;
1 otherwise).

Why hand-written derivatives. Left to autodiff, reverse mode stores a dozen intermediates per coefficient,
and XLA's CPU backend (which fuses no kernel with several outputs, and recomputes no exp, log, sqrt or
divide for a second consumer) splits their derivatives into about thirty kernels, each reading several
full arrays: about half the time of a Watson-DFT step. Here the derivative of D_c in each coefficient is
written out, computed in the forward pass as one array per differentiated input, and the JVP is its
product with the tangents, summed: reverse mode keeps only those arrays. Both are ``custom_jvp``, so
forward mode, reverse mode and higher derivatives work; inputs that are not differentiated cost nothing.

The derivatives, with r = change/s, L = log(|r| + ε), S the pooled sum, F = S^(1/β − 1)/β, m the contrast
term (|ref| + ε)^w t_L^(1−w), σ' = ∂smoothmax/∂t_L and θ = φ1 − φ0:

  ∂D/∂r      = F·a·β·e^{(β−1)L}·sign(r)        ∂D/∂change = ∂D/∂r / s       ∂D/∂s = −∂D/∂r · r/s
  ∂D/∂m      = ∂D/∂s · (1 − σ')                 ∂D/∂log t_L = ∂D/∂s · σ'·t_L + ∂D/∂m · m(1 − w)
  ∂D/∂ref    = ∂D/∂m · m·w·sign(ref)/(|ref| + ε)   (through the contrast masking)
  ∂D/∂θ      = w_φ·q·dP/dθ                      (dP/dθ from :func:`.phase.phase_parts`)
  DFT: ∂D/∂c1 = ∂D/∂change · z1/A1 + ∂D/∂θ · ∂φ1/∂c1,  ∂D/∂c0 = (∂D/∂ref − ∂D/∂change)·z0/A0 − ∂D/∂θ · ∂φ0/∂c0

(per (re, im) part of c), for the luminance ratio ℓ = log((DC + ε)/(L̄ + ε)) ∂D/∂ℓ = α·∂D/∂log t_L, and for
the parameters ∂D/∂t_tild = ∂D/∂log t_L, ∂D/∂α = ∂D/∂log t_L · ℓ,
∂D/∂w_tild = ∂D/∂m · m(log(|ref| + ε) − log t_L)·w(1 − w), ∂D/∂β = −D_amp·log S/β² + F·Σ a·d·L,
∂D/∂w_φ = P·q, each summed over what the parameter is shared by. ``tests/test_gradients.py`` checks all
of them against autodiff of the plain computation.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from .masking import EPS, Amplitudes, Masking, amplitudes, masking, smoothmax_slope
from .phase import PhaseParts, phase_parts

#: Axes of blocks, u and v in (N, B, C, U, V): what a channel's distance sums over.
POOLED_AXES = (1, 3, 4)


class DctInputs(NamedTuple):
    """The arguments of :func:`dct_distances`."""

    params: dict  # stacked channel parameters: t_tild (C, U, V), alpha, w_tild, beta (C, 1, 1)
    ref: jax.Array  # the target's DCT coefficients, (N, B, C, U, V)
    change: jax.Array  # the DCT coefficients of x − y, (N, B, C, U, V)
    log_ratio: jax.Array  # log((DC + ε)/(L̄ + ε)) of the target, (N, B, C, 1, 1)


class DftInputs(NamedTuple):
    """The arguments of :func:`dft_distances`."""

    params: dict  # stacked channel parameters: t_tild (C, U, V), alpha, w_tild, beta (C, 1, 1)
    w_phase: jax.Array  # phase weights w_φ, (C, U, V)
    target: tuple[jax.Array, jax.Array]  # (re, im) coefficients of the target, each (N, B, C, U, V)
    inp: tuple[jax.Array, jax.Array]  # (re, im) coefficients of the input
    log_ratio: jax.Array  # log((DC + ε)/(L̄ + ε)) of the target, (N, B, C, 1, 1)
    #: dropout scales a and q broadcasting against the coefficients (constants: no derivative is taken)
    amp_scale: jax.Array
    phase_scale: jax.Array


class DftTerms(NamedTuple):
    """Everything per coefficient that Watson-DFT's distance and its derivative use."""

    amp: Amplitudes
    mask: Masking  # the masking of the amplitudes, with ref = A0
    phase: PhaseParts


class MaskingGradients(NamedTuple):
    """The derivatives the masking and the pooling give both losses (module docstring)."""

    change: jax.Array  # ∂D/∂change, per coefficient
    ref: jax.Array  # ∂D/∂ref through the contrast masking, per coefficient
    tangents: list  # the contributions of the parameters' and the luminance ratio's tangents, (N, C) each


def _pool(a: jax.Array) -> jax.Array:
    return jnp.sum(a, axis=POOLED_AXES)


def _per_channel(a: jax.Array) -> jax.Array:
    """(N, C) → broadcastable against coefficients (N, B, C, U, V)."""
    return a[:, None, :, None, None]


def _given(tangent) -> bool:
    return type(tangent) is not SymbolicZero


def _minkowski(mask: Masking, p: dict, scale):
    """(Σ_{b,u,v} (d·scale + ε))^(1/β) and the pooled sum S, each (N, C)."""
    pooled = _pool(mask.d * scale + EPS)
    return pooled ** (1 / p["beta"][:, 0, 0]), pooled


def _masking_derivatives(
    p: dict, log_ratio, mask: Masking, ref, *, root, pooled, scale, t_p: dict, t_log_ratio
) -> MaskingGradients:
    """:class:`MaskingGradients` of either loss. ``root``: S^(1/β), ``pooled``: S (:func:`_minkowski`)."""
    g_ratio = (
        _per_channel(root / pooled) * scale * jnp.exp((p["beta"] - 1) * mask.log_err) * jnp.sign(mask.ratio)
    )  # F·a·β·e^{(β−1)L}·sign(r), as β·F = S^(1/β−1)
    g_change = g_ratio / mask.s
    g_s = -g_change * mask.ratio
    slope_t_l = smoothmax_slope(mask.t_l, mask.contrast)
    g_contrast = g_s * (1 - slope_t_l) * mask.contrast  # ∂D/∂m · m
    g_log_t_l = g_s * slope_t_l * mask.t_l + g_contrast * (1 - mask.w)
    tangents = []
    if _given(t_log_ratio):
        tangents.append(_pool(g_log_t_l * p["alpha"] * t_log_ratio))
    if _given(t_p["t_tild"]):
        tangents.append(_pool(g_log_t_l * t_p["t_tild"]))
    if _given(t_p["alpha"]):
        tangents.append(_pool(g_log_t_l * log_ratio * t_p["alpha"]))
    if _given(t_p["w_tild"]):
        w = mask.w
        tangents.append(_pool(g_contrast * (mask.log_ref - mask.log_t_l) * w * (1 - w) * t_p["w_tild"]))
    if _given(t_p["beta"]):
        b = p["beta"][:, 0, 0]
        d_beta = -root * jnp.log(pooled) / b**2 + root / pooled / b * _pool(scale * mask.d * mask.log_err)
        tangents.append(d_beta * t_p["beta"][:, 0, 0])
    g_ref = g_contrast * mask.w * jnp.sign(ref) / (jnp.abs(ref) + EPS)
    return MaskingGradients(g_change, g_ref, tangents)


def _total(value, contributions: list) -> jax.Array:
    return sum(contributions[1:], contributions[0]) if contributions else jnp.zeros_like(value)


# -- Watson-DCT ---------------------------------------------------------------------------------------------


@jax.custom_jvp
def dct_distances(inputs: DctInputs) -> jax.Array:
    """Watson-DCT's D_c of every image and channel, (N, C) (module docstring)."""
    p = inputs.params
    return _minkowski(masking(p, inputs.ref, inputs.change, inputs.log_ratio), p, 1.0)[0]


def _dct_distances_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    mask = masking(x.params, x.ref, x.change, x.log_ratio)
    value, pooled = _minkowski(mask, x.params, 1.0)
    g = _masking_derivatives(
        x.params,
        x.log_ratio,
        mask,
        x.ref,
        root=value,
        pooled=pooled,
        scale=1.0,
        t_p=t.params,
        t_log_ratio=t.log_ratio,
    )
    out = g.tangents
    if _given(t.change):
        out.append(_pool(g.change * t.change))
    if _given(t.ref):
        out.append(_pool(g.ref * t.ref))
    return value, _total(value, out)


dct_distances.defjvp(_dct_distances_jvp, symbolic_zeros=True)


# -- Watson-DFT ---------------------------------------------------------------------------------------------


def dft_terms(p: dict, target, inp, log_ratio) -> DftTerms:
    """:class:`DftTerms` of target and input coefficients ((re, im) pairs); ``p``: the stacked channel
    parameters (t_tild, alpha, w_tild, beta)."""
    amp = amplitudes(target, inp)
    same = (inp[0] == target[0]) & (inp[1] == target[1])
    return DftTerms(amp, masking(p, amp.amp0, amp.change, log_ratio), phase_parts(target, inp, same))


def _dft_distances(terms: DftTerms, p: dict, w_phase, amp_scale, phase_scale):
    """(D_c, amplitude part, pooled sum S), each (N, C)."""
    amplitude, pooled = _minkowski(terms.mask, p, amp_scale)
    return amplitude + _pool(w_phase * terms.phase.angle * phase_scale), amplitude, pooled


@jax.custom_jvp
def dft_distances(inputs: DftInputs) -> jax.Array:
    """Watson-DFT's D_c of every image and channel, (N, C) (module docstring)."""
    x = inputs
    terms = dft_terms(x.params, x.target, x.inp, x.log_ratio)
    return _dft_distances(terms, x.params, x.w_phase, x.amp_scale, x.phase_scale)[0]


def _dft_distances_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    if _given(t.amp_scale) or _given(t.phase_scale):
        raise ValueError(
            "dft_distances: the dropout scales are constants (0 or 2); their derivative is not "
            "defined here. Differentiate with respect to the images and parameters only."
        )
    terms = dft_terms(x.params, x.target, x.inp, x.log_ratio)
    value, amplitude, pooled = _dft_distances(terms, x.params, x.w_phase, x.amp_scale, x.phase_scale)
    g = _masking_derivatives(
        x.params,
        x.log_ratio,
        terms.mask,
        terms.amp.amp0,
        root=amplitude,
        pooled=pooled,
        scale=x.amp_scale,
        t_p=t.params,
        t_log_ratio=t.log_ratio,
    )
    phase = terms.phase
    g_theta = x.w_phase * x.phase_scale * phase.slope
    out = g.tangents
    if any(_given(part) for part in t.inp):
        g_re = g.change * terms.amp.unit1[0] + g_theta * phase.d_phi1[0]
        g_im = g.change * terms.amp.unit1[1] + g_theta * phase.d_phi1[1]
        out += [_pool(part * dt) for part, dt in zip((g_re, g_im), t.inp) if _given(dt)]
    if any(_given(part) for part in t.target):
        g_amp0 = g.ref - g.change
        g_re = g_amp0 * terms.amp.unit0[0] - g_theta * phase.d_phi0[0]
        g_im = g_amp0 * terms.amp.unit0[1] - g_theta * phase.d_phi0[1]
        out += [_pool(part * dt) for part, dt in zip((g_re, g_im), t.target) if _given(dt)]
    if _given(t.w_phase):
        out.append(_pool(phase.angle * x.phase_scale * t.w_phase))
    return value, _total(value, out)


dft_distances.defjvp(_dft_distances_jvp, symbolic_zeros=True)
