"""Data for training: the shipped digits data set, generated sequence tasks, and the
PyTorch-style :class:`TensorDataset` and :class:`DataLoader` of :mod:`fastgrad.utils.data`.

Everything here runs offline: data sets are files inside the package or generated, never
downloads.
"""
from ..utils.data import DataLoader
from ..utils.data import TensorDataset
from .datasets import load_digits
from .sequences import adding_problem
from .sequences import copy_task

__all__ = ["load_digits", "adding_problem", "copy_task", "TensorDataset", "DataLoader"]
