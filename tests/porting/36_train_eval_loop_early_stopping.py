"""A complete training program in the usual structure: main() with train_one_epoch and an
evaluate function decorated with @torch.no_grad(), a history in a defaultdict, early stopping
that keeps the best weights (a cloned state_dict) and restores them at the end."""
import collections

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset


def make_data(seed):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.5, size=(4, 6))
    labels = rng.integers(0, 4, size=600)
    points = centers[labels] + rng.normal(scale=1.2, size=(600, 6))
    X = torch.tensor(points, dtype=torch.float32)
    y = torch.tensor(labels, dtype=torch.long)
    return TensorDataset(X[:400], y[:400]), TensorDataset(X[400:], y[400:])


def build_model():
    return nn.Sequential(
        nn.Linear(6, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(64, 4),
    )


def train_one_epoch(model, loader, criterion, optimizer, device):
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * inputs.size(0)
        correct += outputs.argmax(1).eq(targets).sum().item()
        seen += inputs.size(0)
    return total_loss / seen, correct / seen


@torch.no_grad()
def evaluate(model, loader, criterion, device):
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        outputs = model(inputs)
        total_loss += criterion(outputs, targets).item() * inputs.size(0)
        correct += (outputs.argmax(dim=1) == targets).sum().item()
        seen += inputs.size(0)
    return total_loss / seen, correct / seen


def main():
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_set, val_set = make_data(seed=35)
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=100)

    model = build_model().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

    history = collections.defaultdict(list)
    best_loss, best_state, best_epoch, patience, bad_epochs = float("inf"), None, -1, 5, 0
    for epoch in range(60):
        train_loss, train_acc = train_one_epoch(model, train_loader, criterion, optimizer, device)
        val_loss, val_acc = evaluate(model, val_loader, criterion, device)
        for key, value in [("train_loss", train_loss), ("train_acc", train_acc),
                           ("val_loss", val_loss), ("val_acc", val_acc)]:
            history[key].append(value)
        if epoch % 5 == 0:
            print(f"epoch {epoch:2d} | train {train_loss:.4f} {train_acc:.3f} | "
                  f"val {val_loss:.4f} {val_acc:.3f}")
        if val_loss < best_loss:
            best_loss, best_epoch, bad_epochs = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
            if bad_epochs >= patience:
                print(f"early stop at epoch {epoch}, best epoch {best_epoch}")
                break

    model.load_state_dict(best_state)
    final_loss, final_acc = evaluate(model, val_loader, criterion, device)
    print(f"restored best weights: val loss {final_loss:.4f}, accuracy {final_acc:.3f}")

    assert torch.is_grad_enabled(), "the decorator restores grad mode"
    assert abs(final_loss - best_loss) < 1e-6 and final_loss == min(history["val_loss"])
    assert "0.weight" in best_state and "1.running_mean" in best_state
    assert int(best_state["1.num_batches_tracked"]) == 13 * (best_epoch + 1)
    assert history["train_loss"][-1] < history["train_loss"][0] / 2
    assert final_acc > 0.9


if __name__ == "__main__":
    main()
