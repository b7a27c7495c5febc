"""What every experiment's result files share: the machine and library versions, and a batch of faces.

``describe_machine`` gives the markdown lines that head a result file (hardware, software versions);
``load_faces`` gives a batch of celebA faces as the paper's experiments see them (cropped, 64×64), or
smooth random images where the data is missing, with a sentence saying which.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
#: The shared inputs next to the repository: celebA JPEGs under data/, the original .pth files.
SHARED = REPO.parent / "shared"
DEFAULT_DATA = SHARED / "data"
#: Packages whose versions a result file records (the ones not installed say so).
PACKAGES = ("jax", "jaxlib", "torch", "numpy", "watson_jax")
#: The crop box (left, top, right, bottom) of the face in celebA's 89×109 half-resolution aligned images.
CELEBA_BOX = (7, 17, 81, 91)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python's version and each package's installed version ('not installed' where it is missing)."""
    out = {"python": platform.python_version()}
    for package in packages:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def describe_machine(
    backend: str,
    device: str,
    torch_device_name: str | None = None,
    packages: tuple[str, ...] = PACKAGES,
) -> list[str]:
    """Two markdown list lines, ``- hardware: …`` (CPU model and cores; the JAX device of a GPU/TPU
    backend; the PyTorch device if named) and ``- software: …`` (the versions of ``packages``)."""
    hardware = f"{cpu_model()}, {os.cpu_count()} cores"
    if backend != "cpu":
        hardware += f"; JAX device: {device} ({backend})"
    if torch_device_name:
        hardware += f"; PyTorch device: {torch_device_name}"
    software = ", ".join(f"{k} {v}" for k, v in versions(packages).items())
    return [f"- hardware: {hardware}", f"- software: {software}"]


def shown(path: str | os.PathLike) -> str:
    """A path as result files show it: relative to the repository when it is near it (no home folders)."""
    relative = os.path.relpath(Path(path).resolve(), REPO)
    return relative if relative.count("..") <= 1 else str(path)


def load_faces(data: Path, n: int, size: int = 64) -> tuple[np.ndarray, str]:
    """(n, size, size, 3) float32 in [0, 1] and a sentence saying where the images came from.

    celebA JPEGs (``<data>/celeba_sample/*.jpg`` or ``<data>/*.jpg``, sorted by name, repeated if there are
    fewer than n): the 89×109 aligned faces are cropped to the 74×74 box ``CELEBA_BOX`` and resized
    (Lanczos); other sizes are resized whole. Without JPEGs: smooth random images (8×8 uniform noise
    upsampled bicubically), seed 0.
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
                    img = img.crop(CELEBA_BOX)
                out.append(np.asarray(img.resize((size, size), Image.LANCZOS), np.float32) / 255)
        where = shown(files[0].parent)
        return np.stack(out), f"{n} celebA images from {where}, cropped and resized to {size}×{size}"
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        noise = Image.fromarray((rng.uniform(size=(8, 8, 3)) * 255).astype(np.uint8))
        out.append(np.asarray(noise.resize((size, size), Image.BICUBIC), np.float32) / 255)
    return np.stack(out), f"{n} smooth random {size}×{size} images (no celebA images under {shown(data)})"
