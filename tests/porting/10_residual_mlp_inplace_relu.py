"""A ResNet-style residual MLP: blocks of Linear-BatchNorm1d-ReLU(inplace=True) with an identity
shortcut added in place (out += identity), classifying points inside or outside a sphere in 6-D
(with a margin between the two shells)."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(8)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

DIM = 6
points = rng.normal(size=(900, DIM)).astype(np.float32)
radius = np.linalg.norm(points, axis=1)
keep = np.abs(radius - np.median(radius)) > 0.25   # a margin between the two classes
points, radius = points[keep][:600], radius[keep][:600]
labels = (radius > np.median(radius)).astype(np.int64)
X = torch.from_numpy(points).to(device)
y = torch.from_numpy(labels).to(device)


class ResidualBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.bn1 = nn.BatchNorm1d(width)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(width, width)
        self.bn2 = nn.BatchNorm1d(width)

    def forward(self, x):
        identity = x
        out = self.fc1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.fc2(out)
        out = self.bn2(out)
        out += identity
        out = self.relu(out)
        return out


class ResidualMLP(nn.Module):
    def __init__(self, in_features, width, num_blocks, num_classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(in_features, width), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(num_blocks)])
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


model = ResidualMLP(DIM, 32, num_blocks=2, num_classes=2).to(device)
optimizer = optim.Adam(model.parameters(), lr=0.005)
criterion = nn.CrossEntropyLoss()

X_train, y_train, X_test, y_test = X[:500], y[:500], X[500:], y[500:]
losses = []
for epoch in range(20):
    model.train()
    permutation = torch.randperm(500)
    for start in range(0, 500, 50):
        batch = permutation[start:start + 50]
        optimizer.zero_grad()
        loss = criterion(model(X_train[batch]), y_train[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    if epoch % 5 == 0:
        print(f"epoch {epoch:2d}  loss {loss.item():.4f}")

model.eval()
with torch.no_grad():
    test_accuracy = (model(X_test).argmax(1) == y_test).float().mean().item()
    activations = model.blocks(model.stem(X_test))
print(f"test accuracy {test_accuracy:.3f}")

relu = nn.ReLU(inplace=True)
values = torch.tensor([-1.0, 0.5, -0.25, 2.0])
assert torch.equal(relu(values.clone()), torch.tensor([0.0, 0.5, 0.0, 2.0]))
assert activations.shape == (100, 32) and bool((activations >= 0).all())
assert not model.blocks[0].bn1.training and model.blocks[0].bn1.running_mean.shape == (32,)
assert np.mean(losses[-10:]) < np.mean(losses[:10]) / 3
assert test_accuracy > 0.9
