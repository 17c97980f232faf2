"""The fused engine: many minibatch steps per call, two parallel regions per step.

The per-kernel path (passes.py, optimizers.py) runs ~15 kernels per step, each entered from
Python and most of them opening a parallel region of their own. Here one serial function,
``run_steps``, loops over the steps p and opens two regions per step:

Region 1, ``forward_backward`` — parallel over blocks of samples s (a fixed number per block).
  A block gathers its inputs h^0_s = c · X_{I_s}, runs the forward pass through every layer
  (F.1, F.2), the head (F.3 or F.4), the loss ℓ_s (L.1), δ^L (B.1) and δ^m for m = L−1..1 (B.4),
  and writes only its own rows s of the batch buffers h^k, z^k, δ^k, f and ℓ.
  For the layers with gradient shards (narrow layers: ``SHARD_BYTES``) the block then sums B.3
  and B.2 over its own samples, while their h^{m−1} is in its core's cache, into its shard.
Region 2, ``gradient_update`` — parallel over work items, each a range of rows i of the weight
  matrices (the rows of W^1..W^L counted as one sequence, cut into pieces of equal cost). The
  owner of row i of W^m gets its gradient over ALL samples of the batch (B.3, B.2 with S.1) —
  the blocks' shards added in block order, or for layers without shards summed here over the
  samples in sample order — adds the weight decay's λ W^m_{i,:} (R.1) if there is one, and at
  once applies the optimizer update (U.1–U.6) to W^m_{i,:} and b^m_i. No per-thread buffer,
  no atomics: every number is written by one block or item.

Every number is computed by one fixed sequence of operations whoever computes it — how the
rows are cut into items decides who, never how; the blocks, and so the shards, follow from the
batch size, never from the thread count — so θ, the optimizer state and the losses are bitwise
identical for any number of threads. Each sum over the samples runs in sample order, as in
backward.py (with shards: in sample order within a block, then block by block), so float64
results agree with the per-kernel path to rounding. The loop allocates nothing: the views of
the flat buffers that it makes are slices and reshapes.

Loop shapes (chosen by measuring them on AVX-512 hardware; the figures are in
docs/performance.md, "Figures moved out of the code"; the helpers' comments say which equation
each loop computes, in index form):

* (F.1) for the units of a layer at least one strip wide (64 float32 or 32 float64 units), a
  register tile of 4 samples × a strip of units takes the terms j one after the other, each
  h^{k−1}_{s,j} broadcast, the strip's W^k_{i,j} loaded from a copy of (W^k)ᵀ packed strip by
  strip (``layout.packed_weights``; written whole at the start of each run and row by row by
  region 2 after each update, by the item that owns the row). The other units: a tile of
  4 samples × 4 units keeps its 16 sums in registers while the inner loop runs over j,
  unit-stride in W^k_{i,:} and h^{k−1}_{s,:}, vectorised because the helper is compiled with
  the ``reassoc`` flag, and ends in 16 sums across a vector. Both: several times the rate of
  one sum at a time, and faster with 512-bit vectors than with LLVM's default 256-bit ones.
* (B.3) adds up outer products in register tiles: 4 rows i × a strip of 64 columns j (16
  vector registers of sums, an array on the stack that LLVM keeps in registers: ``stack_array``)
  take the terms of up to 64 samples, one sample after the other, each δ^m_{s,i} broadcast and
  each row of h^{m−1} loaded once for the 4 rows; the sums touch memory once per strip, not
  once per 4 samples. Where δ^m's rows are long (1 KiB or more), a run's δ^m of a group of
  64 rows is copied side by side first: rows 8 KiB apart defeat the hardware's prefetch from
  one sample to the next. (B.4) adds 4 terms of its sum (4 units i) per pass over j, then
  multiplies by φ′ in a row function compiled without fast-math (``phi_prime_row``), so that
  the dropout path, which takes σ again from z^m, gives bitwise what the stored h^m gives.
* The helpers with the big loops (F.1, B.3, the gather, σ, softmax) call
  ``prefer_wide_vectors()``: LLVM's x86 cost model otherwise stops at 256-bit vectors. θ, the
  optimizer state and the batch buffers start on cache lines (``memory.py``), so that the
  64-byte loads of rows whose length is a multiple of 16 floats (784 inputs) never straddle two.
* Layer 1's F.1 and B.3 skip the terms whose h^0_{s,j} is exactly 0 at the start and end of
  the tile's rows (``input_spans``, ``tile_columns``): MNIST's blank border, ~20 % of the
  columns of a tile of 4 samples. The sums are the same equations, without terms that are 0.
* Region 2 passes over the samples once per band of rows, strip of columns after strip, each
  strip's rows of h^{m−1} in L1 while every tile of the band passes over them; the rows of
  h^{m−1}, half of them written by the other threads in region 1, then come from the other
  caches once per band. Gradient shards avoid even that for narrow layers: on 2 threads region 2
  then reads half of one shard per row range from the other core (~50 KB for the reference W^1)
  instead of 64 rows of h^0 (~200 KB). For a batch whose rows of h^{m−1} exceed L2
  (CHUNK_BYTES), a band passes over one L2-sized chunk of samples after another.
* F.1's tiles of 4 × 4 prefetch the next 8 rows of a W^k too big for L2
  (STREAMED_WEIGHT_BYTES) while they use the current 8: every block of samples reads all of
  W^k from L3 or memory. (The packed strips are read in order, which the hardware prefetches.)
* The gather of h^0 prefetches the row of X two samples on while it copies the current one
  (``gather_rows``): a minibatch's rows are scattered over X and come from memory. Only the
  block's own rows, while the copy waits on memory anyway: a prefetch of the next step's rows
  during the arithmetic stalled it (docs/performance.md, session 7).
* Both regions flush subnormal numbers to zero by default (``enter_flush_mode``): Adam's moments
  of rarely active inputs decay into that range, where every operation takes a slow microcode
  assist (``FLUSH_TO_ZERO`` in numbamlp/kernels/intrinsics.py).

The modules, by concern:

* ``layout``: the tuning constants, the codes, the ``layout`` table, the views into θ and the
  flat batch buffers, the cuts of the work into blocks and items (no equation);
* ``expf``: a vectorisable e^x for float32 (no equation);
* ``rows``: region 1's row-wise equations (the gather, F.2, F.3/F.4, L.1, P.1, B.1);
* ``tiles``: the tiled F.1, B.3 (with B.2) and B.4, each beside the plain kernel it must equal,
  and the packing of (W^k)ᵀ for F.1's strips;
* ``regions``: the two regions, the optimizer update of a run of components (U.1–U.6, R.1)
  and the driver ``run_steps``;
* ``plan``: ``FusedPlan``, the buffers and tables of a run, and its ``run``;
* ``engine``: ``FusedEngine``, the plan bound to a Trainer's run (engines.Engine).

The CPU intrinsics it calls (vector width, the floating-point mode) are in
numbamlp/kernels/intrinsics.py.

Usage — what ``FusedEngine`` does with a plan (``FusedPlan.run`` documents each argument)::

    plan = FusedPlan(model.architecture, max_batch, model.dtype, optimizer)
    state = plan.adopt_state(optimizer)   # the optimizer's arrays become rows of this array
    # per epoch: index_matrix[q, :batch_sizes[q]] holds minibatch q, lrs[q] its γ
    done = plan.run(model.params.theta, state, X_raw, scale, y, index_matrix, batch_sizes,
                    lrs, optimizer.step_count, first, count, batch_losses, batch_correct)
    optimizer.step_count += done   # done < count: the loss of minibatch first + done was not
                                   # finite (batch_losses has it) and its update was not made
"""

from __future__ import annotations

from numbamlp.engines.fused.engine import FusedEngine
from numbamlp.engines.fused.plan import FusedPlan, RegionExchange, Share, preload

__all__ = ["FusedEngine", "FusedPlan", "RegionExchange", "Share", "preload"]
