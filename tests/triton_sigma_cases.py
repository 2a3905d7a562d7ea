"""The Triton kernels of AuroRA's nonlinearity against the reference formula, forward and every gradient.
On the CPU: run as a script with TRITON_INTERPRET=1 (test_triton_sigma.py does; Triton reads it when it is
imported, hence a fresh process). On a GPU: test_cuda.py calls `check("cuda", ...)` with real kernels."""
import torch

from aurora_vision.layers.nonlinearity import sigma_cubic
from aurora_vision.kernels.triton_sigma import triton_sigma_cubic

CASES = [  # n adapters, rank r, grid G, use_tanh, use_spline
    (2, 2, 5, True, True),     # the paper's setting, q and v stacked
    (1, 3, 5, True, True),     # rank not a power of two
    (3, 1, 4, True, True),
    (2, 8, 7, True, True),
    (2, 2, 5, False, True),    # ablation: no tanh path
    (2, 2, 5, True, False),    # ablation: no spline path
]



def check(device: str = "cpu", tokens: tuple = (2, 19), tol: float = 1e-4) -> int:
    torch.manual_seed(0)
    for n, r, grid, use_tanh, use_spline in CASES:
        # many values beyond the grid's [-1, 1]
        z = (torch.randn(*tokens, n, r, device=device) * 1.5).requires_grad_()
        H = torch.randn(n, r, r, device=device, requires_grad=True) if use_tanh else None
        W = torch.randn(n, r, grid + 3, device=device, requires_grad=True) if use_spline else None
        step = 2.0 / grid
        out = triton_sigma_cubic(z, H, W, -1.0 - 3 * step, step)
        ref = sigma_cubic(z, H, W, -1.0 - 3 * step, step)
        torch.testing.assert_close(out, ref, rtol=tol / 10, atol=tol / 10)
        params = [p for p in (z, H, W) if p is not None]
        gout = torch.randn_like(ref)
        for got, want in zip(torch.autograd.grad(out, params, gout), torch.autograd.grad(ref, params, gout)):
            torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    return len(CASES)


if __name__ == "__main__":
    print(f"ok {check()} cases")
