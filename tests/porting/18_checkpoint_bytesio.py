"""Checkpoints in memory: torch.save to an io.BytesIO buffer and torch.load back from it (with
weights_only=True), for a model, an SGD-with-momentum optimizer and a StepLR scheduler;
resuming must reproduce the uninterrupted run."""
import io

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler

rng = np.random.default_rng(17)
X = torch.tensor(rng.normal(size=(96, 3)), dtype=torch.float32)
y = torch.tensor(rng.integers(0, 3, size=96))
X = X + 2.0 * torch.eye(3)[y]          # shift each class along its own axis


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    return model, optimizer, scheduler


def run(model, optimizer, scheduler, epochs):
    for _ in range(epochs):
        for start in range(0, 96, 24):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(X[start:start + 24]), y[start:start + 24])
            loss.backward()
            optimizer.step()
        scheduler.step()
    return loss


model, optimizer, scheduler = build()
first_loss = nn.functional.cross_entropy(model(X), y).item()
run(model, optimizer, scheduler, 10)
expected = [p.detach().clone() for p in model.parameters()]
expected_lr = scheduler.get_last_lr()

model, optimizer, scheduler = build()
run(model, optimizer, scheduler, 5)
buffer = io.BytesIO()
torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "epoch": 5}, buffer)
size = buffer.tell()
print(f"checkpoint: {size} bytes")

buffer.seek(0)
checkpoint = torch.load(buffer, weights_only=True)
model, optimizer, scheduler = build()
model.load_state_dict(checkpoint["model"])
optimizer.load_state_dict(checkpoint["optimizer"])
scheduler.load_state_dict(checkpoint["scheduler"])
assert scheduler.get_last_lr() == [0.05]
run(model, optimizer, scheduler, 10 - checkpoint["epoch"])

# a bare state_dict round trip through bytes
weights = io.BytesIO()
torch.save(model.state_dict(), weights)
clone = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 3))
clone.load_state_dict(torch.load(io.BytesIO(weights.getvalue()), weights_only=True))

with torch.no_grad():
    final_loss = nn.functional.cross_entropy(model(X), y).item()
    same_outputs = torch.equal(clone(X), model(X))
print(f"loss {first_loss:.4f} -> {final_loss:.4f}, lr {scheduler.get_last_lr()[0]}")

assert size > 0 and len(weights.getvalue()) > 0
for got, want in zip(model.parameters(), expected):
    assert torch.equal(got, want)
assert scheduler.get_last_lr() == expected_lr == [0.1 * 0.5 ** 2]
assert same_outputs
assert final_loss < first_loss / 3
