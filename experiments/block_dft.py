"""The 8×8 block DFT of Watson-DFT three ways on the current JAX backend: which one to use where.

Measured, for RGB 64×64 images (batch 128, and 32 on a CPU):
  - transform: the block DFT alone, jitted, on the blocks of the (6·N, 64, 64) planes one Watson-DFT RGB
    call transforms (3 channels × target and input);
  - grad step: value and gradient with respect to the input of the Watson-DFT RGB loss (random shift on),
    jitted, i.e. the work of one SGD step of ``python -m experiments.runtime`` without the update;
for three implementations of the transform:
  - butterflies: radix-2 butterflies as elementwise ops
    (``blocks.block_dft(..., implementation='butterflies')``);
  - fft: ``jnp.fft.rfft2`` of the blocks (``implementation='fft'``);
  - matmul: products with the real and imaginary DFT matrices (einsum, precision HIGHEST), here only.
All three are differentiated through the DFT matrices (``watson_jax.blocks.block_dfts``), so their grad
steps differ in the forward transform only.
Times are the median (and min) over repeats of the mean over ``--number`` calls, after a warm-up call
(compile); the implementations take turns in each repeat so that other load on the machine hits all alike.
Two exactness columns say what each costs in accuracy: the largest error against numpy's rfft2 in float64,
and whether blocks constant along an axis give exact zeros in float32 (the phase derivative of Watson-DFT
scales like 1/|c|, so rounding noise there moves float64 gradients; see ``watson_jax/blocks/kernels.py``).

    python experiments/block_dft.py  # prints the table, writes it to benchmarks/results/block_dft_*.md
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for experiments.common
from experiments.common.machine import REPO, describe_machine  # noqa: E402
from watson_jax import blocks, watson_dft  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results"


def block_dft_matmul(tiles: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The block DFT as matrix products (not offered by the library: no exact zeros, see the module
    docstring)."""
    hi = jax.lax.Precision.HIGHEST
    return tuple(
        jnp.einsum("...hw,uvhw->...uv", tiles, jnp.asarray(k, tiles.dtype), precision=hi)
        for k in blocks.dft_matrices()
    )


#: The library's implementations, and the matrix product, which main() makes selectable for this run.
SELECTABLE = tuple(blocks.DFT_IMPLEMENTATIONS)
IMPLEMENTATIONS = {
    name: functools.partial(blocks.block_dft, implementation=name) for name in (*SELECTABLE, "matmul")
}


def interleaved_seconds(calls: dict, repeats: int, number: int) -> dict[str, tuple[float, float]]:
    """{name: (median, min)} seconds per call of each zero-argument function, after a warm-up call each
    (compile). The functions take turns in every repeat, so load from other processes hits all alike."""
    for fn in calls.values():
        jax.block_until_ready(fn())
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            for _ in range(number):
                out = fn()
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / number)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def float64_error(impl) -> float:
    """Largest |error| of the transform against numpy's rfft2 / 64 on random blocks, in float64."""
    tiles = np.random.default_rng(0).uniform(size=(2, 6, 8, 8))
    with jax.enable_x64(True):
        re, im = jax.jit(impl)(jnp.asarray(tiles))
        re, im = np.asarray(re), np.asarray(im)
    want = np.fft.rfft2(tiles) / 64
    return float(max(np.abs(re - want.real).max(), np.abs(im - want.imag).max()))


def exact_zeros(impl) -> bool:
    """Whether float32 blocks constant along H or along W give exactly zero coefficients where rfft2 does."""
    rng = np.random.default_rng(1)
    cols = np.broadcast_to(rng.uniform(size=(1, 8)), (8, 8)).astype(np.float32)  # constant along H
    rows = np.broadcast_to(rng.uniform(size=(8, 1)), (8, 8)).astype(np.float32)  # constant along W
    f = jax.jit(impl)
    re_c, im_c = (np.asarray(a) for a in f(jnp.asarray(cols)))
    re_r, im_r = (np.asarray(a) for a in f(jnp.asarray(rows)))
    return bool(
        np.all(re_c[1:] == 0)
        and np.all(im_c[1:] == 0)
        and np.all(re_r[:, 1:] == 0)
        and np.all(im_r[:, 1:] == 0)
    )


def measure(batch: int, repeats: int, number: int) -> list[dict]:
    """One row per implementation: transform and grad-step times (ms, median and min) at this batch size."""
    rng = np.random.default_rng(2)
    images = blocks.pixel_blocks(jnp.asarray(rng.uniform(size=(6 * batch, 64, 64, 1)).astype(np.float32)))
    x = jnp.asarray(rng.uniform(size=(batch, 64, 64, 3)).astype(np.float32))
    y = jnp.asarray(rng.uniform(size=(batch, 64, 64, 3)).astype(np.float32))
    key = jax.random.key(0)
    calls = {}
    for name, impl in IMPLEMENTATIONS.items():
        transform = jax.jit(impl)

        def total(x_, y, key, name=name):  # Watson-DFT with the random shift, untuned, reduction 'sum'
            return jnp.sum(watson_dft(x_, y, key=key, random_shift=True, dft_implementation=name))

        step = jax.jit(jax.value_and_grad(total)).lower(x, y, key).compile()
        calls[(name, "transform")] = lambda transform=transform: transform(images)
        calls[(name, "grad_step")] = lambda step=step: step(x, y, key)
    times = interleaved_seconds(calls, repeats, number)
    return [
        {
            "batch": batch,
            "implementation": name,
            **{
                f"{what}_ms": tuple(1e3 * t for t in times[(name, what)])
                for what in ("transform", "grad_step")
            },
        }
        for name in IMPLEMENTATIONS
    ]


def to_markdown(rows: list[dict], exactness: dict, header: list[str]) -> str:
    """The markdown report: ``header``, one table row per measured row with its exactness columns, and the
    implementation this backend uses by default."""
    lines = [
        *header,
        "",
        "| batch | implementation | block DFT ms (median / min) "
        "| Watson-DFT RGB value+grad ms (median / min) | float64 max error "
        "| exact zeros (float32) | selectable |",
        "|---:|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        err, zeros = exactness[r["implementation"]]
        selectable = "yes" if r["implementation"] in SELECTABLE else "no"
        ms = lambda t: f"{t[0]:.2f} / {t[1]:.2f}"  # noqa: E731
        lines.append(
            f"| {r['batch']} | {r['implementation']} | {ms(r['transform_ms'])} | {ms(r['grad_step_ms'])} "
            f"| {err:.1e} | {'yes' if zeros else 'no'} | {selectable} |"
        )
    lines += [
        "",
        f"Default on this backend: `{blocks.default_dft_implementation()}` "
        "(`watson_jax.blocks.DFT_BY_BACKEND`; another with `implementation=` of `block_dft` / `block_dfts`).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure the implementations at the requested batch sizes, print the table and write it to ``--out``."""
    backend = jax.default_backend()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=[128, 32] if backend == "cpu" else [128],
        help="batch sizes (default 128, and 32 on a CPU)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median and min), default 7")
    parser.add_argument(
        "--number",
        type=int,
        default=None,
        help="calls per repeat (default 3 on a CPU, 50 elsewhere)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the markdown table")
    args = parser.parse_args(argv)
    number = args.number or (3 if backend == "cpu" else 50)

    with mock.patch.dict(blocks.DFT_IMPLEMENTATIONS, {"matmul": block_dft_matmul}):
        exactness = {name: (float64_error(impl), exact_zeros(impl)) for name, impl in IMPLEMENTATIONS.items()}
        rows = [row for batch in args.batch for row in measure(batch, args.repeats, number)]
    device = jax.devices()[0]
    date = datetime.date.today().isoformat()
    header = [
        f"# Block DFT on {backend} ({device.device_kind}), {date}",
        "",
        *describe_machine(backend, device.device_kind, packages=("jax", "jaxlib", "numpy", "watson_jax")),
        f"- timing: {args.repeats} repeats × {number} calls, the implementations taking turns, after a "
        f"warm-up call each; images 64×64; load average (1 min) {os.getloadavg()[0]:.1f} at the end",
    ]
    text = to_markdown(rows, exactness, header)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"block_dft_{backend}_{date}.md"
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
