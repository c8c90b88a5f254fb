"""Softmax outputs three ways on one classifier: LogSoftmax + NLLLoss (equal to CrossEntropyLoss
on the logits), Softmax probabilities that sum to one, and an MSE-on-one-hot baseline built with
F.one_hot."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(40)

centers = np.array([[0, 2.5], [2.5, 0], [0, -2.5], [-2.5, 0]])
labels = rng.integers(0, 4, size=400)
X = torch.tensor(centers[labels] + rng.normal(scale=0.8, size=(400, 2)), dtype=torch.float32)
y = torch.tensor(labels)

one_hot = F.one_hot(y, num_classes=4)
assert one_hot.dtype == torch.int64 and one_hot.shape == (400, 4)
assert torch.equal(one_hot.argmax(dim=1), y) and torch.equal(one_hot.sum(1), torch.ones_like(y))

backbone = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 4))
model = nn.Sequential(backbone, nn.LogSoftmax(dim=1))
nll = nn.NLLLoss()
logits = backbone(X)
assert torch.allclose(nll(model(X), y), nn.CrossEntropyLoss()(logits, y), atol=1e-6)
probabilities = nn.Softmax(dim=1)(logits)
assert torch.allclose(probabilities.sum(dim=1), torch.ones(400), atol=1e-5)
assert torch.allclose(probabilities.log(), model(X), atol=1e-5)

optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for epoch in range(80):
    optimizer.zero_grad()
    loss = nll(model(X[:300]), y[:300])
    loss.backward()
    optimizer.step()
with torch.no_grad():
    nll_accuracy = (model(X[300:]).exp().argmax(1) == y[300:]).float().mean().item()

mse_model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 4), nn.Softmax(dim=-1))
optimizer = optim.Adam(mse_model.parameters(), lr=0.02)
for epoch in range(80):
    optimizer.zero_grad()
    mse = F.mse_loss(mse_model(X[:300]), one_hot[:300].float())
    mse.backward()
    optimizer.step()
with torch.no_grad():
    mse_accuracy = (mse_model(X[300:]).argmax(1) == y[300:]).float().mean().item()
print(f"NLL loss {loss.item():.4f}, accuracy {nll_accuracy:.3f}; "
      f"one-hot MSE {mse.item():.4f}, accuracy {mse_accuracy:.3f}")

assert loss.item() < 0.3 and nll_accuracy > 0.9
assert mse.item() < 0.05 and mse_accuracy > 0.9
