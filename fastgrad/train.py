"""The main job: train a multilayer perceptron on the shipped 8x8 digits.

``fastgrad train`` runs :func:`train_digits`; it is also the smallest complete example of a
fastgrad training loop (data loader, model, loss, optimiser, evaluation), of one that
survives being killed (:class:`Checkpointer` saves it every N steps and resumes it exactly),
and of data-parallel training: launched as ``mpiexec -n 4 fastgrad train``, it trains one
replica per process with :class:`~fastgrad.distributed.DistributedDataParallel`.
"""
import math
import os
import time

import numpy as np

from . import autograd
from . import backends
from . import data
from . import distributed
from . import nn
from . import optim
from . import random as _random
from .diagnostics import GradientMonitor
from .graphs import make_graphed_callables
from .serialization import load as _load
from .serialization import save as _save
from .tensor import Tensor
from .utils.data import DistributedSampler


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped at the step that produced it."""


class Checkpointer:
    """Saves everything that decides a training loop's next step, every ``every`` steps, and
    restores it, so that a run killed at any moment and resumed from its last checkpoint ends
    with parameters bit-identical to an uninterrupted run (same backend and thread count).

    A checkpoint (one :func:`fastgrad.save` file, written atomically: a kill during the write
    leaves the previous checkpoint) holds the ``state_dict()`` of each object given, by name;
    the state of fastgrad's default generator (weight initialisation, dropout, and shuffling
    without a generator of its own draw from it) under ``"rng"``; and the keyword arguments of
    :meth:`save` (the step, the epoch, partial statistics: anything :func:`fastgrad.save`
    takes). In a data-parallel job (:mod:`fastgrad.distributed` initialised) only rank 0
    writes, and every rank restores the same file: checkpoint what is the same on every rank
    (the model inside the ``DistributedDataParallel`` wrapper, the optimiser). The pattern for
    your own loop::

        model = build_model()                 # built as in the first run
        optimizer = fastgrad.optim.Adam(model.parameters(), lr=1e-3)
        scheduler = fastgrad.optim.lr_scheduler.StepLR(optimizer, step_size=1000)
        loader = fastgrad.data.DataLoader(dataset, batch_size=32, shuffle=True,
                                          generator=fastgrad.Generator(0))
        checkpoints = Checkpointer("run.safetensors", every=100, model=model,
                                   optimizer=optimizer, scheduler=scheduler, loader=loader)
        progress = checkpoints.restore() or {"epoch": 0, "step": 0}
        step = progress["step"]
        for epoch in range(progress["epoch"], epochs):
            for x, y in loader:               # a restored loader continues its epoch
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
                scheduler.step()
                step += 1
                if checkpoints.due(step):
                    checkpoints.save(epoch=epoch, step=step)

    The loader's state (:meth:`fastgrad.data.DataLoader.state_dict`) is the order of the
    epoch in progress and how many of its batches were taken, so the resumed epoch sees the
    batches the interrupted one would have; the saved epoch is the one in progress.

    Args:
        path: the checkpoint file (str or ``os.PathLike``).
        every: :meth:`due` is true every ``every`` steps; None: never (call :meth:`save`
            yourself).
        **objects: what to checkpoint, by name: anything with ``state_dict()`` and
            ``load_state_dict()`` (modules, optimisers, schedulers, data loaders). They are
            restored in the order given: name an optimiser before its scheduler.
    """

    def __init__(self, path, every=None, **objects):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if every is not None and (isinstance(every, bool) or not isinstance(every, int)
                                  or every < 1):
            raise ValueError(f"every must be a positive int or None, got {every!r}")
        for name, obj in objects.items():
            if name == "rng":
                raise ValueError("'rng' is the name of the default generator's state; give "
                                 "the object another name")
            if not (callable(getattr(obj, "state_dict", None))
                    and callable(getattr(obj, "load_state_dict", None))):
                raise TypeError(f"{name} must have state_dict() and load_state_dict(), got "
                                f"{type(obj).__name__}")
        self.path, self.every, self.objects = path, every, objects

    def due(self, step):
        """Whether to checkpoint after step ``step`` (counted from 1): every ``every``."""
        return self.every is not None and step % self.every == 0

    def save(self, **progress):
        """Write the checkpoint now, with ``progress`` (e.g. ``step=..., epoch=...``); on
        rank 0 only in a data-parallel job."""
        taken = sorted(set(progress) & (set(self.objects) | {"rng"}))
        if taken:
            raise ValueError(f"progress names {taken} are taken by the checkpointed objects")
        if distributed.is_initialized() and distributed.get_rank() != 0:
            return
        _save({**{name: obj.state_dict() for name, obj in self.objects.items()},
               "rng": _random.default_generator.get_state(), **progress}, self.path)

    def restore(self, **expected):
        """Load the checkpoint into the objects and the default generator.

        Args:
            **expected: progress values the checkpoint must hold (e.g. the hyperparameters
                it was written with, saved as progress): checked before anything is loaded.

        Returns:
            The ``progress`` saved with it (a dict), or None when there is no checkpoint
            file yet (a fresh start).

        Raises:
            ValueError: the file is not a valid checkpoint (see :func:`fastgrad.load`), it
                lacks the state of one of the objects, or an ``expected`` value differs.
        """
        if not os.path.exists(self.path):
            return None
        checkpoint = _load(self.path)
        missing = [name for name in [*self.objects, "rng"] if name not in checkpoint]
        if missing:
            raise ValueError(f"{os.fspath(self.path)}: the checkpoint has no state for "
                             f"{missing}")
        changed = [name for name, value in expected.items()
                   if name not in checkpoint or checkpoint[name] != value]
        if changed:
            raise ValueError(f"{os.fspath(self.path)} was written by a run with other settings: "
                             + ", ".join(f"{name}={checkpoint.get(name)!r} (now "
                                         f"{expected[name]!r})" for name in changed))
        for name, obj in self.objects.items():
            obj.load_state_dict(checkpoint.pop(name))
        _random.default_generator.set_state(checkpoint.pop("rng"))
        return checkpoint


class ShardedLoaderState:
    """The position of a DataLoader over a :class:`DistributedSampler`, for a
    :class:`Checkpointer` in a data-parallel job: the epoch in progress and the batches
    taken, which are the same on every rank (each rank's own order follows from them), so
    rank 0's checkpoint restores every rank exactly. The loader's own ``state_dict`` holds its
    rank's order, the wrong one for the other ranks::

        checkpoints = Checkpointer(path, every=100, model=ddp.module, optimizer=optimizer,
                                   loader=ShardedLoaderState(loader, sampler))

    Args:
        loader: the DataLoader.
        sampler: its DistributedSampler (call ``sampler.set_epoch(epoch)`` before each epoch).
    """

    def __init__(self, loader, sampler):
        self.loader, self.sampler = loader, sampler

    def state_dict(self):
        state = self.loader.state_dict()
        in_epoch = state["order"] is not None
        return {"epoch": self.sampler.epoch if in_epoch else None,
                "batches_taken": state["batches_taken"]}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or set(state) != {"epoch", "batches_taken"}:
            raise ValueError(f"the loader state must be a dict with keys 'epoch' and "
                             f"'batches_taken', got {state!r:.200}")
        order = None
        if state["epoch"] is not None:
            self.sampler.set_epoch(state["epoch"])
            order = self.sampler._indices()
        self.loader.load_state_dict({"order": order, "batches_taken": state["batches_taken"],
                                     "generator": None})


def accuracy(model, x, y, batch_size=512):
    """The fraction of rows of ``x`` that ``model`` classifies as ``y`` (eval mode, no grad)."""
    model.eval()
    correct = 0
    with autograd.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(Tensor(x[start:start + batch_size]))
            correct += int((logits.argmax(dim=1).numpy() == y[start:start + batch_size]).sum())
    model.train()
    return correct / len(x)


def train_digits(epochs=30, hidden=128, lr=0.05, momentum=0.9, batch_size=32, seed=0,
                 log=print, monitor=False, checkpoint=None, checkpoint_every=None, resume=False,
                 save=None, captured=False):
    """Train ``64 -> hidden -> ReLU -> 10`` with SGD and cross-entropy on the digits.

    In a data-parallel job (:func:`fastgrad.distributed.init_process_group` has run with
    several processes, as ``mpiexec -n P fastgrad train`` does) each rank trains a replica
    under :class:`~fastgrad.distributed.DistributedDataParallel` on ``batch_size / P`` rows of
    every batch (a :class:`DistributedSampler` shares out each epoch's order): the result is a
    single process's with the same ``batch_size`` up to float32 rounding, when the training
    set (1438 rows) and its last batch divide evenly among the ranks. Rank 0 alone logs,
    checkpoints and saves; the logged losses are the means over all ranks.

    Args:
        epochs, hidden, lr, momentum: the usual knobs.
        batch_size: the global batch: rows per step over all ranks together (a multiple of
            the number of ranks).
        seed: seeds the weights, the shuffling and the train/test split.
        log: called with one line per epoch (``print`` by default; None for silence).
        monitor: attach a :class:`~fastgrad.diagnostics.GradientMonitor`: each verdict is
            logged when it appears, and the monitor's summary at the end (its state is in
            the checkpoint, so after a resume it covers the whole run).
        checkpoint: a file to checkpoint the run in (see :class:`Checkpointer`): every
            ``checkpoint_every`` steps, and at the end.
        checkpoint_every: steps between checkpoints; None: at the end of each epoch.
        resume: continue from ``checkpoint`` when the file exists (start afresh when it does
            not). The resumed run ends with the same parameters, bit for bit, as one never
            interrupted, on the same backend and thread count; ``epochs`` may be raised to
            train further.
        save: a file to save the final ``model.state_dict()`` in (:func:`fastgrad.save`).
        captured: run the model and the loss as a captured step
            (:func:`fastgrad.make_graphed_callables`): the same run, bit for bit, with less
            Python per step.

    Returns:
        A dict with per-epoch ``loss``, ``grad_norm``, ``train_accuracy``, ``test_accuracy``
        lists and the total ``seconds`` (and the ``monitor`` when one was attached).

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the message names epoch and step).
        ValueError: a bad argument, or a checkpoint from a run with other settings.
    """
    for name, value in (("epochs", epochs), ("hidden", hidden), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if checkpoint_every is not None and (isinstance(checkpoint_every, bool)
                                         or not isinstance(checkpoint_every, int)
                                         or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be a positive int or None, got "
                         f"{checkpoint_every!r}")
    if (resume or checkpoint_every is not None) and checkpoint is None:
        raise ValueError("resume and checkpoint_every need a checkpoint path, got "
                         "checkpoint=None")
    group = distributed._world if distributed.is_initialized() else None
    rank, ranks = (group.rank(), group.size()) if group is not None else (0, 1)
    if batch_size % ranks:
        raise ValueError(f"batch_size must be a multiple of the number of processes ({ranks}), "
                         f"got {batch_size}")
    if rank != 0:
        log = None
    (x_train, y_train), (x_test, y_test) = data.load_digits(seed=seed)
    _random.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    replica = distributed.DistributedDataParallel(model) if ranks > 1 else model
    criterion = nn.CrossEntropyLoss()

    def loss_of(x, y):
        return criterion(replica(x), y)

    if captured:
        loss_of = make_graphed_callables(loss_of)
    dataset = data.TensorDataset(x_train, y_train)
    sampler = DistributedSampler(dataset, num_replicas=ranks, rank=rank, seed=seed)
    loader = data.DataLoader(dataset, batch_size=batch_size // ranks, sampler=sampler)
    settings = {"hidden": hidden, "lr": float(lr), "momentum": float(momentum),
                "batch_size": batch_size, "seed": seed}
    watcher = GradientMonitor(model, optimizer) if monitor else None
    # the monitor after the model: restoring it reads the restored parameters
    checkpoints = None if checkpoint is None else Checkpointer(
        checkpoint, checkpoint_every or len(loader), model=model, optimizer=optimizer,
        loader=ShardedLoaderState(loader, sampler),
        **({} if watcher is None else {"monitor": watcher}))
    history = {"loss": [], "grad_norm": [], "train_accuracy": [], "test_accuracy": []}
    first_epoch, step, losses, norms = 1, 0, [], []
    progress = checkpoints.restore(**settings) if resume else None
    if progress is not None:
        first_epoch, step = progress["epoch"], progress["step"]
        history = {k: list(v) for k, v in progress["history"].items()}
        losses, norms = list(progress["epoch_loss"]), list(progress["epoch_grad_norm"])
        if first_epoch > epochs + 1:
            raise ValueError(f"{os.fspath(checkpoint)} is at epoch {first_epoch}, beyond "
                             f"epochs={epochs}")

    def write_checkpoint(epoch):
        checkpoints.save(**settings, epoch=epoch, step=step, history=history,
                         epoch_loss=losses, epoch_grad_norm=norms)

    started = time.perf_counter()
    for epoch in range(first_epoch, epochs + 1):
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = loss_of(x, y)
            value = np.array([loss.item()])
            # the mean loss over the ranks travels during the backward; every rank then
            # takes the same decision on it
            mean_loss = None if group is None else group.iallreduce(value)
            optimizer.zero_grad()
            loss.backward()
            if mean_loss is not None:
                mean_loss.wait()
                value /= ranks
            value = float(value[0])
            if not math.isfinite(value):
                raise TrainingDiverged(f"loss is {value} at epoch {epoch}, step "
                                       f"{len(losses) + 1}: lower the learning rate or clip "
                                       "the gradients")
            norms.append(optimizer.grad_norm())
            optimizer.step()
            losses.append(value)
            step += 1
            if watcher is not None:   # before the checkpoint, so that it holds this step
                for verdict in watcher.step():
                    if log is not None:
                        log(f"epoch {epoch}, {verdict}")
            if checkpoints is not None and checkpoints.due(step):
                write_checkpoint(epoch)
        history["loss"].append(float(np.mean(losses)))
        history["grad_norm"].append(float(np.mean(norms)))
        history["train_accuracy"].append(accuracy(model, x_train, y_train))
        history["test_accuracy"].append(accuracy(model, x_test, y_test))
        losses, norms = [], []
        if log is not None:
            log(f"epoch {epoch:3d}/{epochs}  loss {history['loss'][-1]:.4f}  "
                f"grad-norm {history['grad_norm'][-1]:.3f}  "
                f"train-acc {history['train_accuracy'][-1]:.3f}  "
                f"test-acc {history['test_accuracy'][-1]:.3f}  "
                f"{time.perf_counter() - started:.2f}s")
    if checkpoints is not None:
        write_checkpoint(epochs + 1)
    if save is not None and rank == 0:
        _save(model.state_dict(), save)
    history["seconds"] = time.perf_counter() - started
    if log is not None:
        processes = f", {ranks} processes" if ranks > 1 else ""
        log(f"test accuracy {100 * history['test_accuracy'][-1]:.1f}% after {epochs} epochs "
            f"in {history['seconds']:.1f} s (backend: {backends.current()}{processes})")
    if watcher is not None:
        watcher.close()
        history["monitor"] = watcher
        if log is not None:
            log(watcher.summary())
    return history
