"""A next-token language model (Embedding, GRU, Linear) on sequences that count up modulo 8 with a
per-sequence stride, trained with logits.view(-1, vocab); then greedy generation one token at a
time, carrying the hidden state."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(34)

VOCAB, T, N = 8, 12, 300
starts = rng.integers(0, VOCAB, size=(N, 1))
strides = rng.integers(1, 4, size=(N, 1))
sequences = torch.tensor((starts + strides * np.arange(T + 1)) % VOCAB)
inputs, targets = sequences[:, :-1], sequences[:, 1:]


class CharGRU(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_dim):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.fc = nn.Linear(hidden_dim, vocab_size)

    def forward(self, tokens, hidden=None):
        output, hidden = self.gru(self.embed(tokens), hidden)
        return self.fc(output), hidden


model = CharGRU(VOCAB, 16, 32)
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.01)
for epoch in range(60):
    optimizer.zero_grad()
    logits, _ = model(inputs)
    loss = criterion(logits.view(-1, VOCAB), targets.reshape(-1))
    loss.backward()
    optimizer.step()
    if epoch % 20 == 0:
        print(f"epoch {epoch:2d}  loss {loss.item():.4f}")

model.eval()
with torch.no_grad():
    logits, _ = model(inputs)
    # from the second position on, the stride is known
    accuracy = (logits.argmax(-1)[:, 1:] == targets[:, 1:]).float().mean().item()

    prompt = torch.tensor([[3, 5]])                  # stride 2
    logits, hidden = model(prompt)
    token = logits[:, -1].argmax(dim=-1, keepdim=True)
    generated = [token.item()]
    for _ in range(5):
        logits, hidden = model(token, hidden)
        token = logits[:, -1].argmax(dim=-1, keepdim=True)
        generated.append(token.item())
print(f"accuracy {accuracy:.3f}, generated after [3, 5]: {generated}")

assert logits.shape == (1, 1, VOCAB) and hidden.shape == (1, 1, 32)
assert accuracy > 0.97
assert generated == [7, 1, 3, 5, 7, 1]
