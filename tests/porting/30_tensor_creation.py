"""The creation functions and dtype aliases a first script reaches for (randint, randperm,
linspace, eye, full_like, zeros_like, empty, torch.float/torch.long, torch.Size, .type()),
then used for real: one-hot targets from eye, shuffling with randperm, amplitude features at
linspace frequencies."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(29)

idx = torch.randint(0, 10, (50,))
assert idx.dtype == torch.int64 and idx.shape == torch.Size([50])
assert bool(((idx >= 0) & (idx < 10)).all())
perm = torch.randperm(20)
assert perm.dtype == torch.long and sorted(perm.tolist()) == list(range(20))
grid = torch.linspace(-1, 1, steps=5)
assert torch.allclose(grid, torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
eye = torch.eye(3)
x = torch.randn(3, 4)
assert torch.equal(eye @ x, x) and eye.dtype == torch.float32
assert torch.eye(2, 3).shape == (2, 3)
full = torch.full_like(x, 7.0)
assert full.shape == x.shape and bool((full == 7).all())
zeros = torch.zeros_like(x, dtype=torch.long)
assert zeros.dtype == torch.int64 and zeros.sum().item() == 0
empty = torch.empty(4, 3)
assert empty.size() == torch.Size([4, 3]) and empty.size(1) == 3 and empty.dtype == torch.float
assert x.type(torch.float64).dtype == torch.float64 and torch.float == torch.float32
assert torch.ones(2, 2, dtype=torch.float64).dtype == torch.double
assert torch.arange(5).dtype == torch.long and torch.arange(0, 1, 0.25).shape == (4,)
assert torch.full((2, 3), 1.5).dtype == torch.float32 and torch.ones_like(idx).dtype == idx.dtype
assert isinstance(x.shape, torch.Size) and tuple(x.shape) == (3, 4) and x.shape[-1] == 4

# classify 1-D signals by their dominant frequency, with features from linspace frequencies
N_CLASSES, N = 4, 320
labels = torch.randint(0, N_CLASSES, (N,))
t = torch.linspace(0, 1, 32)
phase = torch.tensor(rng.uniform(0, 2 * math.pi, size=(N, 1)), dtype=torch.float32)
freqs = (labels + 1).float().unsqueeze(1) * 2
signals = torch.sin(2 * math.pi * freqs * t + phase)
signals = signals + 0.3 * torch.randn(N, 32)
probe = torch.linspace(1, 10, 10).unsqueeze(1)              # (10, 1) probe frequencies
sin_part = signals @ torch.sin(2 * math.pi * probe * t).t()
cos_part = signals @ torch.cos(2 * math.pi * probe * t).t()
features = torch.sqrt(sin_part ** 2 + cos_part ** 2) / 16    # amplitude at each frequency
targets = torch.eye(N_CLASSES)[labels]                        # one-hot rows

model = nn.Linear(10, N_CLASSES)
optimizer = optim.Adam(model.parameters(), lr=0.05)
for epoch in range(30):
    order = torch.randperm(N)
    for start in range(0, N, 32):
        batch = order[start:start + 32]
        optimizer.zero_grad()
        loss = ((model(features[batch]).softmax(dim=1) - targets[batch]) ** 2).sum(1).mean()
        loss.backward()
        optimizer.step()

with torch.no_grad():
    accuracy = (model(features).argmax(1) == labels).float().mean().item()
print(f"features {tuple(features.shape)}, one-hot {tuple(targets.shape)}, "
      f"accuracy {accuracy:.3f}")

assert targets.shape == (N, N_CLASSES) and torch.equal(targets.sum(1), torch.ones(N))
assert torch.equal(targets.argmax(1), labels)
assert accuracy > 0.95
