"""``torch.nn.parallel``'s name for data-parallel training:
``fastgrad.nn.parallel.DistributedDataParallel`` is
:class:`fastgrad.distributed.DistributedDataParallel`, so a PyTorch script's
``from torch.nn.parallel import DistributedDataParallel`` ports by the import swap. Looked up
on first use: importing ``fastgrad.nn`` loads nothing of :mod:`fastgrad.distributed`."""

__all__ = ["DistributedDataParallel"]  # noqa: F822 (resolved by __getattr__)


def __getattr__(name):
    if name == "DistributedDataParallel":
        from ..distributed import DistributedDataParallel
        return DistributedDataParallel
    raise AttributeError(f"module 'fastgrad.nn.parallel' has no attribute {name!r}")
