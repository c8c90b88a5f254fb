"""A bidirectional Elman RNN (nn.RNN, bidirectional=True) regressing x[0] + x[-1] of a sequence
from the two final hidden states concatenated; h_n and the output follow PyTorch's layout."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(37)

N, T, H = 300, 10, 16
X = torch.tensor(rng.uniform(-1, 1, size=(N, T, 1)), dtype=torch.float32)
y = X[:, 0] + X[:, -1]                                 # (N, 1)


class BiRNNRegressor(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.rnn = nn.RNN(input_size=1, hidden_size=hidden_size, batch_first=True,
                          bidirectional=True, nonlinearity="tanh")
        self.fc = nn.Linear(2 * hidden_size, 1)

    def forward(self, x):
        output, h_n = self.rnn(x)                      # h_n: (2, N, H): forward, backward
        return self.fc(torch.cat([h_n[0], h_n[1]], dim=1)), output, h_n


model = BiRNNRegressor(H)
optimizer = optim.Adam(model.parameters(), lr=0.01)
criterion = nn.MSELoss()
losses = []
for epoch in range(30):
    for start in range(0, 240, 40):
        optimizer.zero_grad()
        prediction, _, _ = model(X[start:start + 40])
        loss = criterion(prediction, y[start:start + 40])
        loss.backward()
        optimizer.step()
    losses.append(loss.item())
    if epoch % 10 == 0:
        print(f"epoch {epoch:2d}  mse {loss.item():.5f}")

with torch.no_grad():
    prediction, output, h_n = model(X[240:])
    test_mse = criterion(prediction, y[240:]).item()
    # the same weights in a time-major RNN: the same numbers, with the first two axes swapped
    time_major = nn.RNN(1, H, bidirectional=True)
    time_major.load_state_dict(model.rnn.state_dict())
    output_tm, h_n_tm = time_major(X[240:].permute(1, 0, 2))
names = sorted(name for name, _ in model.rnn.named_parameters())
print(f"test mse {test_mse:.5f} (target variance {y[240:].var().item():.3f})")

assert output.shape == (60, T, 2 * H) and h_n.shape == (2, 60, H)
assert torch.allclose(output[:, -1, :H], h_n[0]) and torch.allclose(output[:, 0, H:], h_n[1])
assert output_tm.shape == (T, 60, 2 * H) and torch.allclose(output_tm.transpose(0, 1), output,
                                                               atol=1e-6)
assert torch.allclose(h_n_tm, h_n, atol=1e-6)
assert names == ["bias_hh_l0", "bias_hh_l0_reverse", "bias_ih_l0", "bias_ih_l0_reverse",
                 "weight_hh_l0", "weight_hh_l0_reverse", "weight_ih_l0", "weight_ih_l0_reverse"]
assert test_mse < 0.05 * y[240:].var().item()
