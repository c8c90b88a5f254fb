"""Adadelta, Adamax and NAdam (and Adam for reference) on one regression, every optimizer
starting from the same initial weights restored with load_state_dict; each one must cut the
loss by a clear factor, and their state_dicts carry the expected per-parameter buffers."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(27)

X = torch.tensor(rng.uniform(-1, 1, size=(200, 4)), dtype=torch.float32)
y = (X[:, 0] * X[:, 1] - X[:, 2] + 0.5 * X[:, 3] ** 2).unsqueeze(1)

model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
initial_state = {k: v.clone() for k, v in model.state_dict().items()}
criterion = nn.MSELoss()

optimizers = {
    "Adadelta": lambda params: optim.Adadelta(params, lr=1.0, rho=0.9),
    "Adamax": lambda params: optim.Adamax(params, lr=0.02),
    "NAdam": lambda params: optim.NAdam(params, lr=0.01),
    "Adam": lambda params: optim.Adam(params, lr=0.01),
}
results, states = {}, {}
for name, make_optimizer in optimizers.items():
    model.load_state_dict(initial_state)
    optimizer = make_optimizer(model.parameters())
    losses = []
    for step in range(150):
        optimizer.zero_grad()
        loss = criterion(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    results[name] = losses
    states[name] = optimizer.state_dict()
    print(f"{name:9s} loss {losses[0]:.4f} -> {losses[-1]:.5f}")

buffers = {name: sorted(state["state"][0]) for name, state in states.items()}
print(buffers)

assert buffers["Adadelta"] == ["acc_delta", "square_avg", "step"]
assert buffers["Adamax"] == ["exp_avg", "exp_inf", "step"]
assert "exp_avg_sq" in buffers["NAdam"] and "mu_product" in buffers["NAdam"]
assert states["Adadelta"]["param_groups"][0]["rho"] == 0.9
assert len({round(losses[0], 6) for losses in results.values()}) == 1, "same start"
for name, losses in results.items():
    assert losses[-1] < losses[0] / 10, name
