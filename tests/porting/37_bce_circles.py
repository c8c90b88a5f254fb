"""Binary classification of concentric circles two ways: logits with BCEWithLogitsLoss, and a
Sigmoid output with BCELoss; predictions thresholded at 0.5 with (probs > 0.5).float()."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(36)

n = 400
angle = rng.uniform(0, 2 * np.pi, size=n)
label = rng.integers(0, 2, size=n)
radius = np.where(label == 1, 0.5, 1.0) + rng.normal(scale=0.08, size=n)
X = torch.tensor(np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1),
                 dtype=torch.float32)
y = torch.tensor(label, dtype=torch.float32).unsqueeze(1)


def body():
    return [nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)]


results = {}
for name, model, criterion in [
    ("logits", nn.Sequential(*body()), nn.BCEWithLogitsLoss()),
    ("sigmoid", nn.Sequential(*body(), nn.Sigmoid()), nn.BCELoss()),
]:
    optimizer = optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for epoch in range(150):
        optimizer.zero_grad()
        loss = criterion(model(X[:300]), y[:300])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        output = model(X[300:])
        probs = torch.sigmoid(output) if name == "logits" else output
        predictions = (probs > 0.5).float()
        accuracy = predictions.eq(y[300:]).float().mean().item()
    results[name] = (losses, accuracy, probs)
    print(f"{name:8s} loss {losses[0]:.4f} -> {losses[-1]:.4f}, accuracy {accuracy:.3f}")

logits = torch.randn(10, 1)
assert torch.allclose(nn.BCEWithLogitsLoss()(logits, y[:10]),
                      nn.BCELoss()(torch.sigmoid(logits), y[:10]), atol=1e-6)
for name, (losses, accuracy, probs) in results.items():
    assert probs.shape == (100, 1) and bool(((probs >= 0) & (probs <= 1)).all())
    assert losses[-1] < losses[0] / 10, name
    assert accuracy > 0.97, name
