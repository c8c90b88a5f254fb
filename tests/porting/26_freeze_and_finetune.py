"""Parameter inspection and transfer learning: list named_parameters with their shapes, count
parameters with numel(), pretrain a backbone, freeze it with requires_grad_(False), and fine-tune
a new head with an optimizer over the trainable parameters only."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(25)


class Net(nn.Module):
    def __init__(self, num_outputs):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
        self.head = nn.Linear(16, num_outputs)

    def forward(self, x):
        return self.head(self.backbone(x))


def count_parameters(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def fit(model, X, y, params, steps, lr=0.01):
    optimizer = optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# task A: 4 classes from the sign pattern of two hidden directions
directions = rng.normal(size=(8, 2))
X = torch.tensor(rng.normal(size=(400, 8)), dtype=torch.float32)
codes = X.numpy() @ directions > 0
y_a = torch.tensor(codes[:, 0] * 2 + codes[:, 1])
# task B: 2 classes from the same features (an XOR of the two signs)
y_b = torch.tensor(codes[:, 0] ^ codes[:, 1]).long()

model = Net(num_outputs=4)
for name, param in model.named_parameters():
    print(f"{name:20s} {tuple(param.shape)!s:10} {param.numel():5d}")
total = count_parameters(model)
pretrain_losses = fit(model, X, y_a, model.parameters(), steps=150)
model.zero_grad()

for param in model.backbone.parameters():
    param.requires_grad_(False)
model.head = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
frozen = {name: p.detach().clone() for name, p in model.backbone.named_parameters()}
trainable = [p for p in model.parameters() if p.requires_grad]
head_before = model.head[0].weight.detach().clone()
finetune_losses = fit(model, X, y_b, trainable, steps=150, lr=0.02)

with torch.no_grad():
    accuracy = (model(X).argmax(dim=1) == y_b).float().mean().item()
print(f"total {total}, trainable now {count_parameters(model, trainable_only=True)}, "
      f"task B accuracy {accuracy:.3f}")

assert total == 8 * 32 + 32 + 32 * 16 + 16 + 16 * 4 + 4 == 884
assert count_parameters(model, trainable_only=True) == 16 * 16 + 16 + 16 * 2 + 2
assert [name for name, _ in model.named_parameters()][:2] == ["backbone.0.weight",
                                                               "backbone.0.bias"]
assert all(not p.requires_grad and p.grad is None for p in model.backbone.parameters())
for name, p in model.backbone.named_parameters():
    assert torch.equal(p, frozen[name]), name
assert not torch.equal(model.head[0].weight, head_before)
assert pretrain_losses[-1] < pretrain_losses[0] / 5
assert finetune_losses[-1] < finetune_losses[0] / 3 and accuracy > 0.9
