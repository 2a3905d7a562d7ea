"""LoRA (Hu et al. 2021): h = W0 x + s B A x, with optional rsLoRA scaling (Kalajdzievski 2023)."""
import math

import torch
from torch import nn

from .adapter import AdapterLinear


class LoraLinear(AdapterLinear):
    """LoRA branch around a frozen Linear. Initialised as peft does: A kaiming-uniform, B zero.

    Args:
        use_rslora: scale by alpha / sqrt(r) instead of alpha / r.
    """

    def __init__(self, base_layer: nn.Linear, r: int = 8, alpha: float = 8, dropout: float = 0.0,
                 slices=None, use_rslora: bool = False):
        super().__init__(base_layer, r, alpha, dropout, slices)
        self.use_rslora = use_rslora
        self.reset_parameters()

    @property
    def scaling(self) -> float:
        return self.alpha / math.sqrt(self.r) if self.use_rslora else self.alpha / self.r

    def reset_parameters(self) -> None:
        for a in self.A:  # each adapter's A as its own (r, d_in) weight, as nn.Linear would init it
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        nn.init.zeros_(self.B)

    def mid(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def delta_weight(self) -> torch.Tensor:
        return self.scaling * self.up_weight() @ self.A.flatten(0, 1)
