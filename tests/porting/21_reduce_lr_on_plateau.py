"""ReduceLROnPlateau driven by a validation loss: the learning rate is halved whenever the
validation loss has not improved by 10% for more than three epochs; every rate it takes is
lr_0 * 0.5 ** k."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler

torch.manual_seed(0)
rng = np.random.default_rng(20)

X = torch.tensor(rng.uniform(-3, 3, size=(300, 1)), dtype=torch.float32)
y = torch.sin(X) + 0.1 * torch.tensor(rng.normal(size=(300, 1)), dtype=torch.float32)
X_train, y_train, X_val, y_val = X[:240], y[:240], X[240:], y[240:]

model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
optimizer = optim.Adam(model.parameters(), lr=0.02)
scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=3,
                                           threshold=0.1)
criterion = nn.MSELoss()

val_losses, lrs = [], []
for epoch in range(40):
    model.train()
    for start in range(0, 240, 40):
        optimizer.zero_grad()
        loss = criterion(model(X_train[start:start + 40]), y_train[start:start + 40])
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        val_loss = criterion(model(X_val), y_val).item()
    scheduler.step(val_loss)
    val_losses.append(val_loss)
    lrs.append(optimizer.param_groups[0]["lr"])
    if epoch % 10 == 0:
        print(f"epoch {epoch:2d}  val {val_loss:.4f}  lr {lrs[-1]:.5f}")

reductions = sorted({round(math.log2(0.02 / lr)) for lr in lrs})
print(f"lr halvings seen: {reductions}")

for lr in lrs:
    k = round(math.log2(0.02 / lr))
    assert math.isclose(lr, 0.02 * 0.5 ** k, rel_tol=1e-9)
assert all(a >= b for a, b in zip(lrs, lrs[1:])), "the rate never goes back up"
assert lrs[-1] < 0.02 and len(reductions) >= 2 and lrs[0] == 0.02
assert min(val_losses) < val_losses[0] / 3
assert min(val_losses) < 0.03
