"""Layers, losses and the Module system (``from fastgrad import nn``)."""
from . import functional
from . import init
from . import utils
from .activation import ReLU, Sigmoid, Tanh
from .container import Sequential
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss
from .module import Module, Parameter

__all__ = ["functional", "init", "utils", "Module", "Parameter", "Sequential", "Linear", "ReLU",
           "Sigmoid", "Tanh", "MSELoss", "CrossEntropyLoss"]
