"""A bag-of-embeddings text classifier: generated "sentences" of variable length, padded with
index 0, embedded with nn.Embedding(padding_idx=0) and mean-pooled over the real tokens."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
rng = np.random.default_rng(7)

VOCAB, PAD, MAX_LEN, N_CLASSES = 60, 0, 15, 3
KEYWORDS = {0: [1, 2, 3, 4, 5], 1: [6, 7, 8, 9, 10], 2: [11, 12, 13, 14, 15]}


def make_sentence(label):
    length = rng.integers(5, MAX_LEN + 1)
    words = rng.integers(16, VOCAB, size=length)
    slots = rng.choice(length, size=2, replace=False)
    words[slots] = rng.choice(KEYWORDS[label], size=2)
    return np.concatenate([words, np.full(MAX_LEN - length, PAD)])


labels = rng.integers(0, N_CLASSES, size=450)
sentences = np.stack([make_sentence(label) for label in labels])
tokens = torch.tensor(sentences, dtype=torch.long)
targets = torch.tensor(labels, dtype=torch.long)


class MeanPoolClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.fc = nn.Linear(embed_dim, num_classes)

    def forward(self, tokens):
        embedded = self.embedding(tokens)                      # (batch, seq, embed)
        mask = (tokens != PAD).unsqueeze(-1).float()           # (batch, seq, 1)
        pooled = (embedded * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.fc(pooled)


model = MeanPoolClassifier(VOCAB, 16, N_CLASSES)
assert torch.all(model.embedding.weight[PAD] == 0)

train_loader = DataLoader(TensorDataset(tokens[:360], targets[:360]), batch_size=30,
                          shuffle=True)
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.02)
for epoch in range(15):
    total = 0.0
    for batch_tokens, batch_targets in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(batch_tokens), batch_targets)
        loss.backward()
        optimizer.step()
        total += loss.item()
    if epoch % 5 == 0:
        print(f"epoch {epoch:2d}  mean batch loss {total / len(train_loader):.4f}")

model.eval()
with torch.no_grad():
    logits = model(tokens[360:])
accuracy = (logits.argmax(1) == targets[360:]).float().mean().item()
print(f"held-out accuracy {accuracy:.3f}")

assert tokens.shape == (450, MAX_LEN) and logits.shape == (90, N_CLASSES)
# the padding row is never trained: zero gradient, still zero after 180 Adam steps
assert torch.all(model.embedding.weight.grad[PAD] == 0)
assert torch.all(model.embedding.weight[PAD] == 0)
assert accuracy > 0.93
