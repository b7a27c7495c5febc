"""``watson-jax convert``: the converter's command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import weights
from ..errors import WeightsError
from ..losses import deeploss
from .backbones import (
    _BACKBONE_BY_FILENAME,
    BACKBONES,
    convert_backbone,
    export_backbone,
    exported_backbone_name,
    find_backbone_checkpoint,
)
from .commands import CONVERT_COMMAND, backbone_flag
from .download import OFFLINE_ENV, download_backbone, download_reference_file, offline
from .formats import _BY_OUR_NAME, _BY_REFERENCE_NAME
from .hashes import DOWNLOAD_URL_ENV, KNOWN_SHA256, TORCHVISION_URL_ENV, VERSIONS
from .reference import convert_reference_file, export_reference_file, import_partition_spline

# -- command line -----------------------------------------------------------------------------------


class _FromHubCache:
    def __repr__(self) -> str:
        return "<the torch hub cache>"


#: The value of ``--vgg16`` / ``--squeezenet`` given without a path: look in the torch hub cache (not a
#: string, which argparse would turn into a Path).
FROM_HUB_CACHE = _FromHubCache()

_VERIFICATION_HELP = (
    "Verification: the original *_trial0.pth files must match the pinned sha256 of --version; a torchvision "
    "checkpoint must match the pinned full sha256 of vgg16-397923af.pth or squeezenet1_1-b8a52dc0.pth, or, "
    "for squeezenet1_1-f364aa15.pth (full digest not pinned), start with the 8 hex digits in that name "
    "(the check torch hub makes on download). Anything else needs --allow-unverified."
)


def _backbone_dest(backbone: deeploss.Backbone) -> str:
    return "backbone_" + backbone.name


def _parser(prog: str = CONVERT_COMMAND) -> argparse.ArgumentParser:
    """The converter's argument parser (``prog``: the command name its messages show)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Convert the original Czolbe et al. weight files (.pth) and torchvision's ImageNet "
        "backbones for Deeploss to watson_jax weights (.npz), or back with --to-torch; or --download them.",
        epilog=_VERIFICATION_HELP,
    )
    p.add_argument(
        "--source",
        type=Path,
        default=None,
        help="folder with the original *_trial0.pth files (e.g. the original repository's "
        "src/loss/weights); optional when only backbones or --partition-spline are converted. "
        "With --to-torch, the folder of watson_jax weights "
        f"(default: ${weights.ENV_VAR} or ~/.cache/watson_jax)",
    )
    p.add_argument(
        "--dest",
        type=Path,
        default=None,
        help=f"output folder (default: ${weights.ENV_VAR} or ~/.cache/watson_jax; required with --to-torch)",
    )
    p.add_argument(
        "--version",
        choices=VERSIONS,
        default="current",
        help="which upstream release the original files must match: 'current' (last commit, default) "
        "or 'neurips' (as published with the paper)",
    )
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="convert files whose sha256 matches no known upstream file (original files and "
        "torchvision checkpoints alike)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch every original weight file of --version from the original repository (or "
        f"${DOWNLOAD_URL_ENV}) and both torchvision backbones (or ${TORCHVISION_URL_ENV}), check their "
        "pinned sha256 and convert them into --dest",
    )
    p.add_argument(
        "--to-torch",
        action="store_true",
        help="export watson_jax weights to the reference's .pth layout, and converted backbones to "
        "torchvision's features state dicts ("
        + ", ".join(exported_backbone_name(b) for b in BACKBONES.values())
        + ": keys features.<i>.weight "
        "(OIHW) and features.<i>.bias)",
    )
    p.add_argument(
        "--partition-spline",
        type=Path,
        default=None,
        metavar="NPZ",
        help="also import Barron's partition_spline.npz (robust_loss_pytorch) as the Adaptive loss's "
        "log-partition table, instead of the one watson_jax computes on first use",
    )
    for backbone in BACKBONES.values():
        p.add_argument(
            backbone_flag(backbone),
            dest=_backbone_dest(backbone),
            type=Path,
            nargs="?",
            const=FROM_HUB_CACHE,
            default=None,
            metavar="PATH",
            help=f"also convert torchvision's ImageNet {backbone.name} ({backbone.metric}'s backbone) "
            f"to {backbone.filename}: PATH is the checkpoint "
            f"({' or '.join(backbone.torchvision_files)}; a state dict of the whole model or of "
            "its .features) or a folder holding it under that name; without PATH, the torch hub "
            "cache ($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints)",
        )
    return p


def main(argv: list[str] | None = None, prog: str = CONVERT_COMMAND) -> int:
    """Run the converter with ``argv`` (default ``sys.argv[1:]``); returns the exit status (0: every file
    converted; 1: one failed or none found). Usage errors exit through argparse (status 2)."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    backbones = {
        name: getattr(args, _backbone_dest(b))
        for name, b in BACKBONES.items()
        if getattr(args, _backbone_dest(b)) is not None
    }  # name → PATH or FROM_HUB_CACHE

    jobs = []  # (what it converts, function writing its converted form and returning (written path, source))
    if args.download:
        if args.to_torch or args.source is not None or args.partition_spline is not None or backbones:
            parser.error("--download fetches every file itself: it takes only --dest, --version")
        if offline():
            parser.error(f"--download needs the network, but {OFFLINE_ENV} is set")
        dest = weights.weights_dir(args.dest)
        for name in KNOWN_SHA256[args.version]:
            jobs.append((name, lambda n=name: (download_reference_file(n, dest, version=args.version), n)))
        for backbone in BACKBONES.values():
            jobs.append(
                (backbone.name, lambda b=backbone: (download_backbone(b, dest), b.torchvision_files[0]))
            )
    elif args.to_torch:
        if args.dest is None:
            parser.error("--to-torch needs --dest, the folder to write the .pth files to")
        if (
            args.allow_unverified
            or args.version != "current"
            or args.partition_spline is not None
            or backbones
        ):
            parser.error(
                "--version, --allow-unverified, --partition-spline, "
                f"{', '.join(backbone_flag(b) for b in BACKBONES.values())} apply to reading the original "
                "files, not to --to-torch (which exports every watson_jax weight file in --source)"
            )
        source, dest = weights.weights_dir(args.source), args.dest
        if not source.is_dir():
            parser.error(f"--source {source} is not a folder")
        for path in sorted(source.glob("*.npz")):
            if path.name in _BY_OUR_NAME:
                jobs.append((path.name, lambda p=path: (export_reference_file(p, dest), p.name)))
            elif path.name in _BACKBONE_BY_FILENAME:
                jobs.append((path.name, lambda p=path: (export_backbone(p, dest), p.name)))
    else:
        if args.source is None and not backbones and args.partition_spline is None:
            parser.error(
                "--source is required: the folder with the original *_trial0.pth files (optional only "
                f"with {', '.join(backbone_flag(b) for b in BACKBONES.values())} or --partition-spline)"
            )
        if args.source is not None and not args.source.is_dir():
            parser.error(f"--source {args.source} is not a folder")
        source, dest = args.source, weights.weights_dir(args.dest)
        if args.partition_spline is not None:
            spline = args.partition_spline
            jobs.append(
                (
                    spline.name,
                    lambda: (
                        import_partition_spline(spline, dest, allow_unverified=args.allow_unverified),
                        spline.name,
                    ),
                )
            )
        for path in sorted(source.glob("*.pth")) if source is not None else ():
            if path.name not in _BY_REFERENCE_NAME:
                print(f"skipped {path.name}: not supported by this version of the converter")
                continue
            jobs.append(
                (
                    path.name,
                    lambda p=path: (
                        convert_reference_file(
                            p, dest, version=args.version, allow_unverified=args.allow_unverified
                        ),
                        p.name,
                    ),
                )
            )
        for name, where in backbones.items():

            def job(backbone=BACKBONES[name], where=where):
                path = find_backbone_checkpoint(backbone, None if where is FROM_HUB_CACHE else where)
                return convert_backbone(
                    path, backbone, dest, allow_unverified=args.allow_unverified
                ), path.name

            jobs.append((backbone_flag(BACKBONES[name]), job))

    written, failed = 0, 0
    for _, job in jobs:
        try:
            out, name = job()
        except WeightsError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
        else:
            print(f"wrote {out}  (from {name})")
            written += 1
    if written == 0 and failed == 0:
        print(f"error: no convertible files in {source}", file=sys.stderr)
        return 1
    return 1 if failed else 0
