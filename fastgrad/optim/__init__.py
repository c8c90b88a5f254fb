"""Optimisers (``from fastgrad import optim``), the wrappers that act on their gradients
(accumulation, switching, non-finite skipping, gradient noise) and learning-rate schedulers
(``fastgrad.optim.lr_scheduler``)."""
from . import lr_scheduler
from .accumulate import GradientAccumulator
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .guards import GradientNoise, SkipNonFinite
from .nadam import NAdam
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD
from .switch import SwitchOptimizer
from .wrapper import OptimizerWrapper

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax",
           "NAdam", "lr_scheduler", "OptimizerWrapper", "GradientAccumulator",
           "SwitchOptimizer", "SkipNonFinite", "GradientNoise"]
