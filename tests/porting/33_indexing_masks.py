"""PyTorch indexing as scripts use it: boolean masks to filter samples, index lists and index
tensors to pick rows and columns, mixed integer/slice/list indices (PyTorch's axis order),
masked assignment, gradients through repeated indices; then outlier filtering and hard-example
mining in a training loop."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(32)

t = torch.arange(24).reshape(2, 3, 4)
assert t[1, 2, 3].item() == 23 and t[-1, -1].tolist() == [20, 21, 22, 23]
assert t[:, 1].shape == (2, 4) and t[..., 0].shape == (2, 3) and t[:, None].shape == (2, 1, 3, 4)
assert t[0, :, [0, 2]].shape == (3, 2)                   # PyTorch's order, not NumPy's (2, 3)
assert torch.equal(t[0, :, [0, 2]], t[0][:, [0, 2]])
assert t[[0, 1], [1, 2]].tolist() == [[4, 5, 6, 7], [20, 21, 22, 23]]
assert t[:, [0, 2], 1:3].shape == (2, 2, 2)
assert t[t % 5 == 0].tolist() == [0, 5, 10, 15, 20]
assert torch.equal(t[torch.tensor([1, 0])], t.flip(0))
rows = torch.tensor([[0, 1], [1, 0]])
assert t[0][rows].shape == (2, 2, 4)

z = torch.randn(6, 3)
clipped = z.clone()
clipped[clipped < 0] = 0
assert torch.equal(clipped, z.clamp(min=0))
z[:, 1] = 1.0
z[[0, 5]] = torch.zeros(3)
assert bool((z[1:5, 1] == 1).all()) and z[0].abs().sum().item() == 0 == z[5].abs().sum().item()

w = torch.randn(5, requires_grad=True)
w[[0, 0, 3]].sum().backward()
assert w.grad.tolist() == [2.0, 0.0, 0.0, 1.0, 0.0]
m = torch.randn(4, 3, requires_grad=True)
(m[m > 0] * 2).sum().backward()
assert torch.equal(m.grad, (m > 0).float() * 2)

# regression with a few corrupted labels: filter them with a mask, then train on hard examples
X = torch.tensor(rng.uniform(-2, 2, size=(400, 3)), dtype=torch.float32)
y = X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.05 * torch.randn(400, 1)
corrupt = torch.tensor(rng.choice(400, size=20, replace=False))
y[corrupt] += 25.0
keep = (y - y.mean()).abs().squeeze(1) < 3 * y.std()
X_clean, y_clean = X[keep], y[keep]
print(f"kept {int(keep.sum())} of {len(keep)} samples")

model = nn.Linear(3, 1)
optimizer = optim.SGD(model.parameters(), lr=0.05)
for epoch in range(60):
    optimizer.zero_grad()
    per_sample = (model(X_clean) - y_clean).pow(2).squeeze(1)
    hard = per_sample >= per_sample.mean() if epoch >= 30 else per_sample >= 0
    loss = per_sample[hard].mean()
    loss.backward()
    optimizer.step()

print(f"weights {[round(v, 3) for v in model.weight.view(-1).tolist()]}")
assert int(keep.sum()) == 380 and not bool(keep[corrupt].any())
assert torch.allclose(model.weight, torch.tensor([[1.0, -2.0, 0.5]]), atol=0.05)
