"""The fused engine: many minibatch steps per call, two parallel regions per step."""

from __future__ import annotations

from numbamlp.engines.fused.engine import FusedEngine

__all__ = ["FusedEngine"]
