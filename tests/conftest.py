"""Shared fixtures for the tensor, op and autograd tests."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    """A NumPy generator seeded the same way in every test, so failures reproduce."""
    return np.random.default_rng(20240601)
