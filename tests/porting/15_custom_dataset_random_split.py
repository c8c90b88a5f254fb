"""A custom Dataset subclass (with a transform) split by random_split into training and
validation Subsets, each wrapped in a DataLoader; the training loop of the data-loading
tutorial."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, Dataset, random_split

torch.manual_seed(0)


class RingsDataset(Dataset):
    """Points on two noisy concentric rings; the label is the ring."""

    def __init__(self, n_samples, seed=0, transform=None):
        rng = np.random.default_rng(seed)
        angle = rng.uniform(0, 2 * np.pi, size=n_samples)
        self.labels = rng.integers(0, 2, size=n_samples)
        radius = 1.0 + 1.5 * self.labels + rng.normal(scale=0.2, size=n_samples)
        self.points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
        self.points = self.points.astype(np.float32)
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        point = torch.tensor(self.points[idx])
        label = torch.tensor(self.labels[idx])
        if self.transform:
            point = self.transform(point)
        return point, label


def scale(point):
    return point / 2.5


dataset = RingsDataset(300, seed=13, transform=scale)
train_set, val_set = random_split(dataset, [240, 60], generator=torch.Generator().manual_seed(42))
train_loader = DataLoader(train_set, batch_size=16, shuffle=True)
val_loader = DataLoader(val_set, batch_size=32, shuffle=False)

sample, target = dataset[0]
first_inputs, first_labels = next(iter(train_loader))
print(f"sample {sample.tolist()} -> {target.item()}, batch {tuple(first_inputs.shape)}")

model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.01)

for epoch in range(12):
    model.train()
    train_loss = 0.0
    for inputs, labels in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
        train_loss += loss.item() * inputs.size(0)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, labels in val_loader:
            predicted = model(inputs).argmax(dim=1)
            correct += (predicted == labels).sum().item()
            total += labels.size(0)
    print(f"epoch {epoch:2d}  train loss {train_loss / len(train_set):.4f}  "
          f"val acc {correct / total:.3f}")

assert len(dataset) == 300 and len(train_set) == 240 and len(val_set) == 60
assert sorted(list(train_set.indices) + list(val_set.indices)) == list(range(300))
assert sample.shape == (2,) and sample.dtype == torch.float32 and target.dtype == torch.int64
assert first_inputs.shape == (16, 2) and first_labels.shape == (16,)
assert len(train_loader) == 15 and len(val_loader) == 2 and total == 60
assert correct / total > 0.95
