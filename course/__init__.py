"""Course material beside the package: the errata of the two course documents and MMiDS §7.2's
Jacobian view, with numerical demonstrations. The notebooks and tests import it; no runtime path
of numbamlp does, and it is not installed."""
