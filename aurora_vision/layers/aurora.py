"""AuroRA (Dong et al. 2025): h = W0 x + s B sigma(A x), sigma the Adaptive Nonlinear Layer."""
import torch
from torch import nn

from .adapter import AdapterLinear
from .nonlinearity import AdaptiveNonlinearity


class AuroraLinear(AdapterLinear):
    """AuroRA branch around a frozen Linear. B = 0 at init, so the wrapped layer starts as the base.

    The exact (dynamic) form runs by default. `merge(approximate=True)` folds in the paper's static
    approximation (appendix B): W0 + s B sigma(A), sigma applied to each column of A; it changes the
    outputs, so it has to be asked for by name.

    Args:
        grid_size, spline_order, grid_range, use_tanh, use_spline: see `AdaptiveNonlinearity`.
    """
    exact_merge = False
    flop_modules = ("sigma",)

    def __init__(self, base_layer: nn.Linear, r: int = 2, alpha: float = 4, dropout: float = 0.0, slices=None,
                 grid_size: int = 5, spline_order: int = 3, grid_range=(-1.0, 1.0),
                 use_tanh: bool = True, use_spline: bool = True):
        super().__init__(base_layer, r, alpha, dropout, slices)
        w = base_layer.weight
        self.sigma = AdaptiveNonlinearity(r, self.num_adapters, grid_size, spline_order, tuple(grid_range),
                                          use_tanh, use_spline, device=w.device, dtype=w.dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for a in self.A:  # Xavier-normal per adapter
            nn.init.xavier_normal_(a)
        nn.init.zeros_(self.B)
        self.sigma.reset_parameters()

    def mid(self, z: torch.Tensor) -> torch.Tensor:
        return self.sigma(z)

    def delta_weight(self) -> torch.Tensor:
        columns = self.A.permute(2, 0, 1)  # (d_in, n, r): each column of each A
        return self.scaling * self.up_weight() @ self.sigma(columns).flatten(1).T

    def merge(self, approximate: bool = False, delta=None) -> None:
        if not approximate:
            raise ValueError(
                "AuroRA cannot be merged exactly: its update depends nonlinearly on A x. "
                "merge(approximate=True) applies the paper's static approximation W0 + s B sigma(A), "
                "which changes the outputs; aurora_vision.merge(model, calibration=batches) fits one to "
                "activations instead (calibrate.py); unmerge() restores the exact weights.")
        super().merge(approximate=True, delta=delta)
