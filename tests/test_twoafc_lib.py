"""watson_jax.twoafc: heads, objective, schedule, score and human ceiling against hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from watson_jax import twoafc


def sig(z):
    return 1 / (1 + math.exp(-z))


def test_watson_head_hand_values():
    params = {"w_tilde": jnp.float32(1.0)}
    d0 = jnp.array([3.0, 1.0, 2.0, -1.0, 0.0])
    d1 = jnp.array([1.0, 3.0, 2.0, 0.5, 0.0])
    got = np.asarray(twoafc.watson_head(params, d0, d1))
    want = [sig(math.e * 0.5), sig(-math.e * 0.5), 0.5, 0.5, 0.5]  # d0 + d1 <= 0 -> sigmoid(0)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_watson_head_gradient_finite_at_guard():
    params = twoafc.watson_head_init()
    g = jax.grad(lambda d: twoafc.watson_head(params, d[0], d[1]))(jnp.array([0.0, 0.0]))
    assert np.all(np.isfinite(np.asarray(g)))
    # w_tilde's gradient by hand: d/dw sigmoid(e^w r) = s(1-s) e^w r, with d0=3, d1=1, w=1.
    gw = jax.grad(lambda p: twoafc.watson_head(p, 3.0, 1.0))(params)["w_tilde"]
    s = 1 / (1 + math.exp(-math.e * 0.5))
    assert float(gw) == pytest.approx(s * (1 - s) * math.e * 0.5, rel=1e-6)


def test_ranking_head_against_torch():
    torch = pytest.importorskip("torch")
    params = twoafc.ranking_head_init(jax.random.key(0))
    for name, fan_in in (("layer1", 5), ("layer2", 32), ("layer3", 32)):
        bound = 1 / math.sqrt(fan_in)
        for leaf in params[name].values():
            assert float(jnp.max(jnp.abs(leaf))) <= bound
    net = torch.nn.Sequential(
        torch.nn.Conv2d(5, 32, 1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(32, 32, 1),
        torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(32, 1, 1), torch.nn.Sigmoid(),
    )  # fmt: skip
    with torch.no_grad():
        for conv, name in zip(net[0::2], ("layer1", "layer2", "layer3")):
            conv.weight.copy_(torch.tensor(np.asarray(params[name]["kernel"]).T[:, :, None, None]))
            conv.bias.copy_(torch.tensor(np.asarray(params[name]["bias"])))
    d0 = np.array([0.3, 2.0, 0.0, 1.0], np.float32)
    d1 = np.array([0.1, 0.5, 0.0, 4.0], np.float32)
    t0, t1 = (torch.tensor(d)[:, None, None, None] for d in (d0, d1))
    eps = 0.1  # LPIPS's Dist2LogitLayer
    feats = torch.cat((t0, t1, t0 - t1, t0 / (t1 + eps), t1 / (t0 + eps)), dim=1)
    want = net(feats).detach().numpy().reshape(-1)
    got = np.asarray(twoafc.ranking_head(params, d0, d1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_bce_against_torch_and_mask():
    torch = pytest.importorskip("torch")
    p = np.array([0.9, 0.2, 0.5, 1.0, 0.0], np.float32)
    j = np.array([1.0, 0.4, 0.5, 0.0, 0.0], np.float32)
    want = torch.nn.BCELoss()(torch.tensor(p), torch.tensor(j)).item()  # log clamped at -100
    assert float(twoafc.bce(p, j)) == pytest.approx(want, rel=1e-6)
    mask = np.array([1, 1, 0, 0, 0], bool)
    want2 = -(math.log(0.9) + 0.4 * math.log(0.2) + 0.6 * math.log(0.8)) / 2
    assert float(twoafc.bce(p, j, mask)) == pytest.approx(want2, rel=1e-6)


def test_accuracy():
    p = np.array([0.9, 0.2, 0.5, 0.7])
    j = np.array([1.0, 0.4, 0.3, 0.0])
    assert float(twoafc.accuracy(p, j)) == pytest.approx((1 + 0.6 + 0.5 + 0) / 4)


def test_schedule_matches_lpips_loop():
    lr0, n, nd = 2e-4, 3, 4
    # LPIPS train.py: after each epoch > n, lr -= lr0 / nd.
    lr, want = lr0, []
    for epoch in range(1, n + nd + 1):
        want.append(lr)
        if epoch > n:
            lr -= lr0 / nd
    got = [float(twoafc.learning_rate(e, lr0, n, nd)) for e in range(1, n + nd + 1)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    sched = twoafc.learning_rate_schedule(lr0, 5, n, nd)
    assert float(sched(0)) == pytest.approx(lr0) and float(sched(5 * (n + 1))) == pytest.approx(want[n + 1])
    with pytest.raises(ValueError, match="steps_per_epoch"):
        twoafc.learning_rate_schedule(lr0, 0, n, nd)


def test_score_and_human():
    d0 = np.array([1.0, 2.0, 1.0])
    d1 = np.array([2.0, 1.0, 1.0])
    j = np.array([0.2, 0.2, 0.2])
    np.testing.assert_allclose(np.asarray(twoafc.score(d0, d1, j)), [0.8, 0.2, 0.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(twoafc.human_agreement(j)), [0.68] * 3, rtol=1e-6)


def test_clamp():
    out = twoafc.clamp_nonnegative({"a": jnp.array([-1.0, 2.0])})
    np.testing.assert_array_equal(np.asarray(out["a"]), [0.0, 2.0])
