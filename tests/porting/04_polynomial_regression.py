"""Fit a cubic with a Linear layer on polynomial features, in the shape of PyTorch's own
examples/regression: mm, cat of powers, F.smooth_l1_loss and a hand-written update through
param.data, stopping once the loss is below a tolerance."""
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)
rng = np.random.default_rng(2)

POLY_DEGREE = 3
W_target = torch.tensor(rng.uniform(-2.0, 2.0, size=(POLY_DEGREE, 1)), dtype=torch.float32)
b_target = torch.tensor(rng.uniform(-2.0, 2.0, size=1), dtype=torch.float32)


def make_features(x):
    """Builds features i.e. a matrix with columns [x, x^2, x^3]."""
    x = x.unsqueeze(1)
    return torch.cat([x ** i for i in range(1, POLY_DEGREE + 1)], 1)


def f(x):
    """Approximated function."""
    return x.mm(W_target) + b_target.item()


def poly_desc(W, b):
    """Creates a string description of a polynomial."""
    result = "y = "
    for i, w in enumerate(W):
        result += f"{w:+.2f} x^{i + 1} "
    result += f"{b[0]:+.2f}"
    return result


def get_batch(batch_size=32):
    """Builds a batch i.e. (x, f(x)) pair."""
    random = torch.rand(batch_size) * 2 - 1
    x = make_features(random)
    y = f(x)
    return x, y


fc = torch.nn.Linear(W_target.size(0), 1)

batch_idx = 0
while batch_idx < 5000:
    batch_idx += 1
    batch_x, batch_y = get_batch()
    fc.zero_grad()
    output = F.smooth_l1_loss(fc(batch_x), batch_y)
    loss = output.item()
    output.backward()
    for param in fc.parameters():
        param.data.add_(-0.1 * param.grad)
    if loss < 2e-4:
        break

print(f"Loss: {loss:.6f} after {batch_idx} batches")
print("==> Learned function:\t" + poly_desc(fc.weight.view(-1), fc.bias))
print("==> Actual function:\t" + poly_desc(W_target.view(-1), b_target))

grid = make_features(torch.linspace(-1, 1, 21))
with torch.no_grad():
    max_error = (fc(grid) - f(grid)).abs().max().item()
print(f"max error on [-1, 1]: {max_error:.4f}")

assert loss < 2e-4, "did not converge"
assert fc.weight.shape == (1, POLY_DEGREE) and grid.shape == (21, POLY_DEGREE)
assert max_error < 0.1
