"""PyTorch eager baseline: nn.Sequential(Linear, Sigmoid, Linear), CrossEntropyLoss, Adam.

``fused=False`` is torch's default (foreach) Adam; ``fused=True`` is its fused CPU kernel.
Optional: the benchmarks skip it when torch is not installed.
"""

from __future__ import annotations

import numpy as np


class Trainer:
    def __init__(self, X, y, hidden, batch_size, lr=1e-3, seed=0, fused=False, threads=2):
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        self.name = "torch-fused-adam" if fused else "torch"
        self.X = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        M = int(self.y.max()) + 1
        self.model = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], hidden), torch.nn.Sigmoid(), torch.nn.Linear(hidden, M)
        )
        self.loss = torch.nn.CrossEntropyLoss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr, fused=fused)
        self.B = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def step(self, idx):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(self.model(self.X[idx]), self.y[idx])
        loss.backward()
        self.opt.step()

    def epoch(self):
        order = self.torch.randperm(self.X.shape[0], generator=self.generator)
        for start in range(0, order.shape[0], self.B):
            self.step(order[start : start + self.B])

    def steps(self, count):
        n = self.X.shape[0]
        order = self.torch.arange(n)
        for k in range(count):
            start = (k * self.B) % (n - self.B + 1)
            self.step(order[start : start + self.B])

    def accuracy(self, X, y):
        with self.torch.no_grad():
            out = self.model(self.torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)))
        return float((out.argmax(1).numpy() == y).mean())
