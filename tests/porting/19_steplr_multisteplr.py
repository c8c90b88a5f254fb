"""Epoch-wise learning-rate decay with StepLR and MultiStepLR: the learning rate read back each
epoch from scheduler.get_last_lr() and optimizer.param_groups, compared with its closed form."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler

rng = np.random.default_rng(18)
X = torch.tensor(rng.uniform(-1, 1, size=(200, 3)), dtype=torch.float32)
y = (X ** 2).sum(dim=1, keepdim=True)


def train(make_scheduler, epochs=15):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 1))
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = make_scheduler(optimizer)
    lrs, losses = [], []
    for epoch in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        for start in range(0, 200, 20):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(X[start:start + 20]), y[start:start + 20])
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
        scheduler.step()
    return lrs, losses, scheduler


step_lrs, step_losses, step = train(lambda opt: lr_scheduler.StepLR(opt, step_size=5, gamma=0.5))
multi_lrs, multi_losses, multi = train(
    lambda opt: lr_scheduler.MultiStepLR(opt, milestones=[4, 8, 12], gamma=0.1))
print("StepLR:     ", " ".join(f"{lr:.4g}" for lr in step_lrs))
print("MultiStepLR:", " ".join(f"{lr:.4g}" for lr in multi_lrs))
print(f"final losses {step_losses[-1]:.4f} {multi_losses[-1]:.4f}")

for epoch, lr in enumerate(step_lrs):
    assert math.isclose(lr, 0.1 * 0.5 ** (epoch // 5), rel_tol=1e-12), (epoch, lr)
for epoch, lr in enumerate(multi_lrs):
    n_passed = sum(epoch >= m for m in [4, 8, 12])
    assert math.isclose(lr, 0.1 * 0.1 ** n_passed, rel_tol=1e-12), (epoch, lr)
assert math.isclose(step.get_last_lr()[0], 0.0125, rel_tol=1e-12)
assert step.last_epoch == 15 and len(multi.get_last_lr()) == 1
assert step_losses[-1] < step_losses[0] / 3 and multi_losses[-1] < multi_losses[0] / 3
