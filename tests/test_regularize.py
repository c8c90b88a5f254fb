"""Regularisation penalties: values, gradients (gradcheck and by hand), dtypes, PyTorch, and
the documented equivalence of (λ/2)·l2_penalty with SGD's weight_decay=λ."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn, optim
from fastgrad.autograd import gradcheck
from fastgrad.nn import utils
from fastgrad.tensor import Tensor


def _params(rng, dtype=np.float64, shapes=((3, 2), (4,), (1, 2, 2))):
    return [nn.Parameter(rng.standard_normal(shape).astype(dtype)) for shape in shapes]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_penalty_values(dtype):
    params = _params(np.random.default_rng(0), dtype)
    flat = np.concatenate([p.numpy().reshape(-1).astype(np.float64) for p in params])
    l1, l2 = utils.l1_penalty(params), utils.l2_penalty(params)
    for penalty, expected in ((l1, np.abs(flat).sum()), (l2, (flat ** 2).sum())):
        assert penalty.shape == () and penalty.dtype == np.dtype(dtype)
        assert penalty.requires_grad
        np.testing.assert_allclose(penalty.numpy(), expected, rtol=1e-7 if dtype == np.float32
                                   else 1e-14)


def test_l2_penalty_is_the_plain_sum_of_squares():
    w = nn.Parameter(np.array([1.0, -2.0, 3.0]))
    assert utils.l2_penalty([w]).item() == 14.0  # not 7: no factor 1/2
    assert utils.l1_penalty(w).item() == 6.0     # a single Tensor is accepted


def test_penalty_gradients_by_hand():
    w = nn.Parameter(np.array([-1.5, 0.0, 2.0]))
    (3.0 * utils.l1_penalty([w])).backward()
    np.testing.assert_array_equal(w.grad.numpy(), [-3.0, 0.0, 3.0])  # 0 at 0, as PyTorch
    w.grad = None
    (3.0 * utils.l2_penalty([w])).backward()
    np.testing.assert_array_equal(w.grad.numpy(), [-9.0, 0.0, 12.0])


@pytest.mark.parametrize("penalty", [utils.l1_penalty, utils.l2_penalty])
def test_penalty_gradcheck(penalty):
    rng = np.random.default_rng(1)
    inputs = tuple(Tensor(v, requires_grad=True) for v in (
        rng.uniform(0.2, 1.0, (2, 3)) * rng.choice([-1, 1], (2, 3)),
        rng.uniform(0.2, 1.0, 4) * rng.choice([-1, 1], 4)))
    assert gradcheck(lambda a, b: penalty([a, b]), inputs)
    assert gradcheck(lambda a, b: penalty([a, b]) * penalty([a]), inputs)


def test_penalty_dtypes_and_edge_cases():
    rng = np.random.default_rng(2)
    mixed = _params(rng, np.float32)[:1] + _params(rng, np.float64)[1:]
    assert utils.l2_penalty(mixed).dtype == np.float64
    empty = utils.l1_penalty([])
    assert empty.item() == 0.0 and empty.dtype == np.float32 and not empty.requires_grad
    frozen = nn.Parameter(np.array([2.0, -1.0]), requires_grad=False)
    trained = nn.Parameter(np.array([0.5]))
    total = utils.l2_penalty([frozen, trained])
    assert total.item() == 5.25
    total.backward()
    assert frozen.grad is None
    np.testing.assert_array_equal(trained.grad.numpy(), [1.0])
    with pytest.raises(TypeError, match=r"parameters\[1\]"):
        utils.l1_penalty([trained, fg.tensor([1, 2])])
    with pytest.raises(TypeError, match=r"parameters\[0\]"):
        utils.l2_penalty([np.ones(2)])


def test_penalties_match_pytorch():
    torch = pytest.importorskip("torch")
    arrays = [p.numpy() for p in _params(np.random.default_rng(3))]
    params = [nn.Parameter(a.copy()) for a in arrays]
    reference = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    loss = 0.3 * utils.l1_penalty(params) + 0.7 * utils.l2_penalty(params)
    expected = 0.3 * sum(p.abs().sum() for p in reference) \
        + 0.7 * sum(p.pow(2).sum() for p in reference)
    np.testing.assert_allclose(loss.numpy(), expected.detach().numpy(), rtol=1e-14)
    loss.backward()
    expected.backward()
    for p, q in zip(params, reference):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-14)


def test_half_l2_penalty_equals_sgd_weight_decay():
    """``(λ / 2) * l2_penalty`` added to the loss is SGD's ``weight_decay=λ``."""
    decay = 0.1
    fg.manual_seed(4)
    x, y = fg.randn(16, 5).double(), fg.randn(16, 2).double()
    fg.manual_seed(5)
    decayed = nn.Linear(5, 2, dtype=fg.float64)
    penalised = nn.Linear(5, 2, dtype=fg.float64)
    penalised.load_state_dict(decayed.state_dict())
    opt_decayed = optim.SGD(decayed.parameters(), lr=0.05, momentum=0.9, weight_decay=decay)
    opt_penalised = optim.SGD(penalised.parameters(), lr=0.05, momentum=0.9)
    for _ in range(4):
        opt_decayed.zero_grad()
        nn.MSELoss()(decayed(x), y).backward()
        opt_decayed.step()
        opt_penalised.zero_grad()
        loss = nn.MSELoss()(penalised(x), y) \
            + decay / 2 * utils.l2_penalty(penalised.parameters())
        loss.backward()
        opt_penalised.step()
    for p, q in zip(decayed.parameters(), penalised.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-13)
