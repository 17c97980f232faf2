"""Trainers a user would otherwise pick, for side-by-side benchmarks (not part of numbamlp).

Each trains Dense(d_0, d_1, σ) → Dense(d_1, M) → softmax with cross-entropy and Adam in
float32, in shuffled minibatches, and exposes the same small interface:

    trainer = Trainer(X_train, y_train, hidden, batch_size, lr, seed)
    trainer.epoch()              # one shuffled pass
    trainer.steps(n)             # n minibatch steps (for the sweep)
    trainer.accuracy(X, y)
"""
