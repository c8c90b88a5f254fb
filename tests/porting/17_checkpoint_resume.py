"""Checkpoint and resume, as in PyTorch's "saving and loading a general checkpoint" recipe: save
epoch, model, optimizer state and loss to a file in a temporary directory, load it with
weights_only=True into freshly built objects, and finish training; the resumed run must end
exactly where the uninterrupted one does."""
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

data_rng = np.random.default_rng(16)
X = torch.tensor(data_rng.normal(size=(128, 4)), dtype=torch.float32)
y = (X[:, :1] * 2 - X[:, 1:2] + 0.5 * X[:, 2:3] * X[:, 3:4]).tanh()
EPOCHS, BATCH = 20, 16


def build(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    return model, optimizer


def train(model, optimizer, start_epoch, end_epoch):
    criterion = nn.MSELoss()
    for epoch in range(start_epoch, end_epoch):
        # the batch order is a function of the epoch, so a resumed run sees the same batches
        order = np.random.default_rng(epoch).permutation(len(X))
        for start in range(0, len(X), BATCH):
            index = torch.tensor(order[start:start + BATCH])
            optimizer.zero_grad()
            loss = criterion(model(X[index]), y[index])
            loss.backward()
            optimizer.step()
        if epoch % 5 == 4:
            print(f"epoch {epoch}  loss {loss.item():.5f}")
    return loss


# the uninterrupted run
model, optimizer = build(seed=0)
initial_loss = nn.MSELoss()(model(X), y).item()
train(model, optimizer, 0, EPOCHS)
reference = model.state_dict()

# the interrupted run: train 10 epochs, save, rebuild (different init), load, finish
with tempfile.TemporaryDirectory() as tmpdir:
    path = os.path.join(tmpdir, "checkpoint.pt")
    model, optimizer = build(seed=0)
    loss = train(model, optimizer, 0, 10)
    torch.save({
        "epoch": 10,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "loss": loss.item(),
    }, path)
    assert os.path.getsize(path) > 0

    model, optimizer = build(seed=123)
    checkpoint = torch.load(path, weights_only=True)
    model.load_state_dict(checkpoint["model_state_dict"])
    optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    start_epoch = checkpoint["epoch"]
    print(f"resuming at epoch {start_epoch}, saved loss {checkpoint['loss']:.5f}")
    model.train()
    train(model, optimizer, start_epoch, EPOCHS)

resumed = model.state_dict()
final_loss = nn.MSELoss()(model(X), y).item()
print(f"loss {initial_loss:.4f} -> {final_loss:.4f}")

assert isinstance(checkpoint["epoch"], int) and isinstance(checkpoint["loss"], float)
assert list(resumed) == list(reference) == ["0.weight", "0.bias", "2.weight", "2.bias"]
for name in reference:
    assert torch.equal(resumed[name], reference[name]), name
assert len(optimizer.state_dict()["state"]) == 4
assert final_loss < initial_loss / 5
