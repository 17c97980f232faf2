"""The default job as a PyTorch user would run it, as one process: ``python torch_first_run.py``.

Import torch, read the bundled MNIST (numbamlp's reader, the same bytes), build
nn.Sequential(Linear(784, 32), Sigmoid(), Linear(32, 10)) with CrossEntropyLoss and Adam(1e-3),
train EPOCHS shuffled epochs of batch 128 and print the test accuracy after each, as
``numbamlp train`` does. PyTorch compiles nothing ahead, so its first run is its every run
(apart from the OS's file cache); ``benchmarks/test_first_run.py`` times the whole process.
"""

from __future__ import annotations

import sys
import time

STARTED = time.perf_counter()


def main(epochs: int = 20, threads: int = 2) -> None:
    import numpy as np
    import torch

    from numbamlp.datasets.loaders import load_mnist

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = load_mnist()
    X = torch.from_numpy(np.ascontiguousarray(data.X_train, dtype=np.float32))
    y = torch.from_numpy(data.y_train)
    X_test = torch.from_numpy(np.ascontiguousarray(data.X_test, dtype=np.float32))
    y_test = torch.from_numpy(data.y_test)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 32), torch.nn.Sigmoid(), torch.nn.Linear(32, 10)
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(X.shape[0])
        for start in range(0, X.shape[0], 128):
            batch = order[start : start + 128]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(X[batch]), y[batch]).backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(X_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch:3d}  test_accuracy {accuracy:.4f}")
    seconds = time.perf_counter() - STARTED
    print(f"test accuracy {accuracy:.4f} after {epochs} epochs ({seconds:.1f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
