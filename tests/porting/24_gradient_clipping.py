"""Gradient clipping with torch.nn.utils.clip_grad_norm_ on a regression with large targets, where
the first gradients are far above max_norm: the returned total norm matches one computed by hand
from p.grad.norm(), and after clipping the gradients' total norm is at most max_norm."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(23)

X = torch.tensor(rng.normal(size=(128, 10)), dtype=torch.float32)
w_true = rng.normal(size=(10, 1)) / 3
y = torch.tensor(5 * np.sin(X.numpy() @ w_true), dtype=torch.float32)

model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                      nn.Linear(32, 1))
optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.MSELoss()
MAX_NORM = 1.0

norms_before, norms_after, losses = [], [], []
for step in range(100):
    optimizer.zero_grad()
    loss = criterion(model(X), y)
    loss.backward()
    by_hand = torch.norm(torch.stack([p.grad.detach().norm(2) for p in model.parameters()]), 2)
    if step == 0:
        for name, p in model.named_parameters():
            print(f"  {name:10s} grad norm {p.grad.norm().item():.4f}")
    total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=MAX_NORM)
    assert torch.allclose(total_norm, by_hand, rtol=1e-5), (total_norm, by_hand)
    after = math.sqrt(sum(p.grad.data.norm(2).item() ** 2 for p in model.parameters()))
    optimizer.step()
    norms_before.append(total_norm.item())
    norms_after.append(after)
    losses.append(loss.item())
    if step % 25 == 0:
        print(f"step {step:3d}  loss {loss.item():.4f}  grad norm {total_norm:.3f} -> {after:.3f}")

n_clipped = sum(norm > MAX_NORM for norm in norms_before)
print(f"clipped {n_clipped} of {len(norms_before)} steps, largest norm {max(norms_before):.2f}")

# clip_grad_value_ bounds every component instead
model.zero_grad()
criterion(model(X), y).backward()
torch.nn.utils.clip_grad_value_(model.parameters(), clip_value=0.01)

assert max(norms_before) > 2 * MAX_NORM and n_clipped > 0
assert all(norm <= MAX_NORM + 1e-4 for norm in norms_after)
assert all(math.isclose(after, before, rel_tol=1e-4)
           for before, after in zip(norms_before, norms_after) if before <= MAX_NORM)
assert all(bool((p.grad.abs() <= 0.01 + 1e-7).all()) for p in model.parameters())
assert np.mean(losses[-10:]) < np.mean(losses[:10]) / 2
