"""Layers, losses and the Module system (``from fastgrad import nn``)."""
from . import functional
from . import init
from . import parallel
from . import utils
from .activation import (ELU, GELU, CosineSimilarity, Flatten, Hardtanh, Identity, LeakyReLU,
                         LogSoftmax, Mish, ReLU, ReLU6, Sigmoid, SiLU, Softmax, Softmax2d,
                         Softplus, Tanh, Unflatten)
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .dropout import Dropout
from .linear import Linear
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss,
                   MSELoss, NLLLoss, SmoothL1Loss)
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm, SyncBatchNorm
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .residual import Residual
from .sparse import Embedding

__all__ = ["functional", "init", "parallel", "utils", "Module", "Parameter", "Sequential",
           "Linear", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "GELU", "Softplus",
           "Identity", "Flatten",
           "Dropout", "BatchNorm1d", "BatchNorm2d", "Residual", "RNNCell", "RNN", "LSTMCell",
           "LSTM", "GRUCell", "GRU", "MSELoss", "L1Loss", "SyncBatchNorm",
           "HuberLoss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
           "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Hardtanh", "ReLU6",
           "SiLU", "Mish", "Softmax", "LogSoftmax", "Softmax2d", "Unflatten",
           "CosineSimilarity", "SmoothL1Loss", "KLDivLoss", "Embedding", "LayerNorm", "Conv1d",
           "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
           "AdaptiveMaxPool2d"]
