"""Attention pooling over padded sequences, built from shape ops: chunk a projection into keys
and values, expand a learned query, mask padding with masked_fill(-inf), build masks with
repeat, targets with gather, inputs with stack/cat/split, and check order invariance with flip."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(31)

N, T, D = 480, 8, 16
values = torch.tensor(rng.uniform(-1, 1, size=(N, T)), dtype=torch.float32)
lengths = torch.tensor(rng.integers(3, T + 1, size=N))
marked = torch.tensor([rng.integers(0, n) for n in lengths.tolist()])
positions = torch.arange(T).repeat(N, 1)                         # (N, T)
mask = positions < lengths.unsqueeze(1)                          # True on real tokens
flags = (positions == marked.unsqueeze(1)).float()
inputs = torch.stack([values, flags], dim=-1)                    # (N, T, 2)
targets = values.gather(1, marked.unsqueeze(1))                  # the marked value, (N, 1)


class AttentionPooling(nn.Module):
    def __init__(self, in_features, dim):
        super().__init__()
        self.kv = nn.Linear(in_features, 2 * dim)
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.out = nn.Linear(dim, 1)
        self.scale = math.sqrt(dim)

    def forward(self, x, mask):
        keys, vals = self.kv(x).chunk(2, dim=-1)                 # each (N, T, dim)
        query = self.query.view(1, 1, -1).expand(x.size(0), x.size(1), -1)
        scores = (keys * query).sum(dim=-1) / self.scale         # (N, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        pooled = (weights.unsqueeze(-1) * vals).sum(dim=1)
        return self.out(pooled), weights


model = AttentionPooling(2, D)
optimizer = optim.Adam(model.parameters(), lr=0.01)
train_x, val_x = inputs.split([400, 80])
train_mask, val_mask = mask.split([400, 80])
train_y, val_y = targets.split([400, 80])
for epoch in range(40):
    for xb, mb, yb in zip(train_x.chunk(5), train_mask.chunk(5), train_y.chunk(5)):
        optimizer.zero_grad()
        prediction, _ = model(xb, mb)
        loss = nn.functional.mse_loss(prediction, yb)
        loss.backward()
        optimizer.step()
    if epoch % 10 == 0:
        print(f"epoch {epoch:2d}  mse {loss.item():.5f}")

model.eval()
with torch.no_grad():
    prediction, weights = model(val_x, val_mask)
    flipped, _ = model(val_x.flip(1), val_mask.flip(1))
    val_mse = nn.functional.mse_loss(prediction, val_y).item()
    weight_on_mark = weights.gather(1, marked[400:].unsqueeze(1)).mean().item()
print(f"val mse {val_mse:.5f} (target variance {val_y.var().item():.3f}), "
      f"mean attention on the marked token {weight_on_mark:.3f}")

both = torch.cat([train_x, val_x], dim=0)
assert torch.equal(both, inputs) and inputs.shape == (N, T, 2)
assert len(train_x.chunk(5)) == 5 and train_x.chunk(5)[0].shape == (80, T, 2)
assert bool((weights.masked_fill(val_mask, 0) == 0).all()), "no attention on padding"
assert torch.allclose(weights.sum(dim=1), torch.ones(80), atol=1e-5)
assert torch.allclose(flipped, prediction, atol=1e-5), "pooling ignores order"
assert val_mse < 0.05 * val_y.var().item() and weight_on_mark > 0.8
