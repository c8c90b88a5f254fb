"""Datasets, samplers and the DataLoader under PyTorch's path: ``import fastgrad as torch``
makes ``from torch.utils.data import DataLoader, Dataset, TensorDataset, random_split`` work.

The submodules carry PyTorch's module names too (``fastgrad.utils.data.dataset``,
``.sampler``, ``.dataloader``). :mod:`fastgrad.data` re-exports :class:`DataLoader` and
:class:`TensorDataset` beside the shipped data sets.
"""
from .collate import default_collate
from .collate import default_convert
from .dataloader import DataLoader
from .dataloader import get_worker_info
from .dataset import ChainDataset
from .dataset import ConcatDataset
from .dataset import Dataset
from .dataset import IterableDataset
from .dataset import Subset
from .dataset import TensorDataset
from .dataset import random_split
from .distributed import DistributedSampler
from .sampler import BatchSampler
from .sampler import RandomSampler
from .sampler import Sampler
from .sampler import SequentialSampler
from .sampler import SubsetRandomSampler
from .sampler import WeightedRandomSampler

__all__ = [
    "Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset", "Subset",
    "random_split", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
    "WeightedRandomSampler", "BatchSampler", "DistributedSampler", "DataLoader", "default_collate",
    "default_convert", "get_worker_info",
]
