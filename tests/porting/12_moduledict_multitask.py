"""A multi-task network: a shared trunk with a classification head and a regression head kept in
an nn.ModuleDict, the activation picked by name from another ModuleDict, one summed loss."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(10)

centers = np.array([[0.0, 3.0], [3.0, -1.5], [-3.0, -1.5]])
labels = rng.integers(0, 3, size=450)
points = centers[labels] + rng.normal(size=(450, 2))
distance = np.linalg.norm(points, axis=1, keepdims=True)
X = torch.tensor(points, dtype=torch.float32)
y_class = torch.tensor(labels)
y_dist = torch.tensor(distance, dtype=torch.float32)


class MultiTaskNet(nn.Module):
    def __init__(self, activation="relu"):
        super().__init__()
        self.activations = nn.ModuleDict({"relu": nn.ReLU(), "tanh": nn.Tanh()})
        self.trunk = nn.Linear(2, 64)
        self.hidden = nn.Linear(64, 64)
        self.heads = nn.ModuleDict({
            "cls": nn.Linear(64, 3),
            "dist": nn.Linear(64, 1),
        })
        self.activation = activation

    def forward(self, x):
        act = self.activations[self.activation]
        features = act(self.hidden(act(self.trunk(x))))
        return {name: head(features) for name, head in self.heads.items()}


model = MultiTaskNet(activation="tanh")
optimizer = optim.Adam(model.parameters(), lr=0.01)
history = []
for step in range(200):
    outputs = model(X[:350])
    loss_cls = F.cross_entropy(outputs["cls"], y_class[:350])
    loss_dist = F.mse_loss(outputs["dist"], y_dist[:350])
    loss = loss_cls + loss_dist
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    history.append((loss_cls.item(), loss_dist.item()))
    if step % 50 == 0:
        print(f"step {step:3d}  ce {loss_cls.item():.4f}  mse {loss_dist.item():.4f}")

model.eval()
with torch.no_grad():
    outputs = model(X[350:])
accuracy = (outputs["cls"].argmax(1) == y_class[350:]).float().mean().item()
dist_mse = F.mse_loss(outputs["dist"], y_dist[350:]).item()
print(f"held-out accuracy {accuracy:.3f}, distance mse {dist_mse:.4f}")

state = model.state_dict()
assert list(model.heads.keys()) == ["cls", "dist"] and "cls" in model.heads
assert "heads.cls.weight" in state and "heads.dist.bias" in state
assert not any(key.startswith("activations") for key in state)
assert outputs["cls"].shape == (100, 3) and outputs["dist"].shape == (100, 1)
assert history[-1][0] < history[0][0] / 5 and history[-1][1] < history[0][1] / 20
assert accuracy > 0.93 and dist_mse < 0.1
