"""Layers, losses and the Module system (``from fastgrad import nn``)."""
from . import functional
from . import init
from . import utils
from .activation import ELU, GELU, Flatten, Identity, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .container import Sequential
from .dropout import Dropout
from .linear import Linear
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss,
                   NLLLoss)
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d
from .recurrent import LSTM, RNN, LSTMCell, RNNCell
from .residual import Residual

__all__ = ["functional", "init", "utils", "Module", "Parameter", "Sequential", "Linear", "ReLU",
           "Sigmoid", "Tanh", "LeakyReLU", "ELU", "GELU", "Softplus", "Identity", "Flatten",
           "Dropout", "BatchNorm1d", "BatchNorm2d", "Residual", "RNNCell", "RNN", "LSTMCell",
           "LSTM", "MSELoss", "L1Loss",
           "HuberLoss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss"]
