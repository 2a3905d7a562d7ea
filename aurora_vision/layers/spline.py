"""B-spline bases on a uniform grid, as used by the spline path of AuroRA's nonlinearity."""
import torch
from torch import nn


def uniform_knots(grid_size: int, order: int, grid_range: tuple[float, float], device=None) -> torch.Tensor:
    """The G + 2k + 1 knots of a uniform grid over `grid_range`, extended by `order` steps each side."""
    lo, hi = grid_range
    step = (hi - lo) / grid_size
    return lo + step * torch.arange(-order, grid_size + order + 1, dtype=torch.float64, device=device)


def bspline_bases_reference(x: torch.Tensor, knots: torch.Tensor, order: int) -> torch.Tensor:
    """Cox-de Boor recursion: (..., ) -> (..., len(knots) - order - 1). Any order, any knots.

    Kept as the definition the fast path is tested against.
    """
    x = x.unsqueeze(-1)
    t = knots.to(x.dtype)
    bases = ((x >= t[:-1]) & (x < t[1:])).to(x.dtype)
    for p in range(1, order + 1):
        left = (x - t[: -(p + 1)]) / (t[p:-1] - t[: -(p + 1)]) * bases[..., :-1]
        right = (t[p + 1:] - x) / (t[p + 1:] - t[1:-p]) * bases[..., 1:]
        bases = left + right
    return bases


def cubic_bspline_bases_uniform(x: torch.Tensor, first_knot: float, step: float, num_bases: int) -> torch.Tensor:
    """Closed form of the uniform cubic B-spline bases: (...,) -> (..., num_bases).

    Basis j is the cardinal cubic B-spline centred at knot j + 2, a function of d = |u - j - 2| with
    u = (x - first_knot) / step: 2/3 - d^2 + d^3/2 for d < 1, (2 - d)^3 / 6 for 1 <= d < 2, else 0.
    No recursion and no data-dependent branches, so it is cheap and fuses well.
    """
    d = _offsets(x, first_knot, step, num_bases).abs()
    inner = 2.0 / 3.0 - d * d + 0.5 * d * d * d
    outer = (2.0 - d).clamp(min=0) ** 3 / 6.0
    return torch.where(d < 1, inner, outer)


def cubic_bspline_bases_uniform_grad(x: torch.Tensor, first_knot: float, step: float, num_bases: int) -> torch.Tensor:
    """d/dx of `cubic_bspline_bases_uniform`: (...,) -> (..., num_bases), with the same d:
    (-2 d + 3/2 d^2) for d < 1, -(2 - d)^2 / 2 for 1 <= d < 2, else 0; times sign(u - j - 2) / step."""
    diff = _offsets(x, first_knot, step, num_bases)
    d = diff.abs()
    inner = -2.0 * d + 1.5 * d * d
    outer = -0.5 * (2.0 - d).clamp(min=0) ** 2
    return torch.where(d < 1, inner, outer) * diff.sign() / step


def _offsets(x: torch.Tensor, first_knot: float, step: float, num_bases: int) -> torch.Tensor:
    """u - j - 2 for every basis j, u = (x - first_knot) / step: (...,) -> (..., num_bases)."""
    u = (x.unsqueeze(-1) - first_knot) / step
    return u - torch.arange(2, num_bases + 2, device=x.device, dtype=x.dtype)


class BSplineBasis(nn.Module):
    """The G + k B-spline bases of order k on a uniform grid of G intervals over `grid_range`.

    Non-negative, a partition of unity inside `grid_range`, zero outside the extended knots.
    Cubic splines (order 3) use the closed form; other orders the Cox-de Boor recursion.
    """

    def __init__(self, grid_size: int = 5, order: int = 3, grid_range: tuple[float, float] = (-1.0, 1.0),
                 device=None):
        super().__init__()
        if grid_size < 1 or order < 0:
            raise ValueError(f"grid_size must be >= 1 and order >= 0, got grid_size={grid_size}, order={order}")
        if not grid_range[0] < grid_range[1]:
            raise ValueError(f"grid_range must be increasing, got {grid_range}")
        self.grid_size, self.order, self.grid_range = grid_size, order, tuple(grid_range)
        self.num_bases = grid_size + order
        self.register_buffer("knots", self._knots(device), persistent=False)

    def _knots(self, device) -> torch.Tensor:
        return uniform_knots(self.grid_size, self.order, self.grid_range, device).float()

    def init_non_persistent_buffers(self) -> None:
        """Recompute `knots` (not saved in state dicts) where they are: timm's `reinit_non_persistent_buffers`
        calls this after a meta-device model is materialised with `to_empty`."""
        self.knots = self._knots(self.knots.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == 3:
            step = (self.grid_range[1] - self.grid_range[0]) / self.grid_size
            return cubic_bspline_bases_uniform(x, self.grid_range[0] - 3 * step, step, self.num_bases)
        return bspline_bases_reference(x, self.knots, self.order)

    def extra_repr(self) -> str:
        return f"grid_size={self.grid_size}, order={self.order}, grid_range={self.grid_range}"
