"""AuroRA's nonlinearity (cubic splines on a uniform grid) as two hand-written Triton kernels.

Why not torch.compile, which fuses the same formula: in a fresh process its first AuroRA forward and
backward compile for tens of seconds, paid again by every sweep worker; these kernels JIT in seconds and
the step with them is at least as fast (benchmarks/RESULTS.md).

Rows are the (token, adapter) pairs of z (..., n, r); each program takes a block of rows, loads each row's
adapter parameters (H: (n, r, r), W: (n, r, G+3)) and evaluates, per row,
    out[s] = tanh(sum_j H[s, j] tanh(z[j])) + sum_g W[s, g] sum_j B_g(z[j]),
with B_g the closed-form cardinal cubic B-spline of spline.cubic_bspline_bases_uniform. The backward
kernel recomputes the forward from z, writes dz, and per-program partial sums of dH and dW that torch
adds up (deterministic, no atomics). The same code runs on the CPU under TRITON_INTERPRET=1 (the tests).

Both passes are `torch.library.triton_op`s (`aurora_vision::sigma_cubic` and its backward, tied by
`register_autograd`): dynamo puts the op in the graph, inductor sees the kernels, and AOTAutograd's cache keys
on their source. (As a custom autograd.Function launching the kernels, reached through an importlib import that
dynamo cannot trace, the sigma left 13 graph breaks in regionally compiled ViT-B/16 blocks on the GPU, torch
2.11; on the CPU the import alone broke the graph.) The ops also take CPU tensors, where they compute the same
with torch ops (`sigma_cubic`, `sigma_cubic_backward`): the layers run the plain formula on the CPU, so that
form only serves the tests that compile a block with the op in it.
"""
from typing import Optional

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ..layers.nonlinearity import sigma_cubic, sigma_cubic_backward


@triton.jit
def _tanh(x):
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)  # exact at +-inf, no libdevice needed


@triton.jit
def _rows(pid, n_rows, n_adapters, R: tl.constexpr, RP: tl.constexpr, BLOCK: tl.constexpr):
    row = pid * BLOCK + tl.arange(0, BLOCK)
    j = tl.arange(0, RP)
    return row, row < n_rows, row % n_adapters, j, j < R


@triton.jit
def _bases(z, jmask, first_knot, inv_step, G: tl.constexpr):
    """Bases of every input unit, (BLOCK, RP, GP), with d = |u - g - 2| (padding units give 0)."""
    g = tl.arange(0, G)
    u = (z - first_knot) * inv_step
    diff = u[:, :, None] - (g[None, None, :] + 2).to(tl.float32)
    d = tl.abs(diff)
    o = tl.maximum(2.0 - d, 0.0)
    b = tl.where(d < 1.0, 2.0 / 3.0 - d * d + 0.5 * d * d * d, o * o * o / 6.0)
    return tl.where(jmask[None, :, None], b, 0.0), diff, d, o


@triton.jit
def _params(ptr, a, rmask, R: tl.constexpr, RP: tl.constexpr, C: tl.constexpr, CP: tl.constexpr):
    """Each row's (R, C) parameter matrix of its adapter, padded to (BLOCK, RP, CP) with zeros."""
    s = tl.arange(0, RP)
    c = tl.arange(0, CP)
    mask = rmask[:, None, None] & (s[None, :, None] < R) & (c[None, None, :] < C)
    return tl.load(ptr + a[:, None, None] * (R * C) + s[None, :, None] * C + c[None, None, :], mask=mask, other=0.0)


@triton.jit
def _sigma_fwd(z_ptr, h_ptr, w_ptr, out_ptr, n_rows, first_knot, inv_step, N: tl.constexpr,
               R: tl.constexpr, RP: tl.constexpr, NB: tl.constexpr, GP: tl.constexpr,
               USE_TANH: tl.constexpr, USE_SPLINE: tl.constexpr, BLOCK: tl.constexpr):
    row, rmask, a, j, jmask = _rows(tl.program_id(0), n_rows, N, R, RP, BLOCK)
    zmask = rmask[:, None] & jmask[None, :]
    z = tl.load(z_ptr + row[:, None] * R + j[None, :], mask=zmask, other=0.0)
    out = tl.zeros((BLOCK, RP), dtype=tl.float32)
    if USE_TANH:
        h = _params(h_ptr, a, rmask, R, RP, R, RP)
        out += _tanh(tl.sum(h * _tanh(z)[:, None, :], axis=2))
    if USE_SPLINE:
        b, _, _, _ = _bases(z, jmask, first_knot, inv_step, GP)
        w = _params(w_ptr, a, rmask, R, RP, NB, GP)
        out += tl.sum(w * tl.sum(b, axis=1)[:, None, :], axis=2)
    tl.store(out_ptr + row[:, None] * R + j[None, :], out, mask=zmask)


@triton.jit
def _sigma_bwd(z_ptr, h_ptr, w_ptr, gout_ptr, gz_ptr, gh_part_ptr, gw_part_ptr, n_rows,
               first_knot, inv_step, N: tl.constexpr, R: tl.constexpr, RP: tl.constexpr, NB: tl.constexpr,
               GP: tl.constexpr, USE_TANH: tl.constexpr, USE_SPLINE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    row, rmask, a, j, jmask = _rows(pid, n_rows, N, R, RP, BLOCK)
    zmask = rmask[:, None] & jmask[None, :]
    z = tl.load(z_ptr + row[:, None] * R + j[None, :], mask=zmask, other=0.0)
    gout = tl.load(gout_ptr + row[:, None] * R + j[None, :], mask=zmask, other=0.0)  # indexed by output s
    gz = tl.zeros((BLOCK, RP), dtype=tl.float32)
    s = tl.arange(0, RP)
    if USE_TANH:
        h = _params(h_ptr, a, rmask, R, RP, R, RP)
        t = _tanh(z)
        y = _tanh(tl.sum(h * t[:, None, :], axis=2))
        gu = gout * (1.0 - y * y)                                       # (BLOCK, s)
        gz += tl.sum(h * gu[:, :, None], axis=1) * (1.0 - t * t)        # sum over s of gu[s] H[s, j]
        gh = gu[:, :, None] * t[:, None, :]                             # (BLOCK, s, j)
        for ad in tl.static_range(N):  # N, the adapters of a layer, is 1-3
            part = tl.sum(tl.where((a == ad)[:, None, None], gh, 0.0), axis=0)
            m = (s[:, None] < R) & (j[None, :] < R)
            tl.store(gh_part_ptr + ((pid * N + ad) * R + s[:, None]) * R + j[None, :], part, mask=m)
    if USE_SPLINE:
        g = tl.arange(0, GP)
        b, diff, d, o = _bases(z, jmask, first_knot, inv_step, GP)
        w = _params(w_ptr, a, rmask, R, RP, NB, GP)
        gsum = tl.sum(w * gout[:, :, None], axis=1)                     # dL/d(summed bases), (BLOCK, g)
        sign = tl.where(diff < 0.0, -1.0, 1.0)
        db = tl.where(d < 1.0, -2.0 * d + 1.5 * d * d, -0.5 * o * o) * sign * inv_step
        db = tl.where(jmask[None, :, None], db, 0.0)
        gz += tl.sum(db * gsum[:, None, :], axis=2)
        gw = gout[:, :, None] * tl.sum(b, axis=1)[:, None, :]           # (BLOCK, s, g)
        for ad in tl.static_range(N):  # N, the adapters of a layer, is 1-3
            part = tl.sum(tl.where((a == ad)[:, None, None], gw, 0.0), axis=0)
            m = (s[:, None] < R) & (g[None, :] < NB)
            tl.store(gw_part_ptr + ((pid * N + ad) * R + s[:, None]) * NB + g[None, :], part, mask=m)
    tl.store(gz_ptr + row[:, None] * R + j[None, :], gz, mask=zmask)


def _launch_config(r: int, nb: int):
    rp, gp = triton.next_power_of_2(r), triton.next_power_of_2(max(nb, 1))
    block = max(16, min(256, triton.next_power_of_2(4096 // (rp * max(rp, gp)))))
    return rp, gp, block


# @triton.jit gives an InterpretedFunction under TRITON_INTERPRET=1: the kernels then run on CPU tensors
_INTERPRETED = type(_sigma_fwd).__name__ == "InterpretedFunction"
if _INTERPRETED:  # older torch's wrap_triton refuses interpreted kernels (pytorch/pytorch#152868); eager needs none
    def wrap_triton(kernel):
        return kernel


def _on_triton(z: torch.Tensor) -> bool:
    return z.is_cuda or _INTERPRETED


@triton_op("aurora_vision::sigma_cubic", mutates_args=())
def sigma_cubic_op(z: torch.Tensor, H: Optional[torch.Tensor], W: Optional[torch.Tensor], first_knot: float,
                   step: float) -> torch.Tensor:
    """nonlinearity.sigma_cubic (fp32 z of shape (..., n, r)) by `_sigma_fwd`."""
    if not _on_triton(z):
        return sigma_cubic(z, H, W, first_knot, step)
    n, r = z.shape[-2], z.shape[-1]
    nb = W.shape[-1] if W is not None else 1
    rp, gp, block = _launch_config(r, nb)
    zc = z.contiguous()
    rows = zc.numel() // r
    out = torch.empty_like(zc)
    # a switched-off path's parameter pointer is never read: z stands in
    h = H.contiguous() if H is not None else zc
    w = W.contiguous() if W is not None else zc
    wrap_triton(_sigma_fwd)[(triton.cdiv(rows, block),)](
        zc, h, w, out, rows, first_knot, 1.0 / step, N=n, R=r, RP=rp, NB=nb, GP=gp, USE_TANH=H is not None,
        USE_SPLINE=W is not None, BLOCK=block)
    return out


@triton_op("aurora_vision::sigma_cubic_backward", mutates_args=())
def sigma_cubic_backward_op(z: torch.Tensor, H: Optional[torch.Tensor], W: Optional[torch.Tensor], gout: torch.Tensor,
                            first_knot: float, step: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dz, dH, dW) by `_sigma_bwd`; a switched-off path's gradient is an empty tensor (an op returns tensors)."""
    if not _on_triton(z):
        gz, gh, gw = sigma_cubic_backward(z, H, W, gout, first_knot, step)
        return gz, gh if gh is not None else z.new_empty(0), gw if gw is not None else z.new_empty(0)
    n, r = z.shape[-2], z.shape[-1]
    nb = W.shape[-1] if W is not None else 1
    rp, gp, block = _launch_config(r, nb)
    zc = z.contiguous()
    rows = zc.numel() // r
    programs = triton.cdiv(rows, block)
    h = H.contiguous() if H is not None else zc
    w = W.contiguous() if W is not None else zc
    gz = torch.empty_like(zc)
    # every program writes its part; a switched-off path's buffer is never written (one element of its own)
    gh_part = zc.new_empty(programs, n, r, r) if H is not None else zc.new_empty(1)
    gw_part = zc.new_empty(programs, n, r, nb) if W is not None else zc.new_empty(1)
    wrap_triton(_sigma_bwd)[(programs,)](
        zc, h, w, gout.contiguous(), gz, gh_part, gw_part, rows, first_knot, 1.0 / step, N=n, R=r, RP=rp, NB=nb,
        GP=gp, USE_TANH=H is not None, USE_SPLINE=W is not None, BLOCK=block)
    return (gz, gh_part.sum(0) if H is not None else z.new_empty(0),
            gw_part.sum(0) if W is not None else z.new_empty(0))


def _save(ctx, inputs, output):
    z, H, W, first_knot, step = inputs
    ctx.save_for_backward(z, H, W)
    ctx.grid = first_knot, step


def _backward(ctx, gout):
    z, H, W = ctx.saved_tensors
    gz, gh, gw = sigma_cubic_backward_op(z, H, W, gout, *ctx.grid)
    return gz, gh if H is not None else None, gw if W is not None else None, None, None


sigma_cubic_op.register_autograd(_backward, setup_context=_save)


def triton_sigma_cubic(z, H, spline_weight, first_knot: float, step: float):
    """Same contract as nonlinearity.sigma_cubic (fp32 z of shape (..., n, r))."""
    return sigma_cubic_op(z, H, spline_weight, first_knot, step)
