"""Converting the original weight files (after their sha256 check) to watson_jax files and back."""

from __future__ import annotations

from pathlib import Path

from .. import partition, weights
from ..errors import WeightsError
from .formats import _BY_OUR_NAME, _BY_REFERENCE_NAME
from .hashes import PARTITION_SPLINE_SHA256, known_version, sha256
from .torchio import read_reference, write_reference


def verify(path: Path, version: str, allow_unverified: bool) -> tuple[str, str]:
    """Check ``path`` against the pinned sha256 of ``version``; returns (digest, label) where label is the
    version the file really is, or 'unverified'.

    Raises WeightsError for an unknown or modified file, or one of another version, unless
    ``allow_unverified``.
    """
    digest = sha256(path)
    found = known_version(path, digest)
    if found == version or allow_unverified:
        return digest, found or "unverified"
    if found is not None:
        raise WeightsError(
            f"{path} is the '{found}' version of this file, not '{version}'; pass "
            f"--version {found} to convert it."
        )
    raise WeightsError(
        f"{path} does not match any known upstream file (sha256 {digest}): it is corrupt, "
        "modified or unknown. Re-download it, or pass --allow-unverified to convert it anyway."
    )


def _known(table: dict, path: Path, what: str):
    """``table[path.name]``, or a WeightsError naming ``what`` and the names the table knows."""
    entry = table.get(path.name)
    if entry is None:
        raise WeightsError(f"{path.name} is not {what}; expected one of {', '.join(sorted(table))}.")
    return entry


def convert_reference_file(
    path: Path, dest: Path, *, version: str = "current", allow_unverified: bool = False
) -> Path:
    """Convert one original ``.pth`` into ``dest`` and return the written path."""
    path = Path(path)
    fmt = _known(_BY_REFERENCE_NAME, path, "a weight file this converter knows")
    digest, label = verify(path, version, allow_unverified)
    params = weights.check_params(fmt.to_ours(read_reference(path)), fmt.template(), str(path))
    return weights.save_params(
        Path(dest) / fmt.our_name, params, source=path.name, sha256=digest, version=label
    )


def export_reference_file(path: Path, dest: Path) -> Path:
    """Write one of our weight files in the reference's layout (``*_trial0.pth``) into ``dest``."""
    path = Path(path)
    fmt = _known(_BY_OUR_NAME, path, "a watson_jax weight file name")
    params = weights.read_checked_params(path, fmt.template())
    out = Path(dest) / fmt.reference_name
    write_reference(out, fmt.to_reference(params))
    return out


def import_partition_spline(path: Path, dest: Path, *, allow_unverified: bool = False) -> Path:
    """Copy Barron's ``partition_spline.npz`` into ``dest`` as the table the Adaptive loss uses (instead
    of the one the library computes)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path} not found: pass the path of robust_loss_pytorch's partition_spline.npz.")
    digest = sha256(path)
    if digest != PARTITION_SPLINE_SHA256 and not allow_unverified:
        raise WeightsError(
            f"{path} is not the known partition_spline.npz (sha256 {digest}); pass "
            "--allow-unverified to import it anyway."
        )
    table = partition.read_table(path)
    return partition.save_table(
        Path(dest) / partition.TABLE_FILE, table, f"imported from {path.name} (sha256 {digest})"
    )
