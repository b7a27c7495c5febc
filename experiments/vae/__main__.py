"""``python -m experiments.vae {train,evaluate,classifier}``: the VAE experiment (docs/reference.md §11)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from experiments.common import distributed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.vae")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (or resume) a VAE with one loss; the paper's settings by default")
    t.add_argument("--dataset", required=True, help="mnist | celeba")
    t.add_argument("--loss", required=True, help="l2 | ssim | watson-dft | adaptive | deeploss-vgg | ...")
    t.add_argument("--out", required=True, help="run folder (checkpoints, log.csv); resumed when it exists")
    t.add_argument("--data", default=None, help="data folder (default ../shared/data/<mnist|celeba_sample>)")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None, help="initial learning rate lr0")
    t.add_argument("--log-lambda", type=float, default=None, help="L of λ = e^L (default: the paper's)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit-train", type=int, default=None, help="use the first N training images only")
    t.add_argument("--limit-test", type=int, default=None, help="use the first N test images only")
    t.add_argument("--weights-dir", default=None, help="folder of converted weights (Deeploss backbones)")
    t.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)
    distributed.add_flags(t)

    e = sub.add_parser(
        "evaluate", help="figures and tables of trained runs (reconstructions, samples, scores)"
    )
    e.add_argument("--runs", nargs="+", required=True, help="run folders written by 'train'")
    e.add_argument("--out", required=True, help="folder for the figures, summary.md and summary.json")
    e.add_argument("--data", default=None, help="data folder (default ../shared/data/<mnist|celeba_sample>)")
    e.add_argument(
        "--classifier", default=None, help="folder written by 'classifier' (MNIST Fréchet distance)"
    )
    e.add_argument("--weights-dir", default=None, help="folder of converted weights (Watson-DFT, VGG16)")
    e.add_argument("--limit-test", type=int, default=None, help="score the first N test images only")
    e.add_argument("--seed", type=int, default=0, help="seed of the latent samples")

    c = sub.add_parser(
        "classifier", help="train the MNIST classifier whose features the Fréchet distance uses"
    )
    c.add_argument("--out", required=True, help="folder for classifier.npz and classifier.json")
    c.add_argument("--data", default=None, help="MNIST folder (default ../shared/data/mnist)")
    c.add_argument("--epochs", type=int, default=None, help="default 4")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--limit-train", type=int, default=None, help="use the first N training images only")
    return parser


def _train(args) -> dict:
    from . import train

    return train.train_and_evaluate(
        dataset=args.dataset, loss_name=args.loss, out=args.out, data_dir=args.data,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, log_lambda=args.log_lambda,
        seed=args.seed, limit_train=args.limit_train, limit_test=args.limit_test,
        weights_dir=args.weights_dir, stop_after_epoch=args.stop_after_epoch,
    )  # fmt: skip


def _evaluate(args) -> dict:
    from . import evaluate

    return evaluate.evaluate_runs(
        args.runs, args.out, data_dir=args.data, classifier_dir=args.classifier,
        weights_dir=args.weights_dir, limit_test=args.limit_test, seed=args.seed,
    )  # fmt: skip


def _classifier(args) -> dict:
    from . import classifier

    settings = classifier.Settings(seed=args.seed)
    if args.epochs is not None:
        settings = dataclasses.replace(settings, epochs=args.epochs)
    return classifier.train(args.out, data_dir=args.data, settings=settings, limit_train=args.limit_train)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train":
        distributed.initialize(args)
    command = {"train": _train, "evaluate": _evaluate, "classifier": _classifier}[args.command]
    try:
        result = command(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if distributed.is_main():
        print(result if args.command == "train" else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
