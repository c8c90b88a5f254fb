"""LSTMCell and GRUCell unrolled by hand over time give the same outputs as nn.LSTM and nn.GRU
once the weights are copied across (same gate order and parameter names); the cell loop is then
trained to tell whether a sequence sums to a positive number."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
rng = np.random.default_rng(39)

N, T, I, H = 16, 7, 3, 8
x = torch.randn(N, T, I)

lstm = nn.LSTM(I, H, batch_first=True)
cell = nn.LSTMCell(I, H)
with torch.no_grad():
    cell.weight_ih.copy_(lstm.weight_ih_l0)
    cell.weight_hh.copy_(lstm.weight_hh_l0)
    cell.bias_ih.copy_(lstm.bias_ih_l0)
    cell.bias_hh.copy_(lstm.bias_hh_l0)
hx, cx = torch.zeros(N, H), torch.zeros(N, H)
steps = []
for t in range(T):
    hx, cx = cell(x[:, t], (hx, cx))
    steps.append(hx)
unrolled = torch.stack(steps, dim=1)
output, (h_n, c_n) = lstm(x)
assert torch.allclose(unrolled, output, atol=1e-6) and torch.allclose(cx, c_n[0], atol=1e-6)

gru = nn.GRU(I, H, batch_first=True)
gru_cell = nn.GRUCell(I, H)
gru_cell.load_state_dict({name[:-3]: value for name, value in gru.state_dict().items()})
h = torch.zeros(N, H)
for t in range(T):
    h = gru_cell(x[:, t], h)
assert torch.allclose(h, gru(x)[1][0], atol=1e-6)
assert gru_cell.weight_ih.shape == (3 * H, I) and cell.weight_hh.shape == (4 * H, H)

# train the LSTMCell loop: is the sum of the sequence positive?
steps_np = rng.normal(size=(400, 12, 1))
seq = torch.tensor(steps_np, dtype=torch.float32)
label = torch.tensor(steps_np.sum(axis=(1, 2)) > 0).long()


class CellClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = nn.LSTMCell(1, 16)
        self.head = nn.Linear(16, 2)

    def forward(self, seq):
        h = c = torch.zeros(seq.size(0), 16)
        for t in range(seq.size(1)):
            h, c = self.cell(seq[:, t], (h, c))
        return self.head(h)


model = CellClassifier()
optimizer = optim.Adam(model.parameters(), lr=0.02)
for epoch in range(60):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(seq[:320]), label[:320])
    loss.backward()
    optimizer.step()
with torch.no_grad():
    accuracy = (model(seq[320:]).argmax(1) == label[320:]).float().mean().item()
majority = max(label[320:].float().mean().item(), 1 - label[320:].float().mean().item())
print(f"loss {loss.item():.4f}, accuracy {accuracy:.3f} (majority class {majority:.3f})")
assert accuracy > 0.9 and accuracy > majority + 0.1
