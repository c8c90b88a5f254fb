"""Process groups: the communicators that collectives and data-parallel training run on.

A :class:`ProcessGroup` does a handful of collectives on NumPy arrays, in place. Two kinds:
:class:`MPIGroup` runs them with MPI (``mpi4py``, imported only when one is built), and
:class:`SingleProcessGroup` is a world of one process, where every collective is the identity
(a run started without ``mpiexec``, or without ``mpi4py`` installed). Tests can drive the
data-parallel code with a group of their own: any subclass that implements these methods.
"""
import enum

import numpy as np


class ReduceOp(enum.Enum):
    """The reduction of :func:`fastgrad.distributed.all_reduce` (``torch.distributed.ReduceOp``).

    ``AVG`` is the sum divided by the world size (floating tensors only).
    """

    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"


class ProcessGroup:
    """A group of processes that run collectives together, each with its rank.

    Every collective must be called by every rank of the group, in the same order, on arrays
    of the same shape and dtype. Arrays are C-contiguous NumPy arrays, overwritten in place.
    """

    def rank(self):
        """This process's rank in the group, from 0."""
        raise NotImplementedError

    def size(self):
        """The number of processes in the group."""
        raise NotImplementedError

    def allreduce(self, array, op=ReduceOp.SUM):
        """Reduce ``array`` over the ranks with ``op`` (SUM, PRODUCT, MIN or MAX); every rank
        receives the result in ``array``."""
        raise NotImplementedError

    def iallreduce(self, array, op=ReduceOp.SUM):
        """Start :meth:`allreduce` and return a request with ``wait()`` and ``test()``:
        ``array`` holds the result once the request has completed and must not be touched
        until then."""
        raise NotImplementedError

    def bcast(self, array, root=0):
        """Overwrite ``array`` on every rank with rank ``root``'s."""
        raise NotImplementedError

    def allgather(self, array):
        """Every rank's ``array`` stacked along a new first axis, in rank order."""
        raise NotImplementedError

    def barrier(self):
        """Return once every rank has called it."""
        raise NotImplementedError

    def abort(self, errorcode=1):
        """End every process of the job (after an error on this rank)."""
        raise NotImplementedError

    def progress(self, requests):
        """Let the requests of :meth:`iallreduce` advance without waiting for them."""
        for request in requests:
            request.test()

    def waitall(self, requests):
        """Wait for every request of ``requests`` (from :meth:`iallreduce`)."""
        for request in requests:
            request.wait()


class _Done:
    """A request that completed when it was made."""

    def wait(self):
        return None

    def test(self):
        return True


class SingleProcessGroup(ProcessGroup):
    """The world of one process: every collective leaves its arrays as they are."""

    def rank(self):
        return 0

    def size(self):
        return 1

    def allreduce(self, array, op=ReduceOp.SUM):
        pass

    def iallreduce(self, array, op=ReduceOp.SUM):
        return _Done()

    def bcast(self, array, root=0):
        pass

    def allgather(self, array):
        return np.asarray(array)[np.newaxis].copy()

    def barrier(self):
        pass

    def abort(self, errorcode=1):
        raise SystemExit(errorcode)


class _MPIRequest:
    """An MPI request as :meth:`ProcessGroup.iallreduce` returns it."""

    def __init__(self, request):
        self.request = request

    def wait(self):
        self.request.Wait()

    def test(self):
        return self.request.Test()


class MPIGroup(ProcessGroup):
    """The processes of an MPI communicator (``MPI.COMM_WORLD`` by default).

    Args:
        comm: an ``mpi4py.MPI.Comm``, or None for ``COMM_WORLD``.
    """

    def __init__(self, comm=None):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self._ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD, ReduceOp.MIN: MPI.MIN,
                     ReduceOp.MAX: MPI.MAX}

    def rank(self):
        return self.comm.Get_rank()

    def size(self):
        return self.comm.Get_size()

    def allreduce(self, array, op=ReduceOp.SUM):
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self._ops[op])

    def iallreduce(self, array, op=ReduceOp.SUM):
        return _MPIRequest(self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self._ops[op]))

    def bcast(self, array, root=0):
        self.comm.Bcast(array, root=root)

    def allgather(self, array):
        array = np.ascontiguousarray(array)
        gathered = np.empty((self.size(),) + array.shape, array.dtype)
        self.comm.Allgather(array, gathered)
        return gathered

    def barrier(self):
        self.comm.Barrier()

    def abort(self, errorcode=1):
        self.comm.Abort(errorcode)

    def progress(self, requests):
        # MPI advances non-blocking collectives only inside MPI calls (unless its asynchronous
        # progress thread is on): testing them is what moves them on
        if requests:
            self.MPI.Request.Testall([r.request for r in requests])

    def waitall(self, requests):
        self.MPI.Request.Waitall([r.request for r in requests])
