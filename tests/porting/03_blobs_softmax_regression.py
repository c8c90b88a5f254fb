"""Softmax regression (a single Linear layer) on four Gaussian blobs, trained with SGD and
momentum through F.cross_entropy, with per-class accuracy read through boolean masks."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(1)

centers = np.array([[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])
labels = rng.integers(0, 4, size=500)
points = centers[labels] + rng.normal(scale=0.7, size=(500, 2))
X = torch.from_numpy(points).float()
y = torch.from_numpy(labels).long()
X_train, X_test = X[:400], X[400:]
y_train, y_test = y[:400], y[400:]

model = nn.Linear(2, 4)
optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

for step in range(100):
    logits = model(X_train)
    loss = F.cross_entropy(logits, y_train)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 25 == 0:
        print(f"step {step:3d} loss {loss:.4f}")

with torch.no_grad():
    predictions = model(X_test).argmax(dim=1)
    per_class = []
    for c in range(4):
        mask = y_test == c
        per_class.append((predictions[mask] == c).float().mean().item())
    probabilities = F.softmax(model(X_test), dim=1)

print("per-class accuracy:", [f"{a:.2f}" for a in per_class])
assert X.dtype == torch.float32 and y.dtype == torch.int64
assert model.weight.shape == (4, 2) and model.bias.shape == (4,)
assert torch.allclose(probabilities.sum(dim=1), torch.ones(100), atol=1e-5)
assert loss.item() < 0.35
assert min(per_class) > 0.85
