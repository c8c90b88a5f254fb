"""CUDA tensors computed by the CUDA backend's kernels: a device's kernel table
(:class:`fastgrad.backends.device_kernels.DeviceKernels`) and whole training runs on it.

The runs take the ``cuda`` fixture, twice: in CI the stand-in device of tests/_strict_device.py
(arrays that refuse hidden host round trips, as CuPy's do) with the numba-cuda kernels as its
table, run in Numba's CUDA simulator (the ``simulated_cuda`` fixture); on a GPU machine
(bench/gpu_check.sh) CuPy's arrays as a user gets them (:mod:`fastgrad.backends.cupy_arrays`,
the ``gpu_cuda`` fixture). The simulator runs each CUDA thread as a Python thread, so the
models here are small."""
import numpy as np
import pytest

import fastgrad as fg
from _strict_device import StrictArray
from fastgrad.backends.device_kernels import DeviceKernels
from fastgrad.diagnostics import GradientMonitor
from test_device_arrays import MODELS, assert_model_on_cuda_equals_the_cpu


# ------------------------------------------------------------------------------ the table
class _Backend:
    """A device backend that records the arrays it is given (host NumPy arrays stand in for
    its own)."""

    def __init__(self):
        self.calls = []

    def segment_norms(self, values, offsets, norm_type, out):
        self.calls.append((values, offsets, out))
        out[:] = 1.0
        return np.array([3.0])

    def fill(self, buffer, value):
        self.calls.append((buffer,))
        buffer[:] = value


def _table(backend, uploads):
    def upload(array):
        uploads.append(array)
        return array.copy()
    return DeviceKernels(backend, StrictArray, to_kernel=lambda a: a._a,
                         from_kernel=StrictArray, upload=upload)


def test_the_table_hands_device_memory_to_the_backend_and_returns_totals_there():
    backend, uploads = _Backend(), []
    table = _table(backend, uploads)
    values, out = StrictArray(np.arange(4.0)), StrictArray(np.zeros(2))
    total = table.segment_norms(values, np.array([0, 2, 4]), 2.0, out)
    assert type(total) is StrictArray and total.shape == ()  # not read on the host
    assert float(total) == 3.0
    seen_values, _, seen_out = backend.calls[0]
    assert seen_values is values._a and seen_out is out._a  # the same memory, no copy
    np.testing.assert_array_equal(out._a, 1.0)


def test_a_read_only_host_table_is_uploaded_once_a_writable_one_at_every_call():
    backend, uploads = _Backend(), []
    table = _table(backend, uploads)
    values, out = StrictArray(np.arange(4.0)), StrictArray(np.zeros(2))
    fixed, changing = np.array([0, 2, 4]), np.array([0, 1, 4])
    fixed.flags.writeable = False
    for _ in range(3):
        table.segment_norms(values, fixed, 2.0, out)
        table.segment_norms(values, changing, 2.0, out)
    assert sum(u is fixed for u in uploads) == 1
    assert sum(u is changing for u in uploads) == 3
    for _ in range(2):  # a new view of the same fixed elements finds the kept copy
        table.segment_norms(values, fixed[:], 2.0, out)
    assert len(uploads) == 4
    # a read-only view of a writable array may change under it: uploaded every time
    view = changing[:]
    view.flags.writeable = False
    table.segment_norms(values, view, 2.0, out)
    table.segment_norms(values, view, 2.0, out)
    assert sum(u is view for u in uploads) == 2


def test_a_host_array_the_kernel_would_write_is_refused_before_the_launch():
    backend, uploads = _Backend(), []
    table = _table(backend, uploads)
    host_out = np.zeros(2)
    with pytest.raises(TypeError, match="segment_norms: argument 'out' is written by the "
                                        "kernel on the device"):
        table.segment_norms(StrictArray(np.arange(4.0)), np.array([0, 2, 4]), 2.0, host_out)
    assert backend.calls == [] and not host_out.any()


def test_what_the_backend_lacks_or_is_not_compiled_for_goes_to_the_reference():
    backend, uploads = _Backend(), []
    table = _table(backend, uploads)
    half = StrictArray(np.ones(5, np.float16))
    table.fill(half, 2.0)  # float16: the reference, through the dispatch protocols
    np.testing.assert_array_equal(half._a, 2.0)
    assert backend.calls == []
    grads = StrictArray(np.ones(4, np.float32))
    table.scale(grads, 0.5)  # scale: not implemented by this backend
    np.testing.assert_array_equal(grads._a, 0.5)


# ------------------------------------------------------------------ training on the table
@pytest.fixture(params=["simulated_cuda", "gpu_cuda"], ids=["simulator", "gpu"])
def cuda(request):
    """CUDA tensors computed by the CUDA kernels: in the simulator, or on a GPU."""
    return request.getfixturevalue(request.param)


def _mlp():
    fg.manual_seed(0)
    return fg.nn.Sequential(fg.nn.Linear(64, 16), fg.nn.Tanh(), fg.nn.Linear(16, 10))


def _digits(count):
    (x, y), _ = fg.data.load_digits(seed=0)
    return x[:count], y[:count]


def _step(model, optimizer, inputs, targets, max_norm):
    loss = fg.nn.functional.cross_entropy(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    total = fg.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss, total


def test_training_with_clipping_the_monitor_and_a_resume_matches_the_cpu(cuda, tmp_path):
    x, y = _digits(12)
    runs = []
    for device in ("cpu", "cuda"):
        model = _mlp().to(device)
        optimizer = fg.optim.Adam(model.parameters(), lr=1e-2)
        monitor = GradientMonitor(model, optimizer)
        inputs, targets = fg.tensor(x, device=device), fg.tensor(y, device=device)
        losses, totals = [], []
        for _ in range(2):
            loss, total = _step(model, optimizer, inputs, targets, 0.5)
            monitor.step()
            assert total.device.type == device
            losses.append(loss.item())
            totals.append(total.item())
        path = tmp_path / f"{device}.pt"
        fg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)
        # resume from the checkpoint on the device, one more step
        checkpoint = fg.load(path, map_location=device)
        model = _mlp().to(device)
        model.load_state_dict(checkpoint["model"])
        optimizer = fg.optim.Adam(model.parameters(), lr=1e-2)
        optimizer.load_state_dict(checkpoint["optimizer"])
        loss, _ = _step(model, optimizer, inputs, targets, 0.5)
        losses.append(loss.item())
        assert all(p.device.type == device for p in model.parameters())
        runs.append((losses, totals, monitor.history(),
                     [p.detach().cpu().numpy() for p in model.parameters()]))
    (cpu_losses, cpu_totals, cpu_history, cpu_params), (losses, totals, history, params) = runs
    assert min(cpu_totals) > 0.5  # every step clipped
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-5)
    np.testing.assert_allclose(totals, cpu_totals, rtol=1e-5)
    for key in ("grad_norm", "param_norm", "update_ratio", "global_norm", "clipped_norm"):
        np.testing.assert_allclose(history[key], cpu_history[key], rtol=1e-4, atol=1e-7)
    for a, b in zip(params, cpu_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_training_step_reads_one_value_on_the_host(simulated_cuda):
    """With the CUDA kernels the clip decision is taken on the device: the step's only
    synchronisation is cross-entropy's check that the targets are class indices in range
    (the reference table reads the clip's total too: test_device_arrays.py)."""
    x, y = _digits(8)
    model = _mlp().cuda()
    optimizer = fg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    inputs, targets = fg.tensor(x, device="cuda"), fg.tensor(y, device="cuda")
    counts = []
    for _ in range(2):
        before = simulated_cuda.host_reads
        _, total = _step(model, optimizer, inputs, targets, 0.1)
        counts.append(simulated_cuda.host_reads - before)
        assert total.is_cuda
    assert counts == [1, 1]


@pytest.mark.parametrize("name", ["cnn", "rnn"] + sorted(set(MODELS) - {"cnn", "rnn"}))
def test_models_on_the_cuda_kernels_equal_the_cpu(cuda, rng, name):
    """Convolution, pooling, batchnorm and the recurrent cells' kernels, forward and backward
    (the other models of test_device_arrays.py, which take minutes in the simulator, only on a
    GPU)."""
    if cuda is StrictArray and name not in ("cnn", "rnn"):
        pytest.skip("minutes in Numba's simulator: run on a GPU (bench/gpu_check.sh)")
    assert_model_on_cuda_equals_the_cpu(name, rng)


@pytest.mark.parametrize("name", ["gemm", "linear_fwd", "linear_bwd"])
def test_the_product_kernels_around_a_library_product_match_the_reference(simulated_cuda, name):
    """The kernels CuPy's arrays take (their products in cuBLAS, via ``library_product``),
    here with NumPy's product on the simulator's memory: every variant, float32 and float64."""
    import copy

    from numba import cuda
    from fastgrad.backends import KERNELS, numba_cuda
    kernels = numba_cuda.product_kernels(numba_cuda.library_product(lambda a: a._ary,
                                                                    np.matmul))
    spec = KERNELS[name]
    for dtype in (np.float32, np.float64):
        for variant in spec.variants:
            args = spec.arguments(np.random.default_rng(3), dtype, max(spec.sizes), variant)
            expected = copy.deepcopy(args)
            spec.reference(**expected)
            on_device = {k: cuda.to_device(v) if isinstance(v, np.ndarray) else v
                         for k, v in args.items()}
            kernels[name](**on_device)
            rtol, atol = spec.tolerances[np.dtype(dtype)]
            for key in spec.writes:
                if expected[key] is not None:
                    np.testing.assert_allclose(on_device[key].copy_to_host(), expected[key],
                                               rtol=rtol, atol=atol,
                                               err_msg=f"{name} [{variant}] {key}")


def test_strided_device_arrays_are_copied_to_c_order_or_go_to_the_reference():
    backend, uploads = _Backend(), []
    table = _table(backend, uploads)
    values = StrictArray(np.arange(8.0)[::2])
    assert not values._a.flags.c_contiguous
    out = StrictArray(np.zeros(2))
    table.segment_norms(values, np.array([0, 2, 4]), 2.0, out)
    seen = backend.calls[-1][0]
    assert seen.flags.c_contiguous and seen is not values._a
    np.testing.assert_array_equal(seen, values._a)
    strided_out = StrictArray(np.zeros(4)[::2])  # written by the kernel: the reference runs
    calls = len(backend.calls)
    table.segment_norms(StrictArray(np.arange(4.0)), np.array([0, 2, 4]), 2.0, strided_out)
    assert len(backend.calls) == calls
    np.testing.assert_allclose(strided_out._a, [1.0, np.hypot(2.0, 3.0)])


def test_a_monitored_clipped_step_copies_no_index_table_after_the_first(simulated_cuda):
    """The host's fixed index tables (arena offsets, the monitor's layer map) reach the
    device once; a later step uploads nothing."""
    from fastgrad.device import device_arrays_of
    table = device_arrays_of(fg.device("cuda")).kernels
    uploads, upload = [], table._upload
    table._upload = lambda array: uploads.append(array.shape) or upload(array)
    try:
        x, y = _digits(8)
        model = _mlp().cuda()
        optimizer = fg.optim.SGD(model.parameters(), lr=0.1)
        monitor = GradientMonitor(model, optimizer)
        inputs, targets = fg.tensor(x, device="cuda"), fg.tensor(y, device="cuda")
        counts = []
        for _ in range(3):
            before = len(uploads)
            _step(model, optimizer, inputs, targets, 0.1)
            monitor.step()
            counts.append(len(uploads) - before)
    finally:
        table._upload = upload
    assert counts[0] > 0 and counts[1:] == [0, 0], uploads
