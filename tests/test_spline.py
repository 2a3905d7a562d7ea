import pytest
import torch

from aurora_vision.layers import BSplineBasis, bspline_bases_reference, cubic_bspline_bases_uniform, uniform_knots
from aurora_vision.layers.spline import cubic_bspline_bases_uniform_grad


def test_default_grid_has_paper_knots():
    knots = uniform_knots(5, 3, (-1.0, 1.0))
    assert len(knots) == 12
    assert torch.allclose(knots[[0, -1]], torch.tensor([-2.2, 2.2], dtype=torch.float64))
    assert BSplineBasis().num_bases == 8


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_partition_of_unity_and_nonnegative(order):
    basis = BSplineBasis(grid_size=5, order=order, grid_range=(-1.0, 1.0))
    x = torch.linspace(-1.0, 0.9999, 1001)
    b = basis(x)
    assert b.shape == (1001, 5 + order)
    assert (b >= 0).all()
    assert torch.allclose(b.sum(-1), torch.ones(1001), atol=1e-5)


@pytest.mark.parametrize("order", [2, 3])
def test_bases_vanish_outside_extended_range(order):
    basis = BSplineBasis(grid_size=5, order=order, grid_range=(-1.0, 1.0))
    ext = 1.0 + order * 0.4
    x = torch.tensor([-ext - 1.0, -ext - 1e-3, -ext, ext, ext + 1e-3, 10.0])
    assert basis(x).abs().max() == 0
    inside = basis(torch.tensor([-ext + 0.05, ext - 0.05]))
    assert (inside.sum(-1) > 0).all()


def test_closed_form_cubic_equals_cox_de_boor():
    knots = uniform_knots(5, 3, (-1.0, 1.0))
    x = torch.linspace(-3, 3, 2001, dtype=torch.float64)
    ref = bspline_bases_reference(x, knots, 3)
    fast = cubic_bspline_bases_uniform(x, float(knots[0]), 0.4, 8)
    assert torch.allclose(fast, ref, atol=1e-12)


def test_cubic_bases_derivative_equals_autograd():
    """The written-out derivative (the sigma op's torch backward) against autograd of the closed form, in fp64,
    at points on every piece: inside one step of a basis' centre, one to two steps off, and beyond."""
    x = torch.linspace(-2.7, 2.7, 301, dtype=torch.float64).requires_grad_()
    step = 0.4
    bases = cubic_bspline_bases_uniform(x, -1.0 - 3 * step, step, 8)
    want = torch.stack([torch.autograd.grad(bases[:, j].sum(), x, retain_graph=True)[0] for j in range(8)], -1)
    torch.testing.assert_close(cubic_bspline_bases_uniform_grad(x.detach(), -1.0 - 3 * step, step, 8), want)


def test_nonlinearity_under_bf16_matches_fp32_reference():
    """Under bf16 autocast the r-wide nonlinearity still runs in fp32: only the output is rounded."""
    from aurora_vision.layers import AdaptiveNonlinearity
    sigma = AdaptiveNonlinearity(rank=2, num_adapters=2)
    z = (torch.randn(64, 2, 2) * 1.5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = sigma(z)
    assert fast.dtype == torch.bfloat16
    ref = sigma(z.float())
    assert torch.allclose(fast.float(), ref, rtol=1e-2, atol=1e-2)


def test_bad_grid_raises():
    with pytest.raises(ValueError, match="grid_range"):
        BSplineBasis(grid_range=(1.0, -1.0))
