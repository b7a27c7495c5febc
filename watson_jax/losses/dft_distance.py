"""Watson-DFT's distance per image and channel, from block coefficients, with a hand-written derivative.

  D_c = (Σ_{b,u,v} (d·a + ε))^(1/β) + Σ_{b,u,v} w_φ·P·q

with d the masked amplitude error (:mod:`.masking`, ref = A0, change = A1 − A0), P the phase term
(:mod:`.phase`), and a, q the dropout scales of tuning mode (0 or 2; 1 otherwise).

Why a hand-written derivative. Left to autodiff, reverse mode stores a dozen intermediates per coefficient
and XLA splits their derivatives into about thirty kernels, each reading several full arrays: about half
the time of a Watson-DFT step on CPU. The derivative of D_c in each coefficient is instead written out
(below), computed in the forward pass as one array per differentiated input, and the JVP is its product
with the tangents, summed: reverse mode keeps only those arrays. It is a ``custom_jvp``, so forward mode,
reverse mode and higher derivatives all work; inputs that are not differentiated cost nothing.

The derivatives, with r = change/s, L = log(|r| + ε), S the pooled sum, F = S^(1/β − 1)/β, θ = φ1 − φ0:

  ∂D/∂r     = F·a·β·e^{(β−1)L}·sign(r)          ∂D/∂Δ = ∂D/∂r / s,      ∂D/∂s = −∂D/∂r · r/s
  ∂D/∂m     = ∂D/∂s · (1 − σ')                   ∂D/∂log t_L = ∂D/∂s · σ'·t_L + ∂D/∂m · m(1 − w)
  ∂D/∂A0    = ∂D/∂m · m·w/(A0 + ε)  (through the contrast masking m; A1 − A0 adds −∂D/∂Δ)
  ∂D/∂θ     = w_φ·q·dP/dθ                        (dP/dθ from :func:`.phase.phase_parts`)
  ∂D/∂c1    = ∂D/∂Δ · z1/A1 + ∂D/∂θ · ∂φ1/∂c1,   ∂D/∂c0 = (∂D/∂A0 − ∂D/∂Δ)·z0/A0 − ∂D/∂θ · ∂φ0/∂c0

(σ' = ∂smoothmax/∂t_L, m = the contrast term; per (re, im) part of c), and for the parameters
∂D/∂t_tild = ∂D/∂log t_L, ∂D/∂α = ∂D/∂log t_L · log(DC/L̄), ∂D/∂w_tild = ∂D/∂m · m(log(A0 + ε) − log t_L)
· w(1 − w), ∂D/∂β = −D_amp·log S/β² + F·Σ a·d·L, ∂D/∂w_φ = P·q, each summed over what the parameter is
shared by. ``tests/test_gradients.py`` checks all of them against autodiff of the plain computation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from .masking import EPS, amplitudes, masking, smoothmax_slope
from .phase import phase_parts

#: Axes of blocks, u and v in (N, B, C, U, V): what a channel's distance sums over.
POOLED_AXES = (1, 3, 4)


def coefficient_terms(p: dict, target, inp, log_ratio) -> dict:
    """Everything per coefficient that the distance and its derivative use: :func:`.masking.masking` of
    the amplitudes, :func:`.masking.amplitudes` and :func:`.phase.phase_parts` (as ``phase``), each
    (N, B, C, U, V). ``p``: the stacked channel parameters (t_tild, alpha, w_tild, beta)."""
    amp = amplitudes(target, inp)
    same = (inp[0] == target[0]) & (inp[1] == target[1])
    return {**amp, **masking(p, amp["amp0"], amp["change"], log_ratio), "phase": phase_parts(target, inp, same)}


def _distances(terms: dict, p: dict, w_phase, amp_scale, phase_scale):
    """(D_c, amplitude part, pooled sum S), each (N, C)."""
    pooled = jnp.sum(terms["d"] * amp_scale + EPS, axis=POOLED_AXES)
    amplitude = pooled ** (1 / p["beta"][:, 0, 0])
    return amplitude + jnp.sum(w_phase * terms["phase"]["angle"] * phase_scale, axis=POOLED_AXES), amplitude, pooled


@jax.custom_jvp
def channel_distances(p: dict, w_phase, target, inp, log_ratio, amp_scale, phase_scale) -> jnp.ndarray:
    """D_c of every image and channel, (N, C) (module docstring).

    Args:
      p: stacked channel parameters t_tild (C, U, V), alpha, w_tild, beta (C, 1, 1).
      w_phase: phase weights w_φ, (C, U, V).
      target, inp: (re, im) coefficients of the target and the input, each (N, B, C, U, V).
      log_ratio: log((DC + ε)/(L̄ + ε)) of the target, (N, B, C, 1, 1).
      amp_scale, phase_scale: dropout scales broadcasting against the coefficients (constants: their own
        derivative is not taken).
    """
    terms = coefficient_terms(p, target, inp, log_ratio)
    return _distances(terms, p, w_phase, amp_scale, phase_scale)[0]


def _given(tangent) -> bool:
    return type(tangent) is not SymbolicZero


@channel_distances.defjvp
def _channel_distances_jvp(primals, tangents):
    p, w_phase, target, inp, log_ratio, amp_scale, phase_scale = primals
    t_p, t_w_phase, t_target, t_inp, t_log_ratio = tangents[:5]
    terms = coefficient_terms(p, target, inp, log_ratio)
    value, amplitude, pooled = _distances(terms, p, w_phase, amp_scale, phase_scale)
    phase = terms["phase"]

    per_channel = lambda a: a[:, None, :, None, None]  # noqa: E731  (N, C) → broadcast on coefficients
    pool = lambda a: jnp.sum(a, axis=POOLED_AXES)      # noqa: E731
    beta = p["beta"]
    g_ratio = (per_channel(amplitude / pooled) * amp_scale * jnp.exp((beta - 1) * terms["log_err"])
               * jnp.sign(terms["ratio"]))                      # F·a·β·e^{(β−1)L}·sign(r): β·F = S^(1/β−1)
    g_change = g_ratio / terms["s"]
    g_s = -g_change * terms["ratio"]
    slope_t_l = smoothmax_slope(terms["t_l"], terms["contrast"])
    g_contrast = g_s * (1 - slope_t_l)
    g_log_t_l = g_s * slope_t_l * terms["t_l"] + g_contrast * terms["contrast"] * (1 - terms["w"])
    g_theta = w_phase * phase_scale * phase["slope"]

    out = []
    if any(_given(t) for t in t_inp):
        g_re = g_change * terms["unit1"][0] + g_theta * phase["d_phi1"][0]
        g_im = g_change * terms["unit1"][1] + g_theta * phase["d_phi1"][1]
        out += [pool(g * t) for g, t in zip((g_re, g_im), t_inp) if _given(t)]
    if any(_given(t) for t in t_target):
        g_amp0 = g_contrast * terms["contrast"] * terms["w"] / (terms["amp0"] + EPS) - g_change
        g_re = g_amp0 * terms["unit0"][0] - g_theta * phase["d_phi0"][0]
        g_im = g_amp0 * terms["unit0"][1] - g_theta * phase["d_phi0"][1]
        out += [pool(g * t) for g, t in zip((g_re, g_im), t_target) if _given(t)]
    if _given(t_log_ratio):
        out.append(pool(g_log_t_l * p["alpha"] * t_log_ratio))
    if _given(t_w_phase):
        out.append(pool(terms["phase"]["angle"] * phase_scale * t_w_phase))
    if _given(t_p["t_tild"]):
        out.append(pool(g_log_t_l * t_p["t_tild"]))
    if _given(t_p["alpha"]):
        out.append(pool(g_log_t_l * log_ratio * t_p["alpha"]))
    if _given(t_p["w_tild"]):
        w = terms["w"]
        out.append(pool(g_contrast * terms["contrast"] * (terms["log_ref"] - terms["log_t_l"]) * w * (1 - w)
                        * t_p["w_tild"]))
    if _given(t_p["beta"]):
        b = beta[:, 0, 0]
        d_beta = -amplitude * jnp.log(pooled) / b ** 2 + amplitude / pooled / b * pool(
            amp_scale * terms["d"] * terms["log_err"])
        out.append(d_beta * t_p["beta"][:, 0, 0])
    return value, sum(out[1:], out[0]) if out else jnp.zeros_like(value)
