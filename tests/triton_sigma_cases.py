"""AuroRA's nonlinearity as its custom op (aurora_vision::sigma_cubic) against the reference formula (autograd
through torch ops), forward and every gradient. Under TRITON_INTERPRET=1 the op runs its Triton kernels on the
CPU: run this file as a script (test_triton_kernels.py does; Triton reads the variable when it is imported,
hence a fresh process). On a GPU (test_cuda_graph.py) it runs the kernels for real; on the CPU without the
interpreter, its torch form (test_triton_kernels.py). `opcheck` (a tuple of its test names) adds
torch.library.opcheck (schema, fake tensors, autograd registration, AOT dispatch); not under the interpreter,
whose kernels cannot take fake tensors."""
import torch

from aurora_vision.layers.nonlinearity import sigma_cubic
from aurora_vision.kernels.triton_sigma import sigma_cubic_op, triton_sigma_cubic

CASES = [  # n adapters, rank r, grid G, use_tanh, use_spline
    (2, 2, 5, True, True),     # the paper's setting, q and v stacked
    (1, 3, 5, True, True),     # rank not a power of two
    (3, 1, 4, True, True),
    (2, 8, 7, True, True),
    (2, 2, 5, False, True),    # ablation: no tanh path
    (2, 2, 5, True, False),    # ablation: no spline path
]


def check(device: str = "cpu", tokens: tuple = (2, 19), tol: float = 1e-4, opcheck=None) -> int:
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
        if opcheck and (n, r) == (2, 2):  # the paper's setting and its ablations (None for H or W)
            torch.library.opcheck(sigma_cubic_op, (z, H, W, -1.0 - 3 * step, step), test_utils=opcheck)
    return len(CASES)


if __name__ == "__main__":
    from aurora_vision.kernels import triton_sigma
    assert triton_sigma._INTERPRETED, "run with TRITON_INTERPRET=1: else the op's torch form is checked"
    print(f"ok {check()} cases")
