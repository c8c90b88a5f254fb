"""Reductions in a preprocessing pipeline: standardise features with mean and std over the batch
dimension, inspect them with var, norm, min/max (values and indices), logsumexp, and check each
against NumPy before training a regressor on the standardised data."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(30)

scales = np.array([1.0, 100.0, 0.01, 10.0, 1000.0])
raw_np = (rng.normal(size=(300, 5)) + 3.0) * scales          # each column has its own scale
raw = torch.tensor(raw_np, dtype=torch.float32)

mean = raw.mean(dim=0, keepdim=True)
std = raw.std(dim=0, keepdim=True)
X = (raw - mean) / std
assert torch.allclose(mean.squeeze(0), torch.tensor(raw_np.mean(0), dtype=torch.float32),
                      rtol=1e-5)
assert torch.allclose(std.squeeze(0), torch.tensor(raw_np.std(0, ddof=1), dtype=torch.float32),
                      rtol=1e-4)
assert torch.allclose(X.mean(dim=0), torch.zeros(5), atol=1e-4)
assert torch.allclose(X.std(dim=0), torch.ones(5), atol=1e-4)
assert torch.allclose(raw.var(dim=0), std.squeeze(0) ** 2, rtol=1e-4)
assert torch.allclose(raw.var(dim=0, unbiased=False), raw.var(dim=0) * 299 / 300, rtol=1e-4)
assert torch.allclose(X.std(), torch.tensor(float(X.numpy().std(ddof=1))), rtol=1e-4)

row_norms = X.norm(dim=1)
assert row_norms.shape == (300,)
assert torch.allclose(row_norms, torch.tensor(np.linalg.norm(X.numpy(), axis=1)), rtol=1e-5)
assert torch.allclose(X.norm(), torch.sqrt((X ** 2).sum()), rtol=1e-5)
assert torch.allclose(torch.norm(X, p=1, dim=0), X.abs().sum(dim=0), rtol=1e-5)

values, indices = X.min(dim=0)
assert torch.equal(indices, torch.tensor(X.numpy().argmin(0)))
assert torch.equal(values, X[indices, torch.arange(5)])
best = X.max(dim=1, keepdim=True)
assert best.values.shape == (300, 1) and best.indices.dtype == torch.int64
assert torch.equal(best.values.squeeze(1), X.max(dim=1)[0])
assert X.min().item() == values.min().item()

logits = torch.randn(6, 4)
assert torch.allclose(logits - logits.logsumexp(dim=1, keepdim=True), F.log_softmax(logits, 1),
                      atol=1e-6)
assert torch.allclose(torch.logsumexp(logits, dim=1), torch.log(torch.exp(logits).sum(1)))
assert torch.allclose(logits.exp().prod(dim=1), torch.exp(logits.sum(dim=1)), rtol=1e-4)
assert torch.allclose(torch.cumsum(torch.ones(5), dim=0), torch.arange(1, 6).float())
assert bool((X.abs() < 10).all()) and not bool((X > 100).any())

# the target depends on two raw features with very different scales
y = (X[:, 1] - 2 * X[:, 4] + 0.5 * X[:, 0] * X[:, 3]).unsqueeze(1)
model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = optim.Adam(model.parameters(), lr=0.01)
losses = []
for step in range(200):
    optimizer.zero_grad()
    loss = F.mse_loss(model(X), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
print(f"mse {losses[0]:.4f} -> {losses[-1]:.4f} (target variance {y.var().item():.3f})")
assert losses[-1] < 0.05 * y.var().item()
