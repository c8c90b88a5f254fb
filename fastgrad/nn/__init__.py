"""Layers, losses and the Module system (``from fastgrad import nn``)."""
from . import functional
from . import init
from .activation import ReLU, Sigmoid, Tanh
from .container import Sequential
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss
from .module import Module, Parameter

__all__ = ["functional", "init", "Module", "Parameter", "Sequential", "Linear", "ReLU",
           "Sigmoid", "Tanh", "MSELoss", "CrossEntropyLoss"]
