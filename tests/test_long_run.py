"""Long runs hold memory flat: 10,000 training steps of the digits MLP, on every available
backend, allocate nothing that outlives its step (the autograd graph, the kernels' outputs and
the arenas release what they allocate)."""
import gc
import os
import sys

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import data, nn, optim

STEPS, EVERY = 10_000, 1_000
BACKENDS = ["numpy"] + (["default"] if len(fg.backends.available()) > 1 else [])

# Bounds on the growth from step 1,000 to step 10,000 (9,000 steps).
# - Python objects: sys.getallocatedblocks() counts the small-object allocator's blocks in use,
#   which holds every Python object up to 512 bytes: every Tensor, autograd node, tuple, float
#   and ndarray header. Leaking a single one of them per step adds 9,000 blocks; what a healthy
#   run adds is a few lazily filled caches once (about 100 blocks: Numba dispatch caches),
#   hence 1,000.
# - Native memory: the resident set size covers what the object count cannot see, array data
#   and Numba's runtime allocations. Its noise over such a run is under 100 KiB here (allocator
#   arenas); 2 MiB catches any leak of 240 bytes or more per step, e.g. one (8, 128) float32
#   activation (4 KiB) per step would add 36 MiB.
MAX_BLOCKS = 1_000
MAX_RSS = 2 * 1024 * 1024


def _rss():
    """The resident set size in bytes (Linux), or 0 where /proc is not there."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_ten_thousand_training_steps_hold_memory_flat(backend):
    (x, y), _ = data.load_digits(seed=0)
    with fg.backends.use(None if backend == "default" else backend):
        fg.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        criterion = nn.CrossEntropyLoss()
        loader = data.DataLoader(data.TensorDataset(x, y), batch_size=8, shuffle=True,
                                 generator=fg.Generator(0))
        # measurements go into preallocated arrays: recording them allocates nothing that stays
        blocks, rss = np.zeros(STEPS // EVERY + 1, np.int64), np.zeros(STEPS // EVERY + 1, np.int64)
        losses = np.zeros(STEPS)
        step = 0
        while step < STEPS:
            for inputs, labels in loader:
                loss = criterion(model(inputs), labels)
                losses[step] = loss.item()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                step += 1
                if step % EVERY == 0:
                    gc.collect()
                    blocks[step // EVERY], rss[step // EVERY] = sys.getallocatedblocks(), _rss()
                if step == STEPS:
                    break
    assert np.isfinite(losses).all() and losses[-1000:].mean() < losses[:100].mean() / 5
    block_growth = blocks[1:] - blocks[1]
    assert block_growth.max() < MAX_BLOCKS, \
        f"allocated blocks added since step 1,000: {block_growth}"
    rss_growth = rss[1:] - rss[1]
    assert rss_growth.max() < MAX_RSS, f"resident set growth since step 1,000: {rss_growth}"
