"""JAX baseline: the whole epoch is one jit-compiled ``lax.scan`` over minibatches (no Python
per step), Adam written out (no optax dependency). Optional: skipped when jax is absent.

The scan needs equal batches, so an epoch is ⌊n/B⌋ full batches of a fresh permutation (a few
samples fewer than the other trainers' last partial batch).
"""

from __future__ import annotations

import numpy as np


class Trainer:
    name = "jax"

    def __init__(self, X, y, hidden, batch_size, lr=1e-3, seed=0):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.X = jnp.asarray(X, dtype=jnp.float32)
        self.y = jnp.asarray(y, dtype=jnp.int32)
        n, d = X.shape
        M = int(np.max(y)) + 1
        rng = np.random.default_rng(seed)
        a1, a2 = np.sqrt(6 / (hidden + d)), np.sqrt(6 / (M + hidden))
        self.params = {
            "W1": jnp.asarray(rng.uniform(-a1, a1, (hidden, d)), jnp.float32),
            "b1": jnp.zeros(hidden, jnp.float32),
            "W2": jnp.asarray(rng.uniform(-a2, a2, (M, hidden)), jnp.float32),
            "b2": jnp.zeros(M, jnp.float32),
        }
        zeros = jax.tree_util.tree_map(jnp.zeros_like, self.params)
        self.state = (self.params, zeros, zeros, jnp.zeros((), jnp.int32))
        self.B, self.n = batch_size, n
        self.key = jax.random.PRNGKey(seed)

        def loss_fn(params, xb, yb):
            h = jax.nn.sigmoid(xb @ params["W1"].T + params["b1"])
            z = h @ params["W2"].T + params["b2"]
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), yb[:, None], axis=1))

        grad_fn = jax.grad(loss_fn)

        def adam_step(state, batch):
            params, m, v, p = state
            g = grad_fn(params, self.X[batch], self.y[batch])
            p = p + 1
            m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
            v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
            c1, c2 = 1 - 0.9**p, 1 - 0.999**p
            params = jax.tree_util.tree_map(
                lambda w, m, v: w - lr * (m / c1) / (jnp.sqrt(v / c2) + 1e-8), params, m, v
            )
            return (params, m, v, p), None

        @jax.jit
        def run(state, batches):
            state, _ = jax.lax.scan(adam_step, state, batches)
            return state

        self._run = run

    def _go(self, batches):
        self.state = self._run(self.state, batches)
        self.jax.block_until_ready(self.state)

    def epoch(self):
        self.key, sub = self.jax.random.split(self.key)
        perm = self.jax.random.permutation(sub, self.n)
        steps = self.n // self.B
        self._go(perm[: steps * self.B].reshape(steps, self.B))

    def steps(self, count):
        n = self.n
        starts = (np.arange(count) * self.B) % (n - self.B + 1)
        self._go(self.jnp.asarray(starts[:, None] + np.arange(self.B)[None, :]))

    def accuracy(self, X, y):
        p = self.state[0]
        h = self.jax.nn.sigmoid(self.jnp.asarray(X) @ p["W1"].T + p["b1"])
        return float(np.mean(np.asarray((h @ p["W2"].T + p["b2"]).argmax(1)) == y))
