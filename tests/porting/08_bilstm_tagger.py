"""A bidirectional LSTM sequence tagger over generated token sequences: each token is tagged from
its left neighbour (after a "B" marker) or its right neighbour (before an "E" marker), so only
a model that reads both directions can tag it."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(6)

VOCAB, B_TOKEN, E_TOKEN, N, T = 12, 1, 2, 400, 10
tokens = rng.integers(3, VOCAB, size=(N, T))
tokens[rng.random((N, T)) < 0.15] = B_TOKEN
tokens[rng.random((N, T)) < 0.15] = E_TOKEN
tags = np.zeros((N, T), dtype=np.int64)
tags[:, 1:][tokens[:, :-1] == B_TOKEN] = 1   # right after a B
tags[:, :-1][tokens[:, 1:] == E_TOKEN] = 2   # right before an E (wins over 1)

X = torch.tensor(tokens)
Y = torch.tensor(tags)


class BiLSTMTagger(nn.Module):
    def __init__(self, vocab_size, embedding_dim, hidden_dim, tagset_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.hidden2tag = nn.Linear(2 * hidden_dim, tagset_size)

    def forward(self, sentence):
        embeds = self.embedding(sentence)
        lstm_out, _ = self.lstm(embeds)
        return self.hidden2tag(lstm_out)


model = BiLSTMTagger(VOCAB, 16, 16, 3)
loss_function = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.02)

for epoch in range(60):
    optimizer.zero_grad()
    tag_scores = model(X[:320])
    loss = loss_function(tag_scores.reshape(-1, 3), Y[:320].reshape(-1))
    loss.backward()
    optimizer.step()
    if epoch % 20 == 0:
        print(f"epoch {epoch:2d}  loss {loss.item():.4f}")

with torch.no_grad():
    lstm_out, (h_n, c_n) = model.lstm(model.embedding(X[320:]))
    predicted = model(X[320:]).argmax(dim=-1)
accuracy = (predicted == Y[320:]).float().mean().item()
before_e = Y[320:] == 2
recall_before_e = (predicted[before_e] == 2).float().mean().item()
print(f"token accuracy {accuracy:.3f}, recall of 'before E' {recall_before_e:.3f}")

assert lstm_out.shape == (80, T, 32) and h_n.shape == (2, 80, 16)
# PyTorch's layout: the forward direction ends at the last step, the backward one at the first
assert torch.allclose(lstm_out[:, -1, :16], h_n[0], atol=1e-6)
assert torch.allclose(lstm_out[:, 0, 16:], h_n[1], atol=1e-6)
assert loss.item() < 0.1
assert accuracy > 0.97 and recall_before_e > 0.9
