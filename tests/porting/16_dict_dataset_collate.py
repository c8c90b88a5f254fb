"""A Dataset whose items are dicts (NumPy features, an int label, a per-sample weight), batched
by the DataLoader's default collate into a dict of tensors; a weighted regression loss."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)


class HousingDataset(Dataset):
    """Synthetic houses: 5 numeric features, a region id and a price to predict."""

    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.features = rng.normal(size=(n, 5)).astype(np.float32)
        self.region = rng.integers(0, 4, size=n)
        coef = np.array([1.5, -2.0, 0.5, 0.0, 1.0], dtype=np.float32)
        self.price = (self.features @ coef + 0.8 * self.region
                      + rng.normal(scale=0.1, size=n)).astype(np.float32)
        self.weight = np.where(self.region == 0, 2.0, 1.0).astype(np.float32)

    def __len__(self):
        return len(self.price)

    def __getitem__(self, index):
        return {
            "features": self.features[index],
            "region": int(self.region[index]),
            "price": self.price[index:index + 1],
            "weight": torch.tensor(self.weight[index]),
        }


class PriceModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.region_embedding = nn.Embedding(4, 3)
        self.mlp = nn.Sequential(nn.Linear(5 + 3, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, features, region):
        return self.mlp(torch.cat([features, self.region_embedding(region)], dim=1))


loader = DataLoader(HousingDataset(320, seed=14), batch_size=32, shuffle=True)
batch = next(iter(loader))
assert sorted(batch) == ["features", "price", "region", "weight"]
assert batch["features"].shape == (32, 5) and batch["features"].dtype == torch.float32
assert batch["region"].shape == (32,) and batch["region"].dtype == torch.int64
assert batch["price"].shape == (32, 1) and batch["weight"].shape == (32,)

model = PriceModel()
optimizer = optim.Adam(model.parameters(), lr=0.01)
epoch_losses = []
for epoch in range(25):
    total = 0.0
    for batch in loader:
        prediction = model(batch["features"], batch["region"])
        per_sample = (prediction - batch["price"]).pow(2).squeeze(1)
        loss = (batch["weight"] * per_sample).sum() / batch["weight"].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    epoch_losses.append(total / len(loader))
    if epoch % 5 == 0:
        print(f"epoch {epoch:2d}  weighted mse {epoch_losses[-1]:.4f}")

test = HousingDataset(100, seed=15)
with torch.no_grad():
    prediction = model(torch.from_numpy(test.features), torch.from_numpy(test.region))
    test_mse = ((prediction.squeeze(1) - torch.from_numpy(test.price)) ** 2).mean().item()
print(f"test mse {test_mse:.4f} (price variance {test.price.var():.2f})")

assert epoch_losses[-1] < epoch_losses[0] / 10
assert test_mse < 0.1 * test.price.var()
