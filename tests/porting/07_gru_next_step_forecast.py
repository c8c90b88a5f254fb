"""A GRU sequence-to-sequence regressor: predict the next sample of a noisy damped oscillation at
every time step, with an explicit zero initial state, compared against the naive forecast
(repeat the last value)."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(5)

N, T, HIDDEN = 200, 20, 32
t = np.arange(T + 1) * 0.4
freq = rng.uniform(0.8, 1.6, size=(N, 1))
phase = rng.uniform(0, 2 * np.pi, size=(N, 1))
damping = rng.uniform(0.0, 0.1, size=(N, 1))
series = np.exp(-damping * t) * np.sin(freq * t + phase) + rng.normal(scale=0.02, size=(N, T + 1))
series = torch.from_numpy(series).to(torch.float32)
inputs, targets = series[:, :-1].unsqueeze(-1), series[:, 1:].unsqueeze(-1)


class Forecaster(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.gru = nn.GRU(input_size=1, hidden_size=hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x, h0=None):
        if h0 is None:
            h0 = torch.zeros(1, x.size(0), self.hidden_size)
        out, h_n = self.gru(x, h0)
        return self.head(out), h_n


model = Forecaster(HIDDEN)
optimizer = optim.Adam(model.parameters(), lr=0.01)
criterion = nn.MSELoss()

train_in, train_out = inputs[:160], targets[:160]
test_in, test_out = inputs[160:], targets[160:]
for epoch in range(80):
    optimizer.zero_grad()
    prediction, _ = model(train_in)
    loss = criterion(prediction, train_out)
    loss.backward()
    optimizer.step()
    if epoch % 20 == 0:
        print(f"epoch {epoch:2d}  mse {loss.item():.5f}")

model.eval()
with torch.no_grad():
    prediction, h_n = model(test_in)
    # skip the first steps, where the phase cannot be known yet
    model_mse = criterion(prediction[:, 5:], test_out[:, 5:]).item()
    naive_mse = criterion(test_in[:, 5:], test_out[:, 5:]).item()
print(f"model mse {model_mse:.5f}  naive mse {naive_mse:.5f}")

assert prediction.shape == (40, T, 1) and h_n.shape == (1, 40, HIDDEN)
assert model.gru.weight_ih_l0.shape == (3 * HIDDEN, 1)
assert model.gru.weight_hh_l0.shape == (3 * HIDDEN, HIDDEN)
assert model_mse < naive_mse / 8
