"""ExponentialLR and CosineAnnealingLR, stepped once per epoch, checked against their closed
forms; training with cosine annealing ends at eta_min with a converged model."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler

torch.manual_seed(0)
rng = np.random.default_rng(19)

# ExponentialLR: lr_t = lr_0 * gamma ** t
weight = nn.Parameter(torch.zeros(3))
optimizer = optim.SGD([weight], lr=0.2)
scheduler = lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
exp_lrs = []
for epoch in range(10):
    optimizer.step()
    scheduler.step()
    exp_lrs.append(scheduler.get_last_lr()[0])
for t, lr in enumerate(exp_lrs, start=1):
    assert math.isclose(lr, 0.2 * 0.9 ** t, rel_tol=1e-9)

# CosineAnnealingLR over a real training run
X = torch.tensor(rng.normal(size=(256, 8)), dtype=torch.float32)
true_w = torch.tensor(rng.normal(size=(8, 1)), dtype=torch.float32)
y = X @ true_w + 0.05 * torch.tensor(rng.normal(size=(256, 1)), dtype=torch.float32)

model = nn.Linear(8, 1)
T_MAX, BASE_LR, ETA_MIN = 20, 0.05, 1e-4
optimizer = optim.Adam(model.parameters(), lr=BASE_LR)
scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=T_MAX, eta_min=ETA_MIN)
criterion = nn.MSELoss()
cos_lrs, losses = [], []
for epoch in range(T_MAX):
    for start in range(0, 256, 32):
        optimizer.zero_grad()
        loss = criterion(model(X[start:start + 32]), y[start:start + 32])
        loss.backward()
        optimizer.step()
    losses.append(loss.item())
    scheduler.step()
    cos_lrs.append(optimizer.param_groups[0]["lr"])
    if epoch % 5 == 0:
        print(f"epoch {epoch:2d}  lr {cos_lrs[-1]:.5f}  loss {loss:.5f}")

for t, lr in enumerate(cos_lrs, start=1):
    expected = ETA_MIN + (BASE_LR - ETA_MIN) * (1 + math.cos(math.pi * t / T_MAX)) / 2
    assert math.isclose(lr, expected, rel_tol=1e-6, abs_tol=1e-12), (t, lr, expected)
assert math.isclose(cos_lrs[-1], ETA_MIN, rel_tol=1e-6)
assert all(a > b for a, b in zip(cos_lrs, cos_lrs[1:]))
assert losses[-1] < losses[0] / 50
assert torch.allclose(model.weight.detach().t(), true_w, atol=0.05)
