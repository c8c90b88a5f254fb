"""The ``fastgrad`` command: ``demo``, ``diagnose``, ``train``, ``backends`` and ``warmup``.

Each subcommand is one ``_add_<name>(commands)`` function that declares its arguments and sets
``run`` to the function doing the work; :func:`build_parser` lists them, so adding a command
is adding one such function and one line there.
"""
import argparse
import sys

from . import backends


# ------------------------------------------------------------------------------------- train
def _train(args):
    from . import distributed
    from .train import TrainingDiverged, train_digits
    if distributed.launched_world_size() is not None and not distributed.is_initialized():
        distributed.init_process_group()  # started by mpiexec: train data-parallel
    try:
        history = train_digits(epochs=args.epochs, hidden=args.hidden, lr=args.lr,
                               momentum=args.momentum, batch_size=args.batch_size,
                               seed=args.seed, monitor=args.monitor,
                               checkpoint=args.checkpoint,
                               checkpoint_every=args.checkpoint_every, resume=args.resume,
                               save=args.save, captured=args.captured)
    except TrainingDiverged as error:
        print(f"fastgrad train: {error}", file=sys.stderr)
        return 1
    return 0 if history["test_accuracy"] else 1


def _add_train(commands):
    train = commands.add_parser(
        "train", help="train an MLP on the shipped 8x8 digits",
        description="Train an MLP on the shipped 8x8 digits. Launched with mpiexec (mpiexec -n "
                    "4 fastgrad train), it trains data-parallel: one replica per process, "
                    "--batch-size rows per step over all processes together.")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--hidden", type=int, default=128)
    train.add_argument("--lr", type=float, default=0.05)
    train.add_argument("--momentum", type=float, default=0.9)
    train.add_argument("--batch-size", type=int, default=32,
                       help="rows per step, over all processes of a data-parallel run")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--monitor", action="store_true",
                       help="watch the gradients: print verdicts as they appear and a summary "
                            "at the end")
    train.add_argument("--checkpoint", metavar="PATH",
                       help="checkpoint the run in PATH (safetensors, written atomically) every "
                            "--checkpoint-every steps and at the end")
    train.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                       help="steps between checkpoints (default: one per epoch)")
    train.add_argument("--resume", action="store_true",
                       help="continue from --checkpoint if the file exists; the result is "
                            "bit-identical to an uninterrupted run on the same backend and "
                            "thread count")
    train.add_argument("--save", metavar="PATH",
                       help="save the trained model's state_dict to PATH (safetensors)")
    train.add_argument("--captured", action="store_true",
                       help="replay the model and the loss as a captured step "
                            "(make_graphed_callables): the same run with less Python per step")
    train.set_defaults(run=_train)


# ---------------------------------------------------------------------------------- backends
def _backends(args):
    for name, status in backends.describe().items():
        print(f"{name:8s} {status}")
    print(f"current: {backends.current()}")
    return 0


def _add_backends(commands):
    listing = commands.add_parser("backends", help="list the kernel backends and their status")
    listing.set_defaults(run=_backends)


# ------------------------------------------------------------------------------------ warmup
def _warmup(args):
    dtypes = args.dtypes
    timings = backends.warmup(dtypes)
    if not timings:
        print("no JIT backend is available: nothing to compile")
    for name, seconds in timings.items():
        print(f"{name:8s} {len(backends.KERNELS)} kernels x {', '.join(dtypes)}: "
              f"{seconds:.1f} s")
    return 0


def _add_warmup(commands):
    warmup = commands.add_parser("warmup", help="compile every JIT kernel now (float32 and "
                                 "float64) into the on-disk cache and print how long it took")
    warmup.add_argument("--dtypes", nargs="+", choices=["float32", "float64"],
                        default=["float32", "float64"])
    warmup.set_defaults(run=_warmup)


# ---------------------------------------------------------------------------------- diagnose
def _progress_flag(parser):
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="draw a progress bar on stderr (default: when it is a terminal)")


def _diagnose(args):
    from . import demo
    config = demo.Config(
        cell=args.cell, depth=args.depth if args.depth is not None else (1 if args.cell else 20),
        width=args.width if args.width is not None else (32 if args.cell else 64),
        activation=args.activation, init=args.init, batchnorm=args.batchnorm,
        residual=args.residual, length=args.length, clip=args.clip, optimizer=args.optimizer,
        lr=args.lr, momentum=args.momentum, steps=args.steps, batch_size=args.batch_size,
        seed=args.seed, every=args.every, activations=args.activations)
    print(f"fastgrad diagnose: {config.describe()}")
    bar = demo.ProgressBar(config.steps, "training", enabled=args.progress)

    def report(verdict):
        bar.clear()
        print(verdict, flush=True)

    result = demo.run(config, progress=bar, on_verdict=report)
    bar.close()
    print(result.monitor.summary())
    accuracy = f", test accuracy {result.accuracy:.1%}" if result.accuracy is not None else ""
    stopped = f" (stopped: loss not finite at step {result.steps})" if result.diverged else ""
    print(f"train loss {result.train_loss:.4f}, test loss {result.test_loss:.4f}{accuracy} after "
          f"{result.steps} steps in {result.seconds:.1f} s{stopped}")
    if args.csv:
        result.monitor.to_csv(args.csv)
        print(f"history written to {args.csv}")
    if args.plot:
        try:
            result.monitor.plot(args.plot)
        except ImportError as error:
            print(f"fastgrad diagnose: {error}", file=sys.stderr)
            return 1
        print(f"plot written to {args.plot}")
    return 0


def _add_diagnose(commands):
    from .demo import ACTIVATIONS, INITS, OPTIMIZERS
    diagnose = commands.add_parser(
        "diagnose", help="train a configurable network briefly and report its gradient health",
        description="Train an MLP on the shipped digits (or, with --cell, a recurrent network "
                    "on the adding problem) under a GradientMonitor, then print its summary "
                    "and verdicts.")
    model = diagnose.add_argument_group("model")
    model.add_argument("--depth", type=int, default=None,
                       help="Linear layers of the MLP (default 20), or recurrent layers (1)")
    model.add_argument("--width", type=int, default=None,
                       help="units per hidden layer (default 64; 32 for --cell)")
    model.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    model.add_argument("--init", choices=INITS, default="default",
                       help="weight initialisation (default: PyTorch's)")
    model.add_argument("--batchnorm", action="store_true", help="BatchNorm1d after each Linear")
    model.add_argument("--residual", action="store_true",
                       help="residual connections around the hidden blocks")
    model.add_argument("--cell", choices=("rnn", "lstm"), default=None,
                       help="a recurrent network on the adding problem instead of the MLP")
    model.add_argument("--length", type=int, default=50,
                       help="sequence length of the adding problem")
    training = diagnose.add_argument_group("training")
    training.add_argument("--clip", type=float, default=None, metavar="MAX_NORM",
                          help="clip gradients to this global L2 norm")
    training.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd")
    training.add_argument("--lr", type=float, default=None,
                          help="learning rate (default: 0.05 for sgd, 1e-3 otherwise)")
    training.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    training.add_argument("--steps", type=int, default=300)
    training.add_argument("--batch-size", type=int, default=64)
    training.add_argument("--seed", type=int, default=0)
    output = diagnose.add_argument_group("monitor and output")
    output.add_argument("--every", type=int, default=1, help="record every N-th step")
    output.add_argument("--activations", action=argparse.BooleanOptionalAction, default=True,
                        help="record activation statistics (saturation, dead units)")
    output.add_argument("--plot", metavar="PATH", help="write a PNG of the gradient norms "
                        "(needs matplotlib: pip install fastgrad[plot])")
    output.add_argument("--csv", metavar="PATH", help="write the recorded history as CSV")
    _progress_flag(output)
    diagnose.set_defaults(run=_diagnose)


# -------------------------------------------------------------------------------------- demo
def _demo(args):
    import time

    from . import demo
    started = time.perf_counter()
    print("fastgrad demo: vanishing and exploding gradients, and their remedies, measured "
          f"(seed {args.seed}, backend {backends.current()})")
    results = demo.demo(seed=args.seed, scale=args.scale, progress=args.progress)
    print(demo.results_table(results))
    mlp, rnn = results[0].config, results[-1].config
    cnn = next(r.config for r in results if r.config.conv)
    print(f"digits: {mlp.depth} Linear layers x {mlp.width}, SGD lr {mlp.lr:g} momentum "
          f"{mlp.momentum:g}, {mlp.steps} steps of {mlp.batch_size}; CNN: {cnn.depth} layers "
          f"(He et al.'s CIFAR layout), {cnn.width}-{2 * cnn.width}-{4 * cnn.width} channels, "
          f"the digits as 1x8x8 images, the same SGD, {cnn.steps} steps; adding problem: "
          f"{rnn.width} units, T={rnn.length}, Adam lr {rnn.lr:g}, {rnn.steps} steps, "
          f"clipping at global norm 1; test loss: cross-entropy / MSE (predicting 1 scores "
          f"{demo.ADDING_BASELINE:.3f}); grad ratio first/last: earliest over latest layer's "
          "gradient norm, median over steps; max grad norm: before clipping; grad ratio "
          "h_1/h_T: the recurrent layer's gradient at the first time step over the last, "
          "horizon: time steps back it stays above 1e-3 of its value at T (medians over the "
          "last 10% of steps)")
    if args.plot:
        try:
            demo.plot_demo(results, args.plot)
            print(f"plot written to {args.plot}")
        except ImportError as error:
            print(f"no plot: {error}", file=sys.stderr)
    print(f"{sum(len(r.monitor.verdicts) for r in results)} verdicts in "
          f"{time.perf_counter() - started:.0f} s")
    return 0


def _add_demo(commands):
    demo = commands.add_parser(
        "demo", help="the vanishing/exploding-gradient story in about a minute",
        description="Train a 20-layer sigmoid MLP (vanishing gradients) against the same with "
                    "ReLU and He init, with BatchNorm and with residual connections, then a "
                    "plain RNN against an LSTM on the adding problem with and without "
                    "clipping; print what the gradient monitor measured.")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--plot", metavar="PATH", default="fastgrad-demo.png",
                      help="where to write the PNG (default: %(default)s; needs matplotlib)")
    demo.add_argument("--no-plot", dest="plot", action="store_const", const=None,
                      help="do not write the PNG")
    demo.add_argument("--scale", type=float, default=1.0,
                      help="fraction of the training steps to run (default: all)")
    _progress_flag(demo)
    demo.set_defaults(run=_demo)


def build_parser():
    parser = argparse.ArgumentParser(prog="fastgrad", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", help="force a kernel backend (default: the fastest "
                        "available)")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo, _add_diagnose, _add_train, _add_backends, _add_warmup):
        add(commands)
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
