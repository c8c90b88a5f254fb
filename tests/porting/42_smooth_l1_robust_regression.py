"""Robust regression: with 10% of the targets corrupted by large outliers, nn.SmoothL1Loss
recovers the true line where nn.MSELoss is pulled away; nn.SmoothL1Loss's value checked against
its piecewise definition."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(41)

x = torch.linspace(-2, 2, 200).unsqueeze(1)
y = 1.5 * x - 0.5 + 0.1 * torch.tensor(rng.normal(size=(200, 1)), dtype=torch.float32)
outliers = torch.tensor(rng.choice(200, size=20, replace=False))
y[outliers] = y[outliers] + 20.0

prediction, target = torch.tensor([0.0, 0.5, 3.0]), torch.tensor([0.2, 2.0, 0.0])
diff = (prediction - target).abs()
by_hand = torch.where(diff < 1.0, 0.5 * diff ** 2, diff - 0.5).mean()
assert torch.allclose(nn.SmoothL1Loss()(prediction, target), by_hand)
assert torch.allclose(nn.SmoothL1Loss(reduction="sum")(prediction, target), by_hand * 3)


def fit(criterion):
    model = nn.Linear(1, 1)
    optimizer = optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    return model.weight.item(), model.bias.item()


robust = fit(nn.SmoothL1Loss())
squared = fit(nn.MSELoss())
print(f"SmoothL1: slope {robust[0]:.3f} bias {robust[1]:.3f}; "
      f"MSE: slope {squared[0]:.3f} bias {squared[1]:.3f}")

assert abs(robust[0] - 1.5) < 0.1 and abs(robust[1] + 0.5) < 0.2
assert abs(squared[1] + 0.5) > 1.0              # the outliers drag the MSE fit up by ~2
