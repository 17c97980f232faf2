"""Data at the bottom: the bundled MNIST, Fashion-MNIST, the user's CSV/NPZ files, IDX
parsing, input scaling records and atomic file writes. Imports nothing of numbamlp but errors.py."""
