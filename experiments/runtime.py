"""The resource experiment of SPEC §12: every loss, JAX against the project's PyTorch implementation.

What is measured. One batch of images x (celebA faces cropped and resized to 64×64, or greyscale 1×64×64)
is reconstructed by plain SGD (lr 1e-4) on an unconstrained image p, minimising D(sigmoid(p), x), with
the LossProvider defaults (reduction 'sum', random shift on, pretrained weights where they exist). Both
sides start from the same p and images (shared .npy files), take the same number of steps K per timed run,
and run in their own processes, one process per loss, colour space and precision:
  - JAX: the K steps are one compiled program (``lax.scan`` over value_and_grad and the update, PRNG keys
    split inside); it is compiled and run once (warm-up), then timed ``--repeats`` times or more, until
    ``--min-time`` seconds have passed;
  - PyTorch: an eager loop of zero_grad, forward, backward and ``torch.optim.SGD.step``; one warm-up run
    of K steps, then timed runs as on the JAX side (synchronised on CUDA); ``torch.set_num_threads`` = all
    cores.
ms/step = median over the repeats of (run time / K). Peak memory: on GPU/TPU the device allocator's peak
(JAX ``memory_stats()['peak_bytes_in_use']``, ``torch.cuda.max_memory_allocated()`` after the warm-up);
on CPU the worker's peak resident set size during the timed runs (the peak is reset after the warm-up,
so JAX's compiler is not counted), with its growth over the idle process (framework imported, nothing
loaded) in brackets. Precision (it matters for convolutions and matrix products on GPUs and TPUs):
'default' rows build both losses with precision='default', the backend's default (TF32 convolutions on
NVIDIA GPUs, as PyTorch's defaults and the original); 'float32' rows, run for the deep losses on GPU/TPU,
use precision='highest' on both sides and switch TF32 off in PyTorch.

Results go to ``benchmarks/results/``: runtime_<backend>_<date>.{md,csv,png} and latest_<backend>.md.

    python experiments/runtime.py                 # every available loss, RGB and greyscale
    python experiments/runtime.py --quick         # smoke run: L2, batch 4, a few steps
    python experiments/runtime.py --losses Watson-DFT,SSIM --colorspaces RGB --steps 50

Losses come from ``watson_jax.registry.available_names()`` and ``watson_jax.torch.LossProvider.available()``.
Missing converted weights are converted for this run from ``--original-weights`` (default
../shared/original_weights) into a temporary folder, else the loss runs with pretrained=False; a missing
ImageNet backbone of a Deeploss loss is replaced by a random one of the same shapes. Speed does not depend
on the weight values; the table's notes say which applies.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_ORIGINAL_WEIGHTS = REPO.parent / "shared" / "original_weights"
DEFAULT_OUT = REPO / "benchmarks" / "results"
LR = 1e-4
SIZE = 64
RESULT_PREFIX = "RESULT "
#: A worker ran disturbed if other processes kept more than this many cores busy meanwhile.
DISTURBED_CORES = 0.25

#: SPEC §12: the original implementation on one NVIDIA H200, batch 128: ms/step and peak MiB.
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
COLORSPACES = {"rgb": "RGB", "grey": "grey"}


# -- the machine -------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("jax", "jaxlib", "torch", "numpy", "watson_jax"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def describe_machine(info: dict) -> list[str]:
    """Markdown lines: hardware and software versions. ``info`` has 'backend' and 'device' (its kind)."""
    hardware = f"{cpu_model()}, {os.cpu_count()} cores"
    if info.get("backend") != "cpu":
        hardware += f"; JAX device: {info.get('device')} ({info.get('backend')})"
    if info.get("torch_device_name"):
        hardware += f"; PyTorch device: {info['torch_device_name']}"
    software = ", ".join(f"{k} {v}" for k, v in versions().items())
    return [f"- hardware: {hardware}", f"- software: {software}"]


def shown(path) -> str:
    """A path as the tables show it: relative to the repository when it is near it (no home folders)."""
    relative = os.path.relpath(Path(path).resolve(), REPO)
    return relative if relative.count("..") <= 1 else str(path)


# -- the data ----------------------------------------------------------------------------------------


def load_images(data: Path, n: int) -> tuple[np.ndarray, str]:
    """(n, 64, 64, 3) float32 in [0, 1] and a description of where they came from.

    celebA JPEGs (``<data>/celeba_sample/*.jpg`` or ``<data>/*.jpg``) centre-cropped to the 74×74 box
    (7, 17, 81, 91) of the half-resolution aligned faces and resized to 64×64 (Lanczos), repeated if there
    are fewer than n; otherwise smooth random images (8×8 noise upsampled bicubically), seed 0.
    """
    from PIL import Image

    files = []
    for folder in (data / "celeba_sample", data):
        if folder.is_dir():
            files = sorted(folder.glob("*.jpg"))
            if files:
                break
    if files:
        out = []
        for path in (files * (n // len(files) + 1))[:n]:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if img.size == (89, 109):
                    img = img.crop((7, 17, 81, 91))
                out.append(np.asarray(img.resize((SIZE, SIZE), Image.LANCZOS), np.float32) / 255)
        return np.stack(out), f"{n} celebA images from {shown(files[0].parent)}, cropped and resized to 64×64"
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        noise = Image.fromarray((rng.uniform(size=(8, 8, 3)) * 255).astype(np.uint8))
        out.append(np.asarray(noise.resize((SIZE, SIZE), Image.BICUBIC), np.float32) / 255)
    return np.stack(out), f"{n} smooth random 64×64 images (no celebA images under {shown(data)})"


def to_grey(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) → (N, H, W, 1), 0.3 R + 0.59 G + 0.11 B (the losses' greyscale conversion)."""
    return (images[..., :1] * 0.3 + images[..., 1:2] * 0.59) + images[..., 2:3] * 0.11


# -- memory of a worker process ---------------------------------------------------------------------


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process to its current RSS (Linux); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / (2**20 if sys.platform == "darwin" else 2**10)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (Linux /proc/stat; (0, 0) elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # minus idle and iowait


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction of the machine's CPU time spent busy over ``interval`` seconds (0 where unknown)."""
    busy0, total0 = cpu_ticks()
    time.sleep(interval)
    busy1, total1 = cpu_ticks()
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_until_idle(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (up to ``max_wait`` s) until other processes use under ``threshold`` of the CPUs; seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < max_wait and cpu_busy(2.0) > threshold:
        pass
    return time.monotonic() - start


# -- the workers (each runs in its own process and prints one RESULT line) ---------------------------


def timed_runs(run, job: dict, max_runs: int = 200) -> list[float]:
    """Seconds of each of ``job['repeats']`` calls run(r), or more until ``job['min_time']`` seconds have
    passed: many short runs make the median robust to bursts of load from other processes."""
    times = []
    end = time.perf_counter() + job["min_time"]
    while len(times) < job["repeats"] or (time.perf_counter() < end and len(times) < max_runs):
        start = time.perf_counter()
        run(len(times))
        times.append(time.perf_counter() - start)
    return times


def worker_setup(job: dict) -> dict:
    """Backend, devices, losses on each side; prepares the run's weights folder (links, conversions,
    log-partition table, random backbones)."""
    import jax

    from watson_jax import registry, weights

    info = {
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
        "jax_losses": registry.available_names(),
        "torch_losses": [],
        "notes": [],
        "random_backbones": [],
        "deep_losses": [],
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

    def canonical(name: str) -> str:
        try:
            return registry.lookup(name).name
        except NotImplementedError:  # a name an older registry reserves for a later version
            return name

    on_a_side = [m.name for m in registry.METRICS if m.name in info["jax_losses"] + info["torch_losses"]]
    wanted = [canonical(n) for n in job["losses"]] if job["losses"] else [m.name for m in registry.METRICS]
    info["losses"] = [n for n in wanted if n in on_a_side]
    missing = [n for n in wanted if n not in on_a_side]
    if missing:
        info["notes"].append(f"not available in this version of watson_jax: {', '.join(missing)}")

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
    except Exception as err:  # a converter problem must not stop the benchmark: pretrained=False then
        info["notes"].append(f"weight conversion failed ({type(err).__name__}: {err})")
    if converted:
        info["notes"].append(f"pretrained weights converted for this run from {shown(original)}")
    try:
        from watson_jax.losses import deeploss
    except ImportError:
        deeploss = None
    for name, backbone in getattr(deeploss, "BACKBONES", {}).items():
        info["deep_losses"].append(name)
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
            weights.save_params(dest / backbone.filename, params, source="random (experiments/runtime.py)")
            info["random_backbones"].append(name)
    return info


def build_loss(provider, job: dict, image_shape: tuple[int, ...]) -> tuple[object, bool]:
    """The job's loss from a JAX or torch provider → (loss, whether pretrained): pretrained if its converted
    weights exist, else the initial parameters. Precision 'float32' asks for 'highest', 'default' for the
    backend's default (where the provider has the option)."""
    import inspect

    from watson_jax.errors import MissingWeightsError

    n, h, w, c = image_shape
    options = {
        "weights_dir": job["weights_dir"],
        "image_size": (c, h, w) if job["loss"] == "Adaptive" else None,
    }
    if "precision" in inspect.signature(provider.get_loss_function).parameters:
        options["precision"] = "highest" if job["precision"] == "float32" else "default"
    try:
        return provider.get_loss_function(job["loss"], job["colorspace"], pretrained=True, **options), True
    except MissingWeightsError:
        return provider.get_loss_function(job["loss"], job["colorspace"], pretrained=False, **options), False


def worker_jax(job: dict) -> dict:
    """K SGD steps as one compiled program, timed after a warm-up run."""
    import jax

    from watson_jax import LossProvider

    idle = rss_mib()
    x_np, p0_np = np.load(job["images"]), np.load(job["p0"])
    loss, pretrained = build_loss(LossProvider(), job, x_np.shape)
    needs_key = loss.needs_key()
    steps, lr = job["steps"], job["lr"]

    def run(loss, x, p, key):
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
    rss_reset = reset_peak_rss()
    times = timed_runs(lambda r: jax.block_until_ready(compiled(loss, x, p0, jax.random.key(r + 1))), job)
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
        result.update(peak_mib=peak_rss_mib(), memory="rss" if rss_reset else "rss-whole-process")
    return result


def _torch_float32(torch) -> None:
    """Full float32 in PyTorch: no TF32 in convolutions or matrix products."""
    try:
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    except AttributeError:  # PyTorch < 2.9
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def worker_torch(job: dict) -> dict:
    """K eager SGD steps with torch.optim.SGD, timed after a warm-up run."""
    import torch

    from watson_jax.torch import LossProvider

    torch.set_num_threads(os.cpu_count())
    if job["precision"] == "float32":
        _torch_float32(torch)
    device = torch.device(job["torch_device"])
    cuda = device.type == "cuda"
    idle = rss_mib()
    x_np, p0_np = np.load(job["images"]), np.load(job["p0"])
    loss, pretrained = build_loss(LossProvider(), job, x_np.shape)
    loss = loss.to(device).requires_grad_(False)  # only p is optimised, as on the JAX side
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).to(device)  # noqa: E731
    x, p0 = nchw(x_np), nchw(p0_np)
    p = p0.clone().requires_grad_(True)
    optimiser = torch.optim.SGD([p], lr=job["lr"])
    generator = torch.Generator(device=device)
    generator.manual_seed(0)

    def run() -> list:
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
    rss_reset = reset_peak_rss()
    times = timed_runs(lambda r: run(), job)
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
        result.update(peak_mib=peak_rss_mib(), memory="rss" if rss_reset else "rss-whole-process")
    return result


WORKERS = {"setup": worker_setup, "jax": worker_jax, "torch": worker_torch}


def worker_main(kind: str, job_json: str) -> int:
    result = WORKERS[kind](json.loads(job_json))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# -- running the workers ------------------------------------------------------------------------------


def run_worker(kind: str, job: dict, env: dict, timeout: float) -> dict:
    """Run one worker process; its RESULT line as a dict, or {'error': ...}. Adds 'others_cores': how many
    cores other processes kept busy meanwhile (machine CPU time minus the worker's own, per second)."""
    import resource

    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        "--job",
        json.dumps(job),
    ]
    own = lambda: sum(
        getattr(resource.getrusage(resource.RUSAGE_CHILDREN), f) for f in ("ru_utime", "ru_stime")
    )  # noqa: E731
    busy0, own0, start = cpu_ticks()[0], own(), time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    others = ((cpu_ticks()[0] - busy0) / os.sysconf("SC_CLK_TCK") - (own() - own0)) / (
        time.monotonic() - start
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX) :]), others_cores=max(others, 0.0))
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail[:300]}"}


class Progress:
    """A one-line progress bar on stderr: [#####-----] 3/24 Watson-DFT RGB torch, 1m02s."""

    def __init__(self, total: int, enabled: bool, width: int = 30):
        self.total, self.enabled, self.width, self.done = total, enabled, width, 0
        self.start = time.monotonic()

    def show(self, label: str) -> None:
        if not self.enabled:
            return
        filled = self.width * self.done // max(self.total, 1)
        elapsed = int(time.monotonic() - self.start)
        line = (
            f"[{'#' * filled}{'-' * (self.width - filled)}] {self.done}/{self.total} {label}, "
            f"{elapsed // 60}m{elapsed % 60:02d}s"
        )
        sys.stderr.write("\r" + line.ljust(100)[:100])
        sys.stderr.flush()

    def step(self, label: str) -> None:
        self.done += 1
        self.show(label)

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


# -- the report ----------------------------------------------------------------------------------------


def label(row: dict) -> str:
    name = row["loss"]
    return name if row["precision"] == "default" else f"{name} (float32)"


def _fmt(value, digits: int = 3) -> str:
    if value is None or value == "":
        return "–"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}g}" if value < 1 else f"{value:.2f}"


def memory_cell(side: dict) -> str:
    if "peak_mib" not in side:
        return "–"
    if side["memory"] == "device":
        return f"{side['peak_mib']:.0f}"
    return f"{side['peak_mib']:.0f} (+{side['peak_mib'] - side['idle_mib']:.0f})"


def memory_meaning(backend: str) -> str:
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


def targets(rows: list[dict], info: dict, batch: int) -> list[str]:
    """The issue's targets that this run can check, each with ✓ or ✗ (or why it cannot be checked)."""
    by = {(r["loss"], r["colorspace"], r["precision"]): r for r in rows}
    ms = lambda r, side: (r.get(side) or {}).get("ms_per_step")  # noqa: E731
    lines = []
    if info["backend"] == "cpu":
        note = "" if batch == 32 else f" (the target is stated for batch 32; this run used {batch})"
        for name in ("Watson-DFT", "Watson-DCT"):
            for cs in ("rgb", "grey"):
                r = by.get((name, cs, "default"))
                if r and ms(r, "jax") and ms(r, "torch"):
                    ratio = ms(r, "torch") / ms(r, "jax")
                    lines.append(
                        f"- {name} {COLORSPACES[cs]}: PyTorch / JAX = {ratio:.1f}× "
                        f"(target ≥ 4×{note}) {'✓' if ratio >= 4 else '✗'}"
                    )
        return lines
    on_h200 = "H200" in str(info.get("device")) and batch == 128
    lines.append(
        "Against the original implementation (SPEC §12, NVIDIA H200, batch 128)"
        + ("" if on_h200 else f" — for information only: this run is on {info.get('device')}, batch {batch}")
        + ":"
    )
    for (name, cs, precision), r in by.items():
        jax_ms = ms(r, "jax")
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


def write_csv(path: Path, rows: list[dict], settings: dict) -> None:
    fields = [
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
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
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


def markdown(rows: list[dict], info: dict, settings: dict, chart: str | None) -> str:
    backend = info["backend"]
    device = "CPU" if backend == "cpu" else info.get("device")
    lines = [
        f"# Resource benchmark (SPEC §12) on {device}, {settings['date']}",
        "",
        *describe_machine(info),
        f"- run: `{settings['command']}`",
        f"- task: reconstruct {settings['data']} by SGD (lr 1e-4) on p, loss D(sigmoid(p), x), reduction "
        f"'sum', random shift on; batch {settings['batch']}; {settings['steps']} ({settings['deep_steps']} for "
        f"the deep losses) steps per timed run, median of at least {settings['repeats']} runs (more until "
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
        f"- load average (1 min) before / after the run: {settings['load'][0]:.1f} / {settings['load'][1]:.1f} "
        f"on {os.cpu_count()} cores (other processes on the machine slow both sides down)"
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


def draw_chart(path: Path, rows: list[dict], title: str) -> None:
    """Grouped bars of ms/step (log scale), JAX and PyTorch per loss and colour space, as a small PNG."""
    from PIL import Image, ImageDraw, ImageFont

    groups = [
        (
            label(r).replace("Deeploss-", "DL-").replace(" (float32)", " f32"),
            COLORSPACES[r["colorspace"]],
            (r.get("jax") or {}).get("ms_per_step"),
            (r.get("torch") or {}).get("ms_per_step"),
        )
        for r in rows
    ]
    values = [v for *_, a, b in groups for v in (a, b) if v]
    if not values:
        return
    lo, hi = 10 ** np.floor(np.log10(min(values))), 10 ** np.ceil(np.log10(max(values)))
    hi = hi * 10 if hi == lo else hi
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:  # Pillow without FreeType
        font = ImageFont.load_default()
    left, right, top, bottom, group_w, bar_w = 50, 16, 48, 44, 78, 26
    width, height = max(left + right + group_w * len(groups), 360), 340
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    plot_h = height - top - bottom
    span = np.log10(hi) - np.log10(lo)
    y_of = lambda v: top + plot_h * (1 - (np.log10(v) - np.log10(lo)) / span)  # noqa: E731
    decade = lo
    while decade <= hi * 1.0001:
        y = y_of(decade)
        draw.line([(left, y), (width - right, y)], fill=(215, 215, 215))
        draw.text((4, y - 6), f"{decade:g}", fill="black", font=font)
        decade *= 10
    colours = {"JAX": (31, 119, 180), "PyTorch": (255, 127, 14)}
    for i, (name, colour_space, *times) in enumerate(groups):
        x0 = left + i * group_w + (group_w - 2 * bar_w) // 2
        for k, (v, colour) in enumerate(zip(times, colours.values())):
            if v:
                draw.rectangle([x0 + bar_w * k, y_of(v), x0 + bar_w * (k + 1) - 2, top + plot_h], fill=colour)
        for line_no, text in enumerate((name, colour_space)):
            draw.text(
                (left + i * group_w + 3, top + plot_h + 5 + 13 * line_no),
                text[:12],
                fill="black",
                font=font,
            )
    draw.line([(left, top), (left, top + plot_h)], fill="black")
    draw.text((left, 6), f"{title}: ms per step, log scale (lower is faster)", fill="black", font=font)
    for k, (name, colour) in enumerate(colours.items()):
        draw.rectangle([left + 80 * k, 26, left + 80 * k + 10, 36], fill=colour)
        draw.text((left + 80 * k + 14, 24), name, fill="black", font=font)
    img.convert("P", palette=Image.ADAPTIVE, colors=16).save(path, optimize=True)


# -- the benchmark --------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="SPEC §12 resource benchmark: JAX against watson_jax.torch.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--losses", help="comma-separated loss names (default: every available loss)")
    p.add_argument("--colorspaces", default=None, help="comma-separated: RGB, grey (default both)")
    p.add_argument("--batch", type=int, help="images per batch (default 32 on CPU, 128 on GPU/TPU)")
    p.add_argument("--steps", type=int, help="SGD steps per timed run (default 20 on CPU, 100 on GPU/TPU)")
    p.add_argument(
        "--deep-steps",
        type=int,
        help="steps per run for the deep losses (default 2 on CPU, "
        "else --steps): they take seconds per step on a CPU",
    )
    p.add_argument(
        "--repeats", type=int, help="timed runs; the median is reported (default 3 on CPU, else 5)"
    )
    p.add_argument(
        "--min-time",
        type=float,
        help="keep repeating runs until this many seconds have passed "
        "(default 3 on CPU, 1 on GPU/TPU, 0 with --quick)",
    )
    p.add_argument("--sides", default="jax,torch", help="comma-separated: jax, torch (default both)")
    p.add_argument(
        "--precision",
        choices=["default", "both"],
        default=None,
        help="'both' adds a full-float32 run (JAX 'highest', PyTorch TF32 off) of the deep losses; "
        "default: both on GPU/TPU, default only on CPU (no TF32 there)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: L2 (or --losses), RGB, batch 4, 3 steps, 2 runs",
    )
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder with celebA JPEGs (../shared/data)"
    )
    p.add_argument(
        "--weights-dir",
        help="converted weights (default $WATSON_JAX_WEIGHTS or ~/.cache/watson_jax)",
    )
    p.add_argument(
        "--original-weights",
        type=Path,
        default=DEFAULT_ORIGINAL_WEIGHTS,
        help="original .pth files to convert when converted ones are missing (../shared/original_weights)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (benchmarks/results)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per worker process (900)")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each worker, wait up to SECONDS until other processes use < 25%% of the CPUs",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help=f"run a worker again (up to this many times) if other processes kept more than "
        f"{DISTURBED_CORES} cores busy meanwhile (default 1)",
    )
    p.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="run each loss's JAX and PyTorch workers this many times, taking turns, and report "
        "each side's median round (default 1)",
    )
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def median_round(results: list[dict]) -> dict:
    """One side's result over the rounds: the round with the median ms/step (the lower middle one for an
    even count), with every round's ms/step in ``rounds_ms``; an error if no round has a time."""
    timed = sorted((r for r in results if "ms_per_step" in r), key=lambda r: r["ms_per_step"])
    if not timed:
        return results[-1]
    return {**timed[(len(timed) - 1) // 2], "rounds_ms": [r.get("ms_per_step") for r in results]}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.job)
    env = dict(os.environ)
    if "xla_force_host_platform_device_count" in env.get("XLA_FLAGS", ""):  # set by the test suite
        env.pop("XLA_FLAGS")
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    requested = (
        [n.strip() for n in args.losses.split(",")] if args.losses else (["L2"] if args.quick else None)
    )
    colorspaces = [c.strip() for c in (args.colorspaces or ("RGB" if args.quick else "RGB,grey")).split(",")]
    colorspaces = ["rgb" if c.lower() == "rgb" else "grey" for c in colorspaces]

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="watson_jax_runtime_") as tmp:
        tmp = Path(tmp)
        (tmp / "weights").mkdir()
        info = run_worker(
            "setup",
            {
                "losses": requested,
                "weights_dir": str(tmp / "weights"),
                "user_weights_dir": args.weights_dir,
                "original_weights": str(args.original_weights) if args.original_weights else None,
            },
            env,
            args.timeout,
        )
        if "error" in info:
            print(f"setup failed: {info['error']}", file=sys.stderr)
            return 1
        cpu = info["backend"] == "cpu"
        batch = args.batch or (4 if args.quick else 32 if cpu else 128)
        steps = args.steps or (3 if args.quick else 20 if cpu else 100)
        deep_steps = args.deep_steps or (min(steps, 2) if cpu else steps)
        repeats = args.repeats or (2 if args.quick else 3 if cpu else 5)
        min_time = args.min_time if args.min_time is not None else (0 if args.quick else 3 if cpu else 1)
        both = args.precision == "both" or (args.precision is None and not cpu)

        images, data_source = load_images(args.data, batch)
        rng = np.random.default_rng(0)
        files = {}
        for cs in colorspaces:
            x = images if cs == "rgb" else to_grey(images)
            files[cs] = (tmp / f"images_{cs}.npy", tmp / f"p0_{cs}.npy")
            np.save(files[cs][0], x.astype(np.float32))
            np.save(files[cs][1], rng.normal(0, 1, x.shape).astype(np.float32))

        torch_env = dict(env, JAX_PLATFORMS="cpu")  # the PyTorch worker must not start JAX on the GPU
        plan = []
        for name in info["losses"]:
            deep = name in info["deep_losses"]
            for cs in colorspaces:
                for precision in ("default", "float32") if both and deep else ("default",):
                    row = {
                        "loss": name,
                        "colorspace": cs,
                        "precision": precision,
                        "steps": deep_steps if deep else steps,
                        "pretrained_applies": name not in ("L1", "L2", "SSIM"),
                    }
                    job = {
                        "loss": name,
                        "colorspace": COLORSPACES[cs],
                        "precision": precision,
                        "images": str(files[cs][0]),
                        "p0": str(files[cs][1]),
                        "steps": row["steps"],
                        "repeats": repeats,
                        "min_time": min_time,
                        "lr": LR,
                        "weights_dir": str(tmp / "weights"),
                        "torch_device": info.get("torch_device", "cpu"),
                    }
                    plan.append((row, job))
        # The sides of a row take turns, round after round, so that slow spells of the machine hit both.
        tasks = [
            (row, job, side)
            for row, job in plan
            for _ in range(args.rounds)
            for side in sides
            if name_on_side(row["loss"], side, info)
        ]
        progress = Progress(len(tasks), args.progress or sys.stderr.isatty())
        waited = 0.0
        for row, job, side in tasks:
            what = f"{label(row)} {COLORSPACES[row['colorspace']]} {side}"
            progress.show(what)
            for _ in range(args.retries + 1):  # again if other processes competed for the CPUs
                if args.wait_idle:
                    waited += wait_until_idle(args.wait_idle)
                result = run_worker(side, job, torch_env if side == "torch" else env, args.timeout)
                if result.get("others_cores", 0) <= DISTURBED_CORES:
                    break
            row.setdefault("rounds", {}).setdefault(side, []).append(result)
            progress.step(what)
        progress.close()
        for row, _ in plan:
            for side, results in row.pop("rounds", {}).items():
                row[side] = median_round(results)

    rows = []
    for row, _ in plan:
        j, t = row.get("jax") or {}, row.get("torch") or {}
        row["ratio"] = (
            t["ms_per_step"] / j["ms_per_step"] if "ms_per_step" in j and "ms_per_step" in t else None
        )
        row["notes"] = row_notes(row, info)
        rows.append(row)

    date = datetime.date.today().isoformat()
    backend = info["backend"]
    command = "python experiments/runtime.py" + (
        ""
        if argv is None and len(sys.argv) == 1
        else " " + " ".join(argv if argv is not None else sys.argv[1:])
    )
    settings = {
        "date": date,
        "batch": batch,
        "steps": steps,
        "deep_steps": deep_steps,
        "repeats": repeats,
        "min_time": min_time,
        "rounds": args.rounds,
        "data": data_source,
        "threads": os.cpu_count(),
        "command": command,
        "load": (load_before, os.getloadavg()[0]),
        "waited": waited,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"runtime_{backend}_{date}"
    write_csv(args.out / f"{stem}.csv", rows, settings)
    draw_chart(
        args.out / f"{stem}.png",
        rows,
        f"{'CPU' if backend == 'cpu' else info['device']}, batch {batch}",
    )
    text = markdown(rows, info, settings, f"{stem}.png")
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"latest_{backend}.md").write_text(text)
    print(text)
    print(
        f"wrote {args.out / stem}.{{md,csv,png}} and {args.out / f'latest_{backend}.md'}",
        file=sys.stderr,
    )
    return 0


def name_on_side(name: str, side: str, info: dict) -> bool:
    return name in info[f"{side}_losses"]


if __name__ == "__main__":
    sys.exit(main())
