"""numbamlp/kernels/rows.py's row functions (F.4, F.5, S.1, S.2, P.1, B.1, B.5, L.2) for the
device, built from the very Python functions the CPU compiles, as cuda/activations.py builds
φ/φ′."""

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
#: (F.5) the identity head on row s.
identity_row = device_function(rows.identity_row)
#: (L.2) ½ Σ_i (f_{s,i} − y_{row,i})².
squared_error_row = device_function(rows.squared_error_row)
#: (B.5) one entry of δ^L of the squared error.
squared_error_delta_entry = device_function(rows.squared_error_delta_entry)
#: (S.2) Σ_s w_{I_s} over a minibatch, in sample order.
weight_total = device_function(rows.weight_total)
#: (S.2) ω_s = B · w_s / Σ_{s'} w_{s'}.
sample_weight_factor = device_function(rows.sample_weight_factor)
