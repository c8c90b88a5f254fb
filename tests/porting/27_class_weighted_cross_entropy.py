"""Class-weighted CrossEntropyLoss for an imbalanced problem: weights inversely proportional to
class frequency, the weighted mean checked against its definition, and the minority class
recalled better than without weights."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(26)

counts = [400, 80, 20]
centers = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
points = centers[labels] + rng.normal(scale=0.8, size=(len(labels), 2))
X = torch.tensor(points, dtype=torch.float32)
y = torch.tensor(labels)

class_counts = torch.tensor([(y == c).sum().item() for c in range(3)], dtype=torch.float)
class_weights = class_counts.sum() / (len(class_counts) * class_counts)
print("class weights:", [f"{w:.3f}" for w in class_weights.tolist()])

criterion = nn.CrossEntropyLoss(weight=class_weights)
logits = torch.randn(8, 3)
targets = torch.tensor([0, 1, 2, 2, 0, 1, 0, 2])
nll = -F.log_softmax(logits, dim=1).gather(1, targets.unsqueeze(1)).squeeze(1)
w = class_weights[targets]
assert torch.allclose(criterion(logits, targets), (w * nll).sum() / w.sum(), atol=1e-6)
assert torch.allclose(F.cross_entropy(logits, targets, weight=class_weights),
                      criterion(logits, targets))


def train(loss_fn):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = optim.Adam(model.parameters(), lr=0.02)
    for _ in range(200):
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = model(X).argmax(dim=1)
    return [(predicted[y == c] == c).float().mean().item() for c in range(3)]


plain_recall = train(nn.CrossEntropyLoss())
weighted_recall = train(nn.CrossEntropyLoss(weight=class_weights))
print("recall without weights:", [f"{r:.2f}" for r in plain_recall])
print("recall with weights:   ", [f"{r:.2f}" for r in weighted_recall])

assert class_weights.dtype == torch.float32
assert torch.allclose(class_weights * class_counts, torch.full((3,), 500 / 3))
assert weighted_recall[2] > 0.75 and weighted_recall[2] > plain_recall[2] + 0.1
assert sum(weighted_recall) / 3 > sum(plain_recall) / 3
