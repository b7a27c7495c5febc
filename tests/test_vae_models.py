"""The NNX VAEs against the original PyTorch architectures, rebuilt here from docs/reference.md §11 with
random weights and BatchNorm statistics: conversion both ways, evaluation and training mode, at 1e-5."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from experiments.vae import models  # noqa: E402

TOL = dict(rtol=1e-5, atol=1e-5)


class TorchMnistVAE(nn.Module):
    def __init__(self, latent_space=2):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.LeakyReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1),
            nn.LeakyReLU(),
        )  # fmt: skip
        self.fc0 = nn.Linear(64 * 16 * 16, 1024)
        self.mu = nn.Linear(1024, latent_space)
        self.logvar = nn.Linear(1024, latent_space)
        self.dec = nn.Linear(latent_space, 1024)
        self.fc1 = nn.Linear(1024, 64 * 16 * 16)
        self.decoder = nn.Sequential(
            nn.Conv2d(64, 64, 3, padding=1), nn.LeakyReLU(), nn.UpsamplingBilinear2d((32, 32)),
            nn.Conv2d(64, 32, 3, padding=1), nn.LeakyReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.LeakyReLU(),
            nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid(),
        )  # fmt: skip
        self.shape = (64, 16, 16)

    def encode(self, x):
        h = torch.relu(self.fc0(self.encoder(x).flatten(1)))
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        h = torch.relu(self.fc1(torch.relu(self.dec(z))))
        return self.decoder(h.view(-1, *self.shape))


class TorchCelebAVAE(TorchMnistVAE):
    def __init__(self, latent_space=256):
        nn.Module.__init__(self)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.LeakyReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(64),
            nn.Conv2d(64, 128, 3, padding=1), nn.LeakyReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(128),
            nn.Conv2d(128, 128, 3, padding=1), nn.LeakyReLU(),
        )  # fmt: skip
        self.fc0 = nn.Linear(128 * 16 * 16, 2048)
        self.mu = nn.Linear(2048, latent_space)
        self.logvar = nn.Linear(2048, latent_space)
        self.dec = nn.Linear(latent_space, 2048)
        self.fc1 = nn.Linear(2048, 128 * 16 * 16)
        self.decoder = nn.Sequential(
            nn.Conv2d(128, 128, 3, padding=1), nn.LeakyReLU(), nn.UpsamplingBilinear2d((32, 32)),
            nn.Conv2d(128, 64, 3, padding=1), nn.LeakyReLU(), nn.UpsamplingBilinear2d((64, 64)),
            nn.Conv2d(64, 64, 3, padding=1), nn.LeakyReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.LeakyReLU(),
            nn.Conv2d(64, 3, 3, padding=1), nn.Sigmoid(),
        )  # fmt: skip
        self.shape = (128, 16, 16)


TORCH = {"mnist": TorchMnistVAE, "celeba": TorchCelebAVAE}
SHAPES = {"mnist": (32, 32, 1), "celeba": (64, 64, 3)}


def _randomised(dataset):
    torch.manual_seed(0)
    net = TORCH[dataset]()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(7)
    return net.eval()


def _images(dataset, n=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *SHAPES[dataset])).astype(np.float32)


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
def test_from_torch_matches_the_original(dataset):
    net = _randomised(dataset)
    model = models.from_torch(net.state_dict(), dataset=dataset)
    x = _images(dataset)
    with torch.no_grad():
        mu_t, logvar_t = net.encode(_nchw(x))
        recon_t = net.decode(mu_t)
    mu, logvar = model.encode(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(mu), mu_t.numpy(), **TOL)
    np.testing.assert_allclose(np.asarray(logvar), logvar_t.numpy(), **TOL)
    recon = model.decode(mu)
    assert recon.shape == (3, *SHAPES[dataset])
    np.testing.assert_allclose(np.asarray(recon), np.transpose(recon_t.numpy(), (0, 2, 3, 1)), **TOL)


@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
def test_to_torch_state_dict_loads_strictly_and_round_trips(dataset, tmp_path):
    model = models.build(dataset, seed=3)
    if dataset == "celeba":  # non-trivial BatchNorm statistics: one training-mode pass
        model.train()
        model.encode(jnp.asarray(_images(dataset, n=4, seed=1)))
        model.eval()
    state = models.to_torch_state_dict(model)
    net = TORCH[dataset]()
    net.load_state_dict(state, strict=True)
    net.eval()
    x = _images(dataset, seed=2)
    with torch.no_grad():
        mu_t, _ = net.encode(_nchw(x))
        recon_t = net.decode(mu_t)
    mu, _ = model.encode(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(mu), mu_t.numpy(), **TOL)
    np.testing.assert_allclose(
        np.asarray(model.decode(mu)), np.transpose(recon_t.numpy(), (0, 2, 3, 1)), **TOL
    )
    # through a file, as a user would: torch.save, then from_torch(path)
    path = tmp_path / "vae.pth"
    torch.save(state, path)
    again = models.from_torch(path, dataset=dataset)
    mu2, _ = again.encode(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(mu2), np.asarray(mu))


def test_celeba_batchnorm_training_mode_matches_torch():
    """Training mode: batch statistics in the output, running statistics updated with the unbiased
    variance."""
    net = _randomised("celeba").train()
    model = models.from_torch(net.state_dict(), dataset="celeba")
    model.train()
    x = _images("celeba", n=4, seed=5)
    with torch.no_grad():
        mu_t, _ = net.encode(_nchw(x))
    mu, _ = model.encode(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(mu), mu_t.numpy(), **TOL)
    after = models.to_torch_state_dict(model)
    for key, value in net.state_dict().items():
        if key.startswith(("encoder.3.", "encoder.7.")):
            np.testing.assert_allclose(after[key].numpy(), value.numpy(), **TOL, err_msg=key)


def test_forward_uses_the_explicit_key():
    model = models.build("mnist")
    x = jnp.asarray(_images("mnist"))
    r1, mu, logvar = model(x, jax.random.key(1))
    r2, _, _ = model(x, jax.random.key(1))
    r3, _, _ = model(x, jax.random.key(2))
    assert r1.shape == x.shape and mu.shape == logvar.shape == (3, 2)
    np.testing.assert_array_equal(np.asarray(r1), np.asarray(r2))
    assert not np.allclose(np.asarray(r1), np.asarray(r3))
    z = mu + jax.random.normal(jax.random.key(1), mu.shape) * jnp.exp(0.5 * logvar)
    np.testing.assert_allclose(np.asarray(model.decode(z)), np.asarray(r1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("n_in", "n_out"), [(16, 32), (32, 64), (5, 13), (1, 4)])
def test_align_corners_upsampling_matches_torch(n_in, n_out):
    x = np.random.default_rng(0).standard_normal((2, n_in, n_in + 1, 3)).astype(np.float32)
    ours = models.upsample_bilinear_align_corners(jnp.asarray(x), (n_out, n_out + 2))
    ref = nn.UpsamplingBilinear2d((n_out, n_out + 2))(_nchw(x)).numpy()
    np.testing.assert_allclose(np.asarray(ours), np.transpose(ref, (0, 2, 3, 1)), **TOL)


def test_wrong_architecture_is_refused_naming_the_key():
    mnist_state = TorchMnistVAE().state_dict()
    with pytest.raises(ValueError, match=r"'encoder\.0\.weight' has shape \(32, 1, 3, 3\), expected \(64, 3"):
        models.from_torch(mnist_state, dataset="celeba")
    broken = dict(mnist_state)
    broken["fc0.weight"] = torch.zeros(1024, 10)
    with pytest.raises(ValueError, match=r"'fc0\.weight' has shape \(1024, 10\)"):
        models.from_torch(broken, dataset="mnist")
    extra = dict(mnist_state, **{"decoder.9.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"unexpected key 'decoder\.9\.weight'"):
        models.from_torch(extra, dataset="mnist")
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        models.from_torch(mnist_state, dataset="svhn")
    with pytest.raises(ValueError, match=r"takes NHWC images of shape \(N, 32, 32, 1\)"):
        models.build("mnist").encode(jnp.zeros((1, 28, 28, 1)))
