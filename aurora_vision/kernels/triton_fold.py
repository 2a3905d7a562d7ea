"""The eval fold's two operands, each built in one Triton pass (adapter.AdapterLinear._folded_forward).

The fold runs an adapted Linear without autograd as one GEMM, [x | s g(A x)] [W0 | U]^T. Built from torch
ops, its operands cost a dozen kernels per layer: a strided cast-copy of x into the widened buffer, a
skinny cuBLAS GEMM for x A^T (a 4-wide output, several times slower than its read of x at full
bandwidth), zero fills, block_diag/index_copy/scale/cast/copy for the widened weight. Here:

- `fold_input`: reads x once, writes its cast into xg[:, :d], zeroes the padding columns, and returns
  z = x A^T (fp32 holding bf16-rounded values, as a bf16 GEMM would give) for the caller's nonlinearity.
- `fold_weight`: writes [W0 | s U | 0] in the GEMM's dtype, U the B's at their slice rows.

The same code runs on the CPU under TRITON_INTERPRET=1 (the tests).
"""
import os

import torch
import triton
import triton.language as tl

# fold_input's default launch: rows of x per program (each reads whole rows: the down-projection sums over
# them) and warps; the fastest of 32/64/128 rows x 4/8 warps in benchmarks/perf/fold_kernels.py
# Triton's CPU interpreter (the tests) computes half-precision dots wrong; there the dot runs in tf32 on the
# same half-precision values, which tf32 holds exactly, so the product is the same
HALF_DOT = os.environ.get("TRITON_INTERPRET") != "1"


@triton.jit
def _fold_input(x_ptr, a_ptr, xg_ptr, z_ptr, M, D: tl.constexpr, stride_x, K, W: tl.constexpr, WP: tl.constexpr,
                PAD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, HALF_DOT: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)  # 64-bit: rows * K can pass 2^31
    rmask = rows < M
    c = tl.arange(0, WP)
    acc = tl.zeros((BLOCK_M, WP), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        cmask = cols < D
        x = tl.load(x_ptr + rows[:, None] * stride_x + cols[None, :], mask=rmask[:, None] & cmask[None, :], other=0.0)
        xb = x.to(xg_ptr.dtype.element_ty)
        tl.store(xg_ptr + rows[:, None] * K + cols[None, :], xb, mask=rmask[:, None] & cmask[None, :])
        a = tl.load(a_ptr + c[None, :] * D + cols[:, None], mask=(c[None, :] < W) & cmask[:, None], other=0.0)
        ab = a.to(xg_ptr.dtype.element_ty)
        if HALF_DOT:
            acc = tl.dot(xb, ab, acc)
        else:
            acc = tl.dot(xb.to(tl.float32), ab.to(tl.float32), acc, input_precision="tf32")
    z = acc.to(xg_ptr.dtype.element_ty).to(tl.float32)  # rounded as the two-GEMM form's x A^T is in bf16
    tl.store(z_ptr + rows[:, None] * W + c[None, :], z, mask=rmask[:, None] & (c[None, :] < W))
    p = tl.arange(0, PAD)
    tl.store(xg_ptr + rows[:, None] * K + D + W + p[None, :], tl.zeros((BLOCK_M, PAD), xg_ptr.dtype.element_ty),
             mask=rmask[:, None] & (D + W + p[None, :] < K))


@triton.jit
def _fold_weight(w0_ptr, b_ptr, starts_ptr, w_ptr, O, D: tl.constexpr, K, S, scale, R: tl.constexpr,
                 W: tl.constexpr, CP: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_D: tl.constexpr):
    """Program (i, j) writes rows block i of W0's column block j, and the last j the branch columns."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_O + tl.arange(0, BLOCK_O)
    rmask = rows < O
    d0 = tl.program_id(1) * BLOCK_D
    if d0 < D:
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        w0 = tl.load(w0_ptr + rows[:, None] * D + cols[None, :], mask=m, other=0.0)
        tl.store(w_ptr + rows[:, None] * K + cols[None, :], w0.to(w_ptr.dtype.element_ty), mask=m)
    else:  # column D + c holds B[a][row - start_a, j] for c = a R + j where the row lies in adapter a's slice
        c = tl.arange(0, CP)
        a, j = c // R, c % R
        start = tl.load(starts_ptr + a, mask=c < W, other=0)
        offset = rows[:, None] - start[None, :]
        inside = rmask[:, None] & (c[None, :] < W) & (offset >= 0) & (offset < S)
        b = tl.load(b_ptr + (a[None, :] * S + offset) * R + j[None, :], mask=inside, other=0.0)
        tl.store(w_ptr + rows[:, None] * K + D + c[None, :], (scale * b).to(w_ptr.dtype.element_ty),
                 mask=rmask[:, None] & (D + c[None, :] < K))


def fold_input(x: torch.Tensor, A: torch.Tensor, k: int, dtype: torch.dtype, block_m: int = 64,
               num_warps: int = 4, half_dot: bool = HALF_DOT):
    """x (..., d), A (w, d) -> xg (..., k) in `dtype` with x in its first d columns and zeros after d + w,
    and z = x A^T (..., w) in fp32. Columns d..d+w of xg are left for the caller. `block_m` rows of x per
    program, `num_warps` each; `half_dot`: the dot in the GEMM's dtype (else tf32 on the same values)."""
    d, w = x.shape[-1], A.shape[0]
    x2 = x.reshape(-1, d)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m = x2.shape[0]
    xg = torch.empty(m, k, device=x.device, dtype=dtype)
    z = torch.empty(m, w, device=x.device, dtype=torch.float32)
    _fold_input[(triton.cdiv(m, block_m),)](
        x2, A.contiguous(), xg, z, m, d, x2.stride(0), k, W=w, WP=max(16, triton.next_power_of_2(w)),
        PAD=8, BLOCK_M=block_m, BLOCK_D=128, HALF_DOT=half_dot, num_warps=num_warps)
    return xg.view(*x.shape[:-1], k), z.view(*x.shape[:-1], w)


def fold_weight(w0: torch.Tensor, B: torch.Tensor, starts: torch.Tensor, scale: float, k: int,
                dtype: torch.dtype) -> torch.Tensor:
    """[W0 | scale U | 0] of shape (out, k) in `dtype`; U (out, n r) holds each B (n, S, r) at the rows
    starting at starts[a] (int32), zero elsewhere."""
    o, d = w0.shape
    n, s, r = B.shape
    w = torch.empty(o, k, device=w0.device, dtype=dtype)
    block_o, block_d = 32, 128
    _fold_weight[(triton.cdiv(o, block_o), triton.cdiv(d, block_d) + 1)](
        w0.contiguous(), B.contiguous(), starts, w, o, d, k, s, scale, R=r, W=n * r,
        CP=triton.next_power_of_2(k - d), BLOCK_O=block_o, BLOCK_D=block_d)
    return w
