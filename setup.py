"""Build script. The cffi C backend (csrc/) will be compiled here as an optional extension, so
that an install without a C compiler still gives a working package on the NumPy and Numba paths."""
from setuptools import setup

setup()
