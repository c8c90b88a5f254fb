"""Custom weight initialisation with nn.init functions applied through model.apply(init_fn):
Xavier-uniform and Kaiming-normal weights, zero or constant biases, checked against the bounds
and spreads the formulas promise, then a training run from each initialisation."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(24)


def make_model():
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 3))


def init_xavier(m):
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def init_kaiming(m):
    if type(m) == nn.Linear:
        nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        nn.init.constant_(m.bias, 0.01)


xavier_model = make_model()
returned = xavier_model.apply(init_xavier)
for m in xavier_model.modules():
    if isinstance(m, nn.Linear):
        fan_out, fan_in = m.weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert m.weight.abs().max().item() <= bound
        assert m.weight.abs().max().item() > 0.9 * bound
        assert torch.equal(m.bias, torch.zeros_like(m.bias))

kaiming_model = make_model()
kaiming_model.apply(init_kaiming)
hidden = kaiming_model[2]
expected_std = math.sqrt(2.0 / 256)
print(f"kaiming std {hidden.weight.std().item():.4f} (expected {expected_std:.4f})")
assert abs(hidden.weight.std().item() - expected_std) < 0.05 * expected_std
assert abs(hidden.weight.mean().item()) < 0.1 * expected_std
assert torch.allclose(hidden.bias, torch.full_like(hidden.bias, 0.01))

# Kaiming init keeps the activation scale through ReLU layers
x = torch.randn(512, 64)
with torch.no_grad():
    h1 = kaiming_model[1](kaiming_model[0](x))
    h2 = kaiming_model[3](kaiming_model[2](h1))
ratio = (h2.pow(2).mean() / h1.pow(2).mean()).item()
print(f"second-moment ratio across a ReLU layer: {ratio:.3f}")
assert 0.7 < ratio < 1.4

# small normal init by hand, under no_grad
with torch.no_grad():
    layer = nn.Linear(10, 10)
    nn.init.normal_(layer.weight, mean=0.0, std=0.01)
    layer.bias.fill_(0.5)
assert layer.weight.abs().max().item() < 0.06 and torch.all(layer.bias == 0.5)

centers = rng.normal(size=(3, 64))
labels = rng.integers(0, 3, size=300)
X = torch.tensor(centers[labels] + rng.normal(size=(300, 64)), dtype=torch.float32)
y = torch.tensor(labels)
for name, model in [("xavier", xavier_model), ("kaiming", kaiming_model)]:
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    first = None
    for step in range(30):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    accuracy = (model(X).argmax(1) == y).float().mean().item()
    print(f"{name}: loss {first:.4f} -> {loss.item():.4f}, accuracy {accuracy:.3f}")
    assert loss.item() < first / 5 and accuracy > 0.95

assert returned is xavier_model
