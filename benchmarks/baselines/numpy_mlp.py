"""A vectorised NumPy trainer: matrix products through BLAS, buffers preallocated.

This is the fair NumPy baseline: no Python loop over samples or units, every temporary sized
once, ``out=`` everywhere. Matrix form with samples as rows (the same layout as numbamlp):
Z¹ = X W¹ᵀ + b¹, H¹ = σ(Z¹), Z² = H¹ W²ᵀ + b², F = softmax(Z²), Δ² = (F − 1_Y)/B,
∇W² = Δ²ᵀ H¹, Δ¹ = (Δ² W²) ⊙ H¹(1 − H¹), ∇W¹ = Δ¹ᵀ X.
"""

from __future__ import annotations

import numpy as np


class Trainer:
    name = "numpy"

    def __init__(self, X, y, hidden, batch_size, lr=1e-3, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.X = np.ascontiguousarray(X, dtype=dtype)
        self.y = np.asarray(y, dtype=np.int64)
        n, d = self.X.shape
        M = int(self.y.max()) + 1
        self.B, self.lr, self.rng = batch_size, lr, rng
        a1, a2 = np.sqrt(6 / (hidden + d)), np.sqrt(6 / (M + hidden))
        self.theta = np.zeros(hidden * (d + 1) + M * (hidden + 1), dtype)
        self.b1, self.W1, self.b2, self.W2 = _layer_views(self.theta, d, hidden, M)
        self.W1[...] = rng.uniform(-a1, a1, self.W1.shape)
        self.W2[...] = rng.uniform(-a2, a2, self.W2.shape)
        self.grad = np.zeros_like(self.theta)
        self.gb1, self.gW1, self.gb2, self.gW2 = _layer_views(self.grad, d, hidden, M)
        self.m = np.zeros_like(self.theta)
        self.v = np.zeros_like(self.theta)
        self.tmp = np.zeros_like(self.theta)
        self.p = 0
        self.order = np.arange(n)
        self._buffers = {}

    def _buf(self, b):
        if b not in self._buffers:
            h, M, d, t = self.W1.shape[0], self.W2.shape[0], self.X.shape[1], self.X.dtype
            self._buffers[b] = dict(
                X=np.empty((b, d), t), Z1=np.empty((b, h), t), H1=np.empty((b, h), t),
                Z2=np.empty((b, M), t), D2=np.empty((b, M), t), D1=np.empty((b, h), t),
                mx=np.empty((b, 1), t), sm=np.empty((b, 1), t), rows=np.arange(b),
            )  # fmt: skip
        return self._buffers[b]

    def step(self, idx):
        b = self._buf(idx.shape[0])
        B = idx.shape[0]
        Xb, Z1, H1, Z2, D2, D1 = b["X"], b["Z1"], b["H1"], b["Z2"], b["D2"], b["D1"]
        np.take(self.X, idx, axis=0, out=Xb)
        np.matmul(Xb, self.W1.T, out=Z1)
        Z1 += self.b1
        np.negative(Z1, out=H1)  # σ(z) = 1/(1+e^{−z})
        np.exp(H1, out=H1)
        H1 += 1
        np.reciprocal(H1, out=H1)
        np.matmul(H1, self.W2.T, out=Z2)
        Z2 += self.b2
        np.max(Z2, axis=1, keepdims=True, out=b["mx"])  # softmax
        np.subtract(Z2, b["mx"], out=D2)
        np.exp(D2, out=D2)
        np.sum(D2, axis=1, keepdims=True, out=b["sm"])
        D2 /= b["sm"]
        D2[b["rows"], self.y[idx]] -= 1  # Δ² = F − 1_Y
        D2 *= 1.0 / B
        np.matmul(D2.T, H1, out=self.gW2)
        np.sum(D2, axis=0, out=self.gb2)
        np.matmul(D2, self.W2, out=D1)  # Δ¹ = (Δ² W²) ⊙ σ′(Z¹)
        D1 *= H1
        np.subtract(1, H1, out=H1)
        D1 *= H1
        np.matmul(D1.T, Xb, out=self.gW1)
        np.sum(D1, axis=0, out=self.gb1)
        self._adam()

    def _adam(self, b1=0.9, b2=0.999, eps=1e-8):
        self.p += 1
        g, m, v, t = self.grad, self.m, self.v, self.tmp
        m *= b1
        np.multiply(g, 1 - b1, out=t)
        m += t
        np.multiply(g, g, out=t)
        v *= b2
        t *= 1 - b2
        v += t
        np.divide(v, 1 - b2**self.p, out=t)
        np.sqrt(t, out=t)
        t += eps
        np.divide(m, t, out=t)
        t *= self.lr / (1 - b1**self.p)
        self.theta -= t

    def epoch(self):
        self.rng.shuffle(self.order)
        for start in range(0, self.order.shape[0], self.B):
            self.step(self.order[start : start + self.B])

    def steps(self, count):
        n = self.order.shape[0]
        for k in range(count):
            start = (k * self.B) % (n - self.B + 1)
            self.step(self.order[start : start + self.B])

    def accuracy(self, X, y):
        H = 1 / (1 + np.exp(-(X @ self.W1.T + self.b1)))
        return float(np.mean(np.argmax(H @ self.W2.T + self.b2, axis=1) == y))


def _layer_views(flat, d, hidden, M):
    """b^1, W^1, b^2, W^2 as views of one flat vector laid out (b^1, W^1, b^2, W^2)."""
    b1, rest = flat[:hidden], flat[hidden:]
    W1, rest = rest[: hidden * d].reshape(hidden, d), rest[hidden * d :]
    return b1, W1, rest[:M], rest[M:].reshape(M, hidden)
