"""Data-parallel training across processes and machines, on MPI (``torch.distributed``'s names).

Launch one process per worker with MPI, every process running the same script::

    mpiexec -n 4 python train.py                     # 4 processes on this machine
    mpiexec -f hosts -n 16 python train.py           # 16 over the machines listed in hosts

and in the script::

    import fastgrad.distributed as dist
    dist.init_process_group()                        # rank and world size from the launch
    model = dist.DistributedDataParallel(build_model())
    sampler = fastgrad.utils.data.DistributedSampler(dataset, seed=0)
    loader = fastgrad.utils.data.DataLoader(dataset, batch_size=32, sampler=sampler)

MPI comes from the ``mpi`` extra (``pip install fastgrad[mpi]``: ``mpi4py`` over the
``mpich`` wheel, whose ``mpiexec`` is the one to launch with). Nothing here imports MPI until
:func:`init_process_group` runs, and ``import fastgrad`` does not import this package. Started
without ``mpiexec`` (or without ``mpi4py``), a script is a world of one process and runs
unchanged.

Once the group is initialised with more than one process, an exception that escapes on any
rank prints its traceback and aborts the whole job (``MPI_Abort`` from ``sys.excepthook``),
so a failure on one rank never leaves the others waiting in a collective forever.

Differences from PyTorch: one backend, MPI (``backend`` is ``"mpi"`` or None); the launch,
not ``init_method``, ``world_size`` and ``rank``, decides who is who (the latter two are
checked against it when given); there is one process group, the world; collectives have no
timeout (MPI's have none: a hang is prevented by the abort on error).
"""
import os
import sys
import time

import numpy as np

from .comm import MPIGroup, ProcessGroup, ReduceOp, SingleProcessGroup, _Done

_world = None             # the default ProcessGroup, once init_process_group() has run
_previous_excepthook = None

#: Environment variables through which MPI launchers (MPICH's Hydra, Open MPI, PMIx, Slurm)
#: tell a process the size of its job.
_LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


def is_available():
    """True: collectives work in every fastgrad (a world of one without MPI)."""
    return True


def is_mpi_available():
    """Whether ``mpi4py`` and an MPI library load (the ``mpi`` extra is installed)."""
    try:
        from mpi4py import MPI  # noqa: F401
    except (ImportError, RuntimeError):  # mpi4py without libmpi raises RuntimeError
        return False
    return True


def launched_world_size():
    """The number of processes an MPI launcher started this job with, read from the
    launcher's environment variables, or None when the process was not started by one."""
    for name in _LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def is_initialized():
    """Whether :func:`init_process_group` has run (and :func:`destroy_process_group` not)."""
    return _world is not None


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1):
    """Join the job's default process group: every process started by the launch.

    With ``mpi4py`` installed the group is ``MPI.COMM_WORLD`` (a world of one when the script
    was started without ``mpiexec``); without it, a world of one process, unless a launcher
    started several, which is an error.

    Args:
        backend: ``"mpi"`` or None (the same).
        init_method: must be None: the MPI launch connects the processes.
        timeout: must be None: MPI collectives have no timeout.
        world_size, rank: -1, or the values this process must have (checked).

    Raises:
        RuntimeError: the group is already initialised, or the job was launched with several
            processes and ``mpi4py`` cannot be loaded.
        ValueError: a bad argument, or a ``world_size``/``rank`` that differs from the
            launch's.
    """
    global _world
    if _world is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    if backend is not None and backend != "mpi":
        raise ValueError(f"backend must be 'mpi' or None (fastgrad runs on MPI), got "
                         f"{backend!r}")
    if init_method is not None:
        raise ValueError(f"init_method must be None: the MPI launch (mpiexec) connects the "
                         f"processes, got {init_method!r}")
    if timeout is not None:
        raise ValueError(f"timeout must be None: MPI collectives have no timeout, got "
                         f"{timeout!r}")
    for name, value in (("world_size", world_size), ("rank", rank)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    group = _launch_group()
    for name, wanted, actual in (("world_size", world_size, group.size()),
                                 ("rank", rank, group.rank())):
        if wanted != -1 and wanted != actual:
            raise ValueError(f"{name}={wanted} was asked for, but the launch gave this process "
                             f"{name} {actual}")
    _world = group
    if group.size() > 1:
        _install_excepthook(group)


def _launch_group():
    try:
        return MPIGroup()
    except (ImportError, RuntimeError) as error:
        size = launched_world_size()
        if size is not None and size > 1:
            raise RuntimeError(f"this job was launched as {size} processes, but mpi4py cannot "
                               f"be loaded ({error}); install it with: pip install "
                               "'fastgrad[mpi]'") from error
        return SingleProcessGroup()


def destroy_process_group(group=None):
    """Leave the default process group (restoring ``sys.excepthook``);
    :func:`init_process_group` may then run again."""
    global _world, _previous_excepthook
    if group is not None and group is not _world:
        raise ValueError("only the default process group can be destroyed")
    _require()
    if _previous_excepthook is not None:
        sys.excepthook, _previous_excepthook = _previous_excepthook, None
    _world = None


def _install_excepthook(group):
    """Abort the whole job when an exception escapes on this rank, after printing it."""
    global _previous_excepthook
    _previous_excepthook = previous = sys.excepthook
    rank, size = group.rank(), group.size()

    def abort_on_exception(kind, value, traceback):
        previous(kind, value, traceback)
        sys.stderr.write(f"fastgrad.distributed: rank {rank} of {size} failed with "
                         f"{kind.__name__}; aborting every rank\n")
        sys.stderr.flush()
        time.sleep(0.2)  # let mpiexec forward the traceback before the abort stops it
        group.abort(1)

    sys.excepthook = abort_on_exception


def _require():
    if _world is None:
        raise ValueError("Default process group has not been initialized, please make sure to "
                         "call init_process_group.")
    return _world


def _group(group):
    """``group``, or the default group for None."""
    if group is None:
        return _require()
    if not isinstance(group, ProcessGroup):
        raise TypeError(f"group must be a fastgrad.distributed.ProcessGroup or None, got "
                        f"{type(group).__name__}")
    return group


def get_rank(group=None):
    """This process's rank in ``group`` (the default group when None), from 0."""
    return _group(group).rank()


def get_world_size(group=None):
    """The number of processes in ``group`` (the default group when None)."""
    return _group(group).size()


def barrier(group=None):
    """Return once every process of the group has called it."""
    _group(group).barrier()


class Work:
    """The handle of an ``async_op=True`` collective: :meth:`wait` until it is done
    (``torch.distributed.Work``)."""

    def __init__(self, group, request, finish=None):
        self._group, self._request, self._finish = group, request, finish
        self._done = False

    def wait(self, timeout=None):
        """Block until the collective is complete (and its result written); returns True."""
        if timeout is not None:
            raise ValueError(f"timeout must be None: MPI requests have no timeout, got "
                             f"{timeout!r}")
        if not self._done:
            self._request.wait()
            self._complete()
        return True

    def is_completed(self):
        """Whether the collective has completed (lets MPI make progress on it)."""
        if not self._done and self._request.test():
            self._complete()
        return self._done

    def _complete(self):
        self._done = True
        if self._finish is not None:
            self._finish()


def _array(tensor, name="tensor"):
    from ..tensor import Tensor
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a fastgrad.Tensor, got {type(tensor).__name__}")
    array = tensor.numpy()
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be contiguous (call .contiguous() first), got a tensor "
                         f"of shape {tuple(tensor.shape)} and strides {tensor.stride()}")
    if not array.flags.writeable:
        raise ValueError(f"{name} must be writeable: collectives overwrite it in place")
    return array


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``tensor`` over every process of the group, in place: afterwards every rank
    holds the same result.

    Args:
        tensor: a contiguous Tensor, of the same shape and dtype on every rank.
        op: a :class:`ReduceOp`; ``AVG`` (the sum over the world size) needs a floating
            tensor.
        group: the process group (None: the default one).
        async_op: start the reduction and return a :class:`Work` to ``wait()`` on; the
            tensor must not be used until then.

    Returns:
        None, or the :class:`Work` when ``async_op``.
    """
    array = _array(tensor)
    if not isinstance(op, ReduceOp):
        raise TypeError(f"op must be a fastgrad.distributed.ReduceOp, got {op!r}")
    if op is ReduceOp.AVG and array.dtype.kind != "f":
        raise ValueError(f"ReduceOp.AVG needs a floating tensor, got dtype {array.dtype}")
    comm = _group(group)
    mpi_op = ReduceOp.SUM if op is ReduceOp.AVG else op
    tensor._version += 1

    def finish():
        if op is ReduceOp.AVG:
            np.divide(array, comm.size(), out=array)

    if async_op:
        return Work(comm, comm.iallreduce(array, mpi_op), finish)
    comm.allreduce(array, mpi_op)
    finish()
    return None


def broadcast(tensor, src=None, group=None, async_op=False):
    """Overwrite ``tensor`` on every process with its value on rank ``src``.

    Args:
        tensor: a contiguous Tensor, of the same shape and dtype on every rank.
        src: the rank whose tensor is sent (an int, required).
        group: the process group (None: the default one).
        async_op: return a :class:`Work` (the broadcast has completed when it returns).

    Returns:
        None, or a completed :class:`Work` when ``async_op``.
    """
    array = _array(tensor)
    comm = _group(group)
    if isinstance(src, bool) or not isinstance(src, (int, np.integer)) \
            or not 0 <= src < comm.size():
        raise ValueError(f"src must be a rank in [0, {comm.size() - 1}], got {src!r}")
    tensor._version += 1
    comm.bcast(array, int(src))
    if async_op:
        return Work(comm, _Done())
    return None


from .ddp import DistributedDataParallel  # noqa: E402 (it uses the functions above)

__all__ = ["ReduceOp", "ProcessGroup", "MPIGroup", "SingleProcessGroup", "Work",
           "is_available", "is_mpi_available", "is_initialized", "launched_world_size",
           "init_process_group", "destroy_process_group", "get_rank", "get_world_size",
           "barrier", "all_reduce", "broadcast", "DistributedDataParallel"]
