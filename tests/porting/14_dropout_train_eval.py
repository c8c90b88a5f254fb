"""Dropout as the tutorials explain it: inverted scaling by 1/(1-p) in training, the identity in
eval mode, model.train()/model.eval() switching every submodule, and a dropout-regularised
classifier evaluated without it."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(12)

ones = torch.ones(2000)
dropped = F.dropout(ones, p=0.5, training=True)
kept = dropped[dropped != 0]
zero_fraction = (dropped == 0).float().mean().item()
assert torch.allclose(kept, torch.full_like(kept, 2.0))
assert 0.4 < zero_fraction < 0.6
assert torch.equal(F.dropout(ones, p=0.5, training=False), ones)

model = nn.Sequential(
    nn.Linear(20, 64), nn.ReLU(), nn.Dropout(p=0.3),
    nn.Linear(64, 64), nn.ReLU(), nn.Dropout(p=0.3),
    nn.Linear(64, 2),
)

# 20 features, only 2 informative, few samples: the setting dropout is for
n = 240
X_np = rng.normal(size=(n, 20)).astype(np.float32)
y_np = (X_np[:, 0] + X_np[:, 1] > 0).astype(np.int64)
X, y = torch.from_numpy(X_np), torch.from_numpy(y_np)

model.train()
assert all(m.training for m in model.modules())
a, b = model(X[:5]), model(X[:5])
assert not torch.equal(a, b), "dropout must differ between two training passes"

optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.CrossEntropyLoss()
losses = []
for epoch in range(100):
    model.train()
    optimizer.zero_grad()
    loss = criterion(model(X[:160]), y[:160])
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    if epoch % 25 == 0:
        print(f"epoch {epoch:3d}  loss {loss.item():.4f}")

model.eval()
assert not any(m.training for m in model.modules())
with torch.no_grad():
    first, second = model(X[160:]), model(X[160:])
    accuracy = (first.argmax(1) == y[160:]).float().mean().item()
print(f"held-out accuracy {accuracy:.3f}")

assert torch.equal(first, second), "eval mode must be deterministic"
assert np.mean(losses[-10:]) < losses[0] / 3
assert accuracy > 0.85
