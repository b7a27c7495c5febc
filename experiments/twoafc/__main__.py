"""``python -m experiments.twoafc {evaluate,tune,prepare}``: the 2AFC experiment (docs/reference.md §10)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments.common import distributed, files

DEFAULT_CACHE = Path.home() / ".cache" / "watson_jax" / "tfds"


def _source(args, split: str, categories=None):
    from . import bapps, data

    cats = tuple(categories) if categories else data.present_categories(args.data, split)
    if args.source == "tfds":
        bapps.prepare(args.data, args.cache, cats)
        return bapps.PreparedSource(args.cache, split, cats)
    return data.FolderSource(args.data, split, cats)


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="the folder holding train/ and val/ (BAPPS's 2afc/)")
    p.add_argument(
        "--source",
        choices=("folder", "tfds"),
        default="folder",
        help="read the folder directly, or through the tfds 'bapps' set prepared (once) into --cache",
    )
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="tfds data_dir for --source tfds")
    p.add_argument("--colorspace", default="RGB", choices=("RGB", "LA"))
    p.add_argument("--categories", default=None, help="comma-separated categories (default: all present)")
    p.add_argument("--weights-dir", default=None, help="folder of converted/tuned weights")


def evaluate_main(args) -> int:
    from . import evaluate

    cats = args.categories.split(",") if args.categories else None
    source = _source(args, args.split, cats)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    results = evaluate.evaluate(
        source,
        metrics,
        args.colorspace,
        protocol=args.protocol,
        weights_dir=args.weights_dir,
        pretrained=not args.untrained,
        batch=args.batch_size,
    )
    print(evaluate.markdown(results, source.categories))
    if args.json:
        files.write_json(
            args.json, {k: {c: v for c, v in per.items() if c != "±"} for k, per in results.items()}
        )
    if args.out:
        out = Path(args.out)
        files.write_json(out / "scores.json", results)
        files.write_text(out / "scores.md", evaluate.markdown(results, source.categories) + "\n")
        evaluate.figure(
            out / "twoafc.png", results, source.categories, compare_published=args.compare_published
        )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.twoafc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="2AFC scores per category, their mean and the human ceiling")
    _data_flags(ev)
    ev.add_argument("--split", default="val")
    ev.add_argument("--metrics", default="Watson-DFT,L2", help="comma-separated loss names")
    ev.add_argument("--protocol", choices=("per-image", "reference"), default="per-image")
    ev.add_argument("--untrained", action="store_true", help="the losses' initial parameters")
    ev.add_argument("--batch-size", type=int, default=None, help="override the protocol's batch size")
    ev.add_argument("--json", default=None, help="write the scores to this JSON file")
    ev.add_argument("--out", default=None, help="folder for scores.json, scores.md and the figure twoafc.png")
    ev.add_argument("--compare-published", action="store_true", help="draw the published scores beside")
    distributed.add_flags(ev)

    pr = sub.add_parser("prepare", help="prepare the tfds 'bapps' set (array_record) into --cache")
    _data_flags(pr)

    tu = sub.add_parser("tune", help="tune a loss's parameters on the train split")
    _data_flags(tu)
    from . import tune

    tune.add_flags(tu)
    distributed.add_flags(tu)

    args = parser.parse_args(argv)
    from . import data

    try:
        if args.command == "evaluate":
            distributed.initialize(args)
            return evaluate_main(args)
        if args.command == "prepare":
            from . import bapps

            for split in ("train", "val"):
                if (Path(args.data) / split).is_dir():
                    bapps.prepare(args.data, args.cache, data.present_categories(args.data, split))
            return 0
        distributed.initialize(args)
        return tune.run(args)
    except (data.DataError, tune.TuneError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:  # pragma: no cover - a corrupt log
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
