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
"""
import torch
import triton
import triton.language as tl


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


class TritonSigma(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, H, W, first_knot: float, step: float):
        n, r = z.shape[-2], z.shape[-1]
        zc = z.contiguous()
        nb = W.shape[-1] if W is not None else 1
        rp, gp, block = _launch_config(r, nb)
        rows = zc.numel() // r
        out = torch.empty_like(zc)
        # a switched-off path's pointer is never read: z stands in (an allocation would be a kernel per call)
        h = H.contiguous() if H is not None else zc
        w = W.contiguous() if W is not None else zc
        grid = (triton.cdiv(rows, block),)
        _sigma_fwd[grid](zc, h, w, out, rows, first_knot, 1.0 / step, N=n, R=r, RP=rp, NB=nb, GP=gp,
                         USE_TANH=H is not None, USE_SPLINE=W is not None, BLOCK=block)
        ctx.save_for_backward(zc, h, w)
        ctx.meta = (n, r, nb, rp, gp, block, rows, first_knot, step, H is not None, W is not None)
        return out

    @staticmethod
    def backward(ctx, gout):
        zc, h, w = ctx.saved_tensors
        n, r, nb, rp, gp, block, rows, first_knot, step, use_tanh, use_spline = ctx.meta
        programs = triton.cdiv(rows, block)
        gz = torch.empty_like(zc)
        gh_part = zc.new_empty(programs, n, r, r) if use_tanh else gz  # every program writes its part
        gw_part = zc.new_empty(programs, n, r, nb) if use_spline else gz
        _sigma_bwd[(programs,)](zc, h, w, gout.contiguous(), gz, gh_part, gw_part, rows, first_knot,
                                1.0 / step, N=n, R=r, RP=rp, NB=nb, GP=gp, USE_TANH=use_tanh, USE_SPLINE=use_spline,
                                BLOCK=block)
        return (gz, gh_part.sum(0) if use_tanh else None, gw_part.sum(0) if use_spline else None, None, None)


def triton_sigma_cubic(z, H, spline_weight, first_knot: float, step: float):
    """Same contract as nonlinearity.sigma_cubic (fp32 z of shape (..., n, r))."""
    return TritonSigma.apply(z, H, spline_weight, first_knot, step)
