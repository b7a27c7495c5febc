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

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from .masking import EPS, amplitudes, masking, smoothmax_slope
from .phase import phase_parts

#: Axes of blocks, u and v in (N, B, C, U, V): what a channel's distance sums over.
POOLED_AXES = (1, 3, 4)


def _pool(a: jnp.ndarray) -> jnp.ndarray:
    return jnp.sum(a, axis=POOLED_AXES)


def _per_channel(a: jnp.ndarray) -> jnp.ndarray:
    """(N, C) → broadcastable against coefficients (N, B, C, U, V)."""
    return a[:, None, :, None, None]


def _given(tangent) -> bool:
    return type(tangent) is not SymbolicZero


def _minkowski(terms: dict, p: dict, scale):
    """(Σ_{b,u,v} (d·scale + ε))^(1/β) and the pooled sum S, each (N, C)."""
    pooled = _pool(terms["d"] * scale + EPS)
    return pooled ** (1 / p["beta"][:, 0, 0]), pooled


def _masking_derivatives(p: dict, log_ratio, terms: dict, *, root, pooled, scale, t_p: dict, t_log_ratio):
    """The derivatives that the masking and the pooling give both losses (module docstring): ``change``
    (∂D/∂change), ``ref`` (∂D/∂ref through the contrast masking), per coefficient, and ``tangent``, the
    contributions of the parameters' and the luminance ratio's tangents, (N, C) each. ``root``: S^(1/β),
    ``pooled``: S (:func:`_minkowski`)."""
    g_ratio = (
        _per_channel(root / pooled)
        * scale
        * jnp.exp((p["beta"] - 1) * terms["log_err"])
        * jnp.sign(terms["ratio"])
    )  # F·a·β·e^{(β−1)L}·sign(r), as β·F = S^(1/β−1)
    g_change = g_ratio / terms["s"]
    g_s = -g_change * terms["ratio"]
    slope_t_l = smoothmax_slope(terms["t_l"], terms["contrast"])
    g_contrast = g_s * (1 - slope_t_l) * terms["contrast"]  # ∂D/∂m · m
    g_log_t_l = g_s * slope_t_l * terms["t_l"] + g_contrast * (1 - terms["w"])
    tangent = []
    if _given(t_log_ratio):
        tangent.append(_pool(g_log_t_l * p["alpha"] * t_log_ratio))
    if _given(t_p["t_tild"]):
        tangent.append(_pool(g_log_t_l * t_p["t_tild"]))
    if _given(t_p["alpha"]):
        tangent.append(_pool(g_log_t_l * log_ratio * t_p["alpha"]))
    if _given(t_p["w_tild"]):
        w = terms["w"]
        tangent.append(
            _pool(g_contrast * (terms["log_ref"] - terms["log_t_l"]) * w * (1 - w) * t_p["w_tild"])
        )
    if _given(t_p["beta"]):
        b = p["beta"][:, 0, 0]
        d_beta = -root * jnp.log(pooled) / b**2 + root / pooled / b * _pool(
            scale * terms["d"] * terms["log_err"]
        )
        tangent.append(d_beta * t_p["beta"][:, 0, 0])
    g_ref = g_contrast * terms["w"] * jnp.sign(terms["ref"]) / (jnp.abs(terms["ref"]) + EPS)
    return {"change": g_change, "ref": g_ref, "tangent": tangent}


def _total(value, contributions: list) -> jnp.ndarray:
    return sum(contributions[1:], contributions[0]) if contributions else jnp.zeros_like(value)


# -- Watson-DCT ---------------------------------------------------------------------------------------------


def _dct_terms(p: dict, ref, change, log_ratio) -> dict:
    return {**masking(p, ref, change, log_ratio), "ref": ref}


@jax.custom_jvp
def dct_distances(p: dict, ref, change, log_ratio) -> jnp.ndarray:
    """Watson-DCT's D_c of every image and channel, (N, C) (module docstring).

    Args:
      p: stacked channel parameters t_tild (C, U, V), alpha, w_tild, beta (C, 1, 1).
      ref: the target's DCT coefficients, (N, B, C, U, V).
      change: the DCT coefficients of x − y, (N, B, C, U, V).
      log_ratio: log((DC + ε)/(L̄ + ε)) of the target, (N, B, C, 1, 1).
    """
    return _minkowski(_dct_terms(p, ref, change, log_ratio), p, 1.0)[0]


def _dct_distances_jvp(primals, tangents):
    p, ref, change, log_ratio = primals
    t_p, t_ref, t_change, t_log_ratio = tangents
    terms = _dct_terms(p, ref, change, log_ratio)
    value, pooled = _minkowski(terms, p, 1.0)
    g = _masking_derivatives(
        p, log_ratio, terms, root=value, pooled=pooled, scale=1.0, t_p=t_p, t_log_ratio=t_log_ratio
    )
    out = g["tangent"]
    if _given(t_change):
        out.append(_pool(g["change"] * t_change))
    if _given(t_ref):
        out.append(_pool(g["ref"] * t_ref))
    return value, _total(value, out)


dct_distances.defjvp(_dct_distances_jvp, symbolic_zeros=True)


# -- Watson-DFT ---------------------------------------------------------------------------------------------


def dft_terms(p: dict, target, inp, log_ratio) -> dict:
    """Everything per coefficient that Watson-DFT's distance and its derivative use: :func:`.masking.masking`
    of the amplitudes (with ``ref`` = A0), :func:`.masking.amplitudes` and :func:`.phase.phase_parts` (as
    ``phase``), each (N, B, C, U, V). ``p``: the stacked channel parameters (t_tild, alpha, w_tild, beta)."""
    amp = amplitudes(target, inp)
    same = (inp[0] == target[0]) & (inp[1] == target[1])
    return {
        **amp,
        **masking(p, amp["amp0"], amp["change"], log_ratio),
        "ref": amp["amp0"],
        "phase": phase_parts(target, inp, same),
    }


def _dft_distances(terms: dict, p: dict, w_phase, amp_scale, phase_scale):
    """(D_c, amplitude part, pooled sum S), each (N, C)."""
    amplitude, pooled = _minkowski(terms, p, amp_scale)
    return amplitude + _pool(w_phase * terms["phase"]["angle"] * phase_scale), amplitude, pooled


@jax.custom_jvp
def dft_distances(p: dict, w_phase, target, inp, log_ratio, amp_scale, phase_scale) -> jnp.ndarray:
    """Watson-DFT's D_c of every image and channel, (N, C) (module docstring).

    Args:
      p: stacked channel parameters t_tild (C, U, V), alpha, w_tild, beta (C, 1, 1).
      w_phase: phase weights w_φ, (C, U, V).
      target, inp: (re, im) coefficients of the target and the input, each (N, B, C, U, V).
      log_ratio: log((DC + ε)/(L̄ + ε)) of the target, (N, B, C, 1, 1).
      amp_scale, phase_scale: dropout scales broadcasting against the coefficients (constants: their own
        derivative is not taken).
    """
    return _dft_distances(dft_terms(p, target, inp, log_ratio), p, w_phase, amp_scale, phase_scale)[0]


def _dft_distances_jvp(primals, tangents):
    p, w_phase, target, inp, log_ratio, amp_scale, phase_scale = primals
    t_p, t_w_phase, t_target, t_inp, t_log_ratio, *t_scales = tangents
    if any(_given(t) for t in t_scales):
        raise ValueError(
            "dft_distances: the dropout scales are constants (0 or 2); their derivative is not "
            "defined here. Differentiate with respect to the images and parameters only."
        )
    terms = dft_terms(p, target, inp, log_ratio)
    value, amplitude, pooled = _dft_distances(terms, p, w_phase, amp_scale, phase_scale)
    g = _masking_derivatives(
        p,
        log_ratio,
        terms,
        root=amplitude,
        pooled=pooled,
        scale=amp_scale,
        t_p=t_p,
        t_log_ratio=t_log_ratio,
    )
    phase = terms["phase"]
    g_theta = w_phase * phase_scale * phase["slope"]
    out = g["tangent"]
    if any(_given(t) for t in t_inp):
        g_re = g["change"] * terms["unit1"][0] + g_theta * phase["d_phi1"][0]
        g_im = g["change"] * terms["unit1"][1] + g_theta * phase["d_phi1"][1]
        out += [_pool(part * t) for part, t in zip((g_re, g_im), t_inp) if _given(t)]
    if any(_given(t) for t in t_target):
        g_amp0 = g["ref"] - g["change"]
        g_re = g_amp0 * terms["unit0"][0] - g_theta * phase["d_phi0"][0]
        g_im = g_amp0 * terms["unit0"][1] - g_theta * phase["d_phi0"][1]
        out += [_pool(part * t) for part, t in zip((g_re, g_im), t_target) if _given(t)]
    if _given(t_w_phase):
        out.append(_pool(phase["angle"] * phase_scale * t_w_phase))
    return value, _total(value, out)


dft_distances.defjvp(_dft_distances_jvp, symbolic_zeros=True)
