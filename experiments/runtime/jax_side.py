"""The JAX worker: K SGD steps on p of D(sigmoid(p), x) as one compiled program, timed after a warm-up."""

from __future__ import annotations

import statistics
import time

import numpy as np

from experiments.runtime import measure
from experiments.runtime.prepare import build_loss


def run_jax(job: dict) -> dict:
    """Time ``job['steps']`` SGD steps (lr ``job['lr']``) as one ``lax.scan`` over value_and_grad and
    the update, PRNG keys split inside; compiled once, run once (warm-up), then timed.

    Returns ms/step (median run time / K), the run times, compile time, the first and last loss value of
    the warm-up, whether the loss is pretrained, and the peak memory: the device allocator's
    ``peak_bytes_in_use`` on GPU/TPU, else the process's peak RSS after the warm-up (compiler excluded).
    """
    import jax

    from watson_jax import LossProvider

    idle = measure.rss_mib()
    x_np, p0_np = np.load(job["images"]), np.load(job["p0"])
    loss, pretrained = build_loss(LossProvider(), job, x_np.shape)
    needs_key = loss.needs_key()
    steps, lr = job["steps"], job["lr"]

    def run(loss, x: jax.Array, p: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        def objective(q, k):
            return loss(jax.nn.sigmoid(q), x, k) if needs_key else loss(jax.nn.sigmoid(q), x)

        def step(q, k):
            value, grad = jax.value_and_grad(objective)(q, k)
            return q - lr * grad, value

        return jax.lax.scan(step, p, jax.random.split(key, steps))

    x, p0 = jax.device_put(x_np), jax.device_put(p0_np)
    start = time.perf_counter()
    precision = "highest" if job["precision"] == "float32" else None
    with jax.default_matmul_precision(precision):
        compiled = jax.jit(run).lower(loss, x, p0, jax.random.key(0)).compile()
    compile_s = time.perf_counter() - start
    _, values = jax.block_until_ready(compiled(loss, x, p0, jax.random.key(0)))  # warm-up
    rss_reset = measure.reset_peak_rss()
    times = measure.timed_runs(
        lambda r: jax.block_until_ready(compiled(loss, x, p0, jax.random.key(r + 1))),
        job["repeats"],
        job["min_time"],
    )
    result = {
        "ms_per_step": 1e3 * statistics.median(times) / steps,
        "times_s": times,
        "idle_mib": idle,
        "pretrained": pretrained,
        "loss_first": float(values[0]),
        "loss_last": float(values[-1]),
        "compile_s": compile_s,
    }
    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        result.update(peak_mib=stats["peak_bytes_in_use"] / 2**20, memory="device")
    else:
        result.update(measure.cpu_memory(rss_reset))
    return result
