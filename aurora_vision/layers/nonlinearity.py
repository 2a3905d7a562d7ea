"""AuroRA's Adaptive Nonlinear Layer: sigma(z) = tanh(H tanh(z)) + W_s . sum_i bases(z_i)."""
import functools
import math
from typing import Optional

import torch
from torch import nn

from .. import kernels
from .autocast import autocast_off
from .spline import BSplineBasis, cubic_bspline_bases_uniform, cubic_bspline_bases_uniform_grad

# where the forward takes AURORA_VISION_SIGMA's implementation; elsewhere the plain formula, which TorchScript,
# ONNX export and fvcore's trace also see (the tests add "cpu" to run the custom op there)
FAST_DEVICES = ("cuda",)


def sigma_cubic(z: torch.Tensor, H: Optional[torch.Tensor], spline_weight: Optional[torch.Tensor],
                first_knot: float, step: float) -> torch.Tensor:
    """sigma(z) for cubic splines on a uniform grid, as one pure function that torch.compile can fuse.
    z: (..., n, r); H: (n, r, r) or None; spline_weight: (n, r, G+3) or None."""
    summed: Optional[torch.Tensor] = None
    if spline_weight is not None:
        summed = cubic_bspline_bases_uniform(z, first_knot, step, spline_weight.shape[-1]).sum(dim=-2)
    return _combine(z, H, spline_weight, summed)


def sigma_cubic_backward(z: torch.Tensor, H: Optional[torch.Tensor], spline_weight: Optional[torch.Tensor],
                         gout: torch.Tensor, first_knot: float, step: float):
    """(dz, dH, dW) of `sigma_cubic` for the output gradient `gout`, written out as the Triton backward computes
    them (the custom op's torch form, kernels/triton_sigma.py); dH / dW None for a switched-off path.
    With t = tanh z, y = tanh(H t): dz = (H^T (gout (1 - y^2))) (1 - t^2) + sum_g B'_g(z) (W^T gout)_g."""
    shape = z.shape
    z, gout = z.reshape(-1, *shape[-2:]), gout.reshape(-1, *shape[-2:])  # (tokens, n, r)
    gz, gh, gw = torch.zeros_like(z), None, None
    if H is not None:
        t = torch.tanh(z)
        y = torch.tanh((t.unsqueeze(-2) * H).sum(-1))
        gu = gout * (1.0 - y * y)                                          # (tokens, n, s)
        gz = gz + (gu.unsqueeze(-1) * H).sum(-2) * (1.0 - t * t)          # sum over s of gu[s] H[s, j]
        gh = (gu.unsqueeze(-1) * t.unsqueeze(-2)).sum(0)                  # (n, s, j)
    if spline_weight is not None:
        nb = spline_weight.shape[-1]
        summed = cubic_bspline_bases_uniform(z, first_knot, step, nb).sum(-2)      # (tokens, n, g)
        gsum = (gout.unsqueeze(-1) * spline_weight).sum(-2)                        # (tokens, n, g)
        gz = gz + (cubic_bspline_bases_uniform_grad(z, first_knot, step, nb) * gsum.unsqueeze(-2)).sum(-1)
        gw = (gout.unsqueeze(-1) * summed.unsqueeze(-2)).sum(0)                    # (n, s, g)
    return gz.reshape(shape), gh, gw


def _combine(z: torch.Tensor, H: Optional[torch.Tensor], spline_weight: Optional[torch.Tensor],
             summed_bases: Optional[torch.Tensor]) -> torch.Tensor:
    """tanh(H tanh z) + W_s . summed_bases, per adapter. The r- and (G+k)-long contractions are written as
    broadcast products and sums, not einsum: as matmuls their backward becomes a batched GEMM reducing over
    every token into a handful of outputs, which ran at a few percent of the GPU (29 ms of a 108 ms
    ViT-B step at batch 256); as reductions they fuse and spread over the whole chip."""
    out: Optional[torch.Tensor] = None
    if H is not None:
        out = torch.tanh((torch.tanh(z).unsqueeze(-2) * H).sum(-1))  # (..., n, 1, r) * (n, s, r)
    if spline_weight is not None and summed_bases is not None:
        spline = (summed_bases.unsqueeze(-2) * spline_weight).sum(-1)  # (..., n, 1, g) * (n, r, g)
        out = spline if out is None else out + spline
    if out is None:
        raise ValueError("sigma needs H or spline_weight (and its summed bases)")
    return out


_fused_sigma_cubic = None


def fused_sigma_cubic(*args):
    global _fused_sigma_cubic
    if _fused_sigma_cubic is None:  # compiled on first use only: importing stays cheap, CPU stays eager
        _fused_sigma_cubic = torch.compile(sigma_cubic, dynamic=True)
    return _fused_sigma_cubic(*args)


def cuda_sigma_cubic():
    """The implementation AURORA_VISION_SIGMA names, for CUDA tensors: on CUDA the r-wide nonlinearity is a
    few dozen tiny elementwise kernels per layer in eager mode, so its cost is launch overhead (resolved
    once per name: this runs in every adapted layer's forward)."""
    return _sigma_named(kernels.SIGMA_ON_CUDA)


@functools.cache
def _sigma_named(name: str):
    kernels.check("AURORA_VISION_SIGMA", name)
    if name == "triton":
        return kernels.triton_kernels("triton_sigma", "AURORA_VISION_SIGMA").triton_sigma_cubic
    return fused_sigma_cubic if name == "compile" else sigma_cubic


class AdaptiveNonlinearity(nn.Module):
    """The rank-r nonlinearity between AuroRA's down and up projections.

    Holds `num_adapters` independent copies (one per adapted output slice, e.g. q and v of a fused
    qkv) so that they run as one batched op. Input and output: (..., num_adapters, rank).

    Args:
        rank: r, the width of z = A x.
        num_adapters: independent copies stacked along dim -2.
        grid_size: G, uniform grid intervals of the spline path.
        spline_order: k, order of the B-splines (3 = cubic).
        grid_range: the interval the grid covers; bases vanish k steps beyond it.
        use_tanh: keep the fixed path F(z) = tanh(H tanh(z)) (ablation switch).
        use_spline: keep the learnable spline path L(z) (ablation switch).
    """

    def __init__(
        self,
        rank: int,
        num_adapters: int = 1,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        use_tanh: bool = True,
        use_spline: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if not (use_tanh or use_spline):
            raise ValueError("AdaptiveNonlinearity needs at least one of use_tanh / use_spline")
        self.rank, self.num_adapters = rank, num_adapters
        self.use_tanh, self.use_spline = use_tanh, use_spline
        factory = dict(device=device, dtype=dtype)
        self.H = nn.Parameter(torch.empty(num_adapters, rank, rank, **factory)) if use_tanh else None
        if use_spline:
            self.bases = BSplineBasis(grid_size, spline_order, grid_range, device=device)
            self.spline_weight = nn.Parameter(torch.empty(num_adapters, rank, self.bases.num_bases, **factory))
        else:
            self.bases, self.spline_weight = None, None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.H is not None:  # Xavier-normal, as the reimplementations do
            nn.init.normal_(self.H, std=math.sqrt(2.0 / (2 * self.rank)))
        if self.spline_weight is not None:
            nn.init.uniform_(self.spline_weight, -0.1, 0.1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # r-wide, so fp32 costs nothing and keeps the spline bases exact under bf16 autocast
        if torch.jit.is_scripting():
            return self._scripted_fp32(z.float()).to(z.dtype)
        with autocast_off(z.device.type):
            return self._forward_fp32(z.float()).to(z.dtype)

    def _scripted_fp32(self, z: torch.Tensor) -> torch.Tensor:
        """The formula in plain torch ops, as TorchScript compiles it (no kernel choice there)."""
        summed: Optional[torch.Tensor] = None
        if self.bases is not None:
            summed = self.bases(z).sum(dim=-2)
        return _combine(z, self.H, self.spline_weight, summed)

    @torch.jit.unused
    def _forward_fp32(self, z: torch.Tensor) -> torch.Tensor:
        if self.bases is None or self.bases.order == 3:
            first, step = self._grid()
            fast = z.device.type in FAST_DEVICES and not torch.jit.is_tracing()  # fvcore traces with jit
            fn = cuda_sigma_cubic() if fast else sigma_cubic
            return fn(z, self.H, self.spline_weight, first, step)
        summed = self.bases(z).sum(dim=-2) if self.bases is not None else None  # summed over the r units
        return _combine(z, self.H, self.spline_weight, summed)

    def _grid(self) -> tuple[float, float]:
        if self.bases is None:
            return 0.0, 1.0
        lo, hi = self.bases.grid_range
        step = (hi - lo) / self.bases.grid_size
        return lo - 3 * step, step

    def extra_repr(self) -> str:
        return f"rank={self.rank}, num_adapters={self.num_adapters}, use_tanh={self.use_tanh}, use_spline={self.use_spline}"
