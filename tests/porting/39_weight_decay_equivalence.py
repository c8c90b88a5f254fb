"""L2 regularisation two ways: SGD's weight_decay=wd, and a penalty wd/2 * sum(p**2) added to the
loss by hand. With plain SGD they are the same update, so both runs end at the same weights."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

rng = np.random.default_rng(38)
X = torch.tensor(rng.normal(size=(128, 5)), dtype=torch.float32)
y = torch.tensor(rng.normal(size=(128, 1)), dtype=torch.float32) + X[:, :1]
WD = 0.1


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1))


decay_model = build()
decay_opt = optim.SGD(decay_model.parameters(), lr=0.1, weight_decay=WD)
penalty_model = build()
penalty_opt = optim.SGD(penalty_model.parameters(), lr=0.1)
plain_model = build()
plain_opt = optim.SGD(plain_model.parameters(), lr=0.1)

for step in range(50):
    decay_opt.zero_grad()
    nn.functional.mse_loss(decay_model(X), y).backward()
    decay_opt.step()

    penalty_opt.zero_grad()
    l2 = sum(p.pow(2).sum() for p in penalty_model.parameters())
    (nn.functional.mse_loss(penalty_model(X), y) + WD / 2 * l2).backward()
    penalty_opt.step()

    plain_opt.zero_grad()
    nn.functional.mse_loss(plain_model(X), y).backward()
    plain_opt.step()


def total_norm(model):
    return torch.sqrt(sum(p.detach().pow(2).sum() for p in model.parameters())).item()


print(f"weight norms: weight_decay {total_norm(decay_model):.4f}, "
      f"penalty {total_norm(penalty_model):.4f}, none {total_norm(plain_model):.4f}")
for a, b in zip(decay_model.parameters(), penalty_model.parameters()):
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
assert total_norm(decay_model) < 0.95 * total_norm(plain_model)
