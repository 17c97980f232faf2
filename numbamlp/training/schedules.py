"""Step-size schedules γ_p, p = 1, 2, … (G.1–G.4). Plain Python: one scalar per step."""

from __future__ import annotations

import math
from dataclasses import dataclass

from numbamlp.errors import NumbamlpError

SCHEDULES = ("constant", "step", "inverse-time", "cosine")


@dataclass(frozen=True)
class Schedule:
    """γ_p for step p ≥ 1.

    kind: constant (G.1), step (G.2: ×decay_rate every decay_steps), inverse-time
    (G.3: τ = decay_steps), cosine (G.4: from γ_0 to min_lr over total_steps).
    """

    kind: str
    lr: float
    decay_rate: float = 0.5
    decay_steps: int = 1
    total_steps: int = 1
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise NumbamlpError(
                f"unknown schedule {self.kind!r}; choose one of: {', '.join(SCHEDULES)}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise NumbamlpError(f"learning rate must be positive, got {self.lr}")
        if not 0 < self.decay_rate <= 1:
            raise NumbamlpError(f"decay rate must be in (0, 1], got {self.decay_rate}")
        if self.decay_steps < 1 or self.total_steps < 1:
            raise NumbamlpError("decay steps and total steps must be at least 1")
        if not 0 <= self.min_lr <= self.lr:
            raise NumbamlpError(f"minimum learning rate must be in [0, lr], got {self.min_lr}")

    def __call__(self, p: int) -> float:
        if self.kind == "constant":
            # (G.1) γ_p = γ_0
            return self.lr
        if self.kind == "step":
            # (G.2) γ_p = γ_0 · r^{⌊(p−1)/P⌋}
            return self.lr * self.decay_rate ** ((p - 1) // self.decay_steps)
        if self.kind == "inverse-time":
            # (G.3) γ_p = γ_0 / (1 + (p−1)/τ)
            return self.lr / (1.0 + (p - 1) / self.decay_steps)
        # (G.4) γ_p = γ_min + (γ_0 − γ_min)(1 + cos(π (p−1)/T))/2
        progress = min(p - 1, self.total_steps) / self.total_steps
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
