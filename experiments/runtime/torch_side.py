"""The PyTorch worker: K eager SGD steps of watson_jax.torch with ``torch.optim.SGD``, timed after a
warm-up run."""

from __future__ import annotations

import os
import statistics

import numpy as np

from experiments.runtime import measure
from experiments.runtime.prepare import build_loss


def full_float32(torch) -> None:
    """Full float32 in PyTorch: no TF32 in convolutions or matrix products."""
    try:
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    except AttributeError:  # PyTorch < 2.9 (pyproject allows torch >= 2.1)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def run_torch(job: dict) -> dict:
    """Time ``job['steps']`` eager steps (zero_grad, forward, backward, ``SGD.step``) on
    ``job['torch_device']`` with all cores as threads, after one warm-up run of K steps; synchronised on
    CUDA. Only p is optimised (the loss's parameters do not require gradients), as on the JAX side.

    Returns ms/step (median run time / K), the run times, the first and last loss value of the warm-up,
    whether the loss is pretrained, the thread count and the peak memory: ``max_memory_allocated`` after
    the warm-up on CUDA, else the process's peak RSS after the warm-up.
    """
    import torch

    from watson_jax.torch import LossProvider

    torch.set_num_threads(os.cpu_count())
    if job["precision"] == "float32":
        full_float32(torch)
    device = torch.device(job["torch_device"])
    cuda = device.type == "cuda"
    idle = measure.rss_mib()
    x_np, p0_np = np.load(job["images"]), np.load(job["p0"])
    loss, pretrained = build_loss(LossProvider(), job, x_np.shape)
    loss = loss.to(device).requires_grad_(False)

    def nchw(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).to(device)

    x, p0 = nchw(x_np), nchw(p0_np)
    p = p0.clone().requires_grad_(True)
    optimiser = torch.optim.SGD([p], lr=job["lr"])
    generator = torch.Generator(device=device)
    generator.manual_seed(0)

    def run() -> list[torch.Tensor]:
        with torch.no_grad():
            p.copy_(p0)
        values = []
        for _ in range(job["steps"]):
            optimiser.zero_grad(set_to_none=True)
            value = loss(torch.sigmoid(p), x, generator)
            value.backward()
            optimiser.step()
            values.append(value.detach())
        if cuda:
            torch.cuda.synchronize()
        return values

    values = run()  # warm-up
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss_reset = measure.reset_peak_rss()
    times = measure.timed_runs(lambda r: run(), job["repeats"], job["min_time"])
    result = {
        "ms_per_step": 1e3 * statistics.median(times) / job["steps"],
        "times_s": times,
        "idle_mib": idle,
        "pretrained": pretrained,
        "loss_first": float(values[0]),
        "loss_last": float(values[-1]),
        "threads": torch.get_num_threads(),
    }
    if cuda:
        result.update(peak_mib=torch.cuda.max_memory_allocated() / 2**20, memory="device")
    else:
        result.update(measure.cpu_memory(rss_reset))
    return result
