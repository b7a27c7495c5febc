"""Converted weight files: where they live, how they are stored, and how they are checked on load.

A weight file is an ``.npz`` archive of float32 arrays (no pickles: loaded with ``allow_pickle=False``),
one entry per parameter leaf, keyed by its path in the parameter pytree joined with '/', e.g.
``ly/t_tild``. Entries whose names start with '__' are metadata (format version, provenance).
The converter (``watson-jax convert``, :mod:`watson_jax.convert`) writes them from the original ``.pth``
files; :func:`load_pretrained` and :func:`load_backbone` fetch and convert those on first use unless
``download=False`` or ``$WATSON_JAX_OFFLINE`` is set. Files are written atomically (temporary file, then
``os.replace``).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import MissingBackboneError, MissingWeightsError, WeightsError

ENV_VAR = "WATSON_JAX_WEIGHTS"
FORMAT_VERSION = 1
META_PREFIX = "__"
_COLORSPACE_SUFFIX = {"rgb": "rgb", "grey": "gray"}


def weights_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The weights folder: ``explicit``, else ``$WATSON_JAX_WEIGHTS``, else ``~/.cache/watson_jax``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "watson_jax"


def weights_filename(stem: str, colorspace: str) -> str:
    """e.g. ('watson_dft', 'grey') → 'watson_dft_gray.npz'."""
    return f"{stem}_{_COLORSPACE_SUFFIX[colorspace]}.npz"


def converter_command(dest: str | os.PathLike) -> str:
    """The command that writes the converted original weight files into ``dest``."""
    from .convert.commands import converter_command

    return converter_command(dest)


def _backbone_command(backbone, folder: Path) -> str:
    from .convert.commands import CONVERT_COMMAND, backbone_flag

    checkpoint = backbone.torchvision_files[0]
    return f"{CONVERT_COMMAND} {backbone_flag(backbone)} <path to {checkpoint}> --dest {folder}"


def download_allowed(download: bool) -> bool:
    """``download`` unless ``$WATSON_JAX_OFFLINE`` forbids the network."""
    from .convert.download import offline

    return download and not offline()


def flatten(params: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dict → {'a/b': array}."""
    flat = {}
    for name, value in params.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "/"))
        else:
            flat[path] = np.asarray(value)
    return flat


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    """{'a/b': array} → nested dict."""
    params: dict = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = params
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return params


def save_params(path: str | os.PathLike, params: dict, **metadata: str) -> Path:
    """Write a parameter pytree (float32) and string metadata to ``path`` (.npz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v, np.float32) for k, v in flatten(params).items()}
    arrays[f"{META_PREFIX}format__"] = np.asarray(FORMAT_VERSION)
    arrays.update({f"{META_PREFIX}{k}__": np.asarray(str(v)) for k, v in metadata.items()})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_params(path: str | os.PathLike, how_to_convert: str | None = None) -> tuple[dict, dict[str, str]]:
    """Read a weight file → (parameter pytree, metadata). Raises WeightsError if it is not a valid one, naming
    ``how_to_convert`` (default: the command converting the original weight files) as the fix."""
    path = Path(path)
    how_to_convert = how_to_convert or converter_command(path.parent)
    try:
        with np.load(path, allow_pickle=False) as data:
            entries = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise WeightsError(
            f"{path} is corrupt or not a watson_jax weight file ({type(err).__name__}: {err}). Delete it and "
            f"convert again: {how_to_convert}"
        ) from err
    meta = {k.strip("_"): str(v) for k, v in entries.items() if k.startswith(META_PREFIX)}
    if meta.get("format") != str(FORMAT_VERSION):
        raise WeightsError(
            f"{path} is not a watson_jax weight file of format {FORMAT_VERSION} "
            f"(found format {meta.get('format')!r}); convert again: {how_to_convert}"
        )
    flat = {k: v for k, v in entries.items() if not k.startswith(META_PREFIX)}
    return unflatten(flat), meta


def check_params(params: dict, template: dict, where: str) -> dict:
    """Check that ``params`` has exactly the leaves of ``template`` with the same shapes, all finite.

    Returns ``params`` with float32 leaves. ``where`` names the source in error messages.
    """
    got, want = flatten(params), flatten(template)
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    if missing or unexpected:
        raise WeightsError(
            f"{where} does not match the loss: missing parameters {missing}, "
            f"unexpected parameters {unexpected}."
        )
    for name, value in got.items():
        if value.shape != want[name].shape:
            raise WeightsError(
                f"{where}: parameter '{name}' has shape {value.shape}, expected {want[name].shape}."
            )
        if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
            raise WeightsError(f"{where}: parameter '{name}' is not a finite float array (corrupt weights).")
    return unflatten({k: np.asarray(v, np.float32) for k, v in got.items()})


def read_checked_params(path: str | os.PathLike, template: dict, how_to_convert: str | None = None) -> dict:
    """:func:`read_params` then :func:`check_params` against ``template``: the parameters of a weight file."""
    params, _ = read_params(path, how_to_convert)
    return check_params(params, template, str(path))


def load_pretrained(
    stem: str,
    colorspace: str,
    template: dict,
    directory: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> dict:
    """The converted pretrained parameters of a loss, checked against its parameter ``template``.

    When the file is absent and ``download`` (and not ``$WATSON_JAX_OFFLINE``), the original file is fetched,
    checked against its pinned sha256 and converted into the folder first; else MissingWeightsError names the
    converter command.
    """
    folder = weights_dir(directory)
    path = folder / weights_filename(stem, colorspace)
    if not path.is_file() and download_allowed(download):
        from .convert.download import download_reference_file
        from .convert.formats import _BY_OUR_NAME

        download_reference_file(_BY_OUR_NAME[path.name].reference_name, folder)
    if not path.is_file():
        raise MissingWeightsError(
            f"pretrained weights {path} not found. Convert the original weights once with:\n  "
            f"{converter_command(folder)}\nor pass pretrained=False for the untuned initial parameters."
        )
    return read_checked_params(path, template)


def torch_hub_checkpoints() -> Path:
    """Where torch hub keeps downloaded checkpoints: ``$TORCH_HOME/hub/checkpoints``, with TORCH_HOME
    defaulting to ``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch`` (as ``torch.hub.get_dir`` does)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "torch"
    )
    return Path(home).expanduser() / "hub" / "checkpoints"


def load_backbone(backbone, directory: str | os.PathLike | None = None, *, download: bool = True) -> dict:
    """The converted ImageNet backbone of a Deeploss loss (a :class:`watson_jax.losses.deeploss.Backbone`),
    checked against its layout; fetched from torchvision's URL and converted first when absent and
    ``download`` (and not ``$WATSON_JAX_OFFLINE``)."""
    folder = weights_dir(directory)
    path = folder / backbone.filename
    if not path.is_file() and download_allowed(download):
        from .convert.download import download_backbone

        download_backbone(backbone, folder)
    if not path.is_file():
        hub = torch_hub_checkpoints()
        cached = [hub / f for f in backbone.torchvision_files if (hub / f).is_file()]
        if cached:
            flag = _backbone_command(backbone, folder).replace(
                f" <path to {backbone.torchvision_files[0]}>", ""
            )
            how = (
                f"torchvision's checkpoint is in the torch hub cache ({cached[0]}); convert it once with:\n  "
                f"{flag}"
            )
        else:
            how = (
                f"provide torchvision's ImageNet checkpoint {' or '.join(backbone.torchvision_files)} and "
                f"convert it once with:\n  {_backbone_command(backbone, folder)}\n(without a path the "
                f"converter looks in the torch hub cache, {hub})"
            )
        raise MissingBackboneError(
            f"{backbone.metric} needs the ImageNet {backbone.name} backbone, but {path} was not found: {how}"
        )
    return read_checked_params(path, backbone.template(), _backbone_command(backbone, folder))
