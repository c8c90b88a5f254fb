"""The CUDA backend's kernels timed on device arrays, against the same kernel on the host (the
first host backend: numba, else c, else the NumPy reference), at each kernel's largest
benchmark size, float32, default variant. Part of ``bench/gpu_check.sh``::

    NUMBA_ENABLE_CUDASIM=0 python bench/cuda_kernels.py            # on a GPU
    NUMBA_ENABLE_CUDASIM=1 python bench/cuda_kernels.py --smoke    # the code, in the simulator

Prints a markdown table: per kernel the device time (median of launches, each followed by a
synchronisation), the host time, and host over device. Device times include the launch; they
exclude transfers (inputs are copied to the device once, before timing).
"""
import argparse
import statistics
import sys
import time

import numpy as np


def _median_time(call, synchronize, seconds, least=3):
    """Median seconds of ``call()`` over at least ``least`` calls and about ``seconds``."""
    call()
    synchronize()
    times, spent = [], 0.0
    while len(times) < least or spent < seconds:
        start = time.perf_counter()
        call()
        synchronize()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="smallest sizes, one launch each: checks the code, not speed")
    parser.add_argument("--seconds", type=float, default=0.2,
                        help="timing budget per kernel and side (default 0.2)")
    arguments = parser.parse_args(argv)
    from numba import cuda

    from fastgrad import backends
    from fastgrad.backends import KERNELS
    try:
        from fastgrad.backends import numba_cuda
    except ImportError as error:
        print(f"the CUDA backend is unavailable: {error}", file=sys.stderr)
        return 1
    host_name = backends.current()
    host = backends.K
    device_name = "simulator" if numba_cuda.SIMULATED else cuda.get_current_device().name
    if isinstance(device_name, bytes):
        device_name = device_name.decode()
    print(f"device: {device_name}; host backend: {host_name}; float32, default variants\n")
    print("| kernel | size | device | host | host / device |")
    print("|---|---:|---:|---:|---:|")
    seconds = 0.0 if arguments.smoke else arguments.seconds
    for name, spec in KERNELS.items():
        kernel = getattr(numba_cuda, name, None)
        if kernel is None:
            continue
        size = min(spec.sizes) if arguments.smoke else max(spec.bench_sizes)
        variant = next(iter(spec.variants))
        args = spec.arguments(np.random.default_rng(0), np.float32, size, variant)
        on_device = {k: cuda.to_device(v) if isinstance(v, np.ndarray) else v
                     for k, v in args.items()}
        with np.errstate(all="ignore"):
            device = _median_time(lambda: kernel(**on_device), cuda.synchronize, seconds,
                                  least=1 if arguments.smoke else 3)
            on_host = _median_time(lambda: getattr(host, name)(**args), lambda: None,
                                   seconds, least=1 if arguments.smoke else 3)
        print(f"| {name} | {size} | {device * 1e6:,.1f} us | {on_host * 1e6:,.1f} us | "
              f"{on_host / device:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
