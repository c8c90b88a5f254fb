"""An LSTM sequence classifier: tell sine, square and sawtooth waves apart from 16 noisy samples,
classifying from the top layer's final hidden state h_n[-1] of a two-layer LSTM (batch_first
inputs)."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(4)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

SEQ_LEN, N, HIDDEN = 16, 300, 32


def make_waves(n, rng):
    kinds = rng.integers(0, 3, size=n)
    freq = rng.uniform(0.6, 1.4, size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    angle = freq * np.arange(SEQ_LEN) * 0.8 + phase
    sine = np.sin(angle)
    square = np.sign(np.sin(angle))
    saw = 2.0 * ((angle / (2 * np.pi)) % 1.0) - 1.0
    waves = np.where(kinds[:, None] == 0, sine, np.where(kinds[:, None] == 1, square, saw))
    waves = waves + rng.normal(scale=0.1, size=waves.shape)
    return waves[:, :, None].astype(np.float32), kinds


class LSTMClassifier(nn.Module):
    def __init__(self, input_size, hidden_size, num_classes, num_layers=1):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.fc(h_n[-1])


waves, kinds = make_waves(N, rng)
X = torch.from_numpy(waves).to(device)
y = torch.from_numpy(kinds).to(device)
X_train, y_train, X_test, y_test = X[:240], y[:240], X[240:], y[240:]

model = LSTMClassifier(input_size=1, hidden_size=HIDDEN, num_classes=3, num_layers=2).to(device)
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.01)

losses = []
for epoch in range(30):
    model.train()
    permutation = torch.randperm(X_train.size(0))
    epoch_loss = 0.0
    for i in range(0, X_train.size(0), 40):
        indices = permutation[i:i + 40]
        optimizer.zero_grad()
        loss = criterion(model(X_train[indices]), y_train[indices])
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item() / 6
    losses.append(epoch_loss)
    if epoch % 10 == 0:
        print(f"epoch {epoch:2d}  loss {epoch_loss:.4f}")

model.eval()
with torch.no_grad():
    output, (h_n, c_n) = model.lstm(X_test)
    accuracy = (model(X_test).argmax(dim=1) == y_test).sum().item() / len(y_test)
print(f"test accuracy {accuracy:.3f}")

assert X.shape == (N, SEQ_LEN, 1)
assert output.shape == (60, SEQ_LEN, HIDDEN)
assert h_n.shape == (2, 60, HIDDEN) and c_n.shape == h_n.shape
assert torch.allclose(output[:, -1], h_n[-1])
assert losses[-1] < losses[0] / 4
assert accuracy > 0.85
