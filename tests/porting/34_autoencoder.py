"""An MLP autoencoder with a 2-unit bottleneck on 10-D data that lies near a 2-D surface, trained
from a single-tensor TensorDataset (batches unpack as one-element tuples)."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
rng = np.random.default_rng(33)

latent = rng.uniform(-1, 1, size=(512, 2))
mixing = rng.normal(size=(2, 10))
data = np.tanh(latent @ mixing) + 0.02 * rng.normal(size=(512, 10))
X = torch.tensor(data, dtype=torch.float32)


class AutoEncoder(nn.Module):
    def __init__(self, n_features, bottleneck):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_features, 32), nn.ELU(), nn.Linear(32, bottleneck))
        self.decoder = nn.Sequential(nn.Linear(bottleneck, 32), nn.ELU(), nn.Linear(32, n_features))

    def forward(self, x):
        return self.decoder(self.encoder(x))


model = AutoEncoder(10, 2)
loader = DataLoader(TensorDataset(X[:448]), batch_size=64, shuffle=True)
optimizer = optim.Adam(model.parameters(), lr=0.005)
criterion = nn.MSELoss()

for epoch in range(60):
    total = 0.0
    for (batch,) in loader:
        optimizer.zero_grad()
        loss = criterion(model(batch), batch)
        loss.backward()
        optimizer.step()
        total += loss.item() * batch.size(0)
    if epoch % 20 == 0:
        print(f"epoch {epoch:2d}  reconstruction mse {total / 448:.5f}")

model.eval()
with torch.no_grad():
    codes = model.encoder(X[448:])
    reconstruction = model(X[448:])
    test_mse = criterion(reconstruction, X[448:]).item()
baseline = X[448:].var(dim=0, unbiased=False).mean().item()   # predicting the mean
print(f"test mse {test_mse:.5f}, mean-prediction mse {baseline:.5f}")

assert codes.shape == (64, 2) and reconstruction.shape == X[448:].shape
assert test_mse < baseline / 10
