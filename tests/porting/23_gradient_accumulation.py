"""Gradient accumulation: four micro-batches, each loss divided by the number of accumulation
steps, backward() summing into .grad, one optimizer step per window. The accumulated gradient
equals the full-batch gradient, and training with it converges."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(22)

X = torch.tensor(rng.normal(size=(256, 6)), dtype=torch.float32)
w_true = torch.tensor(rng.normal(size=(6, 1)), dtype=torch.float32)
y = torch.relu(X @ w_true) + 0.05 * torch.tensor(rng.normal(size=(256, 1)), dtype=torch.float32)

model = nn.Sequential(nn.Linear(6, 24), nn.ReLU(), nn.Linear(24, 1))
criterion = nn.MSELoss()
ACCUMULATION_STEPS, MICRO_BATCH = 4, 16

# the full-batch gradient of the first 64 samples...
model.zero_grad()
criterion(model(X[:64]), y[:64]).backward()
full_grads = [p.grad.clone() for p in model.parameters()]

# ...equals the sum of four scaled micro-batch gradients
model.zero_grad()
for inputs, targets in zip(X[:64].split(MICRO_BATCH), y[:64].split(MICRO_BATCH)):
    loss = criterion(model(inputs), targets) / ACCUMULATION_STEPS
    loss.backward()
for p, full in zip(model.parameters(), full_grads):
    assert torch.allclose(p.grad, full, atol=1e-6), (p.grad - full).abs().max()

optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
optimizer.zero_grad()
epoch_losses, n_steps = [], 0
for epoch in range(15):
    running = 0.0
    for i, (inputs, targets) in enumerate(zip(X.split(MICRO_BATCH), y.split(MICRO_BATCH))):
        loss = criterion(model(inputs), targets) / ACCUMULATION_STEPS
        loss.backward()
        running += loss.item()
        if (i + 1) % ACCUMULATION_STEPS == 0:
            optimizer.step()
            optimizer.zero_grad()
            n_steps += 1
    epoch_losses.append(running / (len(X) // (MICRO_BATCH * ACCUMULATION_STEPS)))
    if epoch % 5 == 0:
        print(f"epoch {epoch:2d}  loss {epoch_losses[-1]:.5f}")

assert n_steps == 15 * 4
assert all(p.grad is None or bool((p.grad == 0).all()) for p in model.parameters())
assert epoch_losses[-1] < epoch_losses[0] / 10
