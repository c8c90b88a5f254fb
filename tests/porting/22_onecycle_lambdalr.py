"""Per-batch schedules: OneCycleLR (warm-up to max_lr, then cosine annealing, momentum cycled the
other way) and a LambdaLR linear warm-up, each stepped after every optimizer step."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
rng = np.random.default_rng(21)

centers = rng.normal(scale=3.0, size=(5, 4))
labels = rng.integers(0, 5, size=400)
X = torch.tensor(centers[labels] + rng.normal(size=(400, 4)), dtype=torch.float32)
y = torch.tensor(labels)
loader = DataLoader(TensorDataset(X, y), batch_size=40, shuffle=True)
EPOCHS = 8


def make_model():
    return nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 5))


def fit(model, optimizer, scheduler):
    lrs, momenta, losses = [], [], []
    for epoch in range(EPOCHS):
        for inputs, targets in loader:
            # the rate and momentum this step uses
            lrs.append(optimizer.param_groups[0]["lr"])
            momenta.append(optimizer.param_groups[0].get("momentum", 0.0))
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(inputs), targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
    return lrs, momenta, losses


model = make_model()
optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
total_steps = EPOCHS * len(loader)
scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=total_steps)
cycle_lrs, momenta, cycle_losses = fit(model, optimizer, scheduler)
peak = int(np.argmax(cycle_lrs))
print(f"OneCycleLR: peak lr {max(cycle_lrs):.4f} at step {peak + 1}/{total_steps}, "
      f"final {cycle_lrs[-1]:.2e}, loss {cycle_losses[-1]:.4f}")

model = make_model()
optimizer = optim.Adam(model.parameters(), lr=0.01)
warmup = 20
scheduler = lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda step: min(1.0, (step + 1) / warmup))
warm_lrs, _, warm_losses = fit(model, optimizer, scheduler)
print(f"LambdaLR warm-up: {warm_lrs[0]:.4f} -> {warm_lrs[warmup - 1]:.4f}, "
      f"loss {warm_losses[-1]:.4f}")

assert len(cycle_lrs) == total_steps == 80
assert math.isclose(max(cycle_lrs), 0.1, rel_tol=0.02) and 20 <= peak + 1 <= 25
assert math.isclose(cycle_lrs[0], 0.1 / 25) and math.isclose(cycle_lrs[-1], 0.1 / 25 / 1e4)
assert all(a < b for a, b in zip(cycle_lrs[:peak], cycle_lrs[1:peak + 1]))
assert all(a > b for a, b in zip(cycle_lrs[peak:], cycle_lrs[peak + 1:]))
assert math.isclose(min(momenta), 0.85) and math.isclose(momenta[-1], 0.95)
assert math.isclose(warm_lrs[0], 0.01 / warmup) and warm_lrs[warmup - 1:] == [0.01] * 61
assert np.mean(cycle_losses[-8:]) < cycle_losses[0] / 5
assert np.mean(warm_losses[-8:]) < warm_losses[0] / 5
