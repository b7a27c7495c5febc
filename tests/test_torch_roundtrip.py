"""Weights tuned in JAX go through the converter to the reference layout and load strictly into the torch
implementation, which then computes what the JAX loss computes with those weights."""

import jax
import numpy as np
import optax
import pytest
import torch

import watson_jax
from watson_jax import torch as wtorch
from watson_jax import weights
from watson_jax.convert import main as convert_main


@pytest.mark.parametrize("name,colorspace", [("Watson-DFT", "RGB"), ("Watson-DCT", "LA")])
def test_tuned_jax_weights_load_strictly_into_torch(name, colorspace, converted_weights, tmp_path):
    loss = watson_jax.LossProvider().get_loss_function(
        name, colorspace, weights_dir=converted_weights, deterministic=True
    )
    rng = np.random.default_rng(0)
    channels = 3 if colorspace == "RGB" else 1
    x, y = (rng.uniform(size=(2, 16, 16, channels)).astype(np.float32) for _ in range(2))
    opt = optax.adam(5e-2)
    grads = jax.grad(lambda p: loss.apply(p, x, y, jax.random.key(0), tuning=True))(loss.params)
    updates, _ = opt.update(grads, opt.init(loss.params))
    tuned = loss.replace(optax.apply_updates(loss.params, updates))

    stem = watson_jax.registry.lookup(name).weights_stem
    cs = watson_jax.registry.canonical_colorspace(colorspace)
    ours = tmp_path / "ours"
    weights.save_params(ours / weights.weights_filename(stem, cs), jax.tree.map(np.asarray, tuned.params))
    assert convert_main(["--to-torch", "--source", str(ours), "--dest", str(tmp_path / "pth")]) == 0
    [exported] = (tmp_path / "pth").glob("*.pth")

    module = wtorch.LossProvider().get_loss_function(name, colorspace, pretrained=False, deterministic=True)
    module.load_state_dict(torch.load(exported, weights_only=True), strict=True)
    got = module(torch.tensor(x.transpose(0, 3, 1, 2)), torch.tensor(y.transpose(0, 3, 1, 2))).detach()
    np.testing.assert_allclose(got.detach().numpy(), tuned(x, y), rtol=1e-5)
    untuned = float(loss(x, y))
    assert abs(float(got) - untuned) > 1e-4 * abs(untuned)  # the tuned weights made a difference


def test_core_package_works_without_torch():
    """torch is an optional extra: watson_jax imports and computes without it, and watson_jax.torch says
    what to install."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, watson_jax\n"
        "x = np.random.default_rng(0).uniform(size=(1, 8, 8, 3)).astype(np.float32)\n"
        "print(float(watson_jax.LossProvider().get_loss_function('Watson-DFT', pretrained=False,"
        " deterministic=True)(x, x * 0.5)))\n"
        "try:\n    import watson_jax.torch\nexcept ImportError as e:\n    print('ImportError:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    value, message = out.strip().splitlines()
    assert np.isfinite(float(value))
    assert "needs PyTorch" in message
