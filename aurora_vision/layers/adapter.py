"""The shared shape of a low-rank adapter branch around a frozen nn.Linear: h = W0 x + s B g(A x)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import register_notrace_module
from torch import nn

from .. import kernels
from .autocast import autocast_dtype, autocast_off


def _row_pieces(slices: list, out_features: int) -> list[tuple[int, int]]:
    """The up-projection's rows top to bottom as (adapter index, rows): each slice's B in turn, and
    (-1, rows) for the zero rows between and around them (never empty pieces: they upset exporters)."""
    pieces, row = [], 0
    for index, (start, end) in sorted(enumerate(slices), key=lambda item: item[1][0]):
        if start > row:
            pieces.append((-1, start - row))
        pieces.append((index, end - start))
        row = end
    if row < out_features:
        pieces.append((-1, out_features - row))
    return pieces


class AdapterLinear(nn.Module):
    """Wraps `base_layer` (kept intact, as peft does) and adds a rank-r branch per output slice.

    With `slices=None` one branch covers the whole output. With slices, e.g. the q and v thirds of a
    fused qkv, each slice gets its own A (r x d_in) and B (d_slice x r). All branches run as one
    matmul down and one up: the up-projection is the block-diagonal of the B's scattered to the
    slice rows, so un-adapted rows (k) get exactly zero.

    Subclasses define `mid` (what happens between A and B), `reset_parameters` and `delta_weight`, and
    declare what the runner and the FLOP counter need to know about them:
    `exact_merge`: whether `merge()` reproduces the outputs (False: it needs `approximate=True`, and the
    runner also evaluates that approximate form); `flop_modules`: submodules whose elementwise ops count
    as arithmetic (fvcore drops elementwise ops).
    """
    exact_merge: bool = True
    flop_modules: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register_notrace_module(cls)  # timm's check is by exact class, so every adapter kind registers

    def __init__(
        self,
        base_layer: nn.Linear,
        r: int,
        alpha: float,
        dropout: float = 0.0,
        slices: Optional[Sequence[tuple[int, int]]] = None,
    ):
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"{type(self).__name__} wraps nn.Linear, got {type(base_layer).__name__}")
        if r < 1:
            raise ValueError(f"rank r must be >= 1, got {r}")
        self.base_layer = base_layer
        in_features, out_features = base_layer.in_features, base_layer.out_features
        slices = [tuple(s) for s in (slices or [(0, out_features)])]
        sizes = {end - start for start, end in slices}
        if len(sizes) != 1 or any(not 0 <= s < e <= out_features for s, e in slices):
            raise ValueError(f"slices must be equal-sized ranges inside [0, {out_features}), got {slices}")
        self.r, self.alpha, self.slices = r, alpha, slices
        self.num_adapters, slice_size = len(slices), sizes.pop()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        factory = dict(device=base_layer.weight.device, dtype=base_layer.weight.dtype)
        self.A = nn.Parameter(torch.empty(self.num_adapters, r, in_features, **factory))
        self.B = nn.Parameter(torch.zeros(self.num_adapters, slice_size, r, **factory))
        self.row_pieces = _row_pieces(slices, out_features)
        self.register_buffer("slice_starts", self._slice_starts(base_layer.weight.device), persistent=False)
        self.merged, self.merged_delta = False, None

    def _slice_starts(self, device) -> torch.Tensor:
        # the Triton fold reads the slice offsets from the device
        return torch.tensor([s for s, _ in self.slices], dtype=torch.int32, device=device)

    def init_non_persistent_buffers(self) -> None:
        """Recompute `slice_starts` (not saved in state dicts) where it is: timm's
        `reinit_non_persistent_buffers` calls this after a meta-device model is materialised with `to_empty`."""
        self.slice_starts = self._slice_starts(self.slice_starts.device)

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    def mid(self, z: torch.Tensor) -> torch.Tensor:
        """(..., num_adapters, r) -> (..., num_adapters, r)."""
        raise NotImplementedError

    def up_weight(self) -> torch.Tensor:
        """(out_features, num_adapters * r): every B placed at its slice rows, zero elsewhere.

        Built from zeros and concatenations (no block_diag / index_copy / pad): every exporter handles them
        (the legacy ONNX exporter has no block_diag), and FLOP counters know them as data movement."""
        n, r = self.num_adapters, self.r
        if len(self.row_pieces) == 1:
            return self.B[0]
        pieces = []
        for index, rows in self.row_pieces:
            if index < 0:
                pieces.append(self.B.new_zeros(rows, n * r))
                continue
            block = self.B[index]
            if index > 0:
                block = torch.cat([self.B.new_zeros(rows, index * r), block], 1)
            if index < n - 1:
                block = torch.cat([block, self.B.new_zeros(rows, (n - 1 - index) * r)], 1)
            pieces.append(block)
        return torch.cat(pieces, 0)

    def branch_input(self, x: torch.Tensor) -> torch.Tensor:
        """g(A x), (..., num_adapters * r): what the up-projection multiplies."""
        # A in x's dtype: a no-op under autocast (which casts both); the folded eval calls this on its bf16
        # buffer with autocast off
        a, xd = self.A.flatten(0, 1).to(x.dtype), self.dropout(x)
        return self.mid(F.linear(xd, a).unflatten(-1, [self.num_adapters, self.r])).flatten(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return self._scripted_forward(x)
        return self._eager_forward(x)

    def _scripted_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The formula itself, as TorchScript compiles it (no autocast or kernel choices there)."""
        out = self.base_layer(x)
        if self.merged:
            return out
        return out + self.scaling * F.linear(self.branch_input(x), self.up_weight().to(out.dtype))

    @torch.jit.unused
    def _eager_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.base_layer(x)
        # fvcore traces with jit: it counts the method's own MACs, not this arrangement of them
        if not torch.is_grad_enabled() and self.in_features <= self.out_features and not torch.jit.is_tracing():
            return self._folded_forward(x)
        cast_to = autocast_dtype(x.device.type)
        if x.dtype == torch.float32 and cast_to is not None:
            # one cast for both GEMMs: autocast would cast x for each, and autograd would add their input
            # gradients in fp32 and cast each back (three full-width passes more than the base layer makes)
            x = x.to(cast_to)
        out = self.base_layer(x)
        z = self.branch_input(x)
        # out + s * z U^T in one GEMM whose epilogue adds into out: no separate full-width add
        flat = torch.addmm(out.reshape(-1, out.shape[-1]), z.reshape(-1, z.shape[-1]).to(out.dtype),
                           self.up_weight().T.to(out.dtype), alpha=self.scaling)
        return flat.view(out.shape)

    def _folded_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same output as one GEMM: [x | s g(A x)] [W0 | U]^T, the branch as r extra input columns.

        Without autograd (eval) this replaces the base GEMM and the up-projection's read-modify-write of
        the whole output (out_features wide) by one copy of the input into the widened buffer, which is
        also the cast to the GEMM's dtype that autocast would make anyway; the down-projection reads the
        buffer's bf16 copy. Under autograd the widened weight would get a full weight gradient, so
        training keeps the two-GEMM form.
        """
        on = x.device.type
        dtype = autocast_dtype(on) or x.dtype
        d, width = self.in_features, self.num_adapters * self.r
        k = -(-(d + width) // 8) * 8  # a multiple of 8: 16-byte rows for the bf16 GEMM
        base = self.base_layer
        bias = None if base.bias is None else base.bias.to(dtype)
        with autocast_off(on):  # everything below is already in the GEMM's dtype
            fold = self._fold_kernels(x, dtype)
            if fold is not None:
                xg, z = fold.fold_input(x, self.A.flatten(0, 1), k, dtype)
                xg[..., d:d + width] = self.mid(z.unflatten(-1, (self.num_adapters, self.r))).flatten(-2)
                w = fold.fold_weight(base.weight, self.B, self.slice_starts, self.scaling, k, dtype)
                return F.linear(xg, w, bias)
            xg = x.new_empty(*x.shape[:-1], k, dtype=dtype)
            xg[..., :d] = x
            xg[..., d + width:] = 0
            xg[..., d:d + width] = self.branch_input(xg[..., :d])
            w = base.weight.new_zeros(base.out_features, k, dtype=dtype)
            w[:, :d] = base.weight
            w[:, d:d + width] = self.scaling * self.up_weight()
            return F.linear(xg, w, bias)

    def _fold_kernels(self, x: torch.Tensor, dtype: torch.dtype):
        """triton_fold where it applies: CUDA, a half-precision GEMM, no dropout to draw, not under
        torch.compile (inductor fuses the torch form itself); None for the torch form."""
        if not x.is_cuda or dtype not in (torch.bfloat16, torch.float16) or torch.compiler.is_compiling():
            return None
        if self.training and not isinstance(self.dropout, nn.Identity):
            return None
        kernels.check("AURORA_VISION_FOLD", kernels.FOLD_ON_CUDA)
        return None if kernels.FOLD_ON_CUDA == "torch" else kernels.triton_kernels("triton_fold", "AURORA_VISION_FOLD")

    # The base layer's weight and bias, as peft's layers expose them: code that reads `layer.weight` (timm's
    # BEiT-style F.linear(x, qkv.weight, bias)) runs, so `apply` refuses the adapter by name (liveness.py)
    # instead of the forward failing on a missing attribute.
    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> Optional[torch.Tensor]:
        return self.base_layer.bias

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    def delta_weight(self) -> torch.Tensor:
        """The (out, in) matrix that `merge` adds to the base weight."""
        raise NotImplementedError

    @torch.no_grad()
    def merge(self, approximate: bool = False, delta: Optional[torch.Tensor] = None) -> None:
        """Add `delta_weight()`, or the caller's `delta` (out, in), to the base weight. `approximate` is the
        caller's consent to a merge that changes outputs; exact methods (LoRA) ignore it. A given `delta`
        (e.g. calibrate.py's fitted one) is kept, as added, for `unmerge`: it cannot be recomputed."""
        if self.merged:
            raise RuntimeError(f"{type(self).__name__} is already merged")
        w = self.base_layer.weight
        added = (self.delta_weight() if delta is None else delta).to(w.device, w.dtype)
        if added.shape != w.shape:
            raise ValueError(f"delta of shape {tuple(added.shape)} does not match the weight's {tuple(w.shape)}")
        w.add_(added)
        self.merged_delta = None if delta is None else added
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            raise RuntimeError(f"{type(self).__name__} is not merged")
        w = self.base_layer.weight
        given = self.merged_delta
        w.sub_((self.delta_weight() if given is None else given).to(w.device, w.dtype))
        self.merged_delta = None
        self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, slices={self.slices}, merged={self.merged}"


# torch.fx cannot trace the forward's grad-mode and autocast branches; as a leaf, FX graphs call the layer
register_notrace_module(AdapterLinear)
