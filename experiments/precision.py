"""Float32 against float64, JAX against ``watson_jax.torch``: how far each loss's float32 input gradient is
from its float64 one, and where Deeploss's float32 noise comes from.

    python -m experiments.precision --weights-dir DIR [--pairs 48] [--out FILE.md]

Pairs: x is low-pass filtered Gaussian noise (σ 1.5 px per channel, periodic boundary, standardised, mapped
to 0.5 + 0.2·z, clipped to [0, 1]; the golden files' "smooth noise"), y = clip(x + 0.05·n), n ~ N(0, 1),
RGB 64×64, one pair per seed. Every loss is the provider's pretrained one, reduction 'sum', deterministic.

Tables:
1. per loss, over the pairs: the median and the worst ‖g32 − g64‖ / ‖g64‖ of the input gradient, and the
   number of pairs above 1e-3 (a float32 max-pool choice that differs from float64's moves whole
   gradient paths, which shows as a jump above 1e-3), JAX and torch, each against its own float64;
2. Deeploss: per tap of the backbone, the median over pairs of ‖f32 − f64‖ / ‖f64‖ of the features.
"""

from __future__ import annotations

import argparse
import datetime

import numpy as np

NAMES = ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT", "Adaptive", "Deeploss-VGG", "Deeploss-Squeeze"]
FLIP = 1e-3


def smooth_noise(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One (1, size, size, 3) image of the golden files' smooth noise."""
    z = rng.standard_normal((3, size, size))
    k = np.fft.fftfreq(size)
    gain = np.exp(-2 * (np.pi * 1.5) ** 2 * (k[:, None] ** 2 + k[None, :] ** 2))  # Gaussian σ 1.5, periodic
    z = np.real(np.fft.ifft2(np.fft.fft2(z) * gain))
    z = (z - z.mean()) / z.std()
    return np.clip(0.5 + 0.2 * z, 0, 1).transpose(1, 2, 0)[None]


def pairs(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        x = smooth_noise(rng)
        out.append((x, np.clip(x + 0.05 * rng.standard_normal(x.shape), 0, 1)))
    return out


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def jax_gradients(name: str, data, weights_dir) -> list[tuple[np.ndarray, np.ndarray]]:
    """(float32, float64) input gradients of the JAX loss for every pair."""
    import jax
    import jax.numpy as jnp

    from watson_jax import LossProvider

    loss32 = LossProvider().get_loss_function(
        name, "RGB", reduction="sum", deterministic=True, weights_dir=weights_dir, download=False
    )
    grad = jax.jit(jax.grad(lambda loss, x, y: loss(x, y), argnums=1))
    out = []
    with jax.enable_x64(True):
        loss64 = jax.tree.map(
            lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, loss32
        )
        for x, y in data:
            g32 = np.asarray(grad(loss32, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)))
            g64 = np.asarray(grad(loss64, jnp.asarray(x), jnp.asarray(y)))
            out.append((g32, g64))
    return out


def torch_gradients(name: str, data, weights_dir) -> list[tuple[np.ndarray, np.ndarray]]:
    import torch

    from watson_jax import torch as wtorch

    module = wtorch.LossProvider().get_loss_function(
        name, "RGB", reduction="sum", deterministic=True, weights_dir=weights_dir
    )
    out = []
    for x, y in data:
        grads = []
        for dtype in (torch.float32, torch.float64):
            m = module.to(dtype)
            tx = torch.tensor(x.transpose(0, 3, 1, 2), dtype=dtype, requires_grad=True)
            m(tx, torch.tensor(y.transpose(0, 3, 1, 2), dtype=dtype)).sum().backward()
            grads.append(tx.grad.numpy().transpose(0, 2, 3, 1))
        out.append(tuple(grads))
    return out


def gradient_row(name: str, data, weights_dir) -> dict:
    row = {"loss": name}
    for side, fn in (("jax", jax_gradients), ("torch", torch_gradients)):
        errors = np.array([rel(g32, g64) for g32, g64 in fn(name, data, weights_dir)])
        row[side] = {
            "median": float(np.median(errors)),
            "worst": float(errors.max()),
            "flips": int((errors > FLIP).sum()),
        }
    return row


def tap_errors(name: str, data, weights_dir) -> dict:
    """Median over pairs of each tap's float32 error, JAX and torch, both against JAX's float64 features."""
    import jax
    import jax.numpy as jnp
    import torch

    from watson_jax import torch as wtorch
    from watson_jax.losses import deeploss
    from watson_jax.parameters import load_backbone

    backbone = load_backbone(name, weights_dir=weights_dir, download=False)
    features = deeploss.BACKBONES[name].features
    taps = jax.jit(lambda p, x: features(p, deeploss.scaled_rgb(x)))
    module = (
        wtorch.LossProvider()
        .get_loss_function(name, "RGB", deterministic=True, weights_dir=weights_dir)
        .float()
    )
    errors = {"jax": [], "torch": []}
    with jax.enable_x64(True):
        backbone64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), backbone)
        for x, _ in data:
            ref = [np.asarray(t) for t in taps(backbone64, jnp.asarray(x))]
            ours = [np.asarray(t) for t in taps(backbone, jnp.asarray(x, jnp.float32))]
            with torch.no_grad():
                tx = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float32)
                scaled = (tx - module.lpips_shift) / module.lpips_scale
                theirs = [t.numpy().transpose(0, 2, 3, 1) for t in module.taps(scaled)]
            errors["jax"].append([rel(a, r) for a, r in zip(ours, ref)])
            errors["torch"].append([rel(a, r) for a, r in zip(theirs, ref)])
    return {side: np.median(np.array(v), axis=0).tolist() for side, v in errors.items()}


def markdown(rows: list[dict], taps: dict, n_pairs: int, note: str) -> str:
    today = datetime.date.today().isoformat()
    lines = [
        f"# Float32 input gradients against float64 ({today}, CPU)",
        "",
        f"{n_pairs} smooth-noise pairs (RGB 64×64, y = x + 0.05·noise; experiments/precision.py). Error: "
        "‖g32 − g64‖ / ‖g64‖ of the input gradient, each side against its own float64; flips: pairs above "
        f"{FLIP:g}. {note}",
        "",
        "| loss | JAX median | JAX worst | JAX flips | torch median | torch worst | torch flips |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        j, t = r["jax"], r["torch"]
        lines.append(
            f"| {r['loss']} | {j['median']:.2e} | {j['worst']:.2e} | {j['flips']}/{n_pairs} | "
            f"{t['median']:.2e} | {t['worst']:.2e} | {t['flips']}/{n_pairs} |"
        )
    for name, errs in taps.items():
        lines += ["", f"{name}: median float32 feature error per tap (against float64)", "",
                  "| tap | " + " | ".join(str(k) for k in range(len(errs["jax"]))) + " |",
                  "|---|" + "---|" * len(errs["jax"])]  # fmt: skip
        for side in ("jax", "torch"):
            lines.append(f"| {side} | " + " | ".join(f"{e:.2e}" for e in errs[side]) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.precision", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--weights-dir", required=True, help="converted weights, the Deeploss backbones included"
    )
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--losses", nargs="+", default=NAMES)
    parser.add_argument(
        "--note", default="", help="a sentence for the table's header (e.g. the backbone used)"
    )
    parser.add_argument("--out", default=None, help="Markdown file (default: print only)")
    args = parser.parse_args(argv)

    data = pairs(args.pairs)
    rows = []
    for name in args.losses:
        rows.append(gradient_row(name, data, args.weights_dir))
        print(rows[-1], flush=True)
    taps = {n: tap_errors(n, data, args.weights_dir) for n in args.losses if n.startswith("Deeploss")}
    text = markdown(rows, taps, args.pairs, args.note)
    print(text)
    if args.out:
        from experiments.common import files

        files.write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
