"""Run as a script with TRITON_INTERPRET=1 (test_triton_sigma.py does): the Triton kernels of AuroRA's
nonlinearity against the reference formula on the CPU, forward and every gradient. Triton reads
TRITON_INTERPRET when it is imported, hence a fresh process."""
import torch

from aurora_vision.layers.nonlinearity import sigma_cubic
from aurora_vision.layers.triton_sigma import triton_sigma_cubic

CASES = [  # n adapters, rank r, grid G, use_tanh, use_spline
    (2, 2, 5, True, True),     # the paper's setting, q and v stacked
    (1, 3, 5, True, True),     # rank not a power of two
    (3, 1, 4, True, True),
    (2, 8, 7, True, True),
    (2, 2, 5, False, True),    # ablation: no tanh path
    (2, 2, 5, True, False),    # ablation: no spline path
]

if __name__ == "__main__":
    torch.manual_seed(0)
    for n, r, grid, use_tanh, use_spline in CASES:
        z = (torch.randn(2, 19, n, r) * 1.5).requires_grad_()  # many values beyond the grid's [-1, 1]
        H = torch.randn(n, r, r, requires_grad=True) if use_tanh else None
        W = torch.randn(n, r, grid + 3, requires_grad=True) if use_spline else None
        step = 2.0 / grid
        out = triton_sigma_cubic(z, H, W, -1.0 - 3 * step, step)
        ref = sigma_cubic(z, H, W, -1.0 - 3 * step, step)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        params = [p for p in (z, H, W) if p is not None]
        gout = torch.randn_like(ref)
        for got, want in zip(torch.autograd.grad(out, params, gout), torch.autograd.grad(ref, params, gout)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    print(f"ok {len(CASES)} cases")
