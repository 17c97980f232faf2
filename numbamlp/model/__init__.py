"""The network: its architecture and flat θ (network.py), the MLP with predict, loss and gradient
(mlp.py) over the plain passes (passes.py, workspace.py), its files (modelio.py, export.py), and
the finite-difference check (gradcheck.py). Uses kernels/."""
