"""numbamlp/kernels/rows.py's row functions (F.4, S.1, P.1, B.1) for the device, built from the
very Python functions the CPU compiles, as cuda/activations.py builds φ/φ′."""

from __future__ import annotations

from numbamlp.engines.cuda.backend import cuda
from numbamlp.kernels import rows

device_function = cuda.jit(device=True)

#: (F.4) γ̃ of row s (returns its log-sum-exp).
modified_softmax_row = device_function(rows.modified_softmax_row)
#: (S.1) the mean of the first B entries, summed in sample order.
minibatch_mean = device_function(rows.minibatch_mean)
#: (P.1) the predicted class of row s.
predicted_class = device_function(rows.predicted_class)
#: (B.1) one entry of δ^L.
output_delta_entry = device_function(rows.output_delta_entry)
