"""Linear regression y = 3x + 2 with nn.Linear(1, 1): linspace inputs, MSELoss, plain SGD, and
the learned slope and intercept read back with .item()."""
import numpy as np
import torch
from torch import nn, optim

torch.manual_seed(0)
rng = np.random.default_rng(3)

x = torch.linspace(-1, 1, 100).unsqueeze(1)
noise = torch.tensor(rng.normal(scale=0.1, size=(100, 1)), dtype=torch.float32)
y = 3 * x + 2 + noise

model = nn.Linear(1, 1)
loss_fn = nn.MSELoss()
optimizer = optim.SGD(model.parameters(), lr=0.1)

first_loss = None
for epoch in range(300):
    prediction = model(x)
    loss = loss_fn(prediction, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if first_loss is None:
        first_loss = loss.item()
    if (epoch + 1) % 100 == 0:
        print(f"Epoch [{epoch + 1}/300], Loss: {loss:.4f}")

slope, intercept = model.weight.item(), model.bias.item()
print(f"learned y = {slope:.3f} x + {intercept:.3f}")

assert x.shape == (100, 1) and x.dtype == torch.float32
assert abs(slope - 3.0) < 0.1 and abs(intercept - 2.0) < 0.05
assert loss.item() < 0.02 < first_loss
