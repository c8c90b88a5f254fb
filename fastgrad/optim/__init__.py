"""Optimisers (``from fastgrad import optim``), the wrappers that act on their gradients
(accumulation, switching, non-finite skipping, gradient noise) and learning-rate schedulers
(``fastgrad.optim.lr_scheduler``)."""
from . import lr_scheduler
from .accumulate import GradientAccumulator
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .guards import GradientNoise, SkipNonFinite
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD
from .switch import SwitchOptimizer
from .wrapper import OptimizerWrapper

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler",
           "OptimizerWrapper", "GradientAccumulator", "SwitchOptimizer", "SkipNonFinite",
           "GradientNoise"]
