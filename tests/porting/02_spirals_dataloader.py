"""Three interleaved spirals classified by an MLP trained with mini-batches from a TensorDataset
and a shuffling DataLoader, with the running-loss bookkeeping of the PyTorch tutorials."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
rng = np.random.default_rng(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

N_PER_CLASS, N_CLASSES = 100, 3
points, labels = [], []
for c in range(N_CLASSES):
    r = np.linspace(0.1, 1.0, N_PER_CLASS)
    theta = np.linspace(c * 2 * np.pi / N_CLASSES, c * 2 * np.pi / N_CLASSES + 3.0, N_PER_CLASS)
    theta = theta + rng.normal(scale=0.1, size=N_PER_CLASS)
    points.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
    labels.append(np.full(N_PER_CLASS, c))
X = torch.tensor(np.concatenate(points), dtype=torch.float32)
y = torch.tensor(np.concatenate(labels), dtype=torch.long)

dataset = TensorDataset(X, y)
loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=0, drop_last=True)

model = nn.Sequential(
    nn.Linear(2, 64), nn.ReLU(),
    nn.Linear(64, 64), nn.ReLU(),
    nn.Linear(64, N_CLASSES),
).to(device)
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.01)

history = []
for epoch in range(40):
    model.train()
    running_loss, seen = 0.0, 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
        running_loss += loss.item() * inputs.size(0)
        seen += inputs.size(0)
    epoch_loss = running_loss / seen
    history.append(epoch_loss)
    if epoch % 10 == 0:
        print(f"epoch {epoch:2d}  loss {epoch_loss:.4f}")

model.eval()
with torch.no_grad():
    accuracy = (model(X.to(device)).argmax(1) == y.to(device)).float().mean().item()
print(f"train accuracy {accuracy:.3f}")

assert len(dataset) == 300 and len(loader) == 9 and seen == 9 * 32
assert history[-1] < history[0] / 4
assert accuracy > 0.9
