"""Deprecated location of the fused engine, kept so that ``import numbamlp.fused`` and
``from numbamlp.fused import …`` go on working: the engine is the package numbamlp/engines/fused/
(layout, expf, rows, tiles, regions, plan, engine), whose names are re-exported here.
"""

from __future__ import annotations

from numbamlp.engines.fused.expf import (  # noqa: F401
    EXP_COEFFICIENTS,
    EXP_MIN_ARGUMENT,
    LN2_HIGH,
    LN2_LOW,
    LOG2_E,
    exp_nonpositive_float32,
)
from numbamlp.engines.fused.layout import (  # noqa: F401
    ADADELTA,
    ADAGRAD,
    ADAM,
    B_AT,
    BAND,
    BAND_BYTES,
    BIAS1,
    BIAS2,
    CHUNK,
    CHUNK_BYTES,
    DECAY,
    GROUP,
    GROUP_BYTES,
    H_AT,
    HEAD_CODES,
    HYPER,
    HYPER_ORDER,
    INV_BATCH,
    LR,
    MAX_SAMPLE_BLOCK,
    MODIFIED_SOFTMAX,
    MOMENTUM,
    N_COEF,
    OPTIMIZER_CODES,
    RMSPROP,
    ROW_AT,
    ROW_TILE,
    SGD,
    SHARD_AT,
    SHARD_BYTES,
    SHARD_WIDTH,
    SIZE,
    SOFTMAX,
    W_AT,
    Z_AT,
    activations,
    balanced_cuts,
    biases,
    default_sample_block,
    gradient_shard,
    layer_rows,
    layout_table,
    weights,
)
from numbamlp.engines.fused.plan import (  # noqa: F401
    FusedPlan,
    RegionExchange,
    Share,
    preload,
)
from numbamlp.engines.fused.regions import (  # noqa: F401
    finish_step,
    forward_backward,
    gradient_update,
    run_steps,
    step_coefficients,
    sum_shards,
    update_run,
    weight_decay_run,
)
from numbamlp.engines.fused.rows import (  # noqa: F401
    activation_rows,
    correct_rows,
    cross_entropy_rows,
    gather_rows,
    modified_softmax_rows,
    output_delta_rows,
    prefetch_rows,
    sigmoid_rows_float32,
    softmax_rows,
)
from numbamlp.engines.fused.tiles import (  # noqa: F401
    affine_rows,
    affine_tile,
    hidden_delta_rows,
    input_spans,
    tile_columns,
    weight_gradient_quad,
    weight_gradient_rows,
    weight_gradient_single,
)
from numbamlp.intrinsics import (  # noqa: F401
    enter_flush_mode,
    float32_from_bits,
    leave_flush_mode,
    prefetch_to_l2,
    read_fp_mode,
    write_fp_mode,
)
from numbamlp.updates import (  # noqa: F401
    adadelta_element,
    adagrad_element,
    adam_element,
    momentum_element,
    rmsprop_element,
    sgd_element,
)
