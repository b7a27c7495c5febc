"""The targets of issue #6 that a run can check: on CPU, PyTorch / JAX ≥ 4× for Watson-DFT and
Watson-DCT; on a GPU/TPU, the speed-ups over the original implementation's NVIDIA H200 figures
(docs/reference.md §12) and its peak memory."""

from __future__ import annotations

from experiments.runtime.names import COLORSPACES, label

#: The original implementation on one NVIDIA H200, batch 128, RGB: ms/step and peak MiB.
ORIGINAL_H200_RGB = {
    "L1": (0.34, 30),
    "L2": (0.29, 24),
    "SSIM": (1.57, 114),
    "Watson-DCT": (12.7, 82),
    "Watson-DFT": (15.1, 107),
    "Adaptive": (6.38, 126),
    "Deeploss-VGG": (12.8, 2213),
    "Deeploss-Squeeze": (12.3, 549),
}
#: The same, greyscale, ms/step.
ORIGINAL_H200_GREY_MS = {
    "L1": 0.39,
    "L2": 0.38,
    "SSIM": 2.12,
    "Watson-DCT": 4.36,
    "Watson-DFT": 4.98,
    "Adaptive": 6.63,
    "Deeploss-VGG": 12.8,
    "Deeploss-Squeeze": 13.2,
}
#: The original's Deeploss-VGG with TF32 disabled (issue #6), RGB, ms/step.
ORIGINAL_H200_FLOAT32_MS = {"Deeploss-VGG": 39.7}


def _ms(row: dict, side: str) -> float | None:
    return (row.get(side) or {}).get("ms_per_step")


def targets(rows: list[dict], info: dict, batch: int) -> list[str]:
    """The issue's targets that this run can check, one markdown line each with ✓ or ✗ (or why it is for
    information only)."""
    by = {(r["loss"], r["colorspace"], r["precision"]): r for r in rows}
    lines = []
    if info["backend"] == "cpu":
        note = "" if batch == 32 else f" (the target is stated for batch 32; this run used {batch})"
        for name in ("Watson-DFT", "Watson-DCT"):
            for cs in ("rgb", "grey"):
                r = by.get((name, cs, "default"))
                if r and _ms(r, "jax") and _ms(r, "torch"):
                    ratio = _ms(r, "torch") / _ms(r, "jax")
                    lines.append(
                        f"- {name} {COLORSPACES[cs]}: PyTorch / JAX = {ratio:.1f}× "
                        f"(target ≥ 4×{note}) {'✓' if ratio >= 4 else '✗'}"
                    )
        return lines
    on_h200 = "H200" in str(info.get("device")) and batch == 128
    lines.append(
        "Against the original implementation (docs/reference.md §12, NVIDIA H200, batch 128)"
        + ("" if on_h200 else f" — for information only: this run is on {info.get('device')}, batch {batch}")
        + ":"
    )
    for (name, cs, precision), r in by.items():
        jax_ms = _ms(r, "jax")
        need = 2 if name in info.get("deep_losses", []) else 10
        if precision == "float32":
            orig_ms = ORIGINAL_H200_FLOAT32_MS.get(name) if cs == "rgb" else None
        else:
            orig_ms = (
                ORIGINAL_H200_RGB.get(name, (None,))[0] if cs == "rgb" else ORIGINAL_H200_GREY_MS.get(name)
            )
        if not jax_ms or orig_ms is None:
            continue
        speedup = orig_ms / jax_ms
        line = (
            f"- {label(r)} {COLORSPACES[cs]}: {jax_ms:.3g} ms/step vs {orig_ms} ms, {speedup:.1f}× faster "
            f"(target ≥ {need}×) {'✓' if speedup >= need else '✗'}"
        )
        if cs == "rgb" and precision == "default" and r["jax"].get("memory") == "device":
            mib, orig_mib = r["jax"]["peak_mib"], ORIGINAL_H200_RGB[name][1]
            line += f"; peak {mib:.0f} MiB vs {orig_mib} MiB (target ≤) {'✓' if mib <= orig_mib else '✗'}"
        if name == "Watson-DFT" and cs == "rgb":
            line += f"; target ≤ 0.2 ms/step {'✓' if jax_ms <= 0.2 else '✗'}"
        lines.append(line)
    return lines
