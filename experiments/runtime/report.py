"""The benchmark's report: the markdown table (with the machine, the settings and the targets), the CSV
with every figure, the chart, written to ``runtime_<backend>_<date>.{md,csv,png}`` and
``latest_<backend>.md``."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from experiments.common.machine import describe_machine
from experiments.runtime.chart import draw_chart
from experiments.runtime.measure import DISTURBED_CORES
from experiments.runtime.names import COLORSPACES, label
from experiments.runtime.targets import targets

CSV_FIELDS = [
    "loss",
    "colorspace",
    "precision",
    "batch",
    "steps",
    "repeats",
    "jax_ms_per_step",
    "torch_ms_per_step",
    "torch_over_jax",
    "memory",
    "jax_peak_mib",
    "torch_peak_mib",
    "jax_idle_mib",
    "torch_idle_mib",
    "jax_pretrained",
    "torch_pretrained",
    "jax_loss_first",
    "jax_loss_last",
    "torch_loss_first",
    "torch_loss_last",
    "jax_compile_s",
    "jax_runs",
    "torch_runs",
    "jax_others_cores",
    "torch_others_cores",
    "jax_rounds_ms",
    "torch_rounds_ms",
    "notes",
]


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or value == "":
        return "–"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}g}" if value < 1 else f"{value:.2f}"


def memory_cell(side: dict) -> str:
    """A side's memory in the table: device MiB, or peak RSS MiB with its growth over the idle process."""
    if "peak_mib" not in side:
        return "–"
    if side["memory"] == "device":
        return f"{side['peak_mib']:.0f}"
    return f"{side['peak_mib']:.0f} (+{side['peak_mib'] - side['idle_mib']:.0f})"


def memory_meaning(backend: str) -> str:
    """What the memory columns mean on ``backend``."""
    if backend == "cpu":
        return (
            "peak resident set size of the worker process during the timed runs, MiB; in brackets its growth "
            "over the idle process (framework imported, nothing loaded). JAX's compilation is not counted."
        )
    return (
        "peak bytes allocated on the device, MiB: JAX `memory_stats()['peak_bytes_in_use']`, PyTorch "
        "`torch.cuda.max_memory_allocated()` after the warm-up (a PyTorch side on the CPU reports peak RSS)."
    )


def row_notes(row: dict, info: dict) -> str:
    """The notes cell of a row: errors, untuned parameters, disturbed runs, a random backbone."""
    notes = []
    for side in ("jax", "torch"):
        r = row.get(side)
        if r is None:
            continue
        if "error" in r:
            notes.append(f"{side}: {r['error']}")
        else:
            if not r.get("pretrained") and row["pretrained_applies"]:
                notes.append(f"{side}: untuned parameters (no converted weights)")
            if r.get("others_cores", 0) > DISTURBED_CORES:
                notes.append(f"{side}: other processes kept {r['others_cores']:.1f} cores busy")
    if row["loss"] in info.get("random_backbones", []):
        notes.append("random backbone (no ImageNet file)")
    return "; ".join(dict.fromkeys(notes))


def csv_text(rows: list[dict], settings: dict) -> str:
    """The CSV: one line per row with both sides' figures (``CSV_FIELDS``); rows need their 'notes'."""
    f = io.StringIO(newline="")
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for r in rows:
        out = {
            "loss": r["loss"],
            "colorspace": COLORSPACES[r["colorspace"]],
            "precision": r["precision"],
            "batch": settings["batch"],
            "steps": r["steps"],
            "repeats": settings["repeats"],
            "torch_over_jax": r.get("ratio"),
            "notes": r["notes"],
        }
        for side in ("jax", "torch"):
            s = r.get(side) or {}
            out[f"{side}_ms_per_step"] = s.get("ms_per_step")
            out[f"{side}_peak_mib"] = s.get("peak_mib")
            out[f"{side}_idle_mib"] = s.get("idle_mib")
            out[f"{side}_pretrained"] = s.get("pretrained")
            out[f"{side}_loss_first"] = s.get("loss_first")
            out[f"{side}_loss_last"] = s.get("loss_last")
            out[f"{side}_runs"] = len(s.get("times_s", [])) or None
            out[f"{side}_others_cores"] = s.get("others_cores")
            out[f"{side}_rounds_ms"] = (
                " ".join(f"{t:.4g}" for t in s.get("rounds_ms", []) if t is not None) or None
            )
            out["memory"] = out.get("memory") or s.get("memory")
        out["jax_compile_s"] = (r.get("jax") or {}).get("compile_s")
        writer.writerow(out)
    return f.getvalue()


def markdown(rows: list[dict], info: dict, settings: dict, chart: str | None) -> str:
    """The markdown report: machine, run settings, notes, the table, the targets, the chart link."""
    backend = info["backend"]
    device = "CPU" if backend == "cpu" else info.get("device")
    lines = [
        f"# Resource benchmark (docs/reference.md §12) on {device}, {settings['date']}",
        "",
        *describe_machine(backend, info.get("device"), info.get("torch_device_name")),
        f"- run: `{settings['command']}`",
        f"- task: reconstruct {settings['data']} by SGD (lr 1e-4) on p, loss D(sigmoid(p), x), reduction "
        f"'sum', random shift on; batch {settings['batch']}; {settings['steps']} "
        f"({settings['deep_steps']} for the deep losses) steps per timed run, median of at least "
        f"{settings['repeats']} runs (more until "
        f"{settings['min_time']:g} s have passed) after a warm-up run; "
        f"each side in its own process"
        + (
            f"; the two sides took turns for {settings['rounds']} rounds and each reports its median round"
            if settings["rounds"] > 1
            else ""
        ),
        f"- JAX: one compiled program per run (`lax.scan` over the steps) on {backend}; PyTorch: eager, "
        f"`torch.optim.SGD`, on {info.get('torch_device', '–')}"
        + (f" with {settings['threads']} threads" if info.get("torch_device") == "cpu" else ""),
        f"- memory: {memory_meaning(backend)}",
        f"- load average (1 min) before / after the run: {settings['load'][0]:.1f} / "
        f"{settings['load'][1]:.1f} on {os.cpu_count()} cores "
        "(other processes on the machine slow both sides down)"
        + (
            f"; waited {settings['waited']:.0f} s in all for an idle CPU before the workers"
            if settings["waited"]
            else ""
        ),
    ]
    lines += [f"- note: {n}" for n in info.get("notes", [])]
    lines += [
        "",
        "| loss | colour | JAX ms/step | PyTorch ms/step | PyTorch / JAX | JAX MiB | PyTorch MiB | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        j, t = r.get("jax") or {}, r.get("torch") or {}
        ratio = f"{r['ratio']:.1f}×" if r.get("ratio") else "–"
        lines.append(
            f"| {label(r)} | {COLORSPACES[r['colorspace']]} | {_fmt(j.get('ms_per_step'))} | "
            f"{_fmt(t.get('ms_per_step')) if r.get('torch') else 'n/a'} | {ratio} | {memory_cell(j)} | "
            f"{memory_cell(t)} | {r['notes']} |"
        )
    checks = targets(rows, info, settings["batch"])
    if checks:
        lines += ["", "Targets (issue #6):", "", *checks]
    if chart:
        lines += ["", f"![ms per step]({chart})"]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str, newline: str | None = None) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, newline=newline)
    os.replace(partial, path)


def write_results(out: Path, rows: list[dict], info: dict, settings: dict) -> tuple[str, str]:
    """Fill each row's notes and write the CSV, chart and markdown (each file whole or not at all) under
    ``out`` → (the markdown, the files' common stem)."""
    for row in rows:
        row["notes"] = row_notes(row, info)
    backend = info["backend"]
    out.mkdir(parents=True, exist_ok=True)
    stem = f"runtime_{backend}_{settings['date']}"
    _write_text(out / f"{stem}.csv", csv_text(rows, settings), newline="")  # csv ends its lines itself
    title = f"{'CPU' if backend == 'cpu' else info['device']}, batch {settings['batch']}"
    draw_chart(out / f"{stem}.png", rows, title)
    text = markdown(rows, info, settings, f"{stem}.png")
    _write_text(out / f"{stem}.md", text)
    _write_text(out / f"latest_{backend}.md", text)
    return text, stem
