"""Build script: the C kernels (csrc/) compiled with cffi as an optional extension.

A failed C build never fails the install: fastgrad then runs on its NumPy and Numba paths and
``fastgrad.backends.describe()`` says why the ``c`` backend is unavailable. Where the compiler
rejects ``-fopenmp`` (or the ``-march`` flag), the build is retried without it: serial C
kernels rather than none. ``FASTGRAD_NATIVE=1`` builds for this machine's CPU only (see
csrc/build_ffi.py).
"""
from setuptools import setup
from setuptools.command.build_ext import build_ext

#: Flags dropped one after the other when a build fails, from the least needed.
_DROPPABLE = ("-fopenmp", "/openmp", "-march=")


class OptionalFlagsBuildExt(build_ext):
    """build_ext that retries a failed extension build without OpenMP, then without -march."""

    def build_extension(self, ext):
        while True:
            try:
                return super().build_extension(ext)
            # any failure: the compile and link error classes differ between setuptools
            # versions, and what is not retried is re-raised for the optional-build filter
            except Exception as error:
                flags = ext.extra_compile_args + ext.extra_link_args
                drop = next((d for d in _DROPPABLE if any(f.startswith(d) for f in flags)),
                            None)
                if drop is None:
                    raise
                self.warn(f"building {ext.name} failed ({error}); retrying without {drop}")
                ext.extra_compile_args = [f for f in ext.extra_compile_args
                                          if not f.startswith(drop)]
                ext.extra_link_args = [f for f in ext.extra_link_args if not f.startswith(drop)]
                # objects compiled with the dropped flag must not be reused
                self.force = self.compiler.force = True


setup(cffi_modules=["csrc/build_ffi.py:ffibuilder"],
      cmdclass={"build_ext": OptionalFlagsBuildExt})
