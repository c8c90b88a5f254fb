"""Data for training: the shipped digits data set, generated sequence tasks and PyTorch-style
dataset/loader classes.

Everything here runs offline: data sets are files inside the package or generated, never
downloads.
"""
from .datasets import load_digits
from .loader import DataLoader
from .loader import TensorDataset
from .sequences import adding_problem
from .sequences import copy_task

__all__ = ["load_digits", "adding_problem", "copy_task", "TensorDataset", "DataLoader"]
