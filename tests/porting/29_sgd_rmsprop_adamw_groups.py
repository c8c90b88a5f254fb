"""SGD with Nesterov momentum, RMSprop and AdamW with two parameter groups (no weight decay on
biases, the transformer recipe); AdamW's decoupled decay shrinks the weights compared with plain
Adam, and per-group settings are read back from param_groups."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(28)

X = torch.tensor(rng.normal(size=(256, 10)), dtype=torch.float32)
y = torch.tensor(rng.integers(0, 2, size=256))
X[:, 0] += 2.0 * y - 1.0                      # one informative feature, nine noisy ones


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))


def train(model, optimizer, steps=120):
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def weight_norm(model):
    return sum(p.pow(2).sum() for n, p in model.named_parameters() if n.endswith("weight")).sqrt()


runs = {}
model = make_model()
runs["SGD"] = train(model, optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True))
model = make_model()
runs["RMSprop"] = train(model, optim.RMSprop(model.parameters(), lr=0.002, alpha=0.9))

adam_model = make_model()
runs["Adam"] = train(adam_model, optim.Adam(adam_model.parameters(), lr=0.01))

adamw_model = make_model()
decay = [p for n, p in adamw_model.named_parameters() if n.endswith("weight")]
no_decay = [p for n, p in adamw_model.named_parameters() if n.endswith("bias")]
adamw = optim.AdamW([
    {"params": decay},
    {"params": no_decay, "weight_decay": 0.0},
], lr=0.01, weight_decay=0.5)
runs["AdamW"] = train(adamw_model, adamw)

for name, losses in runs.items():
    print(f"{name:8s} loss {losses[0]:.4f} -> {losses[-1]:.4f}")
adam_norm, adamw_norm = weight_norm(adam_model).item(), weight_norm(adamw_model).item()
print(f"weight norm: Adam {adam_norm:.3f}, AdamW {adamw_norm:.3f}")

assert len(adamw.param_groups) == 2
assert adamw.param_groups[0]["weight_decay"] == 0.5 and adamw.param_groups[1]["weight_decay"] == 0
assert adamw.param_groups[1]["lr"] == 0.01 and adamw.param_groups[0]["betas"] == (0.9, 0.999)
assert len(adamw.param_groups[0]["params"]) == 2 == len(adamw.param_groups[1]["params"])
assert adamw_norm < 0.9 * adam_norm
for name, losses in runs.items():
    assert losses[-1] < losses[0] / 2, name
    assert losses[-1] < 0.35, name
