"""Gradients are finite on every valid input, including x == y, constant, black and white images, with the
pretrained parameters (Watson-DFT's β < 1 is the delicate case) and the initial ones; and exactly zero for
the Watson losses at x == y."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from watson_jax import LossProvider

PROVIDER = LossProvider()
H = W = 16


def pairs():
    """A batch of hard pairs (x, y): x == y, constants, black, white, a constant against texture."""
    rng = np.random.default_rng(1)
    tex = rng.uniform(size=(H, W, 3)).astype(np.float32)
    const = lambda v: np.full((H, W, 3), v, np.float32)  # noqa: E731
    cases = [
        (tex, tex),
        (const(0.5), const(0.5)),
        (const(0.0), const(0.0)),
        (const(1.0), const(1.0)),
        (const(0.0), const(1.0)),
        (const(1.0), const(0.0)),
        (const(0.3), tex),
        (tex, const(0.3)),
        (const(0.0), tex),
    ]
    x, y = (np.stack(v) for v in zip(*cases))
    return x, y, [0, 1, 2, 3]  # indices of the pairs with x == y


def call(loss, x, y):
    """The loss with a fixed shift that exercises the edge padding (Watson losses only)."""
    return loss(x, y, shift=(1, 6)) if loss.config.metric.random_shift else loss(x, y)


@jax.jit
def grads(loss, x, y):
    return jax.grad(lambda a, b: call(loss, a, b), argnums=(0, 1))(x, y)


CONFIGS = [
    (name, cs, lum, pre)
    for name in ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT"]
    for cs in ["RGB", "LA"]
    for lum in (["image", "batch"] if name.startswith("Watson") else ["image"])  # only Watson uses it
    for pre in ([True, False] if name.startswith("Watson") else [False])  # only Watson has weights
    if lum == "image" or pre
]


@pytest.mark.parametrize("name,colorspace,luminance,pretrained", CONFIGS)
def test_gradients_are_finite(name, colorspace, luminance, pretrained, converted_weights):
    loss = PROVIDER.get_loss_function(
        name, colorspace, pretrained=pretrained, luminance=luminance, weights_dir=converted_weights
    )
    x, y, identical = pairs()
    gx, gy = grads(loss, x, y)
    assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
    assert np.isfinite(call(loss, x, y))
    if name != "SSIM":
        assert np.all(np.asarray(gx)[identical] == 0), "the gradient at x == y must be exactly 0"


@pytest.mark.parametrize("colorspace", ["RGB", "LA"])
@pytest.mark.parametrize("name", ["Watson-DCT", "Watson-DFT"])
def test_gradients_in_tuning_mode_are_finite(name, colorspace, converted_weights):
    """Tuning mode (real phase bins active, dropout): finite gradients w.r.t. the images and the
    parameters; every parameter gets a non-zero gradient; and the parameter gradient is the derivative:
    in float64 it matches central finite differences of the loss in random directions."""
    loss = PROVIDER.get_loss_function(name, colorspace, weights_dir=converted_weights)
    x, y, _ = pairs()

    @jax.jit
    def all_grads(params, x, y, key):
        return jax.grad(lambda p, a, b: loss.apply(p, a, b, key, tuning=True), argnums=(0, 1, 2))(
            params, x, y
        )

    grad_params, *_ = grads_all = all_grads(loss.params, x, y, jax.random.key(0))
    for leaf in jax.tree.leaves(grads_all):
        assert np.all(np.isfinite(leaf))
    # Every entry of every parameter (t_tild, alpha, w_tild, beta, w_phase_tild including the four real
    # bins, the channel weights) moves the loss: measured, no entry is 0 in any of the four settings.
    for leaf in jax.tree.leaves(grad_params):
        assert np.all(np.asarray(leaf) != 0)

    # Central differences in float64, same key (so the same dropout mask), step h = 1e-5 along unit random
    # directions of all parameters at once. Measured relative error of ⟨∇, v⟩ over three directions and
    # the four settings: ≤ 1.2e-9 at h = 1e-5 (1.5e-6 at h = 1e-3: truncation; 3e-8 at 1e-6: rounding)
    # → rtol 1e-8.
    with jax.enable_x64(True):
        leaves, treedef = jax.tree.flatten(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), loss.params))
        x64, y64 = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        value_and_grad = jax.jit(
            jax.value_and_grad(lambda p: loss.apply(p, x64, y64, jax.random.key(0), tuning=True))
        )
        _, grad64 = value_and_grad(treedef.unflatten(leaves))
        grad64 = [np.asarray(g) for g in jax.tree.leaves(grad64)]
        assert grad64[0].dtype == np.float64
        rng = np.random.default_rng(0)
        h = 1e-5
        for _ in range(2):
            v = [rng.standard_normal(np.shape(leaf)) for leaf in leaves]
            norm = np.sqrt(sum(np.sum(d * d) for d in v))
            v = [d / norm for d in v]
            step = lambda sign: treedef.unflatten([p + sign * h * d for p, d in zip(leaves, v)])  # noqa: E731
            fd = (float(value_and_grad(step(1))[0]) - float(value_and_grad(step(-1))[0])) / (2 * h)
            want = sum(float(np.sum(g * d)) for g, d in zip(grad64, v))
            assert fd == pytest.approx(want, rel=1e-8)


def test_float64_gradients_are_finite(converted_weights):
    loss = PROVIDER.get_loss_function("Watson-DFT", weights_dir=converted_weights, deterministic=True)
    x, y, identical = pairs()
    with jax.enable_x64(True):
        gx, gy = grads(loss, jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64))
        assert gx.dtype == jnp.float64
        assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
        assert np.all(np.asarray(gx)[identical] == 0)


def test_forward_mode_agrees_with_reverse_mode(converted_weights):
    """jax.jvp works through Watson-DFT (its block DFT carries a custom derivative rule) and gives the
    directional derivative ⟨∇_x D, t⟩ + ⟨∇_y D, s⟩ that reverse mode gives, in float64."""
    loss = PROVIDER.get_loss_function("Watson-DFT", weights_dir=converted_weights, deterministic=True)
    rng = np.random.default_rng(3)
    x, y = (rng.uniform(0.1, 0.9, size=(2, H, W, 3)) for _ in range(2))
    t, s = rng.normal(size=(2, 2, H, W, 3))
    with jax.enable_x64(True):
        x, y, t, s = (jnp.asarray(a, jnp.float64) for a in (x, y, t, s))
        _, directional = jax.jvp(lambda a, b: loss(a, b), (x, y), (t, s))
        gx, gy = jax.grad(lambda a, b: loss(a, b), argnums=(0, 1))(x, y)
        want = jnp.sum(gx * t) + jnp.sum(gy * s)
    assert directional.dtype == want.dtype == jnp.float64
    np.testing.assert_allclose(directional, want, rtol=1e-10)


def test_float32_gradient_where_phases_are_at_right_angles():
    """Two single-pixel dots make DFT coefficients whose phases differ by exactly 90° (cos = 0) or round to
    it: the float32 gradient must keep the phase term's full slope there (a clamp or |·| with slope 0 at 0
    once dropped it: 0.99 relative error). Compared with the float64 gradient of the same loss."""
    y = np.zeros((1, 8, 8, 1))
    y[0, 0, 1] = 0.8
    x = np.zeros((1, 8, 8, 1))
    x[0, 0, 3] = 0.5
    loss = PROVIDER.get_loss_function("Watson-DFT", "LA", pretrained=False, deterministic=True)
    g32 = np.asarray(jax.grad(lambda a: loss(a, jnp.asarray(y, jnp.float32)))(jnp.asarray(x, jnp.float32)))
    with jax.enable_x64(True):
        g64 = np.asarray(jax.grad(lambda a: loss(a, jnp.asarray(y)))(jnp.asarray(x)))
    assert np.linalg.norm(g32 - g64) / np.linalg.norm(g64) < 1e-4


def distance_arguments(transform, rng, beta, dropout):
    """Random float64 arguments of distances.dct_distances or dft_distances, (N, B, C) = (2, 3, 2), with
    coefficients that are equal (no change), zero, at a right angle to the target, or on the phase's branch
    point (re + ε = 0)."""
    n, b, c = 2, 3, 2
    shape = (n, b, c, 8, 5 if transform == "dft" else 8)
    p = {
        "t_tild": rng.normal(size=(c,) + shape[-2:]),
        "alpha": rng.uniform(0, 0.7, size=(c, 1, 1)),
        "w_tild": rng.normal(size=(c, 1, 1)),
        "beta": np.full((c, 1, 1), beta),
    }
    log_ratio = rng.normal(scale=0.3, size=(n, b, c, 1, 1))
    if transform == "dct":
        ref, change = rng.normal(size=(2,) + shape)
        change[0, 0] = 0
        ref[1, 1, 0, 2] = 0
        return p, ref, change, log_ratio
    (re0, im0), (re1, im1) = rng.normal(size=(2, 2) + shape)
    re1[0, 0], im1[0, 0] = re0[0, 0], im0[0, 0]  # a block whose coefficients agree
    re1[1, 1, 0, 2], im1[1, 1, 0, 2] = (
        -im0[1, 1, 0, 2] - 1e-10,
        re0[1, 1, 0, 2] + 1e-10,
    )  # rotated by 90°
    re1[1, 2, 1, 3], im1[1, 2, 1, 3] = -1e-10, 0.0  # zero phasor: atan2(0, 0)
    scales = [np.ones(())] * 2
    if dropout:
        scales = [2.0 * rng.integers(0, 2, size=shape) for _ in range(2)]
    return p, np.exp(rng.normal(size=(c, 8, 5))), (re0, im0), (re1, im1), log_ratio, *scales


@pytest.mark.parametrize(
    "transform,beta,dropout",
    [("dft", 0.6, False), ("dft", 1.3, True), ("dct", 0.6, False), ("dct", 4.0, False)],
)
def test_hand_written_derivatives_equal_autodiff_of_the_plain_computation(transform, beta, dropout):
    """The Watson distances carry hand-written JVPs (watson_jax.losses.distances). Their gradients in every
    argument (parameters, phase weights, target and input coefficients or change, luminance ratio) and their
    forward-mode derivatives must equal JAX's autodiff of the same computation without the rule, in
    float64."""
    from watson_jax.losses import distances

    rng = np.random.default_rng(11)
    fn = distances.dft_distances if transform == "dft" else distances.dct_distances
    inputs = distances.DftInputs if transform == "dft" else distances.DctInputs
    with jax.enable_x64(True):
        args = jax.tree.map(jnp.asarray, distance_arguments(transform, rng, beta, dropout))
        n_diff = 5 if transform == "dft" else 4  # the DFT's dropout scales are constants
        weights = jnp.asarray(rng.normal(size=(2, 2)))
        tangents = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)), args[:n_diff])
        results = []
        for f in (fn, fn.fun):
            scalar = lambda *a, f=f: jnp.sum(f(inputs(*a, *args[n_diff:])) * weights)  # noqa: E731
            grads = jax.grad(scalar, argnums=tuple(range(n_diff)))(*args[:n_diff])
            results.append((grads, jax.jvp(scalar, args[:n_diff], tangents)[1]))
    (hand, hand_jvp), (auto, auto_jvp) = results
    for path, got, want in zip(
        jax.tree_util.tree_flatten_with_path(hand)[0], jax.tree.leaves(hand), jax.tree.leaves(auto)
    ):
        assert np.all(np.isfinite(got)), path[0]
        np.testing.assert_allclose(
            got, want, rtol=1e-9, atol=1e-12 * np.max(np.abs(want)), err_msg=str(path[0])
        )
    np.testing.assert_allclose(hand_jvp, auto_jvp, rtol=1e-10)


@pytest.mark.parametrize("name,colorspace,tuning", [("Watson-DFT", "RGB", True), ("Watson-DCT", "LA", False)])
def test_loss_gradients_equal_autodiff_without_the_hand_written_rules(name, colorspace, tuning, monkeypatch):
    """Through the public loss: gradients with respect to the parameters, x and y with the hand-written
    derivatives equal JAX's autodiff of the plain distances (their rules switched off), in float64,
    including tuning mode (dropout) and a pair with x == y."""
    from watson_jax.losses import distances

    loss = PROVIDER.get_loss_function(name, colorspace, pretrained=False, deterministic=True)
    rng = np.random.default_rng(14)
    c = 3 if colorspace == "RGB" else 1
    x, y = rng.uniform(size=(2, 3, 8, 16, c))
    x[0] = y[0]
    with jax.enable_x64(True):
        params = jax.tree.map(
            lambda p: jnp.asarray(p, jnp.float64) + 0.1 * rng.normal(size=np.shape(p)), loss.params
        )
        args = (params, jnp.asarray(x), jnp.asarray(y))

        def grads():
            return jax.grad(
                lambda p, a, b: loss.apply(p, a, b, jax.random.key(3), tuning=tuning),
                argnums=(0, 1, 2),
            )(*args)

        hand = grads()
        for fn in ("dct_distances", "dft_distances"):
            monkeypatch.setattr(distances, fn, getattr(distances, fn).fun)
        auto = grads()
    for got, want in zip(jax.tree.leaves(hand), jax.tree.leaves(auto)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * max(1.0, float(np.max(np.abs(want)))))
    assert np.all(np.asarray(hand[1])[0] == 0)


def test_the_dropout_scales_are_not_differentiated():
    """Watson-DFT's dropout scales are constants: asking for their derivative is an error, not a silent 0."""
    from watson_jax.losses import distances

    args = jax.tree.map(jnp.asarray, distance_arguments("dft", np.random.default_rng(15), 1.0, True))
    with pytest.raises(ValueError, match="dropout scales are constants"):
        jax.grad(
            lambda scale: jnp.sum(distances.dft_distances(distances.DftInputs(*args[:5], scale, args[6])))
        )(args[5])
