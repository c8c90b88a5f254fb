"""The ``fastgrad`` command: ``fastgrad train`` and ``fastgrad backends``."""
import argparse
import sys

from . import backends


def _train(args):
    from .train import TrainingDiverged, train_digits
    try:
        history = train_digits(epochs=args.epochs, hidden=args.hidden, lr=args.lr,
                               momentum=args.momentum, batch_size=args.batch_size,
                               seed=args.seed)
    except TrainingDiverged as error:
        print(f"fastgrad train: {error}", file=sys.stderr)
        return 1
    return 0 if history["test_accuracy"] else 1


def _backends(args):
    for name, status in backends.describe().items():
        print(f"{name:8s} {status}")
    print(f"current: {backends.current()}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="fastgrad", description=__doc__)
    parser.add_argument("--backend", help="force a kernel backend (default: the fastest "
                        "available)")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train an MLP on the shipped 8x8 digits")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--hidden", type=int, default=128)
    train.add_argument("--lr", type=float, default=0.05)
    train.add_argument("--momentum", type=float, default=0.9)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(run=_train)
    listing = commands.add_parser("backends", help="list the kernel backends and their status")
    listing.set_defaults(run=_backends)
    return parser


def main(argv=None):
    """Entry point of the ``fastgrad`` console command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.backend:
            backends.use(args.backend)
        return args.run(args)
    except ValueError as error:
        print(f"fastgrad {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
