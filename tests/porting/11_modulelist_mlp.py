"""An MLP whose depth is a constructor argument: Linear layers held in an nn.ModuleList and
iterated in forward, the parameter count checked against the formula, fitting a 2-D function."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(9)


class MLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])])
        self.activation = nn.Tanh()

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x


sizes = [2, 32, 32, 16, 1]
model = MLP(sizes)
n_params = sum(p.numel() for p in model.parameters())
expected = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
print(model)
print(f"{len(model.layers)} layers, {n_params} parameters")

inputs = rng.uniform(-2, 2, size=(400, 2)).astype(np.float32)
targets = (np.sin(1.5 * inputs[:, 0]) * np.cos(inputs[:, 1]))[:, None].astype(np.float32)
X, Y = torch.from_numpy(inputs), torch.from_numpy(targets)

optimizer = optim.Adam(model.parameters(), lr=0.01)
criterion = nn.MSELoss()
losses = []
for epoch in range(300):
    optimizer.zero_grad()
    loss = criterion(model(X), Y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    if epoch % 100 == 0:
        print(f"epoch {epoch:3d}  mse {loss.item():.5f}")

# a ModuleList is a list: append registers the new layer's parameters too
model.layers.append(nn.Linear(1, 1))
keys = list(model.state_dict().keys())

assert n_params == expected == 1697
assert isinstance(model.layers[0], nn.Linear) and model.layers[-2].out_features == 1
assert len(model.layers) == 5 and "layers.4.weight" in keys and len(keys) == 10
assert sum(p.numel() for p in model.parameters()) == n_params + 2
assert losses[-1] < losses[0] / 20
