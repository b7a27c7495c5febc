"""The setup worker and the loss of a job: which backend and losses this run has, and the run's weights
folder (links to the converted weights, conversions of missing ones, random Deeploss backbones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.common.machine import shown

#: Losses without parameters: "untuned parameters" never applies to them.
PARAMETER_FREE = ("L1", "L2", "SSIM")


def setup(job: dict) -> dict:
    """Backend, devices and the losses on each side; fills ``job['weights_dir']`` for the run.

    The converted weights of ``job['user_weights_dir']`` (or the default folder) are linked in; the ones
    still missing for the requested losses are converted from ``job['original_weights']`` where the
    original files are there; a Deeploss loss without its ImageNet backbone file gets a random backbone of
    the same shapes (He-normal kernels, zero biases, seed 0). Speed does not depend on the weight values;
    ``notes`` and ``random_backbones`` say what applies.
    """
    import jax

    from watson_jax import registry, weights
    from watson_jax.losses import deeploss

    info = {
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
        "jax_losses": registry.available_names(),
        "torch_losses": [],
        "notes": [],
        "random_backbones": [],
        "deep_losses": list(deeploss.BACKBONES),
    }
    try:
        import torch

        from watson_jax.torch import LossProvider as TorchProvider

        info["torch_losses"] = TorchProvider.available()
        if torch.cuda.is_available():
            info["torch_device"], info["torch_device_name"] = "cuda", torch.cuda.get_device_name(0)
        else:
            info["torch_device"] = "cpu"
    except ImportError as err:
        info["notes"].append(f"PyTorch side unavailable ({err})")
    names = job["losses"] or registry.available_names()
    info["losses"] = [registry.lookup(n).name for n in names]

    dest = Path(job["weights_dir"])
    source = weights.weights_dir(job["user_weights_dir"])
    if source.is_dir():
        for path in source.glob("*.npz"):
            (dest / path.name).symlink_to(path.resolve())
    original = Path(job["original_weights"]) if job["original_weights"] else None
    converted = []
    try:
        from watson_jax import convert

        for fmt in convert.FORMATS:
            src = original / fmt.reference_name if original else None
            if fmt.metric in info["losses"] and not (dest / fmt.our_name).exists() and src and src.is_file():
                convert.convert_reference_file(src, dest)
                converted.append(fmt.reference_name)
        if "Adaptive" in info["losses"] and not (dest / "log_partition_spline.npz").exists():
            spline = original / "partition_spline.npz" if original else None
            if spline and spline.is_file():
                convert.import_partition_spline(spline, dest)
    except Exception as err:  # a converter problem (or no torch to read .pth) must not stop the benchmark
        info["notes"].append(f"weight conversion failed ({type(err).__name__}: {err})")
    if converted:
        info["notes"].append(f"pretrained weights converted for this run from {shown(original)}")
    for name, backbone in deeploss.BACKBONES.items():
        if name in info["losses"] and not (dest / backbone.filename).exists():
            rng = np.random.default_rng(0)
            params = {
                layer: {
                    "kernel": rng.normal(
                        0, np.sqrt(2 / np.prod(p["kernel"].shape[:3])), p["kernel"].shape
                    ).astype(np.float32),
                    "bias": np.zeros(p["bias"].shape, np.float32),
                }
                for layer, p in backbone.template().items()
            }
            weights.save_params(dest / backbone.filename, params, source="random (experiments/runtime)")
            info["random_backbones"].append(name)
    return info


def build_loss(provider, job: dict, image_shape: tuple[int, ...]) -> tuple[object, bool]:
    """The job's loss from a JAX or torch ``LossProvider`` → (loss, whether pretrained).

    Pretrained if its converted weights are in ``job['weights_dir']``, else the initial parameters.
    Precision 'float32' asks for 'highest', 'default' for the backend's default. ``image_size`` is
    passed to Adaptive only (its parameters are per pixel and frequency).
    """
    from watson_jax.errors import MissingWeightsError

    n, h, w, c = image_shape
    options = {
        "weights_dir": job["weights_dir"],
        "image_size": (c, h, w) if job["loss"] == "Adaptive" else None,
        "precision": "highest" if job["precision"] == "float32" else "default",
    }
    try:
        return provider.get_loss_function(job["loss"], job["colorspace"], pretrained=True, **options), True
    except MissingWeightsError:
        return provider.get_loss_function(job["loss"], job["colorspace"], pretrained=False, **options), False
