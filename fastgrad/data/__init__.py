"""Data for training: the shipped digits data set and PyTorch-style dataset/loader classes.

Everything here runs offline: data sets are files inside the package, never downloads.
"""
from .datasets import load_digits
from .loader import DataLoader
from .loader import TensorDataset

__all__ = ["load_digits", "TensorDataset", "DataLoader"]
