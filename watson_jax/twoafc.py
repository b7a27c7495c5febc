"""2AFC tuning and evaluation of a loss: heads, objective, learning-rate schedule, score, human ceiling.

Pure, jittable functions of arrays (no I/O), the maths of docs/reference.md §10. A 2AFC triplet is a
reference image ``ref``, two distortions ``p0`` and ``p1`` and a judge ``j`` in [0, 1], the fraction of people
who preferred ``p1`` (j = 0: everyone chose ``p0``). A loss D gives the distances d0, d1 of the distortions;
a *head* maps them to p̂, the predicted probability that people prefer ``p1``; the objective is the binary
cross-entropy of p̂ against j.

Tuning a loss in a few lines of optax::

    loss = LossProvider().get_loss_function("Watson-DFT", "RGB", reduction="none", pretrained=False)
    head = twoafc.watson_head_init()
    params = (loss.params, head)
    opt = optax.adam(twoafc.learning_rate_schedule(2e-4, steps_per_epoch), b1=0.5, b2=0.999)

    def objective(params, ref, p0, p1, judge, key):
        k0, k1 = jax.random.split(key)
        d0 = loss.apply(params[0], ref, p0, k0, tuning=True)
        d1 = loss.apply(params[0], ref, p1, k1, tuning=True)
        return twoafc.bce(twoafc.watson_head(params[1], d0, d1), judge)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: LPIPS's ranking net adds this to the denominators of its ratio features d0/(d1 + ε), d1/(d0 + ε).
RANKING_EPS = 0.1
#: The ranking net's hidden width and LeakyReLU slope (LPIPS's ``Dist2LogitLayer``).
RANKING_HIDDEN = 32
LEAKY_SLOPE = 0.2
#: torch's BCELoss clamps each log at −100, so a certain but wrong prediction costs 100, not infinity.
LOG_FLOOR = -100.0


def _masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
    """The mean of ``values`` (N,) over the entries where ``mask`` is true (all when None); 0 if none."""
    if mask is None:
        return jnp.mean(values)
    weights = jnp.asarray(mask, values.dtype)
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


# -- heads ---------------------------------------------------------------------------------------------


def watson_head_init() -> dict:
    """The Watson/Adaptive head's parameters: ``{'w_tilde': 1.0}`` (the reference's start)."""
    return {"w_tilde": jnp.asarray(1.0, jnp.float32)}


def watson_head(params: dict, d0: jax.Array, d1: jax.Array) -> jax.Array:
    """p̂ = sigmoid(exp(w̃)·(d0 − d1)/(d0 + d1)); p̂ = sigmoid(0) = ½ where d0 + d1 ≤ 0.

    The head of Watson-DCT, Watson-DFT, Adaptive and the pixel losses. The normalised difference makes p̂
    independent of the distances' scale; Adaptive's NLL can be negative, hence the guard. The gradient is
    finite everywhere (the guarded branch divides by 1).
    """
    d0, d1 = jnp.asarray(d0), jnp.asarray(d1)
    total = d0 + d1
    positive = total > 0
    ratio = jnp.where(positive, (d0 - d1) / jnp.where(positive, total, 1.0), 0.0)
    return jax.nn.sigmoid(jnp.exp(params["w_tilde"]) * ratio)


def _torch_linear_init(key: jax.Array, fan_in: int, fan_out: int) -> dict:
    """torch's default initialisation of a 1×1 convolution: weight and bias ~ U(±1/√fan_in)."""
    bound = 1.0 / np.sqrt(fan_in)
    kw, kb = jax.random.split(key)
    return {
        "kernel": jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound),
        "bias": jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound),
    }


def ranking_head_init(key: jax.Array) -> dict:
    """The Deeploss head (LPIPS's ranking net, 5 → 32 → 32 → 1) with torch's default initialisation."""
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "layer1": _torch_linear_init(k1, 5, RANKING_HIDDEN),
        "layer2": _torch_linear_init(k2, RANKING_HIDDEN, RANKING_HIDDEN),
        "layer3": _torch_linear_init(k3, RANKING_HIDDEN, 1),
    }


def ranking_features(d0: jax.Array, d1: jax.Array) -> jax.Array:
    """[d0, d1, d0 − d1, d0/(d1 + 0.1), d1/(d0 + 0.1)], shape (N, 5)."""
    d0, d1 = jnp.asarray(d0), jnp.asarray(d1)
    return jnp.stack([d0, d1, d0 - d1, d0 / (d1 + RANKING_EPS), d1 / (d0 + RANKING_EPS)], axis=-1)


def ranking_head(params: dict, d0: jax.Array, d1: jax.Array) -> jax.Array:
    """p̂ = sigmoid(L3(lrelu(L2(lrelu(L1(features(d0, d1))))))), L_i affine, lrelu with slope 0.2.

    LPIPS's ``BCERankingLoss`` net (1×1 convolutions on the per-image features are dense layers here).
    """
    h = ranking_features(d0, d1)
    for name in ("layer1", "layer2"):
        h = jax.nn.leaky_relu(h @ params[name]["kernel"] + params[name]["bias"], LEAKY_SLOPE)
    logit = h @ params["layer3"]["kernel"] + params["layer3"]["bias"]
    return jax.nn.sigmoid(logit[..., 0])


def clamp_nonnegative(params):
    """Every leaf clamped to ≥ 0: the reference clamps the Deeploss loss's 1×1 ``lin`` weights after each
    step (LPIPS's ``clamp_weights``); apply it to the Deeploss loss parameters, not to the ranking head."""
    return jax.tree.map(lambda p: jnp.maximum(p, 0), params)


# -- objective -----------------------------------------------------------------------------------------


def bce(p_hat: jax.Array, judge: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Binary cross-entropy −[j·log p̂ + (1 − j)·log(1 − p̂)], each log clamped at −100 as torch's BCELoss,
    mean over the images where ``mask`` is true (padding excluded)."""
    p_hat = jnp.asarray(p_hat)
    judge = jnp.asarray(judge, p_hat.dtype)
    log_p = jnp.maximum(jnp.log(p_hat), LOG_FLOOR)
    log_q = jnp.maximum(jnp.log1p(-p_hat), LOG_FLOOR)
    return _masked_mean(-(judge * log_p + (1 - judge) * log_q), mask)


def accuracy(p_hat: jax.Array, judge: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The head's 2AFC agreement: (p̂ > ½)·j + (p̂ < ½)·(1 − j) + ½·(p̂ = ½), masked mean.

    p̂ > ½ predicts that people prefer p1, i.e. d1 < d0 — the same rule as :func:`score` on the distances.
    """
    p_hat = jnp.asarray(p_hat)
    judge = jnp.asarray(judge, p_hat.dtype)
    values = (p_hat > 0.5) * judge + (p_hat < 0.5) * (1 - judge) + 0.5 * (p_hat == 0.5)
    return _masked_mean(values, mask)


# -- learning-rate schedule ----------------------------------------------------------------------------


def learning_rate(epoch, lr0: float, epochs: int, decay_epochs: int):
    """LPIPS's schedule: epochs 1 … n+1 at lr0, epoch n + k (k ≥ 2) at lr0·(1 − (k − 1)/n_decay).

    ``epoch`` counts from 1; the run has n + n_decay epochs, the last at lr0/n_decay. Works on ints and
    traced arrays.
    """
    k = jnp.asarray(epoch) - epochs
    factor = jnp.where(k >= 2, 1.0 - (k - 1) / decay_epochs, 1.0)
    return lr0 * factor


def learning_rate_schedule(lr0: float, steps_per_epoch: int, epochs: int, decay_epochs: int):
    """An optax schedule (step → lr) of :func:`learning_rate`, the epoch being step // steps_per_epoch + 1."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, not {steps_per_epoch}")

    def schedule(step):
        return learning_rate(jnp.asarray(step) // steps_per_epoch + 1, lr0, epochs, decay_epochs)

    return schedule


# -- evaluation ----------------------------------------------------------------------------------------


def score(d0: jax.Array, d1: jax.Array, judge: jax.Array) -> jax.Array:
    """Per-triplet 2AFC score (d0 < d1)(1 − j) + (d1 < d0)·j + ½·(d0 = d1), shape (N,).

    The loss agrees with the people who chose the distortion it finds closer; a tie scores ½.
    """
    d0, d1 = jnp.asarray(d0), jnp.asarray(d1)
    judge = jnp.asarray(judge, jnp.result_type(d0, jnp.float32))
    return (d0 < d1) * (1 - judge) + (d1 < d0) * judge + 0.5 * (d0 == d1)


def human_agreement(judge: jax.Array) -> jax.Array:
    """Per-triplet human ceiling j² + (1 − j)²: how often two random judges of the triplet agree."""
    judge = jnp.asarray(judge, jnp.float32)
    return judge**2 + (1 - judge) ** 2
