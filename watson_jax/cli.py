"""The command line: ``python -m watson_jax compare A.png B.png [--metric NAME ...]``.

``compare`` prints the distance of image B (the input, ``x``) to image A (the reference / target ``y``, the
masking reference of the Watson losses) for one or several losses, one line per loss::

    L1           0.0312345
    Watson-DFT   1234.57

Contract:
  * stdout holds only that table (canonical loss name, value with 6 significant digits), so it can be
    parsed; notes (cropping, untuned parameters) go to stderr, each at most once per run.
  * Both images are read with Pillow as RGB, scaled to float32 in [0, 1], batch of one (NHWC), and cropped
    top-left to the largest multiples of 8 in H and W (the Watson losses cut 8x8 blocks), so every loss
    sees the same pixels.
  * The tuned losses use the converted pretrained weights when they are found (``--weights-dir``, else
    ``$WATSON_JAX_WEIGHTS``, else ``~/.cache/watson_jax``), else their untuned initial parameters. The
    Deeploss losses also need their converted ImageNet backbone: by default they are computed when it is
    there and skipped with a note when not; asked for by name without it, they are a usage error.
  * ``--map FILE.png`` also writes where the images differ: A, B and one heat map per loss side by side
    (each map scaled to its own range, dark = equal, bright = different).
  * Exit status 0 on success, 1 if a loss returned a non-finite value, 2 for a usage error (unknown loss
    or colour space, missing, unreadable or differently sized images, corrupt weights) with an
    argparse-style message on stderr.

:func:`main` returns the exit status instead of exiting, so it can be called from Python and tests.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import jax
import numpy as np

from . import registry, weights
from .errors import MissingBackboneError, MissingWeightsError, OptionError, WeightsError
from .losses import adaptive
from .provider import Loss, LossProvider
from .validation import BLOCK_SIZE

PROG = "python -m watson_jax"


class UsageError(Exception):
    """A problem with the command's arguments or files; reported argparse-style with exit status 2."""


# ---------------------------------------------------------------------------------------------- images


def read_image(path: str) -> np.ndarray:
    """The image at ``path`` as float32 RGB in [0, 1], shape (H, W, 3). Raises UsageError if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except FileNotFoundError:
        raise UsageError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
    return np.asarray(rgb, dtype=np.float32) / 255.0


def crop_to_blocks(image: np.ndarray) -> np.ndarray:
    """The top-left crop of an (H, W, C) image to the largest multiples of 8 in H and W."""
    h, w = image.shape[:2]
    return image[: h - h % BLOCK_SIZE, : w - w % BLOCK_SIZE]


def _size(image: np.ndarray) -> str:
    """'WxH' of an (H, W, C) image, the usual way of writing image sizes."""
    return f"{image.shape[1]}x{image.shape[0]}"


@dataclass
class ImagePair:
    """The reference ``y`` (image A) and the input ``x`` (image B), NHWC float32 batches of one."""

    y: np.ndarray
    x: np.ndarray
    note: str | None = None  # what cropping did, if anything


def load_pair(reference: str, other: str) -> ImagePair:
    """Read A (reference) and B (input), check they have the same size and crop both to multiples of 8."""
    a, b = read_image(reference), read_image(other)
    if a.shape != b.shape:
        raise UsageError(
            f"the images differ in size: {reference} is {_size(a)} but {other} is {_size(b)} "
            "(width x height); compare images of the same size."
        )
    cropped = crop_to_blocks(a)
    if 0 in cropped.shape:
        raise UsageError(
            f"the images are {_size(a)} (width x height); they need at least "
            f"{BLOCK_SIZE}x{BLOCK_SIZE} pixels."
        )
    note = None
    if cropped.shape != a.shape:
        note = (
            f"note: cropped {_size(a)} to {_size(cropped)} (width x height; the Watson losses need "
            f"multiples of {BLOCK_SIZE})"
        )
    return ImagePair(y=cropped[None], x=crop_to_blocks(b)[None], note=note)


# ---------------------------------------------------------------------------------------------- losses


def default_metric_names(weights_dir: str | None, image_hw: tuple[int, int]) -> tuple[list[str], str | None]:
    """Every loss whose parameters do not depend on the image size (Adaptive is computed on request), less
    the Deeploss losses whose backbone has not been converted or that need larger images; and a note
    naming those, or None."""
    names, missing, too_small = [], [], []
    for metric in registry.METRICS:
        if metric.sized:
            continue
        if min(image_hw) < metric.min_size:
            too_small.append(metric.name)
            continue
        if (
            metric.backbone is not None
            and not (weights.weights_dir(weights_dir) / metric.backbone.filename).is_file()
        ):
            missing.append(metric)
            continue
        names.append(metric.name)
    notes = []
    if missing:
        from .convert.commands import CONVERT_COMMAND, backbone_flag

        flags = " ".join(f"{backbone_flag(m.backbone)} <{m.backbone.torchvision_files[0]}>" for m in missing)
        notes.append(
            f"note: skipped {', '.join(m.name for m in missing)}: no converted ImageNet backbone in "
            f"{weights.weights_dir(weights_dir)}; convert torchvision's checkpoints once with: "
            f"{CONVERT_COMMAND} {flags} --dest {weights.weights_dir(weights_dir)} (or fetch them: "
            f"{CONVERT_COMMAND} --download --dest {weights.weights_dir(weights_dir)})"
        )
    if too_small:
        notes.append(f"note: skipped {', '.join(too_small)}: the images are too small for their networks")
    return names, "\n".join(notes) or None


def parse_metric_names(values: Sequence[str] | None) -> list[str]:
    """Canonical loss names from repeated and/or comma-separated ``--metric`` values, in order, without
    duplicates. Raises UsageError for an unknown name."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                name = registry.lookup(part).name
            except OptionError as err:
                raise UsageError(str(err)) from None
            if name not in names:
                names.append(name)
    if not names:
        raise UsageError("--metric needs at least one loss name.")
    return names


def build_losses(
    names: Sequence[str],
    colorspace: str,
    weights_dir: str | None,
    image_hw: tuple[int, int] = (64, 64),
) -> tuple[list[Loss], str | None]:
    """The losses (reduction 'sum', deterministic, pretrained when the weights exist, built for images of
    size ``image_hw``) and a note naming the ones that fell back to their untuned initial parameters
    (None if none did).

    Raises UsageError for corrupt or mismatched weight files.
    """
    provider = LossProvider()
    losses, untuned, other_size = [], [], []
    image_size = (3, *image_hw)
    for name in names:
        options = dict(
            colorspace=colorspace,
            reduction="sum",
            deterministic=True,
            weights_dir=weights_dir,
            image_size=image_size,
        )
        if registry.lookup(name).sized and image_size != adaptive.PRETRAINED_SIZE:
            losses.append(provider.get_loss_function(name, pretrained=False, **options))
            other_size.append(name)
            continue
        try:
            try:
                loss = provider.get_loss_function(name, pretrained=True, **options)
            except MissingBackboneError:
                raise
            except MissingWeightsError:
                loss = provider.get_loss_function(name, pretrained=False, **options)
                untuned.append(loss.name)
        except WeightsError as err:  # corrupt weights, a missing Deeploss backbone
            raise UsageError(str(err)) from None
        losses.append(loss)
    notes = [_untuned_note(untuned, weights_dir)]
    if other_size:
        notes.append(
            f"note: the pretrained {', '.join(other_size)} weights are for 64x64 images; for "
            f"{image_hw[1]}x{image_hw[0]} the untuned initial parameters are used"
        )
    return losses, "\n".join(n for n in notes if n) or None


def _untuned_note(untuned: Sequence[str], weights_dir: str | None) -> str | None:
    if not untuned:
        return None
    folder = weights.weights_dir(weights_dir)
    verb = "uses" if len(untuned) == 1 else "use"
    return (
        f"note: no pretrained weights in {folder}, so {', '.join(untuned)} {verb} the untuned initial "
        f"parameters; convert the pretrained ones once with: {weights.converter_command(folder)}"
    )


def _evaluate(loss: Loss, x, y):
    """``loss(x, y)``; jitted below (a Loss is a pytree), which compiles faster than running op by op."""
    return loss(x=x, y=y)


_evaluate_jit = jax.jit(_evaluate)


def distances(losses: Sequence[Loss], pair: ImagePair) -> list[tuple[str, float]]:
    """(canonical name, distance of the input x to the reference y) for each loss."""
    return [(loss.name, float(_evaluate_jit(loss, pair.x, pair.y))) for loss in losses]


@jax.jit
def _distance_map(loss: Loss, x, y):
    return loss(x, y, spatial=True)


#: Anchor colours of the heat maps (dark purple → red → yellow), interpolated linearly.
_HEAT_COLOURS = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64
)


def heat_map(values: np.ndarray) -> np.ndarray:
    """An (H, W) map as an (H, W, 3) uint8 heat map scaled to the map's own range (flat maps are dark)."""
    low, high = float(values.min()), float(values.max())
    t = (values - low) / (high - low) if high > low else np.zeros_like(values)
    position = t * (len(_HEAT_COLOURS) - 1)
    i = np.clip(np.floor(position).astype(int), 0, len(_HEAT_COLOURS) - 2)
    frac = (position - i)[..., None]
    return np.round(_HEAT_COLOURS[i] * (1 - frac) + _HEAT_COLOURS[i + 1] * frac).astype(np.uint8)


def write_map_figure(path: str, pair: ImagePair, losses: Sequence[Loss]) -> None:
    """A, B and each loss's distance map side by side, each panel labelled, as one image file."""
    from PIL import Image, ImageDraw

    panels = [("A (reference)", pair.y[0]), ("B", pair.x[0])]
    panels += [
        (
            loss.name,
            heat_map(np.asarray(_distance_map(loss, pair.x, pair.y))[0]).astype(np.float32) / 255,
        )
        for loss in losses
    ]
    h, w = pair.x.shape[1:3]
    scale = max(1, -(-128 // min(h, w)))  # small images are enlarged (nearest neighbour) to be readable
    label_height, gap = 14, 4
    figure = Image.new("RGB", (len(panels) * (w * scale + gap) - gap, h * scale + label_height), "white")
    draw = ImageDraw.Draw(figure)
    for k, (label, image) in enumerate(panels):
        left = k * (w * scale + gap)
        tile = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
        figure.paste(tile.resize((w * scale, h * scale), Image.NEAREST), (left, label_height))
        draw.text((left + 2, 1), label, fill="black")
    try:
        figure.save(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot write the map to {path}: {err}") from None


def format_table(rows: Sequence[tuple[str, float]]) -> str:
    """One aligned line per loss: the name, padded, then the value with 6 significant digits."""
    width = max(len(name) for name, _ in rows) + 3
    return "\n".join(f"{name:<{width}}{value:.6g}" for name, value in rows)


# ---------------------------------------------------------------------------------------------- commands


def run_compare(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The ``compare`` command: print the distances of B to A. Raises UsageError for bad arguments."""
    names = parse_metric_names(args.metric) if args.metric else None
    try:
        colorspace = registry.canonical_colorspace(args.colorspace)
    except OptionError as error:
        raise UsageError(str(error)) from None
    pair = load_pair(args.reference, args.input)
    skipped = None
    if names is None:
        names, skipped = default_metric_names(args.weights_dir, pair.x.shape[1:3])
    for name in names:
        metric = registry.lookup(name)
        if min(pair.x.shape[1:3]) < metric.min_size:
            raise UsageError(
                f"{name} needs images of at least {metric.min_size}x{metric.min_size} pixels "
                f"(after cropping to multiples of {BLOCK_SIZE}), got {_size(pair.x[0])}."
            )
    losses, untuned = build_losses(names, colorspace, args.weights_dir, pair.x.shape[1:3])
    for note in (pair.note, skipped, untuned):
        if note:
            print(note, file=err)
    rows = distances(losses, pair)
    print(format_table(rows), file=out)
    if args.map:
        write_map_figure(args.map, pair, losses)
        print(
            f"note: wrote the distance maps to {args.map} (A, B, then "
            f"{', '.join(loss.name for loss in losses)})",
            file=err,
        )
    return 0 if all(math.isfinite(v) for _, v in rows) else 1


def _add_compare(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare",
        help="print the distance of image B to the reference image A",
        description="Print the distance of image B (the input) to image A (the reference, the masking "
        "reference of the Watson losses) for one or several losses. Both images are cropped "
        "to multiples of 8 pixels.",
    )
    parser.add_argument("reference", metavar="A", help="the reference image (any format Pillow reads)")
    parser.add_argument("input", metavar="B", help="the image compared with A, of the same size")
    parser.add_argument(
        "--metric",
        "-m",
        action="append",
        metavar="NAME",
        help="loss to compute; repeat it or give a comma-separated list (case-insensitive, aliases "
        f"accepted). Default: all of {', '.join(registry.available_names())}.",
    )
    parser.add_argument(
        "--colorspace",
        "-c",
        default="rgb",
        help="'rgb' (default) or a greyscale name: 'grey', 'gray', 'L', 'LA', 'greyscale'",
    )
    parser.add_argument(
        "--weights-dir",
        metavar="DIR",
        default=None,
        help="folder of converted weights (default: $WATSON_JAX_WEIGHTS or ~/.cache/watson_jax)",
    )
    parser.add_argument(
        "--map",
        metavar="FILE.png",
        default=None,
        help="also write where the images differ: A, B and each loss's distance map as a heat "
        "map, side by side (any format Pillow writes)",
    )
    parser.set_defaults(command=run_compare, command_parser=parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Perceptual distances of Czolbe et al. (NeurIPS 2020) in JAX."
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    subparsers.required = True
    _add_compare(subparsers)
    subparsers.add_parser(
        "convert",
        add_help=False,
        help="convert (or --download) the original weight files; see 'watson-jax convert --help'",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    0: success; 1: a loss returned a non-finite value; 2: usage error (message on stderr).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["convert"]:
        from . import convert

        try:
            return convert.main(argv[1:], prog=f"{PROG} convert")
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse's own errors, --help: return the status instead
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    try:
        return args.command(args, sys.stdout, sys.stderr)
    except UsageError as error:
        args.command_parser.print_usage(sys.stderr)
        print(f"{args.command_parser.prog}: error: {error}", file=sys.stderr)
        return 2
