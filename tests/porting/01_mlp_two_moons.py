"""Two interleaving half-moons classified by a small MLP: the first tutorial most people write,
with the device idiom, full-batch Adam and an accuracy computed with argmax/eq/sum."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(0)

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"Using device: {device}")


def make_moons(n, noise, rng):
    t = rng.uniform(0.0, np.pi, size=n)
    labels = rng.integers(0, 2, size=n)
    x = np.where(labels == 0, np.cos(t), 1.0 - np.cos(t))
    y = np.where(labels == 0, np.sin(t), 0.5 - np.sin(t))
    points = np.stack([x, y], axis=1) + rng.normal(scale=noise, size=(n, 2))
    return points.astype(np.float32), labels


points, labels = make_moons(400, 0.1, rng)
X = torch.tensor(points).to(device)
y = torch.tensor(labels, dtype=torch.long).to(device)
X_train, y_train = X[:300], y[:300]
X_test, y_test = X[300:], y[300:]

model = nn.Sequential(
    nn.Linear(2, 32),
    nn.ReLU(),
    nn.Linear(32, 32),
    nn.ReLU(),
    nn.Linear(32, 2),
).to(device)
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.01)

losses = []
for epoch in range(200):
    model.train()
    optimizer.zero_grad()
    outputs = model(X_train)
    loss = criterion(outputs, y_train)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    if epoch % 50 == 0:
        print(f"epoch {epoch:3d}  loss {loss.item():.4f}")

model.eval()
with torch.no_grad():
    predicted = model(X_test).argmax(dim=1)
    correct = predicted.eq(y_test).sum().item()
accuracy = correct / len(y_test)
confusion = np.zeros((2, 2), dtype=np.int64)
np.add.at(confusion, (y_test.cpu().numpy(), predicted.cpu().numpy()), 1)
print(f"test accuracy: {accuracy:.3f}\nconfusion matrix:\n{confusion}")

assert X.device == device and next(model.parameters()).device == device
assert X_train.shape == (300, 2) and outputs.shape == (300, 2)
assert predicted.dtype == torch.int64 and predicted.shape == (100,)
assert confusion.sum() == 100 and np.trace(confusion) == correct
assert losses[-1] < losses[0] / 5
assert accuracy > 0.95
