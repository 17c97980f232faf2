"""The training engines, one interface (``Engine``), built by one factory (``make_engine``).

=============  ========  ==========  ==============================================================
engine         device    cluster     what makes the steps
=============  ========  ==========  ==============================================================
``kernels``    cpu       —           plain.py: one Python call per equation kernel (the reference)
``fused``      cpu       —           fused/: many steps per call, two parallel regions per step
``fused``      cpu       a Cluster   fused/ with distributed.py's exchange between its regions
any            cuda      —           cuda/: the kernels engine's launches on a CUDA device
=============  ========  ==========  ==============================================================

The modules of the engines are imported by ``make_engine`` when it builds one: importing this
package imports neither Numba's CUDA support nor mpi4py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from numbamlp.engines.base import FUSED_CHUNK, Engine, EngineSetup, HostEngine, adopt_state
from numbamlp.errors import NumbamlpError

if TYPE_CHECKING:
    from numbamlp.engines.cluster import Cluster

#: The engines of the CPU (TrainConfig.engine).
ENGINES = ("fused", "kernels")
#: Where the steps run.
DEVICES = ("cpu", "cuda")

__all__ = [
    "DEVICES",
    "ENGINES",
    "FUSED_CHUNK",
    "Engine",
    "EngineSetup",
    "HostEngine",
    "adopt_state",
    "make_engine",
]


def make_engine(
    engine: str,
    device: str,
    cluster: Cluster | None,
    setup: EngineSetup,
    **options: Any,
) -> Engine:
    """The engine that makes the steps of ``setup``'s run.

    engine: "fused" or "kernels" (the CPU's; on a CUDA device the steps are always one launch
        per equation kernel, and this is ignored).
    device: "cpu" or "cuda".
    cluster: the MPI job (cluster.Cluster) that shares the fused engine's region 1 among its
        ranks; None: this process alone.
    options: the engine's own tuning options (the fused plan's n_items, sample_block,
        flush_subnormals, shard_bytes; the CUDA engine's threads_1d, threads_2d).
    """
    if engine not in ENGINES:
        raise NumbamlpError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if device not in DEVICES:
        raise NumbamlpError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    if cluster is not None and (device != "cpu" or engine != "fused"):
        raise NumbamlpError("distributed training runs the fused engine on the CPU")
    if device == "cuda":
        from numbamlp.engines.cuda.engine import CudaEngine

        return CudaEngine(setup, **options)
    if engine == "kernels":
        from numbamlp.engines.plain import KernelsEngine

        if options:
            raise NumbamlpError(f"the kernels engine has no options ({', '.join(options)})")
        return KernelsEngine(setup)
    from numbamlp.engines.fused import FusedEngine

    exchange = None
    if cluster is not None:
        from numbamlp.engines.distributed import MPIExchange

        exchange = MPIExchange(cluster)
    return FusedEngine(setup, exchange, **options)
