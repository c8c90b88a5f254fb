"""LayerNorm in a pre-norm residual MLP, checked against its formula (mean and biased variance
over the last dimension), then trained on inputs whose per-sample scale varies by 100x."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(11)

# LayerNorm normalises each sample over its last dimension
layer_norm = nn.LayerNorm(8)
x = torch.randn(4, 5, 8) * 3 + 1
out = layer_norm(x)
mean = x.mean(dim=-1, keepdim=True)
var = x.var(dim=-1, keepdim=True, unbiased=False)
manual = (x - mean) / torch.sqrt(var + layer_norm.eps)
assert layer_norm.weight.shape == (8,) and layer_norm.bias.shape == (8,)
assert torch.allclose(out, manual, atol=1e-5)
assert torch.allclose(out.mean(dim=-1), torch.zeros(4, 5), atol=1e-5)
assert torch.allclose(out.std(dim=-1, unbiased=False), torch.ones(4, 5), atol=1e-3)


class PreNormBlock(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        return x + self.ff(self.norm(x))


class Classifier(nn.Module):
    def __init__(self, in_dim, dim, num_classes):
        super().__init__()
        self.input_norm = nn.LayerNorm(in_dim, elementwise_affine=False)
        self.embed = nn.Linear(in_dim, dim)
        self.blocks = nn.Sequential(PreNormBlock(dim, 2 * dim), PreNormBlock(dim, 2 * dim))
        self.final_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.head(self.final_norm(self.blocks(self.embed(self.input_norm(x)))))


# the class is the direction of the sample (which of 3 prototypes), not its size
prototypes = rng.normal(size=(3, 10))
labels = rng.integers(0, 3, size=360)
scales = 10 ** rng.uniform(-1, 1, size=(360, 1))
data = scales * (prototypes[labels] + 0.5 * rng.normal(size=(360, 10)))
X = torch.tensor(data, dtype=torch.float32)
y = torch.tensor(labels)

model = Classifier(10, 16, 3)
optimizer = optim.AdamW(model.parameters(), lr=0.01)
criterion = nn.CrossEntropyLoss()
losses = []
for epoch in range(60):
    optimizer.zero_grad()
    loss = criterion(model(X[:300]), y[:300])
    loss.backward()
    optimizer.step()
    losses.append(loss.item())

with torch.no_grad():
    accuracy = (model(X[300:]).argmax(dim=1) == y[300:]).float().mean().item()
print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, held-out accuracy {accuracy:.3f}")

n_affine = sum(p.numel() for m in model.modules() if isinstance(m, nn.LayerNorm)
               for p in m.parameters())
assert n_affine == 2 * 16 * 3 and model.input_norm.weight is None
assert losses[-1] < losses[0] / 10 and not math.isnan(losses[-1])
assert accuracy > 0.93
